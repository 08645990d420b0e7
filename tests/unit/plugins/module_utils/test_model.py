"""Validation of mirror and balancer definitions: every bad input names its parameter."""

import collections

import pytest

from ansible_collections.netmagic.netfilter.plugins.module_utils import _model

from ansible_collections.netmagic.netfilter.plugins.module_utils._model import (
    HASH_SLOTS,
    Backend,
    PortRange,
    ValidationError,
    build_balancer,
    build_mirror,
    random_probabilities,
    round_robin_slots,
    source_hash_table,
)

MIRROR = {"name": "http", "gateway": "198.18.0.3"}
BALANCER = {"name": "web", "vip": "198.18.0.100", "port": 80, "backends": ["198.18.0.21", "198.18.0.22"]}


def with_(base, **changes):
    merged = dict(base)
    merged.update(changes)
    return merged


BAD_MIRRORS = [
    # (changes, parameter named in the error)
    ({"name": ""}, "name"),
    ({"name": "web;rm -rf /"}, "name"),
    ({"name": "x" * 65}, "name"),
    ({"name": "a b"}, "name"),
    ({"gateway": "198.18.0.300"}, "gateway"),
    ({"gateway": "collector.example"}, "gateway"),
    ({"gateway": "0.0.0.0"}, "gateway"),
    ({"gateway": "224.0.0.1"}, "gateway"),
    ({"gateway": "127.0.0.1"}, "gateway"),
    ({"gateway": "ff02::1"}, "gateway"),
    ({"gateway": "::1"}, "gateway"),
    ({"gateway": "2001:2::3", "peer": "198.18.1.0/24"}, "peer"),
    ({"peer": "2001:2::/64"}, "peer"),
    ({"gateway": None}, "gateway"),
    ({"protocol": "sctp"}, "protocol"),
    ({"ports": ["0"]}, "ports[0]"),
    ({"ports": ["80", "99999"]}, "ports[1]"),
    ({"ports": ["abc"]}, "ports[0]"),
    ({"ports": ["8100:8000"]}, "ports[0]"),
    ({"ports": ["80", "80"]}, "ports[1]"),
    ({"ports": ["80;reboot"]}, "ports[0]"),
    ({"ports": ["80"], "protocol": "icmp"}, "ports"),
    ({"ports": ["80"], "protocol": "all"}, "ports"),
    ({"service": "both"}, "service"),
    ({"direction": "sideways"}, "direction"),
    ({"peer": "198.18.0.1/33"}, "peer"),
    ({"peer": "198.18.0.1/24"}, "peer"),
    ({"interface": "eth0 -j ACCEPT"}, "interface"),
    ({"interface": "averyveryverylongname"}, "interface"),
    # Zone ids, newlines, Unicode digits, IPv4 inside IPv6: refused, never carried into a rule.
    ({"gateway": "2001:2::3%1"}, "gateway"),
    ({"gateway": "2001:2::3%eth0\nCOMMIT\n*filter\n-F\nCOMMIT"}, "gateway"),
    ({"gateway": "198.18.0.3\n"}, "gateway"),
    ({"gateway": "::ffff:198.18.0.3"}, "gateway"),
    ({"gateway": "::ffff:c612:3"}, "gateway"),
    ({"gateway": "::198.18.0.3"}, "gateway"),
    ({"gateway": 3323068419}, "gateway"),
    ({"gateway": "2001:2::3", "peer": "2001:2::%1/64"}, "peer"),
    ({"gateway": "2001:2::3", "peer": "::ffff:0:0/96"}, "peer"),
    ({"peer": "198.18.0.0/24\n"}, "peer"),
    ({"name": "web\n"}, "name"),
    ({"name": "web\u00e9"}, "name"),
    ({"name": 42}, "name"),
    ({"interface": "d0\n"}, "interface"),
    ({"interface": "d\u00f8"}, "interface"),
    ({"ports": ["\u00b2"]}, "ports[0]"),
    ({"ports": ["8\u0663"]}, "ports[0]"),
    ({"ports": ["80\n"]}, "ports[0]"),
    ({"ports": [True]}, "ports[0]"),
    ({"ports": 443}, "ports"),
    ({"ports": "443"}, "ports"),
    ({"ports": ["80:90", "85"]}, "ports[1]"),
    ({"ports": ["1:1024", "1000:2000"]}, "ports[1]"),
    ({"protocol": ["tcp"]}, "protocol"),
]


@pytest.mark.parametrize("changes, parameter", BAD_MIRRORS)
def test_bad_mirror_input_names_the_parameter(changes, parameter):
    with pytest.raises(ValidationError) as raised:
        build_mirror(with_(MIRROR, **changes))
    assert raised.value.parameter == parameter
    assert "parameter '%s'" % parameter in str(raised.value)


BAD_BALANCERS = [
    ({"vip": "198.18.0.256"}, "vip"),
    ({"vip": "255.255.255.255"}, "vip"),
    ({"port": 0}, "port"),
    ({"port": 65536}, "port"),
    ({"port": "http"}, "port"),
    ({"protocol": "icmp"}, "protocol"),
    ({"backends": []}, "backends"),
    ({"backends": None}, "backends"),
    ({"backends": ["198.18.0.21", "198.18.0.21:80"]}, "backends[1]"),
    ({"backends": ["198.18.0.21:0"]}, "backends[0]"),
    ({"backends": ["198.18.0.21:http"]}, "backends[0]"),
    ({"backends": ["backend-1"]}, "backends[0]"),
    ({"backends": [42]}, "backends[0]"),
    ({"backends": [{"port": 80}]}, "backends[0].address"),
    ({"backends": [{"address": "198.18.0.21", "weight": 0}]}, "backends[0].weight"),
    ({"backends": [{"address": "198.18.0.21", "weight": -1}]}, "backends[0].weight"),
    ({"backends": [{"address": "198.18.0.21", "weight": True}]}, "backends[0].weight"),
    ({"backends": [{"address": "198.18.0.21", "port": 70000}]}, "backends[0].port"),
    ({"backends": [{"address": "198.18.0.21", "host": "x"}]}, "backends[0]"),
    ({"backends": ["198.18.0.100:80"]}, "backends[0]"),
    ({"backends": [{"address": "198.18.0.21", "weight": 5000}, {"address": "198.18.0.22", "weight": 1}]}, "backends"),
    ({"mode": "least_conn"}, "mode"),
    ({"backends": ["2001:2::51"]}, "backends[0]"),
    ({"backends": ["[2001:2::51]:80"]}, "backends[0]"),
    ({"vip": "2001:2::100", "backends": ["198.18.0.21"]}, "backends[0]"),
    ({"vip": "2001:2::100", "backends": ["[2001:2::51]:99999"]}, "backends[0]"),
    ({"vip": "2001:2::100", "backends": ["[2001:2::51"]}, "backends[0]"),
    ({"vip": "2001:2::100", "backends": ["[2001:2::51]8080"]}, "backends[0]"),
    ({"vip": "2001:2::100", "backends": ["[2001:2::51]:"]}, "backends[0]"),
    ({"vip": "2001:db8::64%1\nCOMMIT\n*filter\n-F\n-X\n-P INPUT ACCEPT\n-P FORWARD ACCEPT\nCOMMIT\n*nat\n#"}, "vip"),
    ({"vip": "2001:2::100%1"}, "vip"),
    ({"vip": "::ffff:198.18.0.100", "backends": ["::ffff:198.18.0.21"]}, "vip"),
    ({"vip": "198.18.0.100\n"}, "vip"),
    ({"port": "\u00b2"}, "port"),
    ({"port": "8\u0660"}, "port"),
    ({"port": True}, "port"),
    ({"port": 80.5}, "port"),
    ({"port": "80\n"}, "port"),
    ({"name": "web\n"}, "name"),
    ({"backends": "198.18.0.21"}, "backends"),
    ({"backends": ["198.18.0.21%1:80"]}, "backends[0]"),
    ({"backends": ["[2001:2::51%1]:80"]}, "backends[0]"),
    ({"backends": [{"address": "198.18.0.21", "weight": "\u00b2"}]}, "backends[0].weight"),
    ({"backends": [{"address": "198.18.0.21", "weight": 2 ** 40}]}, "backends[0].weight"),
    ({"backends": [{"address": "198.18.0.21", "weight": 65535}, {"address": "198.18.0.22", "weight": 1}], "mode": "random"}, "backends"),
    ({"backends": [{"address": 3323068437}]}, "backends[0].address"),
    ({"masquerade": "no"}, "masquerade"),
    ({"local_clients": "false"}, "local_clients"),
    ({"masquerade": 0}, "masquerade"),
    ({"backends": [{"address": "198.18.0.21", "drain": "yes"}]}, "backends[0].drain"),
    ({"backends": [{"address": "198.18.0.21", "drain": True}]}, "backends"),
    ({"source_ranges": "198.18.1.0/24"}, "source_ranges"),
    ({"source_ranges": ["198.18.1.5/24"]}, "source_ranges[0]"),
    ({"source_ranges": ["198.18.1.0/24\n-A INPUT -j ACCEPT"]}, "source_ranges[0]"),
    ({"source_ranges": ["office"]}, "source_ranges[0]"),
    ({"source_ranges": ["2001:2::/64"]}, "source_ranges"),
    ({"source_ranges": ["198.18.1.0/24", "2001:2::/64"]}, "source_ranges"),
    ({"affinity": "ClientIP"}, "affinity"),
    ({"affinity": True}, "affinity"),
    ({"affinity": "client_ip", "affinity_timeout": 0}, "affinity_timeout"),
    ({"affinity": "client_ip", "affinity_timeout": 86401}, "affinity_timeout"),
    ({"affinity": "client_ip", "affinity_timeout": "3h"}, "affinity_timeout"),
    ({"affinity": "client_ip", "affinity_timeout": 1.5}, "affinity_timeout"),
]


@pytest.mark.parametrize("changes, affinity, timeout", [
    ({}, "none", 10800),
    ({"affinity": "client_ip"}, "client_ip", 10800),
    ({"affinity": "client_ip", "affinity_timeout": "600"}, "client_ip", 600),
    ({"affinity": "client_ip", "affinity_timeout": 86400}, "client_ip", 86400),
])
def test_affinity_and_its_timeout(changes, affinity, timeout):
    balancer = build_balancer(with_(BALANCER, **changes))
    assert (balancer.affinity, balancer.affinity_timeout) == (affinity, timeout)


@pytest.mark.parametrize("ranges, expected", [
    ([], ()),
    (["198.18.1.7"], ("198.18.1.7/32",)),
    (["198.18.2.0/24", "198.18.1.0/24"], ("198.18.1.0/24", "198.18.2.0/24")),
    (["198.18.0.0/24", "198.18.1.0/24"], ("198.18.0.0/23",)),
    (["10.0.0.0/8", "10.1.0.0/16", "10.0.0.0/8"], ("10.0.0.0/8",)),
])
def test_source_ranges_are_the_fewest_networks_covering_them(ranges, expected):
    assert build_balancer(with_(BALANCER, source_ranges=ranges)).source_ranges == expected


@pytest.mark.parametrize("changes, parameter", BAD_BALANCERS)
def test_bad_balancer_input_names_the_parameter(changes, parameter):
    with pytest.raises(ValidationError) as raised:
        build_balancer(with_(BALANCER, **changes))
    assert raised.value.parameter == parameter


GOOD_MIRRORS = [
    ({}, {"ports": (), "protocol": "tcp", "peer": None}),
    ({"ports": ["80", "8000:8100", 443]}, {"ports": (PortRange(80, 80), PortRange(8000, 8100), PortRange(443, 443))}),
    ({"ports": ["8000-8100"]}, {"ports": (PortRange(8000, 8100),)}),
    ({"peer": "198.18.1.0/24"}, {"peer": "198.18.1.0/24"}),
    ({"peer": "198.18.1.7"}, {"peer": "198.18.1.7/32"}),
    ({"interface": "eth+"}, {"interface": "eth+"}),
]


@pytest.mark.parametrize("changes, expected", GOOD_MIRRORS)
def test_good_mirror_input_is_normalized(changes, expected):
    mirror = build_mirror(with_(MIRROR, **changes))
    for attribute, value in expected.items():
        assert getattr(mirror, attribute) == value


@pytest.mark.parametrize(
    "backends, expected",
    [
        (["198.18.0.21"], [Backend("198.18.0.21", 80, 1)]),
        (["198.18.0.21:8080"], [Backend("198.18.0.21", 8080, 1)]),
        ([{"address": "198.18.0.21", "weight": 3}], [Backend("198.18.0.21", 80, 3)]),
        ([{"address": "198.18.0.21", "port": "81", "weight": "2"}], [Backend("198.18.0.21", 81, 2)]),
        (["198.18.0.21:80", "198.18.0.21:81"], [Backend("198.18.0.21", 80, 1), Backend("198.18.0.21", 81, 1)]),
    ],
)
def test_backends_are_normalized(backends, expected):
    assert list(build_balancer(with_(BALANCER, backends=backends)).backends) == expected


@pytest.mark.parametrize(
    "backends, expected",
    [
        (["2001:2::51"], [Backend("2001:2::51", 80, 1)]),
        (["[2001:2::51]"], [Backend("2001:2::51", 80, 1)]),
        (["[2001:2:0:0::51]:8080"], [Backend("2001:2::51", 8080, 1)]),
        ([{"address": "2001:2::51", "port": 81, "weight": 2}], [Backend("2001:2::51", 81, 2)]),
    ],
)
def test_ipv6_backends_are_normalized(backends, expected):
    balancer = build_balancer(with_(BALANCER, vip="2001:2::100", backends=backends))
    assert list(balancer.backends) == expected
    assert balancer.family == 6
    assert balancer.backends[0].endpoint.startswith("[2001:2::51]:")


def test_ipv6_mirror():
    mirror = build_mirror(with_(MIRROR, gateway="2001:2:0:0::3", peer="2001:2:0:1::/64"))
    assert (mirror.gateway, mirror.peer, mirror.family) == ("2001:2::3", "2001:2:0:1::/64", 6)


def _names(slots):
    return "".join(backend.address for backend in slots)


@pytest.mark.parametrize(
    "weights, rotation",
    [
        ({"A": 1}, "A"),
        ({"A": 1, "B": 1, "C": 1}, "ABC"),
        ({"A": 3, "B": 1}, "AABA"),
        ({"A": 2, "B": 2}, "AB"),
        ({"A": 5, "B": 1, "C": 1}, "AAABCAA"),
        ({"A": 2, "B": 3}, "BABAB"),
    ],
)
def test_round_robin_slots_interleave_weights(weights, rotation):
    backends = [Backend(name, 80, weight) for name, weight in weights.items()]
    assert _names(round_robin_slots(backends)) == rotation


@pytest.mark.parametrize(
    "weights, probabilities",
    [
        ([1], []),
        ([1, 1], [0.5]),
        ([1, 1, 1], [1 / 3, 0.5]),
        ([3, 1], [0.75]),
        ([1, 2, 1], [0.25, 2 / 3]),
    ],
)
def test_random_probabilities_cascade(weights, probabilities):
    backends = [Backend("198.18.0.%d" % i, 80, w) for i, w in enumerate(weights, 1)]
    assert random_probabilities(backends) == pytest.approx(probabilities)


def hashed(backends, **changes):
    return build_balancer(with_(BALANCER, mode="source_hash", backends=backends, **changes))


TEN = ["198.18.0.%d" % (21 + index) for index in range(10)]


def test_source_hash_removing_a_backend_moves_its_slots_only_and_adding_it_back_restores_them():
    table = source_hash_table(hashed(TEN).serving)
    for removed in range(10):
        without = source_hash_table(hashed(TEN[:removed] + TEN[removed + 1:]).serving)
        moved = [slot for slot in range(HASH_SLOTS) if without[slot] != table[slot]]
        assert moved and all(table[slot].address == TEN[removed] for slot in moved)
        assert len(moved) == sum(1 for backend in table if backend.address == TEN[removed])
    assert source_hash_table(hashed(TEN[::-1]).serving) == table, "the table depends on the order the backends are listed in"


def test_source_hash_shares_follow_the_weights():
    table = source_hash_table(hashed([{"address": "198.18.0.21", "weight": 3}, "198.18.0.22"]).serving)
    share = sum(1 for backend in table if backend.address == "198.18.0.21") / HASH_SLOTS
    assert abs(share - 0.75) < 0.03, share
    even = collections.Counter(backend.address for backend in source_hash_table(hashed(TEN).serving))
    assert set(even) == set(TEN) and all(abs(count / HASH_SLOTS - 0.1) < 0.02 for count in even.values()), even


def test_source_hash_drained_backends_hold_no_slot():
    table = source_hash_table(hashed([{"address": TEN[0], "drain": True}] + TEN[1:]).serving)
    assert TEN[0] not in {backend.address for backend in table}


def test_source_hash_and_affinity_are_refused_together():
    with pytest.raises(ValidationError) as raised:
        hashed(TEN, affinity="client_ip")
    assert raised.value.parameter == "affinity"


def test_source_hash_takes_weights_whose_sum_no_rotation_could():
    heavy = [{"address": "198.18.0.21", "weight": 65535}, {"address": "198.18.0.22", "weight": 1}]
    with pytest.raises(ValidationError):
        build_balancer(with_(BALANCER, backends=heavy))
    table = source_hash_table(hashed(heavy).serving)
    assert {backend.address for backend in table} == {"198.18.0.21"}


def test_routed_traffic_is_mirrored_in_both_directions_only():
    routed = build_mirror({"name": "http", "gateway": "198.18.0.3", "service": "routed"})
    assert (routed.service, routed.direction) == ("routed", "both")
    with pytest.raises(ValidationError) as error:
        build_mirror({"name": "http", "gateway": "198.18.0.3", "service": "routed", "direction": "egress"})
    assert error.value.parameter == "direction" and "routed" in str(error.value)


@pytest.mark.parametrize("params, parameter", [
    ({"gateways": ["198.18.0.3", "198.18.0.3"]}, "gateways[1]"),
    ({"gateways": ["198.18.0.3", "2001:2::3"]}, "gateways[1]"),
    ({"gateways": ["198.18.0.3", "198.18.0.4"], "gateway": "198.18.0.3"}, "gateways"),
    ({"gateways": "198.18.0.3"}, "gateways"),
    ({"gateways": ["198.18.0.3", "198.18.0.4"], "connmark_bit": 31}, "connmark_bit"),
    ({"gateways": ["198.18.0.%d" % i for i in range(1, 66)]}, "gateways"),
])
def test_a_bad_pool_is_refused_naming_the_collector(params, parameter):
    with pytest.raises(ValidationError) as error:
        build_mirror(dict({"name": "http"}, **params))
    assert error.value.parameter == parameter


def test_a_pool_of_one_is_its_gateway_and_a_pool_numbers_its_collectors():
    assert build_mirror({"name": "http", "gateways": ["198.18.0.3"]}) == build_mirror({"name": "http", "gateway": "198.18.0.3"})
    pool = build_mirror({"name": "http", "gateways": ["198.18.0.3", "198.18.0.4", "198.18.0.5"], "connmark_bit": 4})
    assert (pool.gateway, pool.collectors, pool.mark_mask, pool.collector_mark(2)) == (
        "198.18.0.3", ("198.18.0.3", "198.18.0.4", "198.18.0.5"), 0x30, 0x30)


@pytest.mark.parametrize("params, parameter", [
    ({"gateway_interface": "vx0+"}, "gateway_interface"),
    ({"gateway_interface": "vx0\n"}, "gateway_interface"),
    ({"gateway_interface": "a-name-too-long-1"}, "gateway_interface"),
    ({"gateway_interface": ["vx0"]}, "gateway_interface"),
    ({"exclude": "198.18.2.2"}, "exclude"),
    ({"exclude": ["198.18.2.2", "198.18.3.0/23"]}, "exclude[1]"),
    ({"exclude": ["198.18.2.2", "2001:2::2"]}, "exclude[1]"),
    ({"exclude": ["198.18.2.%d" % i for i in range(65)]}, "exclude"),
])
def test_a_bad_tunnel_interface_or_exclusion_is_refused_naming_it(params, parameter):
    with pytest.raises(ValidationError) as error:
        build_mirror(dict({"name": "http", "gateway": "198.18.0.3"}, **params))
    assert error.value.parameter == parameter


def test_a_mirror_excludes_its_collectors_then_each_listed_network_once():
    mirror = build_mirror({"name": "http", "gateways": ["198.18.0.3", "198.18.0.4"], "gateway_interface": "nmvx42",
                           "exclude": ["198.18.2.2", "198.18.0.4", "198.18.2.2/32", "198.18.8.0/24"]})
    assert mirror.exclude == ("198.18.2.2/32", "198.18.0.4/32", "198.18.8.0/24")
    assert mirror.excluded == ("198.18.0.3/32", "198.18.0.4/32", "198.18.2.2/32", "198.18.8.0/24")
    assert _model.rebuild("mirror", _model.definition(mirror)) == mirror
