"""Reading owned objects, counters and drift from save text and nft JSON, without a host."""

import pytest

from ansible_collections.netmagic.netfilter.plugins.module_utils import _info as info
from ansible_collections.netmagic.netfilter.plugins.module_utils import _iptables_rules as r
from ansible_collections.netmagic.netfilter.plugins.module_utils import _nftables_engine as nft
from ansible_collections.netmagic.netfilter.plugins.module_utils._iptables_engine import IptablesNftEngine, IptablesSnapshot
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import ValidationError, build_balancer, build_mirror
from ansible_collections.netmagic.netfilter.tests.unit.plugins.module_utils import nft_tables

BALANCER = {"name": "web", "vip": "198.18.0.100", "port": 80, "backends": ["198.18.0.21", "198.18.0.22"]}
MIRROR = {"name": "http", "gateway": "198.18.0.3", "ports": ["80"]}


def counted_save(owned, counters=(7, 700)):
    """Rendered rules as `iptables-save -c` prints them, with a foreign rule in each table."""
    out = []
    for (_family, table), rules in sorted(owned.items()):
        out += ["*%s" % table, ":PREROUTING ACCEPT [0:0]"] + [":%s - [0:0]" % c for c in rules.chains]
        out.append("[1:60] -A PREROUTING -p udp -m udp --dport 53 -m comment --comment \"dns\" -j ACCEPT")
        out += ["[%d:%d] %s" % (counters + (line,)) for line in rules.jumps]
        out += ["[%d:%d] %s" % (counters + (line,)) for chain in rules.chains for line in rules.chains[chain]]
        out.append("COMMIT")
    return "\n".join(out) + "\n"


def host_saves(*objects, counters=(7, 700)):
    owned = {}
    for obj in objects:
        owned.update(r.render(obj))
    return {4: counted_save(owned, counters)}


class FakeEngine(IptablesNftEngine):
    """Engine iptables-nft on a host whose iptables-save prints the given text."""

    def __init__(self, saves):
        super().__init__(None)
        self._saves = saves

    def saves(self, counters=False):
        return self._saves


def iptables_live(saves):
    return IptablesSnapshot(saves, {}, counters=True).live()


def nftables_live(listings):
    return nft.NftablesSnapshot(listings).live()


def test_counters_and_objects_from_iptables_save():
    live = iptables_live(host_saves(build_mirror(MIRROR), build_balancer(BALANCER)))
    objects, orphans = info.objects_of(live)
    assert sorted(objects) == [("balancer", "web"), ("mirror", "http")] and orphans == []
    assert all(rule.packets == 7 and rule.bytes == 700 for rule in live.rules)
    assert not any("dns" in rule.text for rule in live.rules), "a foreign rule was taken as owned"
    assert [rule.owner for rule in objects[("mirror", "http")] if rule.owner] == [("mirror", "http")] * 2


def test_save_without_counters_reads_as_null():
    live = iptables_live({4: r.as_text(r.render(build_balancer(BALANCER)))})
    assert live.rules and all(rule.packets is None for rule in live.rules)


def test_mirrored_packets_halves_the_egress_rule():
    saves = host_saves(build_mirror(MIRROR), counters=(10, 1000))
    result = info.host_info(FakeEngine(saves), info.Expected())
    assert result["mirrors"][0]["mirrored_packets"] == 10 + 10 // 2


def issues(saves, expected=None):
    return [(f["issue"], f["object"], f.get("chain", "")[:7]) for f in info.host_info(FakeEngine(saves), expected or info.Expected())["drift"]]


def edit(saves, old, new):
    assert old in saves[4]
    return {4: saves[4].replace(old, new, 1)}


def test_a_clean_host_has_no_drift():
    saves = host_saves(build_mirror(MIRROR), build_balancer(BALANCER))
    assert issues(saves, info.build_expected([MIRROR], [BALANCER])) == []


def test_structural_drift():
    saves = host_saves(build_balancer(BALANCER))
    svc_jump = [l for l in saves[4].splitlines() if "-A OUTPUT" in l][0]
    prerouting = [l for l in saves[4].splitlines() if "-A PREROUTING" in l and "netmagic" in l][0]
    masq_jump = [l for l in saves[4].splitlines() if "-A POSTROUTING" in l][0]
    assert issues(edit(saves, svc_jump, svc_jump + "\n" + svc_jump)) == [("jump_duplicated", "balancer:web", "")]
    assert issues(edit(saves, masq_jump + "\n", "")) == [("jump_missing", "balancer:web", "NM-MASQ")]
    no_jumps = edit(edit(edit(saves, masq_jump + "\n", ""), svc_jump + "\n", ""), prerouting + "\n", "")
    assert {i[0] for i in issues(no_jumps)} == {"chain_orphaned"} and len(issues(no_jumps)) == 4
    # The masquerade chain gone with its rules, its jump left (as a broken hand edit of a saved file would leave it).
    missing_chain = {4: "".join(line for line in saves[4].splitlines(True) if not line.startswith((":NM-MASQ", "[7:700] -A NM-MASQ")))}
    assert ("chain_missing", "balancer:web", "NM-MASQ") in issues(missing_chain)


def test_drift_against_definitions():
    saves = host_saves(build_balancer(BALANCER))
    expected = info.build_expected(None, [BALANCER])
    changed = edit(saves, "--to-destination 198.18.0.22:80", "--to-destination 198.18.0.29:80")
    assert issues(changed, expected) == [("rule_changed", "balancer:web", "NM-SEP-")]
    assert issues(host_saves(), expected) == [("object_missing", "balancer:web", "")]
    assert issues(saves, info.build_expected(None, [])) == [("object_unexpected", "balancer:web", "")]
    assert issues(saves, info.build_expected(None, [dict(BALANCER, state="absent")])) == [("object_unexpected", "balancer:web", "")]
    three = dict(BALANCER, backends=BALANCER["backends"] + ["198.18.0.23"])
    found = issues(saves, info.build_expected(None, [three]))
    assert ("chain_missing", "balancer:web", "NM-SEP-") in found and ("rule_changed", "balancer:web", "NM-SVC-") in found


@pytest.mark.parametrize("mirrors, balancers, parameter", [
    ([dict(MIRROR, gateway="nowhere")], None, "mirrors[0].gateway"),
    (None, [BALANCER, BALANCER], "balancers[1].name"),
    (None, [dict(BALANCER, name="a b")], "balancers[0].name"),
])
def test_bad_definitions_are_refused(mirrors, balancers, parameter):
    with pytest.raises(ValidationError) as error:
        info.build_expected(mirrors, balancers)
    assert error.value.parameter == parameter


def nft_listing(obj, counter=None):
    """An `nft -j list table` answer holding the rendered object, optionally with counter statements."""
    return {obj.family: nft_tables.listing(obj, counter=counter, family=obj.family)}


def test_nftables_rules_without_counters_read_as_null_and_with_them_as_counted():
    balancer = build_balancer(BALANCER)
    live = nftables_live(nft_listing(balancer))
    objects, orphans = info.objects_of(live)
    assert list(objects) == [("balancer", "web")] and orphans == []
    assert all(rule.packets is None for rule in live.rules)
    counted = nftables_live(nft_listing(balancer, {"packets": 5, "bytes": 300}))
    # Rules count when they hold counter statements; service and masquerade elements do not count.
    assert all(rule.packets == 5 for rule in counted.rules if rule.chain.startswith("NM-"))
    assert {rule.chain for rule in counted.rules if rule.packets is None} == {"services", "local-services", "masquerading"}
    assert counted.rules[0].text == live.rules[0].text, "the counter statement leaked into the rule text"


def test_nftables_reachability_follows_the_vmap():
    live = nftables_live(nft_listing(build_balancer(BALANCER)))
    objects, _orphans = info.objects_of(live)
    assert info.structural_drift(("balancer", "web"), objects[("balancer", "web")], live) == []
