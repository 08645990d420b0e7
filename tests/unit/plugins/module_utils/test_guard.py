"""The writer guards: each case is a buffer or batch and whether the guard lets it through."""

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.netmagic.netfilter.plugins.module_utils import _iptables_rules as iprules
from ansible_collections.netmagic.netfilter.plugins.module_utils import _nftables_engine as nft
from ansible_collections.netmagic.netfilter.plugins.module_utils._guard import (
    BUILTIN,
    FIELDS,
    OWNED,
    RULE_SHAPES,
    GuardError,
    check_nft_commands,
    check_restore_buffer,
)
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import ValidationError, build_balancer, build_mirror
from ansible_collections.netmagic.netfilter.plugins.module_utils._naming import chain_name
from ansible_collections.netmagic.netfilter.tests.unit.plugins.module_utils.strategies import valid_balancer_params, valid_mirror_params

SVC = chain_name("SVC", "balancer", "web")
SEP = chain_name("SEP", "balancer", "web", 0)
MIRO = chain_name("MIRO", "mirror", "http")
TAG = '"netmagic:balancer:web"'

ACCEPTED = [
    "*nat\n:%s - [0:0]\n-A %s -p tcp -j DNAT --to-destination 198.18.0.21:80\nCOMMIT\n" % (SEP, SEP),
    "*nat\n-A %s -p tcp -j DNAT --to-destination [2001:2::21]:80\nCOMMIT\n" % SEP,
    "*nat\n-I PREROUTING 1 -d 198.18.0.100/32 -p tcp -m tcp --dport 80 -m comment --comment %s -j %s\nCOMMIT\n" % (TAG, SVC),
    "*nat\n-A %s -m statistic --mode random --probability 0.50000000000 -j %s\nCOMMIT\n" % (SVC, SEP),
    "*mangle\n-A %s -d 198.18.0.0/24 -o eth+ -p udp -m udp --sport 53:54 -j TEE --gateway 198.18.0.3\nCOMMIT\n" % MIRO,
    # A deletion names a live rule as iptables-save printed it, whatever its shape.
    '*nat\n-D PREROUTING -m addrtype --dst-type LOCAL -m comment --comment "netmagic:balancer:web" -j ACCEPT\nCOMMIT\n',
    "*nat\n-X %s\nCOMMIT\n" % SVC,
    "",
]

REFUSED = [
    # (buffer, words of the message)
    ("*filter\n-F\nCOMMIT\n", ["line 1", "table line"]),
    ("*nat\nCOMMIT\n*filter\n-F\n-X\n-P INPUT ACCEPT\nCOMMIT\n", ["line 3"]),
    ("*nat\n-A %s -p tcp -j DNAT --to-destination 198.18.0.21:80\n" % SEP, ["not committed"]),
    ("*nat\n-F\nCOMMIT\n", ["line 2", "> "]),
    ("*nat\n-A %s -j DROP\nCOMMIT\n" % SEP, ["line 2"]),
    ("*nat\n-A DOCKER -j RETURN\nCOMMIT\n", ["line 2"]),
    ("*nat\n-A %s -p tcp -j DNAT --to-destination 198.18.0.21:80 \nCOMMIT\n" % SEP, ["line 2"]),
    ("*nat\n-A %s  -j MASQUERADE\nCOMMIT\n" % SVC, ["line 2"]),
    ("*nat\n-A %s -j MASQUERADE\x00\nCOMMIT\n" % SVC, ["line 2", "\\x00"]),
    ("*nat\n-I PREROUTING 1 -m comment --comment \"netmagic:balancer:web x\" -j %s\nCOMMIT\n" % SVC, ["line 2"]),
    ("*nat\n-A %s -p tcp -j DNAT --to-destination [2001:db8::64%%1]:80\nCOMMIT\n" % SEP, ["line 2"]),
    ("*nat\n:NM-FOO - [0:0]\nCOMMIT\n", ["line 2"]),
    ("*nat\n-X DOCKER\nCOMMIT\n", ["line 2"]),
    ("*nat\n-D PREROUTING -j ACCEPT\r\nCOMMIT\n", ["line 2"]),
    ("*nat\nCOMMIT\nCOMMIT\n", ["line 3", "table line"]),
]


@pytest.mark.parametrize("buffer", ACCEPTED)
def test_renderer_shapes_pass(buffer):
    assert check_restore_buffer(buffer) == buffer


@pytest.mark.parametrize("buffer, words", REFUSED)
def test_other_lines_are_an_internal_error_with_context(buffer, words):
    with pytest.raises(GuardError) as error:
        check_restore_buffer(buffer)
    message = str(error.value)
    assert message.startswith("internal error:") and "nothing was applied" in message
    for word in words:
        assert word in message


def test_the_error_shows_three_lines_either_side_not_the_whole_buffer():
    lines = ["*nat"] + ["-A %s -j MASQUERADE" % SVC] * 20 + ["-A %s -j DROP" % SVC] + ["-A %s -j MASQUERADE" % SVC] * 20 + ["COMMIT"]
    with pytest.raises(GuardError) as error:
        check_restore_buffer("\n".join(lines) + "\n")
    shown = [line for line in str(error.value).splitlines() if line[:1] in (" ", ">")]
    assert len(shown) == 7 and shown[3].startswith(">    22")


def test_every_rendered_object_passes():
    objects = [
        build_mirror({"name": "http", "gateway": "2001:2::3", "ports": ["80", "8000:8100"], "peer": "2001:2::/64", "interface": "d0"}),
        build_mirror({"name": "icmp", "gateway": "198.18.0.3", "protocol": "icmp", "direction": "ingress"}),
        build_balancer({"name": "web", "vip": "198.18.0.100", "port": 80, "mode": "random",
                        "backends": ["198.18.0.21", {"address": "198.18.0.22", "weight": 3}]}),
        build_balancer({"name": "dns", "vip": "2001:2::100", "port": 53, "protocol": "udp", "mode": "source_hash",
                        "backends": ["2001:2::21", {"address": "2001:2::22", "weight": 3}]}),
        build_balancer({"name": "web", "vip": "2001:2::100", "port": 53, "protocol": "udp", "affinity": "client_ip",
                        "backends": ["2001:2::21", {"address": "2001:2::22", "drain": True}, "2001:2::23"]}),
    ]
    for obj in objects:
        owned = iprules.render(obj)
        for buffer in (iprules.restore_buffer({}, owned, obj.family), iprules.restore_buffer(owned, {}, obj.family)):
            check_restore_buffer(buffer)
        check_nft_commands(nft._family_commands(obj.family, [(nft.NftRules(), nft.render(obj)[obj.family])], nft.FamilyState()))


AFFINITY_SET = {"family": "ip", "table": "netmagic", "name": chain_name("AFF", "balancer", "web", 0), "type": "ipv4_addr",
                "flags": ["timeout"], "size": 65535}


def nft_rule(**fields):
    return {"add": {"rule": dict({"family": "ip", "table": "netmagic", "chain": SVC, "expr": [{"masquerade": None}]}, **fields)}}


NFT_REFUSED = [
    ({"add": {"table": {"family": "inet", "name": "netmagic"}}}, "family"),
    ({"delete": {"table": {"family": "ip", "name": "firewalld"}}}, "table must be"),
    ({"flush": {"ruleset": None}}, "unknown object"),
    ({"replace": {"rule": {}}}, "unknown command"),
    (nft_rule(chain="input"), "chain 'input'"),
    (nft_rule(chain="NM-SVC-web\n"), "chain"),
    (nft_rule(comment="netmagic:balancer:web\n"), "comment"),
    (nft_rule(comment="netmagic:balancer:web x"), "comment"),
    (nft_rule(expr=[{"accept": None}]), "expr[0].accept"),
    (nft_rule(expr=[{"dup": {"addr": "2001:db8::64%1"}}]), "expr[0].dup.addr"),
    (nft_rule(expr=[{"dup": {"addr": "198.18.0.3\n"}}]), "expr[0].dup.addr"),
    (nft_rule(expr=[{"vmap": {"key": {"numgen": {"mode": "inc", "mod": 2 ** 64, "offset": 0}}}}]), "mod"),
    ({"add": {"chain": {"family": "ip", "table": "netmagic", "name": "nat-prerouting", "policy": "drop"}}}, "policy"),
    ({"add": {"set": dict(AFFINITY_SET, flags=["timeout", "interval"])}}, "declaration"),
    ({"add": {"set": dict(AFFINITY_SET, size=1)}}, "declaration"),
    ({"add": {"map": dict(AFFINITY_SET, map="verdict")}}, "map"),
    ({"add": {"element": dict(AFFINITY_SET, elem=["198.18.0.9"])}}, "element"),
    ({"add": {"set": dict(AFFINITY_SET, name="NM-AFF-nothex-0")}}, "NM-AFF-nothex-0"),
]


@pytest.mark.parametrize("command, words", NFT_REFUSED)
def test_nft_commands_outside_the_grammar_are_refused(command, words):
    with pytest.raises(GuardError, match="internal error") as error:
        check_nft_commands([nft_rule(), command])
    assert "line 2" in str(error.value) and words in str(error.value)


# Every shape in one alternation, as one grammar: what the guard's dispatch by target must agree with.
ONE_GRAMMAR = re.compile(r"(?:-A (?:{owned}|{builtin})|-I {builtin} 1) (?:{rules})".format(
    owned=OWNED, builtin=BUILTIN, rules="|".join(shape.format(**FIELDS) for _target, shape in RULE_SHAPES)))


def _built(build, params):
    try:
        return build(params)
    except ValidationError:
        return None  # the strategies' combinations are not all valid


RULE_LINES = st.one_of(valid_mirror_params().map(lambda params: _built(build_mirror, params)),
                       valid_balancer_params().map(lambda params: _built(build_balancer, params))).filter(bool).map(
    lambda obj: [line for line in iprules.restore_buffer({}, iprules.render(obj), obj.family).splitlines() if line[:3] in ("-A ", "-I ")])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RULE_LINES, st.integers(min_value=0), st.sampled_from(["", " ", "x", "-", "0", ":", '"', "-j DROP", "-j NM-SVC-0123456789abcdef-x"]))
def test_a_rule_line_passes_exactly_when_one_grammar_of_every_shape_takes_it(lines, position, insert):
    line = lines[position % len(lines)]
    cut = position % (len(line) + 1)
    for candidate in (line, line[:cut] + insert + line[cut:], line[:cut] + insert):
        try:
            check_restore_buffer("*nat\n%s\nCOMMIT\n" % candidate)
            passed = True
        except GuardError:
            passed = False
        assert passed == bool(ONE_GRAMMAR.fullmatch(candidate)), candidate
