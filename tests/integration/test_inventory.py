"""The inventory is the truth: after the inventory changes (a service removed, one renamed, a
backend added, a host out of its group) the playbooks leave exactly what it says, proven with
real connections through the VIP, and the next run changes nothing."""

import json
import os
import re
import subprocess
import sys

import pytest

from tests.integration.netfilter import REPO, collections_path
from tests.lab.netlab import Lab

CLIENT = os.path.join(REPO, "tests", "lab", "client.py")
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")


@pytest.fixture
def lab():
    with Lab("inv%d" % (os.getpid() % 1000), backends=3, subnet="198.18.241.0/24") as running:
        for backend in running.backend_hosts:
            running.start_http(backend)
        yield running


def play(lab, tmp_path, playbook, services, *extra):
    """Runs a playbook of the collection on the lab with these balancer services; returns {host: changed}."""
    inventory = lab.write_inventory(tmp_path / "hosts.yml")
    group_vars = tmp_path / "group_vars"
    group_vars.mkdir(exist_ok=True)
    (group_vars / "balancers.yml").write_text(json.dumps({
        "load_balancer_sysctl_file": str(lab.state_dir / "balancer-sysctl.conf"), "load_balancer_services": services}))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_NOCOLOR="1")
    completed = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(inventory), os.path.join(REPO, "playbooks", playbook)] + list(extra),
                               capture_output=True, text=True, timeout=300, check=False, env=env)
    recap = {match.group(1): (int(match.group(2)), int(match.group(3)))
             for match in re.finditer(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", completed.stdout, re.M)}
    return completed, recap


def answers(lab, port, count):
    out = lab.run("client", [sys.executable, CLIENT, lab.vip, "--port", str(port), "--count", str(count), "--max-seconds", "10",
                             "--timeout", "1"], timeout=60)
    found = json.loads(out.stdout)["answers"] if out.returncode == 0 and out.stdout.strip() else []
    return [answer for answer in found if answer and not answer.startswith("ERROR")] or None


def service(name, port, backends):
    query = "[?contains(`%s`, inventory_hostname)].{address: ansible_host, port: `80`}" % json.dumps(backends)
    return {"name": name, "vip": "{{ vip }}", "port": port, "backends_from": {"query": query}}


def tags(lab):
    return sorted(set(re.findall(r'"netmagic:balancer:([^"]+)"', lab.run("lb", ["iptables-save", "-t", "nat"], check=True).stdout)))


def test_a_changed_inventory_leaves_exactly_its_services(lab, tmp_path):
    completed, recap = play(lab, tmp_path, "balance.yml", [service("web", 80, ["be1", "be2"]), service("api", 8080, ["be1"])])
    assert completed.returncode == 0, completed.stdout[-3000:]
    assert tags(lab) == ["api", "web"]
    assert sorted(answers(lab, 80, 10)) == ["be1"] * 5 + ["be2"] * 5
    # The audit: one line per host, with the connections each balancer sent on.
    completed, recap = play(lab, tmp_path, "audit.yml", [], "--limit", "lb")
    assert completed.returncode == 0 and recap["lb"] == (0, 0), completed.stdout[-3000:]
    assert "lb: engine iptables-nft; mirrors: none; balancers: api (0 connections), web (10 connections); drift: none" \
        in completed.stdout, completed.stdout[-3000:]

    # api removed, web renamed www, be3 added: one run leaves exactly www over three backends.
    completed, recap = play(lab, tmp_path, "balance.yml", [service("www", 80, ["be1", "be2", "be3"])])
    assert completed.returncode == 0, completed.stdout[-3000:]
    assert tags(lab) == ["www"]
    assert sorted(answers(lab, 80, 9)) == ["be1"] * 3 + ["be2"] * 3 + ["be3"] * 3
    assert answers(lab, 8080, 1) is None, "the removed service still answers"

    completed, recap = play(lab, tmp_path, "balance.yml", [service("www", 80, ["be1", "be2", "be3"])])
    assert completed.returncode == 0 and recap["lb"] == (0, 0), completed.stdout[-3000:]

    # The host leaves the balancers group: the remove playbook, limited to it, takes what is left.
    completed, _recap = play(lab, tmp_path, "remove.yml", [], "--limit", "lb")
    assert completed.returncode == 0 and "removed: www" in completed.stdout, completed.stdout[-3000:]
    assert tags(lab) == [] and answers(lab, 80, 1) is None


def test_remove_refuses_to_run_on_the_whole_inventory(lab, tmp_path):
    completed, _recap = play(lab, tmp_path, "remove.yml", [])
    assert completed.returncode != 0 and "name the hosts with --limit" in completed.stdout


def rules(lab):
    """The balancer's ruleset and forwarding, without the dated comment lines."""
    saved = lab.run("lb", ["iptables-save"], check=True).stdout
    return [line for line in saved.splitlines() if not line.startswith("#")], lab.sysctl("lb", "net.ipv4.ip_forward")


def test_a_collector_that_would_balance_is_refused_before_any_change(lab, tmp_path):
    inventory = lab.inventory()
    inventory["all"]["children"]["collectors"]["hosts"]["lb"] = inventory["all"]["children"]["balancers"]["hosts"]["lb"]
    path = tmp_path / "both.yml"
    path.write_text(json.dumps(inventory))
    before = rules(lab)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_NOCOLOR="1")
    services = [service("web", 80, ["be1"])]
    for playbook in ("balance.yml", "mirror.yml"):
        completed = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(path), "-e", json.dumps({"load_balancer_services": services,
                                    "load_balancer_sysctl_file": str(lab.state_dir / "x.conf"), "mirror_collector_sysctl_file":
                                    str(lab.state_dir / "y.conf")}), os.path.join(REPO, "playbooks", playbook)],
                                   capture_output=True, text=True, timeout=300, check=False, env=env)
        assert completed.returncode != 0 and "lb is a collector" in completed.stdout, completed.stdout[-3000:]
    assert rules(lab) == before
