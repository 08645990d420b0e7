"""Reading `ip` output for the gateway check."""

import pytest

from ansible_collections.netmagic.netfilter.plugins.module_utils._preflight import link_flags, next_hop, own_addresses

ADDR = """1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: eth0    inet 198.18.0.11/24 scope global eth0\\       valid_lft forever preferred_lft forever
2: eth0    inet6 2001:2::b/64 scope global \\       valid_lft forever preferred_lft forever
2: eth0    inet6 fe80::b/64 scope link \\       valid_lft forever preferred_lft forever
"""


def test_own_addresses():
    assert own_addresses(ADDR) == {"127.0.0.1", "198.18.0.11", "2001:2::b", "fe80::b"}


@pytest.mark.parametrize(
    "output, hop",
    [
        ("198.18.0.12 dev eth0 src 198.18.0.11 uid 0 \n    cache \n", None),
        ("198.18.50.9 via 198.18.0.254 dev eth0 src 198.18.0.11 uid 0 \n    cache \n", "198.18.0.254"),
        ("2001:2:50::9 from :: via 2001:2::fe dev eth0 proto static src 2001:2::b metric 1024 pref medium\n", "2001:2::fe"),
        ("2001:2::c from :: dev eth0 proto kernel src 2001:2::b metric 256 pref medium\n", None),
    ],
)
def test_next_hop(output, hop):
    assert next_hop(output) == hop


@pytest.mark.parametrize(
    "output, flags",
    [
        ("5: nmvx42: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UNKNOWN mode DEFAULT\n",
         {"BROADCAST", "MULTICAST", "UP", "LOWER_UP"}),
        ("5: nmvx42: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN mode DEFAULT\n", {"BROADCAST", "MULTICAST"}),
        ("", set()),
    ],
)
def test_link_flags(output, flags):
    assert link_flags(output) == flags
