"""The modules against real netfilter in a network namespace, on both iptables backends."""

import pytest

from tests.integration.netfilter import ENGINES, FOREIGN_RULES, foreign_part, in_netns, iptables_save, restore, run_module

MIRROR = {"name": "http", "gateway": "198.18.0.3", "ports": ["80", "8000:8100"]}
BALANCER = {
    "name": "web",
    "vip": "198.18.0.100",
    "port": 80,
    "backends": ["198.18.0.21", "198.18.0.22:8080", {"address": "198.18.0.23", "weight": 2}],
}
OBJECTS = [("tee_mirror", MIRROR), ("dnat_balancer", BALANCER)]


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.param


@pytest.fixture
def planted(netns, engine):
    """The namespace with foreign rules in filter, nat and mangle; returns the baseline save."""
    restore(netns, engine, FOREIGN_RULES)
    return iptables_save(netns, engine)


def apply_all(netns, engine, check=False, diff=False, state="present"):
    results = []
    for module, args in OBJECTS:
        params = dict(args, engine=engine) if state == "present" else {"name": args["name"], "engine": engine, "state": "absent"}
        results.append(run_module(netns, module, params, check=check, diff=diff))
    for result in results:
        assert result["rc"] == 0, result
    return results


def test_full_lifecycle_keeps_foreign_rules_and_ends_byte_for_byte(netns, engine, planted):
    checked = apply_all(netns, engine, check=True)
    assert [r["changed"] for r in checked] == [True, True]
    assert iptables_save(netns, engine) == planted, "check mode changed the ruleset"

    applied = apply_all(netns, engine, diff=True)
    assert [r["changed"] for r in applied] == [True, True]
    assert all(r["engine"] == engine for r in applied)
    live = iptables_save(netns, engine)
    live_lines = set(live.splitlines())
    for result in applied:
        missing = [line for line in result["rules"] if line not in live_lines]
        assert not missing, "rendered rules differ from iptables-save: %s" % missing
        assert all(":%s - [0:0]" % chain in live_lines for chain in result["chains"])
        assert result["diff"]["before"] == ""
        assert result["rules"][0] in result["diff"]["after"]
    assert foreign_part(live) == foreign_part(planted)

    again = apply_all(netns, engine, check=True)
    assert [r["changed"] for r in again] == [False, False]
    again = apply_all(netns, engine)
    assert [r["changed"] for r in again] == [False, False]
    assert iptables_save(netns, engine) == live

    removed = apply_all(netns, engine, state="absent")
    assert [r["changed"] for r in removed] == [True, True]
    assert iptables_save(netns, engine) == planted
    removed = apply_all(netns, engine, state="absent")
    assert [r["changed"] for r in removed] == [False, False]


def mangle_table(save_text):
    return save_text[save_text.index("*mangle"):].split("COMMIT")[0]


def test_changing_backends_rewrites_only_the_service(netns, engine, planted):
    apply_all(netns, engine)
    before = iptables_save(netns, engine)
    changed = run_module(netns, "dnat_balancer", dict(BALANCER, backends=["198.18.0.21", "198.18.0.24"], engine=engine), diff=True)
    assert changed["changed"] and changed["rc"] == 0
    after = iptables_save(netns, engine)
    assert "198.18.0.24:80" in after and "198.18.0.22:8080" not in after
    assert "198.18.0.22:8080" in changed["diff"]["before"] and "198.18.0.24:80" in changed["diff"]["after"]
    assert mangle_table(after) == mangle_table(before), "the mirror's table was touched"
    assert foreign_part(after) == foreign_part(planted)


def test_hand_made_changes_are_repaired(netns, engine, planted):
    apply_all(netns, engine)
    clean = iptables_save(netns, engine)
    variant = engine.split("-")[1]
    result = apply_all(netns, engine, check=True)[1]
    svc = [c for c in result["chains"] if c.startswith("NM-SVC-")][0]
    in_netns(netns, ["iptables-%s" % variant, "-t", "nat", "-F", svc], check=True)
    in_netns(netns, ["iptables-%s" % variant, "-t", "nat", "-D", "OUTPUT", "1"], check=True)
    repaired = run_module(netns, "dnat_balancer", dict(BALANCER, engine=engine))
    assert repaired["changed"] and repaired["rc"] == 0
    assert sorted(iptables_save(netns, engine).splitlines()) == sorted(clean.splitlines())


def test_a_refused_change_leaves_the_ruleset_as_it_was(netns, engine, planted):
    """A foreign rule jumping into an owned chain makes removal impossible; nothing half-happens."""
    result = apply_all(netns, engine)[1]
    svc = [c for c in result["chains"] if c.startswith("NM-SVC-")][0]
    restore(netns, engine, "*nat\n-A DOCKER -p tcp -j %s\nCOMMIT\n" % svc)
    before = iptables_save(netns, engine)
    refused = run_module(netns, "dnat_balancer", {"name": "web", "state": "absent", "engine": engine})
    assert refused.get("failed") and "refused the change, nothing was applied" in refused["msg"]
    assert iptables_save(netns, engine) == before


def test_auto_uses_the_backend_holding_rules(netns):
    restore(netns, "iptables-legacy", FOREIGN_RULES)
    result = run_module(netns, "tee_mirror", MIRROR)
    assert result["engine"] == "iptables-legacy"
    assert "NM-MIRO-" in iptables_save(netns, "iptables-legacy")
    assert "NM-" not in in_netns(netns, ["iptables-nft-save"]).stdout


def test_auto_on_an_empty_host_follows_the_iptables_command(netns):
    tag = in_netns(netns, ["iptables", "--version"]).stdout
    result = run_module(netns, "tee_mirror", MIRROR)
    assert result["engine"] == ("iptables-nft" if "nf_tables" in tag else "iptables-legacy")


def test_auto_refuses_a_host_with_rules_in_both_backends(netns):
    restore(netns, "iptables-legacy", FOREIGN_RULES)
    restore(netns, "iptables-nft", FOREIGN_RULES)
    before = iptables_save(netns, "iptables-nft") + iptables_save(netns, "iptables-legacy")
    result = run_module(netns, "dnat_balancer", BALANCER)
    assert result.get("failed") and "both iptables backends" in result["msg"]
    assert iptables_save(netns, "iptables-nft") + iptables_save(netns, "iptables-legacy") == before
