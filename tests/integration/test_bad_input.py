"""Bad input fails with a message naming the input, and the ruleset stays byte for byte."""

import pytest

from tests.integration.netfilter import FOREIGN_RULES, iptables_save, restore, run_module, without_counters

MIRROR = {"name": "http", "gateway": "198.18.0.3", "ports": ["80"], "engine": "iptables-nft"}
BALANCER = {"name": "web", "vip": "198.18.0.100", "port": 80, "backends": ["198.18.0.21", "198.18.0.22"], "engine": "iptables-nft"}

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
]


@pytest.mark.parametrize("module, base, changes, words", BAD, ids=["%s-%s" % (b[0], "-".join(b[2])) for b in BAD])
def test_bad_input_fails_clearly_and_changes_nothing(netns, module, base, changes, words):
    restore(netns, "iptables-nft", FOREIGN_RULES)
    assert run_module(netns, "tee_mirror", MIRROR)["changed"]
    assert run_module(netns, "dnat_balancer", BALANCER)["changed"]
    before = without_counters(iptables_save(netns))
    params = dict(base)
    params.update(changes)
    result = run_module(netns, module, {k: v for k, v in params.items() if v is not None})
    assert result.get("failed"), result
    for word in words:
        assert word in result["msg"], result["msg"]
    assert without_counters(iptables_save(netns)) == before
