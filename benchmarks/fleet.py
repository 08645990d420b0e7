"""Fleet: playbooks/site.yml against N lab hosts through the netns connection, at several fork counts.

One lab of N namespaces (client, sender, collector, web, lb, be1..be<N-5>; N=50 in the full
run). The inventory gives every one of them work: 1 collector, about half the rest senders
mirroring HTTP to it, the others balancers with one three-backend service each. Every fork
count starts from a fresh lab: a first run that applies everything, then a second run that
must change nothing.
"""

import json
import os
import re
import subprocess
import sys
import tempfile

from benchmarks import collection, measure

sys.path.insert(0, collection.REPO)
from tests.lab.netlab import Lab  # noqa: E402 - needs the repo on the path

LAB_ID = "bfl"
SUBNET = "198.18.2.0/24"
NAMED_HOSTS = 5  # client, sender, collector, web, lb; the rest are be1..beN
PLAYBOOK = os.path.join(collection.REPO, "playbooks", "site.yml")
RECAP = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def groups(lab):
    spread = lab.backend_hosts
    senders = len(lab.hosts) // 2 - 3
    return {
        "collectors": ["collector"],
        "senders": ["sender", "client", "web", *spread[:senders]],
        "balancers": ["lb", *spread[senders:]],
    }


def group_vars(lab):
    """What a user puts in group_vars; sysctl files stay in the lab's state directory (hosts share /etc)."""
    state = str(lab.state_dir)
    return {
        "collectors": {"mirror_collector_sysctl_file": os.path.join(state, "collector-sysctl.conf")},
        "senders": {"mirror_sender_mirrors": [{"name": "http", "protocol": "tcp", "ports": ["80"]}]},
        "balancers": {
            "load_balancer_sysctl_file": os.path.join(state, "sysctl-{{ inventory_hostname }}.conf"),
            "load_balancer_services": [{"name": "web", "vip": lab.vip, "port": 80,
                                        "backends": [lab.addr(host) for host in lab.backend_hosts[:3]]}],
        },
    }


def inventory(lab):
    base = lab.inventory()["all"]
    host_vars = {host: info for group in base["children"].values() for host, info in group["hosts"].items()}
    children = {name: {"hosts": {host: host_vars[host] for host in members}, "vars": group_vars(lab)[name]}
                for name, members in groups(lab).items()}
    return {"all": {"vars": base["vars"], "children": children}}


def run_playbook(inventory_path, forks, timeout, playbook=PLAYBOOK):
    """Wall seconds of one ansible-playbook run, and changed tasks per host from the recap."""
    argv = [os.path.join(collection.REPO, ".venv", "bin", "ansible-playbook"), "-i", inventory_path, "-f", str(forks), playbook]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_PIPELINING="1")
    seconds, completed = measure.timed(
        lambda: subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, env=env))
    recap = {host: (int(changed), int(unreachable) + int(failed)) for host, changed, unreachable, failed in RECAP.findall(completed.stdout)}
    if completed.returncode != 0 or any(bad for _changed, bad in recap.values()):
        errors = [line for line in completed.stdout.splitlines() if line.startswith(("fatal:", "failed:"))]
        raise RuntimeError("%s with %d forks failed (rc=%d): %s" % (os.path.basename(playbook), forks, completed.returncode,
                                                                    "\n".join(errors)[:4000]))
    return seconds, {host: changed for host, (changed, _bad) in recap.items()}


def run_ping(inventory_path, forks, timeout):
    """Wall seconds of `ansible all -m ping` on the same hosts: the floor any playbook run pays."""
    argv = [os.path.join(collection.REPO, ".venv", "bin", "ansible"), "-i", inventory_path, "-f", str(forks), "all", "-m", "ping"]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_PIPELINING="1")
    seconds, completed = measure.timed(
        lambda: subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, env=env))
    if completed.returncode != 0:
        raise RuntimeError("ansible -m ping with %d forks failed: %s" % (forks, completed.stdout[-2000:]))
    return seconds


def fresh_run(lab, forks, timeout):
    """A fresh lab, then the first and the second run of site.yml, and the ping floor in between."""
    lab.down()
    lab.up()
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as handle:
        json.dump(inventory(lab), handle)  # JSON is YAML
        handle.flush()
        first, first_changed = run_playbook(handle.name, forks, timeout)
        ping = run_ping(handle.name, forks, timeout)
        second, second_changed = run_playbook(handle.name, forks, timeout)
    if not all(first_changed.values()) or any(second_changed.values()):
        raise RuntimeError("site.yml: every host must change on the first run and none on the second: %s / %s"
                           % (first_changed, second_changed))
    return {"first": first, "second": second, "ping": ping, "hosts": len(first_changed)}


BALANCE_PLAYBOOK = os.path.join(collection.REPO, "playbooks", "balance.yml")


def balancer_inventory(lab, services):
    """Only lb balancing, with this many services of three backends each (ports 8001, 8002, ...)."""
    base = lab.inventory()["all"]
    host_vars = {host: info for group in base["children"].values() for host, info in group["hosts"].items()}
    backends = [lab.addr(host) for host in lab.backend_hosts[:3]]
    balancer_vars = {"load_balancer_sysctl_file": os.path.join(str(lab.state_dir), "sysctl-lb.conf"),
                     "load_balancer_services": [{"name": "svc%d" % index, "vip": lab.vip, "port": 8001 + index, "backends": backends}
                                                for index in range(services)]}
    return {"all": {"vars": base["vars"], "children": {
        "balancers": {"hosts": {"lb": host_vars["lb"]}, "vars": balancer_vars},
        "backends": {"hosts": {host: host_vars[host] for host in lab.backend_hosts}}}}}


def service_scaling(lab, timeout, counts=(1, 50)):
    """Seconds of balance.yml on one host, first and no-change run, for each service count."""
    found = {}
    for services in counts:
        lab.down()
        lab.up()
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as handle:
            json.dump(balancer_inventory(lab, services), handle)
            handle.flush()
            first, _changed = run_playbook(handle.name, 1, timeout, BALANCE_PLAYBOOK)
            second, changed = run_playbook(handle.name, 1, timeout, BALANCE_PLAYBOOK)
        if any(changed.values()):
            raise RuntimeError("balance.yml with %d services changed something on its second run: %s" % (services, changed))
        found[services] = {"first": first, "second": second}
    return found


def run(hosts, forks_list, repeats, timeout, log):
    collection.use_installed_build()
    lab = Lab(LAB_ID, backends=hosts - NAMED_HOSTS, subnet=SUBNET)
    samples = {forks: {"first": [], "second": [], "ping": []} for forks in forks_list}
    try:
        for repeat in range(repeats):
            for forks in forks_list:
                result = fresh_run(lab, forks, timeout)
                for run_name in ("first", "second", "ping"):
                    samples[forks][run_name].append(result[run_name])
                log("  fleet forks %d repeat %d: first %.1fs second %.1fs ping %.1fs (%d hosts)"
                    % (forks, repeat + 1, result["first"], result["second"], result["ping"], result["hosts"]))
        scaling = [service_scaling(lab, timeout) for _repeat in range(repeats)]
        timings = ["%d: first %.1fs second %.1fs" % (n, r["first"], r["second"]) for run in scaling for n, r in run.items()]
        log("  one host, 1 and 50 services: " + "; ".join(timings))
    finally:
        lab.down()
    return {"hosts": len(lab.hosts), "repeats": repeats, "groups": {k: len(v) for k, v in groups(lab).items()},
            "forks": {str(forks): dict({name: measure.summary(values) for name, values in runs.items()},
                                       first_to_ping=measure.summary([a / b for a, b in zip(runs["first"], runs["ping"])]),
                                       second_to_ping=measure.summary([a / b for a, b in zip(runs["second"], runs["ping"])]))
                      for forks, runs in samples.items()},
            "services": {name: measure.summary([run[50][name] / run[1][name] for run in scaling]) for name in ("first", "second")}}
