"""The lab demo: the project's playbooks on namespace hosts, then real traffic, then the proof.

Run by `make demo` as root. Builds the lab (tests/lab/netlab.py), writes its inventory,
runs playbooks/site.yml twice (the second run must change nothing), mirrors HTTP from
`sender` to `collector` and balances a VIP on `lb` over the backends, sends traffic and
prints what each host counted. The lab is torn down at the end unless --keep is given.
"""

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.lab.netlab import Lab  # noqa: E402 - the repo root is put on the path just above

WORK = os.path.join(REPO, ".build", "demo")
CLIENT = os.path.join(REPO, "tests", "lab", "client.py")
BIN = os.path.dirname(sys.executable)
RECAP = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def group_vars(lab):
    """The demo's definitions: what a user would put in group_vars."""
    state = str(lab.state_dir)
    return {
        "collectors": {
            # Lab hosts share the machine's /etc: keep the persisted sysctl inside the lab.
            "mirror_collector_sysctl_file": os.path.join(state, "collector-sysctl.conf"),
        },
        "senders": {
            "mirror_sender_mirrors": [{"name": "http", "protocol": "tcp", "ports": ["80"]}],
        },
        "balancers": {
            "load_balancer_sysctl_file": os.path.join(state, "balancer-sysctl.conf"),
            "load_balancer_services": [{
                "name": "web",
                "vip": lab.vip,
                "port": 80,
                "backends_from": {"group": "backends", "port_var": "backend_port"},
            }],
        },
    }


def write_inventory(lab):
    os.makedirs(os.path.join(WORK, "group_vars"), exist_ok=True)
    inventory = lab.write_inventory(os.path.join(WORK, "hosts.yml"))
    for group, variables in group_vars(lab).items():
        with open(os.path.join(WORK, "group_vars", group + ".yml"), "w", encoding="utf-8") as handle:
            json.dump(variables, handle, indent=2)  # JSON is YAML
    return str(inventory)


def run_playbook(inventory):
    """Runs playbooks/site.yml; returns {host: changed count} from the recap."""
    started = time.monotonic()
    completed = subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), "-i", inventory, os.path.join(REPO, "playbooks", "site.yml")],
        capture_output=True, text=True, check=False, env=dict(os.environ, ANSIBLE_NOCOLOR="1"),
    )
    recap = {host: (int(changed), int(unreachable) + int(failed)) for host, changed, unreachable, failed in RECAP.findall(completed.stdout)}
    if completed.returncode != 0 or not recap or any(bad for _changed, bad in recap.values()):
        sys.stderr.write(completed.stdout[-6000:] + completed.stderr[-3000:])
        raise SystemExit("demo: ansible-playbook failed (rc=%d)" % completed.returncode)
    return {host: changed for host, (changed, _bad) in recap.items()}, time.monotonic() - started


def connect(lab, host, target, count):
    completed = lab.run(host, [sys.executable, CLIENT, target, "--count", str(count), "--max-seconds", "60"], check=True, timeout=90)
    return json.loads(completed.stdout)["answers"]


def prove_mirror(lab, requests):
    web = lab.addr("web")
    collector_mac = lab.run("collector", ["cat", "/sys/class/net/eth0/address"], check=True).stdout.strip()
    port_80 = ("tcp dport 80", "tcp sport 80")
    forwarded_before = lab.forwarded("collector")
    served_before = lab.http_requests("web")
    with lab.capture("collector", "tcp port 80") as captured, \
            lab.count("collector", *port_80) as clones, lab.count("web", *port_80) as originals, \
            lab.count("web", "ether saddr %s tcp dport 80" % collector_mac) as leaked:
        answers = connect(lab, "sender", web, requests)
    return [
        ("HTTP requests sent by sender", requests),
        ("requests answered", answers.count("web")),
        ("requests the web server saw", lab.http_requests("web") - served_before),
        ("packets of those exchanges at web", originals.count),
        ("clones counted by the kernel on collector", clones.count),
        ("clones seen by tcpdump on collector", captured.count),
        ("packets forwarded by collector (must be 0)", lab.forwarded("collector") - forwarded_before),
        ("clones that reached web again (must be 0)", leaked.count),
    ]


def prove_balancer(lab, connections):
    answers = connect(lab, "client", lab.vip, connections)
    counts = collections.Counter(answers)
    rows = [("connections from client to %s:80" % lab.vip, connections)]
    rows += [("  answered by %s" % backend, counts.get(backend, 0)) for backend in lab.backend_hosts]
    rows.append(("  failed", sum(1 for a in answers if a.startswith("ERROR"))))
    rows.append(("first rotation", " ".join(answers[: len(lab.backend_hosts) * 2])))
    return rows


def verdict(second_run, mirror, balancer, args):
    """What the proof claims; each broken claim is named."""
    claims = {
        "the second run changed nothing": not any(second_run.values()),
        "the web server saw each request once": mirror["requests the web server saw"] == args.requests,
        "every packet reached the collector as a clone": mirror["clones counted by the kernel on collector"] == mirror["packets of those exchanges at web"] > 0,
        "tcpdump recorded the clones": 0 < mirror["clones seen by tcpdump on collector"] <= mirror["clones counted by the kernel on collector"],
        "no clone came back to web": mirror["clones that reached web again (must be 0)"] == 0,
        "the collector forwarded nothing": mirror["packets forwarded by collector (must be 0)"] == 0,
        "the backends took exact turns": all(
            count == args.connections // args.backends for label, count in balancer.items() if label.startswith("  answered by")
        ) and balancer["  failed"] == 0,
    }
    return [claim for claim, holds in claims.items() if not holds]


def print_table(title, rows):
    width = max(len(label) for label, _value in rows)
    print("\n" + title)
    print("-" * (width + 12))
    for label, value in rows:
        print("%-*s  %s" % (width, label, value))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave the lab running (tear down with `python3 -m tests.lab.netlab down --id demo`)")
    parser.add_argument("--backends", type=int, default=3)
    parser.add_argument("--requests", type=int, default=10, help="HTTP requests the sender makes")
    parser.add_argument("--connections", type=int, default=30, help="connections through the VIP")
    args = parser.parse_args()

    lab = Lab("demo", backends=args.backends, subnet="198.18.0.0/24")
    try:
        lab.down()  # a lab left over by an interrupted run
        lab.up()
        for host in ["web"] + lab.backend_hosts:
            lab.start_http(host, 80)
        print("lab up: %s; collector forwarding starts at %s" % (", ".join(lab.hosts), lab.sysctl("collector", "net.ipv4.ip_forward")))
        inventory = write_inventory(lab)
        first, first_seconds = run_playbook(inventory)
        second, second_seconds = run_playbook(inventory)
        print_table("playbooks/site.yml on the lab", [
            ("first run: changed tasks per host", " ".join("%s=%d" % item for item in sorted(first.items()))),
            ("first run took", "%.1f s" % first_seconds),
            ("second run: changed tasks per host", " ".join("%s=%d" % item for item in sorted(second.items()))),
            ("second run took", "%.1f s" % second_seconds),
            ("collector forwarding now", lab.sysctl("collector", "net.ipv4.ip_forward")),
        ])
        mirror = prove_mirror(lab, args.requests)
        balancer = prove_balancer(lab, args.connections)
        print_table("Mirror: HTTP from sender to web, cloned to collector", mirror)
        print_table("Balancer: round robin over the backends", balancer)
        failures = verdict(second, dict(mirror), dict(balancer), args)
        if failures:
            raise SystemExit("demo: proof failed: " + "; ".join(failures))
        print("\nproof holds: every packet cloned once, nothing forwarded, exact rotation, second run changed nothing")
    finally:
        if args.keep:
            lab.keep()
            print("\nlab kept; inventory: %s" % os.path.join(WORK, "hosts.yml"))
        else:
            lab.down()


if __name__ == "__main__":
    main()
