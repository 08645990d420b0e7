"""Reading `ip` output for the gateway check."""

import pytest

from ansible_collections.netmagic.netfilter.plugins.module_utils._preflight import is_local, link_flags, next_hop


@pytest.mark.parametrize(
    "output, local",
    [
        ("local 198.18.0.11 dev lo src 198.18.0.11 uid 0 \n    cache <local> \n", True),
        ("local 2001:2::b from :: dev lo table local proto kernel src 2001:2::b metric 0 pref medium\n", True),
        ("198.18.0.12 dev eth0 src 198.18.0.11 uid 0 \n    cache \n", False),
        ("2001:2::c from :: dev eth0 proto kernel src 2001:2::b metric 256 pref medium\n", False),
    ],
)
def test_is_local(output, local):
    assert is_local(output) is local


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
