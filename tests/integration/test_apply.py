"""netfilter_apply against real netfilter in a namespace: many objects in one run, on every engine and both families."""

import pytest

from tests.integration.netfilter import ENGINES, as_written, distrust, in_netns, plant_foreign, rules_of, run_module
from tests.integration.test_core import DEFINITIONS, apply_all

API = {4: {"name": "api", "vip": "198.18.0.100", "port": 443, "backends": ["198.18.0.21:8443", "198.18.0.22:8443"]},
       6: {"name": "api", "vip": "2001:2::100", "port": 443, "backends": ["[2001:2::21]:8443", "[2001:2::22]:8443"]}}


def listed(family):
    """The objects of test_core, plus a second balancer, as netfilter_apply takes them."""
    return {"mirrors": [DEFINITIONS[family]["tee_mirror"]], "balancers": [DEFINITIONS[family]["dnat_balancer"], API[family]]}


def apply_listed(netns, engine, objects, check=False, diff=False):
    result = run_module(netns, "netfilter_apply", dict(objects, engine=engine), check=check, diff=diff)
    assert result["rc"] == 0 and not result.get("failed"), result
    return result


def changed_items(result):
    return [item["changed"] for item in result["mirrors"] + result["balancers"]]


def absent(objects):
    return {option: [{"name": item["name"], "state": "absent"} for item in items] for option, items in objects.items()}


def sorted_lines(text):
    """A ruleset as a sorted list of lines: the order of jumps in built-in chains is not ours to keep."""
    return sorted(text.splitlines())


def test_one_run_writes_exactly_what_the_single_object_modules_write(netns, engine, family, planted):
    apply_all(netns, engine, family)
    assert run_module(netns, "dnat_balancer", dict(API[family], engine=engine))["changed"]
    by_modules = rules_of(netns)
    apply_all(netns, engine, family, state="absent")
    run_module(netns, "dnat_balancer", {"name": "api", "state": "absent", "engine": engine})
    assert rules_of(netns) == planted

    objects = listed(family)
    assert changed_items(apply_listed(netns, engine, objects, check=True)) == [True, True, True]
    assert rules_of(netns) == planted, "check mode changed the ruleset"
    applied = apply_listed(netns, engine, objects, diff=True)
    assert applied["changed"] and changed_items(applied) == [True, True, True] and applied["engine"] == engine
    assert sorted_lines(rules_of(netns)) == sorted_lines(by_modules)
    assert all('netmagic:%s:%s"' % (kind, item["name"]) in applied["diff"]["after"]
               for kind, option in (("mirror", "mirrors"), ("balancer", "balancers")) for item in applied[option])

    # The objects are the single-object modules' own: they find nothing to change, in the rules read back too.
    distrust(netns)
    assert [r["changed"] for r in apply_all(netns, engine, family)] == [False, False]
    again = apply_listed(netns, engine, objects)
    assert not again["changed"] and changed_items(again) == [False, False, False]

    removed = apply_listed(netns, engine, absent(objects))
    assert changed_items(removed) == [True, True, True] and removed["balancers"][0] == {"name": "web", "state": "absent", "changed": True}
    assert rules_of(netns) == planted


def test_a_change_to_one_item_rewrites_only_that_item(netns, engine, family, planted):
    objects = listed(family)
    apply_listed(netns, engine, objects)
    web = dict(objects["balancers"][0], backends=objects["balancers"][0]["backends"][:1])
    changed = apply_listed(netns, engine, dict(objects, balancers=[web, API[family]]), diff=True)
    assert changed_items(changed) == [False, True, False]
    dropped = as_written(objects["balancers"][0]["backends"][1], engine)
    assert dropped in changed["diff"]["before"] and dropped not in changed["diff"]["after"]
    assert run_module(netns, "dnat_balancer", dict(web, engine=engine), check=True)["changed"] is False
    apply_listed(netns, engine, absent(objects))
    assert rules_of(netns) == planted


def test_removing_some_items_keeps_the_others(netns, engine, family, planted):
    objects = listed(family)
    apply_listed(netns, engine, objects)
    kept = dict(objects, balancers=[objects["balancers"][0]])
    removed = apply_listed(netns, engine, dict(kept, balancers=kept["balancers"] + [{"name": "api", "state": "absent"}]))
    assert changed_items(removed) == [False, False, True]
    assert not apply_listed(netns, engine, kept)["changed"], "an object kept in the list lost rules"
    apply_listed(netns, engine, absent(objects))
    assert rules_of(netns) == planted


# (items changed from listed(4), the parameter the error names, words of the reason)
BAD_ITEMS = [
    ({"balancers": [DEFINITIONS[4]["dnat_balancer"], dict(API[4], backends=["nope"])]}, "balancers[1].backends[0]", "not an IPv4 or IPv6"),
    ({"balancers": [DEFINITIONS[4]["dnat_balancer"], dict(API[4], name="web")]}, "balancers[1].name", "listed twice"),
    ({"balancers": [dict(API[4], name="bad name")]}, "balancers[0].name", "1-64 characters"),
    ({"balancers": [dict(API[4], vip="2001:2::100")]}, "balancers[0].backends[0]", "cannot mix IPv4 and IPv6"),
    ({"mirrors": [dict(DEFINITIONS[4]["tee_mirror"], gateway="198.18.0.1")]}, "mirrors[0].gateway", "an address of this host"),
    ({"mirrors": [dict(DEFINITIONS[4]["tee_mirror"], gateway="198.18.99.3")]}, "mirrors[0].gateway", "no route"),
    ({"mirrors": [dict(DEFINITIONS[4]["tee_mirror"], protocol="all")]}, "mirrors[0].ports", "tcp or udp"),
]


@pytest.mark.parametrize("change, parameter, reason", BAD_ITEMS, ids=[case[1] + "-" + case[2] for case in BAD_ITEMS])
def test_a_bad_item_is_named_and_nothing_changes(netns, change, parameter, reason):
    apply_listed(netns, "auto", listed(4))
    before = rules_of(netns)
    # The good items of the same run change too, so a partial apply would show.
    objects = dict(listed(4), **change)
    objects["balancers"] = [dict(item, port=item["port"] + 1) if item["name"] == "web" else item for item in objects["balancers"]]
    result = run_module(netns, "netfilter_apply", objects)
    assert result.get("failed") and parameter in result["msg"] and reason in result["msg"], result
    assert rules_of(netns) == before


def test_a_missing_required_option_is_named(netns):
    result = run_module(netns, "netfilter_apply", {"balancers": [{"name": "web", "vip": "198.18.0.100"}]})
    assert result.get("failed") and "port, backends" in result["msg"] and "balancers" in result["msg"], result
    assert "NM-" not in rules_of(netns)


def test_python_iptables_refuses_one_target_in_both_families_before_any_change(netns):
    objects = {"mirrors": [DEFINITIONS[4]["tee_mirror"], dict(DEFINITIONS[6]["tee_mirror"], name="http6")]}
    before = rules_of(netns)
    result = run_module(netns, "netfilter_apply", dict(objects, engine="python-iptables"))
    assert result.get("failed") and "TEE rules of IPv4 and of IPv6 in one run" in result["msg"], result
    assert rules_of(netns) == before
    # Apart, they apply.
    for mirror in objects["mirrors"]:
        assert apply_listed(netns, "python-iptables", {"mirrors": [mirror]})["changed"]
    assert "TEE --gateway 2001:2::3" in in_netns(netns, ["ip6tables-legacy-save"], check=True).stdout


@pytest.mark.parametrize("engine", ENGINES)
def test_exclusive_removes_the_unlisted_objects_of_its_kinds_only(netns, engine):
    plant_foreign(netns, engine)
    foreign = rules_of(netns)
    web = {"name": "web", "vip": "198.18.0.100", "port": 80, "backends": ["198.18.0.21"]}
    api = {"name": "api", "vip": "198.18.0.100", "port": 443, "backends": ["198.18.0.22"]}
    mirror = {"name": "http", "gateway": "198.18.0.3", "ports": ["80"]}
    first = run_module(netns, "netfilter_apply", {"engine": engine, "balancers": [web, api], "mirrors": [mirror]})
    assert first["changed"] and first["removed"] == [], first
    params = {"engine": engine, "exclusive": ["balancers"], "balancers": [web]}
    before = rules_of(netns)
    checked = run_module(netns, "netfilter_apply", params, check=True, diff=True)
    assert checked["changed"] and checked["removed"] == [{"kind": "balancer", "name": "api"}], checked
    assert "netmagic:balancer:api" in checked["diff"]["before"] and "netmagic:balancer:api" not in checked["diff"]["after"]
    assert rules_of(netns) == before
    applied = run_module(netns, "netfilter_apply", params)
    assert applied["changed"] and applied["removed"] == [{"kind": "balancer", "name": "api"}], applied
    left = rules_of(netns)
    assert "netmagic:balancer:api" not in left and "netmagic:balancer:web" in left and "netmagic:mirror:http" in left
    again = run_module(netns, "netfilter_apply", params)
    assert not again["changed"] and again["removed"] == [], again
    # Owning both kinds with empty lists removes everything the collection made, and only that.
    emptied = run_module(netns, "netfilter_apply", {"engine": engine, "exclusive": ["balancers", "mirrors"]})
    assert sorted(o["name"] for o in emptied["removed"]) == ["http", "web"], emptied
    assert rules_of(netns) == foreign


EARLIER_NFTABLES_LAYOUT = "\n".join([
    "table ip netmagic {",
    "  chain NM-SEP-7c6509ab5641d564-0-we { meta l4proto tcp dnat to 198.18.0.21:80; }",
    "  chain NM-SVC-7c6509ab5641d564-web { numgen inc mod 1 vmap { 0 : jump NM-SEP-7c6509ab5641d564-0-we }; }",
    "  chain NM-MASQ-7c6509ab5641d564-web { masquerade; }",
    "  chain nat-prerouting { type nat hook prerouting priority -100; policy accept;",
    '    ip daddr 198.18.0.100 tcp dport 80 jump NM-SVC-7c6509ab5641d564-web comment "netmagic:balancer:web"; }',
    "  chain nat-postrouting { type nat hook postrouting priority 100; policy accept;",
    "    meta l4proto tcp ct status dnat ct original ip daddr 198.18.0.100 ct original proto-dst 80 "
    'jump NM-MASQ-7c6509ab5641d564-web comment "netmagic:balancer:web"; }',
    "}", ""])


def test_a_table_of_the_earlier_nftables_layout_is_converted_by_the_first_run(netns):
    """One tagged jump per service and an NM-MASQ- chain, as release 0.1.0 wrote them, become map and set elements."""
    in_netns(netns, ["nft", "-f", "-"], input=EARLIER_NFTABLES_LAYOUT, check=True)
    web = {"name": "web", "vip": "198.18.0.100", "port": 80, "backends": ["198.18.0.21"], "local_clients": False}
    assert apply_listed(netns, "auto", {"balancers": [web]})["changed"]
    ruleset = in_netns(netns, ["nft", "list", "table", "ip", "netmagic"], check=True).stdout
    assert "NM-MASQ" not in ruleset and "NM-SEP" not in ruleset and "jump NM-SVC-7c6509ab5641d564-web comment" not in ruleset
    assert "dnat ip to numgen inc mod 1 map { 0 : 198.18.0.21 . 80 }" in ruleset
    assert '198.18.0.100 . tcp . 80 comment "netmagic:balancer:web" : jump NM-SVC-7c6509ab5641d564-web' in ruleset
    assert "198.18.0.100 . 198.18.0.21 . tcp . 80" in ruleset
    assert not apply_listed(netns, "auto", {"balancers": [web]})["changed"]
