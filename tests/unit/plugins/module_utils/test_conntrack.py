"""Stale UDP flows: which services a change leaves flows of, and the exact conntrack runs that
delete them, against a scripted conntrack."""

import pytest

from ansible_collections.netmagic.netfilter.plugins.module_utils._conntrack import clear_stale_flows, reply_sources, services_to_clear
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import build_balancer, definition

VIP, VIP6 = "198.18.0.100", "2001:2::100"


def dns(backends=("198.18.0.21", "198.18.0.22"), vip=VIP, protocol="udp", **changes):
    return build_balancer(dict({"name": "dns", "vip": vip, "port": 53, "protocol": protocol, "backends": list(backends)}, **changes))


def flow(source, reply_source, reply_port, family=4):
    """One flow of `conntrack -L -o xml`, from a client to the VIP, answered from reply_source."""
    vip = VIP if family == 4 else VIP6
    layer3 = '<layer3 protonum="%d" protoname="ipv%d">' % (2 if family == 4 else 10, family)
    return ('<flow><meta direction="original">%s<src>%s</src><dst>%s</dst></layer3><layer4 protonum="17" protoname="udp"><sport>5000</sport>'
            '<dport>53</dport></layer4></meta><meta direction="reply">%s<src>%s</src><dst>%s</dst></layer3><layer4 protonum="17" '
            'protoname="udp"><sport>%d</sport><dport>5000</dport></layer4></meta><meta direction="independent"><timeout>29</timeout>'
            '</meta></flow>' % (layer3, source, vip, layer3, reply_source, source, reply_port))


def listing(*flows):
    return '<?xml version="1.0" encoding="utf-8"?>\n<conntrack>\n%s\n</conntrack>\n' % "\n".join(flows) if flows else ""


class ScriptedConntrack:
    """Answers each conntrack run from a script of (argv, (rc, out, err)); records every run."""

    def __init__(self, script, path="/usr/sbin/conntrack"):
        self.script = list(script)
        self.path = path
        self.ran = []

    def which(self, name):
        return self.path if name == "conntrack" else None

    def run(self, argv, data=None):
        self.ran.append(argv[1:])
        expected, answer = self.script.pop(0)
        assert argv[1:] == expected, "ran %s, the script expected %s" % (argv[1:], expected)
        return answer


SELECT = ["-f", "ipv4", "-p", "udp", "--orig-dst", VIP, "--orig-port-dst", "53"]
SELECT6 = ["-f", "ipv6", "-p", "udp", "--orig-dst", VIP6, "--orig-port-dst", "53"]
DELETED = (0, "", "conntrack v1.4.7 (conntrack-tools): 1 flow entries have been deleted.\n")

CASES = {
    "a removed backend's flow goes, a serving one's stays": (
        {(4, VIP, 53): frozenset({("198.18.0.22", 53)})},
        [(["-L"] + SELECT + ["-o", "xml"], (0, listing(flow("198.18.1.5", "198.18.0.21", 53), flow("198.18.1.6", "198.18.0.22", 53)), "")),
         (["-D"] + SELECT + ["--reply-src", "198.18.0.21", "--reply-port-src", "53"], DELETED)],
        []),
    "a flow to the VIP itself, from before the service existed, goes": (
        {(4, VIP, 53): frozenset({("198.18.0.21", 53)})},
        [(["-L"] + SELECT + ["-o", "xml"], (0, listing(flow("198.18.1.5", VIP, 53)), "")),
         (["-D"] + SELECT + ["--reply-src", VIP, "--reply-port-src", "53"], DELETED)],
        []),
    "IPv6, written as the model writes it": (
        {(6, VIP6, 53): frozenset()},
        [(["-L"] + SELECT6 + ["-o", "xml"], (0, listing(flow("2001:2::5", "2001:2:0:0::21", 53, family=6)), "")),
         (["-D"] + SELECT6 + ["--reply-src", "2001:2::21", "--reply-port-src", "53"], DELETED)],
        []),
    "no flows, nothing deleted": (
        {(4, VIP, 53): frozenset({("198.18.0.21", 53)})},
        [(["-L"] + SELECT + ["-o", "xml"], (0, "", "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been shown.\n"))],
        []),
    "a flow that ended meanwhile is no failure": (
        {(4, VIP, 53): frozenset()},
        [(["-L"] + SELECT + ["-o", "xml"], (0, listing(flow("198.18.1.5", "198.18.0.21", 53)), "")),
         (["-D"] + SELECT + ["--reply-src", "198.18.0.21", "--reply-port-src", "53"],
          (1, "", "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n"))],
        []),
    "a listing that fails is a warning": (
        {(4, VIP, 53): frozenset()},
        [(["-L"] + SELECT + ["-o", "xml"], (1, "", "conntrack v1.4.7 (conntrack-tools): Operation not supported\n"))],
        ["conntrack -L failed for 198.18.0.100 port 53/udp (rc=1): conntrack v1.4.7 (conntrack-tools): Operation not supported"]),
    "a listing that is not XML is a warning": (
        {(4, VIP, 53): frozenset()},
        [(["-L"] + SELECT + ["-o", "xml"], (0, "udp 17 29 src=198.18.1.5", ""))],
        ["cannot be read"]),
}


@pytest.mark.parametrize("name", CASES)
def test_clear_stale_flows(name):
    services, script, warnings = CASES[name]
    host = ScriptedConntrack(script)
    found = clear_stale_flows(host, services)
    assert not host.script, "runs the script expected that did not happen: %s" % host.script
    assert len(found) == len(warnings) and all(expected in warning for expected, warning in zip(warnings, found)), found


def test_without_the_conntrack_program_the_run_warns_and_names_the_services():
    host = ScriptedConntrack([], path=None)
    [warning] = clear_stale_flows(host, {(4, VIP, 53): frozenset(), (6, VIP6, 53): frozenset()})
    assert "conntrack not found" in warning and "198.18.0.100 port 53/udp, [2001:2::100] port 53/udp" in warning and not host.ran


@pytest.mark.parametrize("changes, expected", [
    pytest.param([(None, dns())], {(4, VIP, 53): {("198.18.0.21", 53), ("198.18.0.22", 53)}}, id="a new service"),
    pytest.param([(definition(dns()), dns([{"address": "198.18.0.21", "drain": True}, "198.18.0.22"]))],
                 {(4, VIP, 53): {("198.18.0.22", 53)}}, id="a drained backend does not serve"),
    pytest.param([(definition(dns()), None)], {(4, VIP, 53): set()}, id="a removed service: none of its flows is served"),
    pytest.param([(definition(dns()), dns(vip="198.18.0.101"))], {(4, VIP, 53): set(), (4, "198.18.0.101", 53): {("198.18.0.21", 53), ("198.18.0.22", 53)}},
                 id="a service moved to another VIP"),
    pytest.param([(definition(dns(protocol="tcp")), dns(protocol="tcp"))], {}, id="TCP flows end, and are left alone"),
    pytest.param([({"vip": "198.18.0.100;reboot", "protocol": "udp"}, None)], {}, id="a recorded definition that is not valid is left out"),
])
def test_services_to_clear(changes, expected):
    assert services_to_clear(changes) == {service: frozenset(serving) for service, serving in expected.items()}


def test_reply_sources_of_an_empty_listing():
    assert reply_sources("") == set()
