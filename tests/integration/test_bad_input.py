"""Bad input fails with a message naming the input, and the ruleset stays byte for byte."""

import pytest

from tests.integration.netfilter import plant_foreign, rules_of, run_module

MIRROR = {"name": "http", "gateway": "198.18.0.3", "ports": ["80"], "engine": "iptables-nft"}
BALANCER = {"name": "web", "vip": "198.18.0.100", "port": 80, "backends": ["198.18.0.21", "198.18.0.22"], "engine": "iptables-nft"}
MIRROR6 = dict(MIRROR, gateway="2001:2::3")
BALANCER6 = dict(BALANCER, vip="2001:2::100", backends=["2001:2::21", "2001:2::22"])
# The zone id that once flushed a foreign ip6tables filter table through ip6tables-restore.
INJECTED = "2001:db8::64%1\nCOMMIT\n*filter\n-F\n-X\n-P INPUT ACCEPT\n-P FORWARD ACCEPT\nCOMMIT\n*nat\n#"

BAD = [
    # (module, base, changes, words the message must contain)
    ("tee_mirror", MIRROR, {"gateway": "198.18.0.300"}, ["gateway", "198.18.0.300"]),
    ("tee_mirror", MIRROR, {"gateway": "collector; reboot"}, ["gateway", "collector; reboot"]),
    ("tee_mirror", MIRROR, {"gateway": None}, ["gateway"]),
    ("tee_mirror", MIRROR, {"ports": ["99999"]}, ["ports[0]", "99999"]),
    ("tee_mirror", MIRROR, {"ports": ["abc"]}, ["ports[0]", "abc"]),
    ("tee_mirror", MIRROR, {"ports": ["90:80"]}, ["ports[0]", "90:80"]),
    ("tee_mirror", MIRROR, {"ports": ["80"], "protocol": "icmp"}, ["ports", "icmp"]),
    ("tee_mirror", MIRROR, {"protocol": "sctp"}, ["protocol", "sctp"]),
    ("tee_mirror", MIRROR, {"name": "http$(id)"}, ["name", "http$(id)"]),
    ("tee_mirror", MIRROR, {"peer": "198.18.0.0/99"}, ["peer", "198.18.0.0/99"]),
    ("tee_mirror", MIRROR, {"interface": "eth0 -j DROP"}, ["interface", "eth0 -j DROP"]),
    ("tee_mirror", MIRROR, {"direction": "up"}, ["direction", "up"]),
    ("tee_mirror", MIRROR, {"engine": "pf"}, ["engine", "pf"]),
    ("dnat_balancer", BALANCER, {"vip": "not-an-ip"}, ["vip", "not-an-ip"]),
    ("dnat_balancer", BALANCER, {"port": 0}, ["port", "0"]),
    ("dnat_balancer", BALANCER, {"port": "http"}, ["port"]),
    ("dnat_balancer", BALANCER, {"backends": []}, ["backends"]),
    ("dnat_balancer", BALANCER, {"backends": ["198.18.0.21", "198.18.0.21:80"]}, ["backends[1]", "198.18.0.21"]),
    ("dnat_balancer", BALANCER, {"backends": ["198.18.0.21:65536"]}, ["backends[0]", "65536"]),
    ("dnat_balancer", BALANCER, {"backends": [{"address": "198.18.0.21", "weight": 0}]}, ["backends[0].weight", "0"]),
    ("dnat_balancer", BALANCER, {"backends": [{"address": "198.18.0.21", "weight": -2}]}, ["backends[0].weight", "-2"]),
    ("dnat_balancer", BALANCER, {"backends": [{"address": "2001:2::1"}]}, ["backends[0]", "2001:2::1", "mix IPv4 and IPv6"]),
    ("tee_mirror", MIRROR, {"gateway": "2001:2::3", "peer": "198.18.0.0/24"}, ["peer", "mix IPv4 and IPv6"]),
    ("dnat_balancer", BALANCER, {"backends": ["198.18.0.100:80"]}, ["backends[0]", "VIP"]),
    ("dnat_balancer", BALANCER, {"mode": "hash"}, ["mode", "hash"]),
    ("dnat_balancer", BALANCER, {"name": "web;reboot"}, ["name", "web;reboot"]),
    ("dnat_balancer", BALANCER, {"name": "$(touch /tmp/x)"}, ["name", "$(touch /tmp/x)"]),
    ("dnat_balancer", BALANCER, {"engine": "ipfw"}, ["engine", "ipfw"]),
    ("dnat_balancer", BALANCER, {"vip": "2001:2::100"}, ["backends[0]", "mix IPv4 and IPv6"]),
    ("dnat_balancer", BALANCER, {"vip": "224.0.0.5"}, ["vip", "224.0.0.5"]),
    ("dnat_balancer", BALANCER, {"vip": "198.18.0.100/24"}, ["vip", "198.18.0.100/24"]),
    ("dnat_balancer", BALANCER, {"backends": ["198.18.0.21", "198.18.0.22", "198.18.0.21"]}, ["backends[2]", "backends[0]"]),
    ("dnat_balancer", BALANCER, {"backends": [{"address": "198.18.0.21", "weight": "heavy"}]}, ["backends[0].weight", "heavy"]),
    ("dnat_balancer", BALANCER, {"backends": [{"address": "198.18.0.21", "port": -80}]}, ["backends[0].port", "-80"]),
    ("dnat_balancer", BALANCER, {"backends": ["198.18.0.21 -j ACCEPT"]}, ["backends[0]", "198.18.0.21 -j ACCEPT"]),
    ("dnat_balancer", BALANCER, {"protocol": "sctp"}, ["protocol", "sctp"]),
    ("tee_mirror", MIRROR, {"gateway": "198.18.0.1"}, ["gateway", "is an address of this host"]),
    ("tee_mirror", MIRROR, {"gateway": "0.0.0.0"}, ["gateway", "0.0.0.0"]),
    ("tee_mirror", MIRROR, {"ports": ["80", "80"]}, ["ports[1]", "listed twice"]),
    ("tee_mirror", MIRROR, {"ports": ["-1"]}, ["ports[0]", "-1"]),
    ("tee_mirror", MIRROR, {"service": "both"}, ["service", "both"]),
    ("tee_mirror", MIRROR, {"name": ""}, ["name"]),
    ("dnat_balancer", BALANCER, {"name": "x" * 65}, ["name"]),
    # Zone ids: the text after '%' once reached ip6tables-restore verbatim.
    ("dnat_balancer", BALANCER6, {"vip": INJECTED}, ["vip", "zone id"]),
    ("dnat_balancer", BALANCER6, {"vip": "2001:2::100%1"}, ["vip", "zone id"]),
    ("dnat_balancer", BALANCER6, {"backends": ["[2001:2::21%1]:80"]}, ["backends[0]", "zone id"]),
    ("dnat_balancer", BALANCER6, {"backends": [{"address": "2001:2::21%d0"}]}, ["backends[0].address", "zone id"]),
    ("tee_mirror", MIRROR6, {"peer": "2001:2::%1\nCOMMIT\n*filter\n-F\nCOMMIT\n*mangle/64"}, ["peer", "zone id"]),
    ("tee_mirror", MIRROR6, {"gateway": INJECTED, "force": True}, ["gateway", "zone id"]),
    ("tee_mirror", MIRROR6, {"gateway": "2001:2::3%d0"}, ["gateway", "zone id"]),
    # Values the tools would print differently, or not at all.
    ("dnat_balancer", BALANCER6, {"vip": "::ffff:198.18.0.100", "backends": ["::ffff:198.18.0.21"]}, ["vip", "IPv4-mapped"]),
    ("tee_mirror", MIRROR6, {"gateway": "::ffff:198.18.0.3"}, ["gateway", "IPv4-mapped"]),
    ("tee_mirror", MIRROR6, {"peer": "::ffff:198.18.0.0/120"}, ["peer", "IPv4-mapped"]),
    ("dnat_balancer", BALANCER, {"port": "\u00b2"}, ["port"]),
    ("dnat_balancer", BALANCER, {"port": "0x50"}, ["port"]),
    ("dnat_balancer", BALANCER, {"backends": ["198.18.0.21:\u00b2"]}, ["backends[0]"]),
    ("dnat_balancer", BALANCER, {"backends": [{"address": "198.18.0.21", "port": "\u0668\u0660"}]}, ["backends[0].port"]),
    ("dnat_balancer", BALANCER, {"backends": [{"address": "198.18.0.21", "weight": "\u00b3"}]}, ["backends[0].weight"]),
    ("tee_mirror", MIRROR, {"ports": ["\u00b2"]}, ["ports[0]"]),
    ("tee_mirror", MIRROR, {"ports": ["80:\u0669\u0660"]}, ["ports[0]"]),
    ("dnat_balancer", BALANCER, {"mode": "random", "backends": [{"address": "198.18.0.21", "weight": 2 ** 33}, "198.18.0.22"]},
     ["backends[0].weight"]),
    ("dnat_balancer", BALANCER, {"mode": "random", "backends": [{"address": "198.18.0.21", "weight": 65535}, "198.18.0.22"]},
     ["backends", "add up to more than 4096"]),
    ("dnat_balancer", BALANCER, {"backends": [{"address": "198.18.0.21", "weight": 3.5}]}, ["backends[0].weight"]),
    # Trailing newlines and other line breaks.
    ("dnat_balancer", BALANCER, {"name": "web\n"}, ["name"]),
    ("tee_mirror", MIRROR, {"name": "http\n"}, ["name"]),
    ("tee_mirror", MIRROR, {"name": "http\r"}, ["name"]),
    ("tee_mirror", MIRROR, {"interface": "d0\n"}, ["interface"]),
    ("tee_mirror", MIRROR, {"interface": "d0\n-j DROP"}, ["interface"]),
    ("tee_mirror", MIRROR, {"interface": "d\u00f8"}, ["interface"]),
    ("tee_mirror", MIRROR, {"gateway": "198.18.0.3\n"}, ["gateway"]),
    ("tee_mirror", MIRROR, {"peer": "198.18.0.0/24\n"}, ["peer"]),
    ("tee_mirror", MIRROR, {"ports": ["80\n"]}, ["ports[0]"]),
    ("dnat_balancer", BALANCER, {"vip": "198.18.0.100\n"}, ["vip"]),
    ("dnat_balancer", BALANCER, {"backends": ["198.18.0.21\n"]}, ["backends[0]"]),
    ("dnat_balancer", BALANCER, {"backends": ["198.18.0.21:80\n-j ACCEPT"]}, ["backends[0]"]),
    ("dnat_balancer", BALANCER, {"name": "web\u2028"}, ["name"]),
    ("dnat_balancer", BALANCER, {"name": "web\x00"}, ["name"]),
    ("tee_mirror", MIRROR, {"name": "http\\"}, ["name"]),
    ("tee_mirror", MIRROR, {"name": 'http"'}, ["name"]),
    # Other shapes that are not what they seem.
    ("tee_mirror", MIRROR, {"ports": ["80:90", "85"]}, ["ports[1]", "overlaps ports[0]"]),
    ("tee_mirror", MIRROR, {"ports": ["1:1024", "1000:2000"]}, ["ports[1]", "overlaps"]),
    ("tee_mirror", MIRROR, {"ports": ["80", "70:80"]}, ["ports[1]", "overlaps"]),
    ("tee_mirror", MIRROR, {"peer": "198.18.0.7/32 -j DROP"}, ["peer"]),
    ("tee_mirror", MIRROR, {"peer": "198.18.0.0/24,198.18.1.0/24"}, ["peer"]),
    ("tee_mirror", MIRROR, {"interface": "eth+x"}, ["interface"]),
    ("tee_mirror", MIRROR, {"interface": "!eth0"}, ["interface"]),
    ("tee_mirror", MIRROR, {"gateway": "198.18.0.3 --oif eth0"}, ["gateway"]),
    ("tee_mirror", MIRROR, {"gateway": "0x0a000001"}, ["gateway"]),
    ("tee_mirror", MIRROR, {"gateway": "198.018.0.3"}, ["gateway"]),
    ("dnat_balancer", BALANCER, {"vip": "198.18.0.100 -j ACCEPT"}, ["vip"]),
    ("dnat_balancer", BALANCER, {"backends": ["[198.18.0.21]:80"]}, ["backends[0]"]),
    ("dnat_balancer", BALANCER, {"backends": ["198.18.0.21:80:81"]}, ["backends[0]"]),
    ("dnat_balancer", BALANCER, {"backends": [{"address": "198.18.0.21", "port": "80-81"}]}, ["backends[0].port"]),
    ("dnat_balancer", BALANCER, {"backends": [["198.18.0.21"]]}, ["backends[0]"]),
    ("dnat_balancer", BALANCER, {"backends": [{"address": ["198.18.0.21"]}]}, ["backends[0].address"]),
    ("dnat_balancer", BALANCER, {"backends": ["198.18.0.255.1"]}, ["backends[0]"]),
    ("dnat_balancer", BALANCER6, {"backends": ["[2001:2::21]:80", "[2001:2:0::21]:80"]}, ["backends[1]", "repeats"]),
    ("dnat_balancer", BALANCER, {"backends": ["198.18.0.21", "198.18.0.21 "]}, ["backends[1]", "repeats"]),
    ("dnat_balancer", BALANCER, {"port": 80.5}, ["port"]),
    ("dnat_balancer", BALANCER, {"port": "80 -j ACCEPT"}, ["port"]),
    ("dnat_balancer", BALANCER, {"protocol": "tcp\n"}, ["protocol"]),
    ("tee_mirror", MIRROR, {"protocol": "tcp -j ACCEPT"}, ["protocol"]),
    ("tee_mirror", MIRROR, {"service": "remote\n"}, ["service"]),
    # Both families in one definition, and persistence paths that a unit file would misread.
    ("dnat_balancer", BALANCER6, {"backends": ["198.18.0.21"]}, ["backends[0]", "mix IPv4 and IPv6"]),
    ("tee_mirror", MIRROR, {"peer": "2001:2::/64"}, ["peer", "mix IPv4 and IPv6"]),
]


@pytest.mark.parametrize("module, base, changes, words", BAD, ids=["%s-%s" % (b[0], "-".join(b[2])) for b in BAD])
def test_bad_input_fails_clearly_and_changes_nothing(netns, module, base, changes, words):
    plant_foreign(netns, "iptables-nft")
    assert run_module(netns, "tee_mirror", MIRROR)["changed"]
    assert run_module(netns, "dnat_balancer", BALANCER)["changed"]
    before = rules_of(netns)
    params = dict(base)
    params.update(changes)
    result = run_module(netns, module, {k: v for k, v in params.items() if v is not None})
    assert result.get("failed"), result
    for word in words:
        assert word in result["msg"], result["msg"]
    assert "Traceback" not in result["msg"] and "exception" not in result, result
    assert rules_of(netns) == before
