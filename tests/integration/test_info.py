"""netfilter_info on real hosts: counters that match the traffic sent, and drift."""

import json
import shlex

import pytest

from tests.integration.netfilter import in_netns, restore, run_module
from tests.integration import test_packets
from tests.integration.test_packets import PORT_80, apply, balancer_lab, connect, mirror_lab

make_lab = test_packets.make_lab  # the lab fixture, shared

COUNTING_ENGINES = ("iptables-nft", "iptables-legacy")
BALANCER = {"name": "web", "vip": "198.18.0.100", "port": 80, "backends": ["198.18.0.21", "198.18.0.22", "198.18.0.23"]}
MIRROR = {"name": "http", "gateway": "198.18.0.3", "ports": ["80"]}


def info(netns, **params):
    result = run_module(netns, "netfilter_info", params)
    assert result["rc"] == 0 and not result.get("failed"), result
    return result


def only(objects, name):
    [found] = [o for o in objects if o["name"] == name]
    return found


def packets_by_chain(report, prefix):
    counts = {}
    for rule in report["rules"]:
        if rule["chain"].startswith(prefix):
            counts[rule["chain"]] = counts.get(rule["chain"], 0) + rule["packets"]
    return counts


@pytest.mark.parametrize("engine", COUNTING_ENGINES + ("nftables",))
def test_balancer_counters_show_the_split(make_lab, engine):
    lab = balancer_lab(make_lab, 3)
    apply(lab, "lb", "dnat_balancer", name="web", vip=lab.vip, port=80, engine=engine, backends=[lab.addr(b) for b in lab.backend_hosts])
    connect(lab, "client", lab.vip, 30)
    result = info(lab.ns("lb"), engine=engine)
    balancer = only(result["balancers"], "web")
    if engine == "nftables":
        assert result["counters"] is False
        assert balancer["rules"] and all(rule["packets"] is None and rule["bytes"] is None for rule in balancer["rules"])
        return
    assert result["counters"] is True
    split = packets_by_chain(balancer, "NM-SEP-")
    assert sorted(split.values()) == [10, 10, 10], split


@pytest.mark.parametrize("engine", COUNTING_ENGINES)
def test_mirror_counters_equal_the_clones_the_collector_got(make_lab, engine):
    lab = mirror_lab(make_lab)
    apply(lab, "sender", "tee_mirror", name="http", gateway=lab.addr("collector"), ports=["80"], engine=engine)
    with lab.count("collector", *PORT_80) as clones:
        connect(lab, "sender", lab.addr("web"), 5)
    mirror = only(info(lab.ns("sender"), engine=engine)["mirrors"], "http")
    tee = {rule["chain"][:8]: rule["packets"] for rule in mirror["rules"] if "TEE" in rule["rule"]}
    assert clones.count > 0
    # Egress clones pass mangle OUTPUT themselves and match the egress rule a second time.
    assert tee["NM-MIRI-"] + tee["NM-MIRO-"] // 2 == clones.count, tee
    assert mirror["mirrored_packets"] == clones.count


@pytest.mark.parametrize("engine", COUNTING_ENGINES)
def test_a_sampled_mirror_counts_the_clones_of_its_chosen_connections(make_lab, engine):
    lab = mirror_lab(make_lab)
    apply(lab, "sender", "tee_mirror", name="http", gateway=lab.addr("collector"), ports=["80"], sample=2, engine=engine)
    with lab.count("collector", *PORT_80) as clones, lab.count("web", *PORT_80) as originals:
        connect(lab, "sender", lab.addr("web"), 6)
    mirror = only(info(lab.ns("sender"), engine=engine)["mirrors"], "http")
    assert 0 < clones.count < originals.count
    assert mirror["mirrored_packets"] == clones.count


def apply_both(netns, engine):
    for module, params in (("tee_mirror", dict(MIRROR, force=True)), ("dnat_balancer", BALANCER)):
        result = run_module(netns, module, dict(params, engine=engine))
        assert result["rc"] == 0 and not result.get("failed"), result


def test_a_clean_host_reports_no_drift(netns, engine):
    apply_both(netns, engine)
    result = info(netns, engine=engine, mirrors=[MIRROR], balancers=[BALANCER])
    assert result["engine"] == engine
    assert [m["name"] for m in result["mirrors"]] == ["http"] and [b["name"] for b in result["balancers"]] == ["web"]
    assert result["drift"] == [] and result["drifted"] is False


def delete_rule(netns, engine, chain_prefix, table):
    """Deletes by hand the first rule of the first chain starting with chain_prefix."""
    if engine == "nftables":
        listing = in_netns(netns, ["nft", "-a", "list", "table", "ip", "netmagic"], check=True).stdout
        chain, handle = _nft_rule_handle(listing, chain_prefix)
        in_netns(netns, ["nft", "delete", "rule", "ip", "netmagic", chain, "handle", handle], check=True)
        return chain
    variant = "nft" if engine == "iptables-nft" else "legacy"
    save = in_netns(netns, ["iptables-%s-save" % variant, "-t", table], check=True).stdout
    line = [l for l in save.splitlines() if l.startswith("-A " + chain_prefix)][0]
    restore(netns, "iptables-" + variant, "*%s\n%s\nCOMMIT\n" % (table, line.replace("-A ", "-D ", 1)))
    return line.split()[1]


def _nft_rule_handle(listing, chain_prefix):
    chain = None
    for line in listing.splitlines():
        words = line.split()
        if words[:1] == ["chain"]:
            chain = words[1]
        elif chain and chain.startswith(chain_prefix) and "# handle" in line:
            return chain, words[-1]
    raise AssertionError("no rule in a chain %s in %s" % (chain_prefix, listing))


def test_a_rule_deleted_by_hand_is_drift(netns, engine):
    apply_both(netns, engine)
    # nftables chooses and translates in the service chain, iptables in an endpoint chain per backend.
    sep = delete_rule(netns, engine, "NM-SVC-" if engine == "nftables" else "NM-SEP-", "nat")
    result = info(netns, engine=engine, balancers=[BALANCER])
    assert result["drifted"]
    assert [(f["issue"], f["object"], f["chain"]) for f in result["drift"]] == [("rule_missing", "balancer:web", sep)]
    assert only(result["balancers"], "web")["drift"] == result["drift"]


def test_a_jump_deleted_by_hand_is_drift_without_definitions(netns, engine):
    apply_both(netns, engine)
    builtin = "mangle-output" if engine == "nftables" else "OUTPUT"
    delete_rule(netns, engine, builtin, "mangle")
    issues = [(f["issue"], f["object"], f["chain"][:8]) for f in info(netns, engine=engine)["drift"]]
    # Seen twice: an owned chain nothing reaches, and, against the record of what was applied, the jump missing.
    assert issues == [("jump_missing", "mirror:http", "NM-MIRO-"), ("rule_missing", "mirror:http", builtin[:8])]


def test_an_unknown_definition_key_is_refused(netns):
    """Definitions go through netfilter_apply's argument spec, so Ansible names the bad key or value."""
    result = run_module(netns, "netfilter_info", {"mirrors": [dict(MIRROR, colour="red")]})
    assert result.get("failed") and "mirrors.colour" in result["msg"], result
    result = run_module(netns, "netfilter_info", {"balancers": [dict(BALANCER, port="http")]})
    assert result.get("failed") and "'port'" in result["msg"] and "'balancers'" in result["msg"], result
    result = run_module(netns, "netfilter_info", {"balancers": [dict(BALANCER, vip="2001:2::100%1")]})
    assert result.get("failed") and result["parameter"] == "balancers[0].vip" and "zone id" in result["msg"], result


@pytest.mark.parametrize("engine", ("iptables-nft", "iptables-legacy", "nftables"))
def test_drift_is_reported_without_definitions_from_the_record_of_what_was_applied(netns, engine):
    """The case of a dead VIP: a jump and a DNAT rule deleted by hand, and netfilter_info given no definition."""
    result = run_module(netns, "dnat_balancer", dict(BALANCER, engine=engine))
    assert result["changed"], result
    assert info(netns, engine=engine)["drift"] == []
    sep = [c for c in result["chains"] if c.startswith("NM-SVC-" if engine == "nftables" else "NM-SEP-")][-1]
    if engine == "nftables":
        listing = json.loads(in_netns(netns, ["nft", "-j", "-a", "list", "table", "ip", "netmagic"], check=True).stdout)["nftables"]
        handles = [(r["rule"]["chain"], r["rule"]["handle"]) for r in listing if "rule" in r
                   and (r["rule"]["chain"] == sep or r["rule"]["chain"] == "nat-prerouting")]
        for chain, handle in handles:
            in_netns(netns, ["nft", "delete", "rule", "ip", "netmagic", chain, "handle", str(handle)], check=True)
    else:
        variant = engine.split("-")[1]
        saved = in_netns(netns, ["iptables-%s-save" % variant, "-t", "nat"], check=True).stdout
        jump = [line for line in saved.splitlines() if line.startswith("-A PREROUTING") and "netmagic:balancer:web" in line][0]
        dnat = [line for line in saved.splitlines() if line.startswith("-A %s " % sep)][0]
        for line in (jump, dnat):
            in_netns(netns, ["iptables-%s" % variant, "-t", "nat", "-D"] + shlex.split(line)[1:], check=True)
    found = info(netns, engine=engine)
    assert found["drifted"], found
    issues = {(f["issue"], f["object"]) for f in found["drift"]}
    assert ("rule_missing", "balancer:web") in issues, found["drift"]
    # Every rule gone: the object is still reported, from the record.
    assert run_module(netns, "dnat_balancer", {"name": "web", "state": "absent", "engine": engine})["changed"]
    assert info(netns, engine=engine)["drift"] == []
    run_module(netns, "dnat_balancer", dict(BALANCER, engine=engine))
    if engine == "nftables":
        in_netns(netns, ["nft", "delete", "table", "ip", "netmagic"], check=True)
    else:
        for flag in ("-F", "-X"):
            in_netns(netns, ["iptables-%s" % engine.split("-")[1], "-t", "nat", flag], check=True)
    found = info(netns, engine=engine)
    assert [(f["issue"], f["object"]) for f in found["drift"] if f["issue"] == "object_missing"] == [("object_missing", "balancer:web")]
