"""Exact ownership: which rules and chains the collection takes as its own, and which it leaves."""

import pytest

from ansible_collections.netmagic.netfilter.plugins.module_utils import _iptables_rules as iprules
from ansible_collections.netmagic.netfilter.plugins.module_utils import _naming as naming
from ansible_collections.netmagic.netfilter.plugins.module_utils import _nftables_engine as nft
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import ValidationError, build_balancer, build_listed, build_mirror
from ansible_collections.netmagic.netfilter.plugins.module_utils._naming import ChainOwners, chain_name, object_token
from ansible_collections.netmagic.netfilter.plugins.module_utils._reconcile import refuse_token_collisions

HTTP = ("mirror", "http")
WEB = ("balancer", "web")
SVC = chain_name("SVC", *WEB)
SEP1 = chain_name("SEP", *WEB, index=1)


@pytest.mark.parametrize("chain, owner", [
    (SVC, WEB),
    (SEP1, WEB),
    (chain_name("SVC", *WEB, token_length=8), WEB),  # named by release 0.1.0: recognised, so an upgrade removes it
    (SVC + "x", None),
    (SVC[:-1], None),
    ("NM-SVC-%s" % object_token(*WEB), None),
    ("NM-SVC-%s-web2" % object_token(*WEB), None),
    ("NM-MIRO-%s-web" % object_token(*WEB)[:12], None),
    (chain_name("MIRO", *WEB), None),  # a mirror's role under a balancer's token
    ("NM-SEP-%s-web" % object_token(*WEB), None),
    ("NM-SEP-%s-99999-web" % object_token(*WEB), None),
    ("NM-FOO", None),
    ("NM-SVC-deadbeefdeadbeef-web", None),
    ("KUBE-SVC-ABCDEF", None),
])
def test_a_chain_is_owned_only_under_its_exact_name(chain, owner):
    assert ChainOwners([WEB, ("mirror", "http")]).owner(chain) == owner


@pytest.mark.parametrize("comment, owned", [
    ('"netmagic:balancer:web"', True),
    ("netmagic:balancer:web", True),
    ('"netmagic:balancer:web x"', False),
    ('"netmagic:balancer:web:x"', False),
    ('"x netmagic:balancer:web"', False),
    ('"netmagic:balancer:webx"', False),
    ('"netmagic:balancer:web\\""', False),
])
def test_a_rule_is_owned_only_when_its_comment_is_the_tag(comment, owned):
    line = "-A PREROUTING -d 198.18.0.100/32 -p tcp -m tcp --dport 80 -m comment --comment %s -j %s" % (comment, SVC)
    tables = {"nat": {"PREROUTING": [line], SVC: []}}
    found = iprules.owned_rules_of(tables, [WEB])[WEB][(4, "nat")]
    assert (found.jumps == [line]) is owned
    # A rule that is not ours but jumps into our chain is seen, and kept apart.
    assert found.foreign_jumps == ([] if owned else [(SVC, line)])


def test_a_tag_inside_another_options_quoted_value_is_not_a_comment():
    line = '-A PREROUTING -m string --string "-m comment --comment netmagic:balancer:web x" --algo bm -j ACCEPT'
    assert iprules.rule_tag(line) is None
    assert iprules.owned_rules_of({"nat": {"PREROUTING": [line]}}, [WEB])[WEB] == {}


def test_two_comments_are_not_a_tag():
    line = '-A PREROUTING -m comment --comment "netmagic:balancer:web" -m comment --comment other -j ACCEPT'
    assert iprules.rule_tag(line) is None


def test_nft_base_chain_rules_and_service_elements_need_the_exact_comment():
    mirror = nft.render(build_mirror({"name": "http", "gateway": "198.18.0.3"}))[4]
    balancer = nft.render(build_balancer({"name": "web", "vip": "198.18.0.100", "port": 80, "backends": ["198.18.0.21"]}))[4]
    table = nft.Table(chains=list(mirror.chains) + list(balancer.chains) + ["NM-FOO"])
    for index, (chain, expr) in enumerate(mirror.jumps):
        table.rules.append((chain, index, "netmagic:mirror:http", nft.json.loads(expr)))
        table.rules.append((chain, 100 + index, "netmagic:mirror:http ", nft.json.loads(expr)))
    for service_map, key, target in balancer.elements:
        table.elements.append((service_map, key, "netmagic:balancer:web", target))
        table.elements.append((service_map, key.replace("80", "81"), "netmagic:balancer:webx", target))
    owned = nft.owned_rules_of(table, [HTTP, WEB])
    assert sorted(owned[HTTP].jumps) == sorted(mirror.jumps) and len(owned[HTTP].foreign_jumps) == len(mirror.jumps)
    assert owned[WEB].elements == balancer.elements and len(owned[WEB].foreign_jumps) == len(balancer.elements)


def test_same_service_twice_in_one_list_is_refused_naming_both():
    items = [{"name": "a", "vip": "198.18.0.100", "port": 80, "backends": ["198.18.0.21"]},
             {"name": "b", "vip": "198.18.0.100", "port": 80, "backends": ["198.18.0.22"]}]
    with pytest.raises(ValidationError) as raised:
        build_listed("balancers", "balancer", build_balancer, items)
    assert raised.value.parameter == "balancers[1].vip" and "balancers[0] ('a')" in str(raised.value)
    items[1]["protocol"] = "udp"
    assert len(build_listed("balancers", "balancer", build_balancer, items)) == 2


def test_objects_whose_tokens_collide_are_refused_naming_both(monkeypatch):
    # Any two names collide once tokens are one hex digit long; the check must catch what it cannot prevent.
    monkeypatch.setattr(naming, "object_token", lambda kind, name, length=16: "0")
    with pytest.raises(ValidationError) as raised:
        refuse_token_collisions([("balancer", "a"), ("balancer", "b")])
    assert "balancer 'a'" in str(raised.value) and "'b'" in str(raised.value)


def test_tokens_are_64_bits_and_names_fit_28_characters():
    assert len(object_token(*WEB)) == 16
    assert len(chain_name("SEP", "balancer", "x" * 64, 4095)) == 28
    with pytest.raises(ValueError):
        chain_name("SEP", "balancer", "web", 40950)
