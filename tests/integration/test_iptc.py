"""Engine python-iptables against real legacy x_tables in a network namespace.

The test of exactness: what python-iptables writes, engine iptables-legacy reads as its own
and leaves alone, and the other way round; both write the same lines in the same order.
"""

import fcntl
import threading
import time

import pytest

from tests.integration.netfilter import FOREIGN_RULES, in_netns, plant_foreign, restore, rules_of, run_module

OBJECTS = {
    4: [("tee_mirror", {"name": "http", "gateway": "198.18.0.3", "ports": ["80", "8000:8100"], "peer": "198.18.1.0/24"}),
        ("dnat_balancer", {"name": "web", "vip": "198.18.0.100", "port": 80, "mode": "random",
                           "backends": ["198.18.0.21", {"address": "198.18.0.22", "port": 8080, "weight": 2}]})],
    6: [("tee_mirror", {"name": "ping", "gateway": "2001:2::3", "protocol": "icmp", "interface": "eth+"}),
        ("dnat_balancer", {"name": "web", "vip": "2001:2::100", "port": 443,
                           "backends": ["2001:2::21", "[2001:2::22]:8443", "2001:2::23"]})],
}


def apply_with(netns, engine, family, check=False, state="present"):
    results = []
    for module, args in OBJECTS[family]:
        params = dict(args, engine=engine) if state == "present" else {"name": args["name"], "engine": engine, "state": "absent"}
        results.append(run_module(netns, module, params, check=check))
    assert all(r["rc"] == 0 and not r.get("failed") for r in results), results
    return results


def legacy_tables(netns):
    return in_netns(netns, ["cat", "/proc/net/ip_tables_names", "/proc/net/ip6_tables_names"], check=True).stdout.split()


@pytest.mark.parametrize("first, second", [("python-iptables", "iptables-legacy"), ("iptables-legacy", "python-iptables")])
def test_each_engine_takes_the_others_rules_as_its_own(netns, family, first, second):
    assert [r["changed"] for r in apply_with(netns, first, family)] == [True, True]
    written = rules_of(netns)
    assert [(r["changed"], r["removed_from"]) for r in apply_with(netns, second, family)] == [(False, []), (False, [])]
    assert rules_of(netns) == written
    assert [r["changed"] for r in apply_with(netns, second, family, state="absent")] == [True, True]
    assert "NM-" not in rules_of(netns)


def test_both_engines_write_the_same_lines_in_the_same_order(netns, family):
    plant_foreign(netns, "python-iptables")
    listings = {}
    for engine in ("python-iptables", "iptables-legacy"):
        apply_with(netns, engine, family)
        listings[engine] = rules_of(netns)
        apply_with(netns, engine, family, state="absent")
    assert "NM-SVC-" in listings["python-iptables"]
    assert listings["python-iptables"] == listings["iptables-legacy"]


def test_a_host_whose_rules_are_in_nf_tables_is_refused_and_left_as_it_was(netns):
    restore(netns, "iptables-nft", FOREIGN_RULES)
    before = rules_of(netns)
    for module, args in OBJECTS[4]:
        result = run_module(netns, module, dict(args, engine="python-iptables"))
        assert result.get("failed") and "live rules are in nf_tables (%d rules" % FOREIGN_RULES.count("\n-A ") in result["msg"], result
    assert rules_of(netns) == before
    assert legacy_tables(netns) == []


def test_check_mode_and_reading_create_no_table(netns, family):
    assert [r["changed"] for r in apply_with(netns, "python-iptables", family, check=True)] == [True, True]
    assert [r["changed"] for r in apply_with(netns, "python-iptables", family, state="absent")] == [False, False]
    assert legacy_tables(netns) == []


def test_it_waits_for_the_xtables_lock_before_writing(netns, monkeypatch, tmp_path):
    lock = tmp_path / "xtables.lock"
    monkeypatch.setenv("XTABLES_LOCKFILE", str(lock))
    module, args = OBJECTS[4][0]
    with open(lock, "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        release = threading.Timer(1.5, fcntl.flock, (holder, fcntl.LOCK_UN))
        release.start()
        started = time.monotonic()
        result = run_module(netns, module, dict(args, engine="python-iptables"))
        waited = time.monotonic() - started
        release.join()
    assert result["rc"] == 0 and result["changed"], result
    assert waited >= 1.5
    assert "NM-MIRO-" in rules_of(netns)
