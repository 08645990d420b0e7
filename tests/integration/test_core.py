"""The modules against real netfilter in a network namespace, on every engine and both IP families."""

import pytest

from tests.integration.netfilter import (
    ENGINES,
    FOREIGN_RULES,
    LEGACY_ENGINES,
    as_written,
    distrust,
    in_netns,
    iptables_save,
    restore,
    rules_of,
    run_module,
)

DEFINITIONS = {
    4: {
        "tee_mirror": {"name": "http", "gateway": "198.18.0.3", "ports": ["80", "8000:8100"]},
        "dnat_balancer": {"name": "web", "vip": "198.18.0.100", "port": 80,
                          "backends": ["198.18.0.21", "198.18.0.22:8080", {"address": "198.18.0.23", "weight": 2}]},
    },
    6: {
        "tee_mirror": {"name": "http", "gateway": "2001:2::3", "ports": ["80", "8000:8100"]},
        "dnat_balancer": {"name": "web", "vip": "2001:2::100", "port": 80,
                          "backends": ["2001:2::21", "[2001:2::22]:8080", {"address": "2001:2::23", "weight": 2}]},
    },
}
NEW_BACKEND = {4: ("198.18.0.24", "198.18.0.22:8080"), 6: ("2001:2::24", "[2001:2::22]:8080")}


def apply_all(netns, engine, family, check=False, diff=False, state="present"):
    results = []
    for module, args in DEFINITIONS[family].items():
        params = dict(args, engine=engine) if state == "present" else {"name": args["name"], "engine": engine, "state": "absent"}
        results.append(run_module(netns, module, params, check=check, diff=diff))
    for result in results:
        assert result["rc"] == 0 and not result.get("failed"), result
    return results


def assert_rules_are_live(netns, engine, family, result):
    """What the module says it wrote is what the kernel holds, in the engine's own listing."""
    assert result["chains"] and result["rules"], result
    if engine == "nftables":
        listing = in_netns(netns, ["nft", "list", "table", "ip" if family == 4 else "ip6", "netmagic"], check=True).stdout
        assert all("chain %s {" % chain in listing for chain in result["chains"]), listing
        missing = [line for line in result["rules"] if line.split(": ", 1)[1] not in listing]
        assert not missing, "rendered rules differ from nft list: %s" % missing
        return
    variant = "legacy" if engine != "iptables-nft" else "nft"
    save = iptables_save(netns, "iptables-" + variant, "iptables" if family == 4 else "ip6tables").splitlines()
    missing = [line for line in result["rules"] if line not in save]
    assert not missing, "rendered rules differ from iptables-save: %s" % missing
    assert all(":%s - [0:0]" % chain in save for chain in result["chains"])


def test_full_lifecycle_keeps_foreign_rules_and_ends_byte_for_byte(netns, engine, family, planted):
    checked = apply_all(netns, engine, family, check=True)
    assert [r["changed"] for r in checked] == [True, True]
    assert rules_of(netns) == planted, "check mode changed the ruleset"

    applied = apply_all(netns, engine, family, diff=True)
    assert [r["changed"] for r in applied] == [True, True]
    for result in applied:
        assert result["engine"] == engine
        assert_rules_are_live(netns, engine, family, result)
        assert result["diff"]["before"] == ""
        assert result["chains"][0] in result["diff"]["after"]
    live = rules_of(netns)

    assert [r["changed"] for r in apply_all(netns, engine, family, check=True)] == [False, False]
    assert [r["changed"] for r in apply_all(netns, engine, family)] == [False, False]
    distrust(netns)
    assert [r["changed"] for r in apply_all(netns, engine, family)] == [False, False], "the rules read back differ from the definitions"
    assert rules_of(netns) == live

    removed = apply_all(netns, engine, family, state="absent")
    assert [r["changed"] for r in removed] == [True, True]
    assert rules_of(netns) == planted
    assert [r["changed"] for r in apply_all(netns, engine, family, state="absent")] == [False, False]


def test_changing_backends_rewrites_only_the_service(netns, engine, family, planted):
    apply_all(netns, engine, family)
    added, dropped = NEW_BACKEND[family][0], as_written(NEW_BACKEND[family][1], engine)
    balancer = DEFINITIONS[family]["dnat_balancer"]
    changed = run_module(netns, "dnat_balancer", dict(balancer, backends=[balancer["backends"][0], added], engine=engine), diff=True)
    assert changed["changed"] and changed["rc"] == 0
    after = rules_of(netns)
    assert added in after and dropped not in after
    assert dropped in changed["diff"]["before"] and added in changed["diff"]["after"]
    mirror = run_module(netns, "tee_mirror", dict(DEFINITIONS[family]["tee_mirror"], engine=engine), check=True)
    assert mirror["changed"] is False, "the mirror's rules were touched"


def tamper(netns, engine, chain):
    """By hand: empty one owned chain and delete the way from nat OUTPUT into the service."""
    if engine == "nftables":
        # nat OUTPUT's way into a service is its element in the map local-services.
        in_netns(netns, ["nft", "flush", "chain", "ip", "netmagic", chain], check=True)
        in_netns(netns, ["nft", "delete", "element", "ip", "netmagic", "local-services", "{ 198.18.0.100 . tcp . 80 }"], check=True)
        return
    tool = "iptables-nft" if engine == "iptables-nft" else "iptables-legacy"
    in_netns(netns, [tool, "-t", "nat", "-F", chain], check=True)
    in_netns(netns, [tool, "-t", "nat", "-D", "OUTPUT", "1"], check=True)


def test_hand_made_changes_are_repaired(netns, engine, planted):
    result = apply_all(netns, engine, 4)[1]
    clean = rules_of(netns)
    tamper(netns, engine, [c for c in result["chains"] if c.startswith("NM-SVC-")][0])
    assert rules_of(netns) != clean
    repaired = run_module(netns, "dnat_balancer", dict(DEFINITIONS[4]["dnat_balancer"], engine=engine))
    assert repaired["changed"] and repaired["rc"] == 0
    assert sorted(rules_of(netns).splitlines()) == sorted(clean.splitlines())


@pytest.mark.parametrize("engine", [e for e in ENGINES if e != "nftables"])
def test_a_refused_change_leaves_the_ruleset_as_it_was(netns, engine, planted):
    """A foreign rule jumping into an owned chain makes removal impossible: refused before any
    change, naming the foreign rule, which netfilter_info reports too.

    (A native nft table cannot be jumped into from outside, so this cannot happen there.)
    """
    result = apply_all(netns, engine, 4)[1]
    svc = [c for c in result["chains"] if c.startswith("NM-SVC-")][0]
    restore(netns, "iptables-legacy" if engine != "iptables-nft" else engine, "*nat\n-A DOCKER -p tcp -j %s\nCOMMIT\n" % svc)
    before = rules_of(netns)
    refused = run_module(netns, "dnat_balancer", {"name": "web", "state": "absent", "engine": engine})
    assert refused.get("failed") and "-A DOCKER -p tcp -j %s; delete or change that rule first" % svc in refused["msg"], refused
    assert rules_of(netns) == before
    info = run_module(netns, "netfilter_info", {"engine": engine})
    assert {"issue": "foreign_jump", "object": "balancer:web", "chain": svc, "rule": "-A DOCKER -p tcp -j %s" % svc,
            "family": 4, "table": "nat"} in info["drift"], info["drift"]


def test_auto_uses_the_backend_holding_rules(netns):
    restore(netns, "iptables-legacy", FOREIGN_RULES)
    result = run_module(netns, "tee_mirror", DEFINITIONS[4]["tee_mirror"])
    assert result["engine"] == "iptables-legacy"
    assert "NM-MIRO-" in iptables_save(netns, "iptables-legacy")
    assert "NM-" not in iptables_save(netns, "iptables-nft")


def test_auto_on_an_empty_host_follows_the_iptables_command(netns):
    tag = in_netns(netns, ["iptables", "--version"]).stdout
    result = run_module(netns, "tee_mirror", DEFINITIONS[4]["tee_mirror"])
    assert result["engine"] == ("iptables-nft" if "nf_tables" in tag else "iptables-legacy")


def test_auto_keeps_using_nftables_once_it_holds_a_netmagic_table(netns):
    run_module(netns, "tee_mirror", dict(DEFINITIONS[4]["tee_mirror"], engine="nftables"))
    result = run_module(netns, "dnat_balancer", DEFINITIONS[6]["dnat_balancer"])
    assert result["engine"] == "nftables"


def test_auto_refuses_a_host_with_rules_in_both_backends(netns):
    restore(netns, "iptables-legacy", FOREIGN_RULES)
    restore(netns, "iptables-nft", FOREIGN_RULES)
    before = rules_of(netns)
    result = run_module(netns, "dnat_balancer", DEFINITIONS[4]["dnat_balancer"])
    assert result.get("failed") and "both iptables backends" in result["msg"]
    assert rules_of(netns) == before


def test_moving_between_engines_leaves_rules_in_one_backend_only(netns, family):
    balancer = DEFINITIONS[family]["dnat_balancer"]
    previous = None
    for engine in ENGINES + ENGINES[:1]:
        # python-iptables writes where iptables-legacy does, and iptables-legacy removes from there.
        holder = "iptables-legacy" if engine in LEGACY_ENGINES else engine
        result = run_module(netns, "dnat_balancer", dict(balancer, engine=engine))
        assert result["rc"] == 0 and result["changed"], result
        assert result["removed_from"] == ([previous] if previous else [])
        everything = rules_of(netns)
        holders = {
            "iptables-nft": "NM-SVC" in in_netns(netns, ["ip6tables-nft-save" if family == 6 else "iptables-nft-save"]).stdout,
            "iptables-legacy": "NM-SVC" in in_netns(netns, ["ip6tables-legacy-save" if family == 6 else "iptables-legacy-save"]).stdout,
            "nftables": "table %s netmagic" % ("ip" if family == 4 else "ip6") in everything,
        }
        assert [name for name, holds in holders.items() if holds] == [holder]
        previous = holder


@pytest.mark.parametrize(
    "gateway, route, reason",
    [
        ("198.18.0.1", None, "is an address of this host"),
        ("2001:2::1", None, "is an address of this host"),
        ("198.18.99.9", None, "has no route from this host"),
        ("198.18.50.9", ["198.18.50.0/24", "via", "198.18.0.254"], "is not on-link: its route goes via 198.18.0.254"),
        ("2001:2:50::9", ["2001:2:50::/64", "via", "2001:2::fe"], "is not on-link: its route goes via 2001:2::fe"),
    ],
)
def test_a_gateway_that_cannot_collect_is_refused_unless_forced(netns, gateway, route, reason):
    if route:
        in_netns(netns, ["ip", "route", "add"] + route, check=True)
    before = rules_of(netns)
    refused = run_module(netns, "tee_mirror", {"name": "m", "gateway": gateway, "engine": "iptables-nft"})
    assert refused.get("failed") and reason in refused["msg"] and "'gateway'" in refused["msg"], refused
    assert rules_of(netns) == before
    forced = run_module(netns, "tee_mirror", {"name": "m", "gateway": gateway, "engine": "iptables-nft", "force": True})
    assert forced["rc"] == 0 and forced["changed"], forced


@pytest.mark.parametrize("ranges", [["198.18.2.0/24", "198.18.1.0/24", "198.18.9.9"], ["198.18.4.0/24"], ["198.18.0.0/24", "198.18.1.0/24"]])
def test_source_ranges_as_the_kernel_tools_merge_them_converge(netns, engine, ranges):
    """nft merges adjacent networks of a set into one interval and lists it back so; a second run changes nothing."""
    balancer = dict(DEFINITIONS[4]["dnat_balancer"], source_ranges=ranges, engine=engine)
    assert run_module(netns, "dnat_balancer", balancer)["changed"]
    distrust(netns)
    again = run_module(netns, "dnat_balancer", balancer)
    assert again["rc"] == 0 and again["changed"] is False, again
    assert run_module(netns, "dnat_balancer", {"name": balancer["name"], "state": "absent", "engine": engine})["changed"]
