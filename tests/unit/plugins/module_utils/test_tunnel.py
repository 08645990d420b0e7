"""A tunnel's end: each case is what the host lists, and the exact commands that bring it to the definition."""

import json

import pytest

from ansible_collections.netmagic.netfilter.plugins.module_utils._host import EngineError
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import ValidationError
from ansible_collections.netmagic.netfilter.plugins.module_utils._tunnel import build_tunnel, converge_tunnel, device_mac, tunnel_commands

ETH0 = {"ifname": "eth0", "flags": ["BROADCAST", "UP", "LOWER_UP"], "mtu": 1500}
LO = {"ifname": "lo", "flags": ["LOOPBACK", "UP"], "mtu": 65536}
COLLECTOR_MAC = device_mac("198.18.250.1")


def vxlan(mtu=1500, address=None, **data):
    link = {"ifname": "nmvx4242", "flags": ["BROADCAST", "UP", "LOWER_UP"], "mtu": mtu, "inet6_addr_gen_mode": "none",
            "linkinfo": {"info_kind": "vxlan", "info_data": dict({"id": 4242, "port": 4789, "learning": False}, **data)}}
    return dict(link, address=address) if address else link


class ListingHost:
    """A host whose `ip` and `bridge` listings are given; records what runs."""

    def __init__(self, link=None, links=(ETH0, LO), addresses=(), routes=(), neighbours=(), forwarding=(), unrouted=()):
        self.listings = {
            ("ip", "-d", "-j", "link", "show", "dev", "nmvx4242"): [link] if link else None,
            ("ip", "-j", "addr", "show", "dev", "nmvx4242"): [{"addr_info": list(addresses)}],
            ("ip", "-4", "-j", "route", "show", "dev", "nmvx4242"): list(routes),
            ("ip", "-6", "-j", "route", "show", "dev", "nmvx4242"): [],
            ("ip", "-j", "neigh", "show", "dev", "nmvx4242"): list(neighbours),
            ("bridge", "-j", "fdb", "show", "dev", "nmvx4242"): list(forwarding),
            ("ip", "-j", "link", "show"): list(links) + ([link] if link else []),
        }
        self.unrouted = set(unrouted)
        self.ran = []

    def which(self, name):
        return "/usr/sbin/" + name

    def read(self, argv):
        key = (argv[0].rsplit("/", 1)[1],) + tuple(argv[1:])
        if key[:3] == ("ip", "route", "get"):
            return (2, "", "RTNETLINK answers: Network is unreachable\n") if key[3] in self.unrouted else (0, "%s dev eth0\n" % key[3], "")
        listing = self.listings[key]
        return (1, "", 'Device "nmvx4242" does not exist.\n') if listing is None else (0, json.dumps(listing), "")

    def run(self, argv):
        self.ran.append(argv)
        return (0, "", "") if "fail" not in argv else (2, "", "RTNETLINK answers: File exists\n")


COLLECTOR = {"vni": 4242, "address": "198.18.250.1/24"}
SENDER = {"vni": 4242, "peers": [{"address": "198.18.250.1", "remote": "198.19.2.12"}]}
CREATE = ["ip", "link", "add", "nmvx4242", "mtu", "1500", "type", "vxlan", "id", "4242", "dstport", "4789", "nolearning"]
UP = [["ip", "link", "set", "dev", "nmvx4242", "addrgenmode", "none"], ["ip", "link", "set", "dev", "nmvx4242", "up"]]
SENDER_ENTRIES = [["ip", "route", "replace", "198.18.250.1", "dev", "nmvx4242"],
                  ["ip", "neigh", "replace", "198.18.250.1", "lladdr", COLLECTOR_MAC, "dev", "nmvx4242", "nud", "permanent"],
                  ["bridge", "fdb", "append", COLLECTOR_MAC, "dev", "nmvx4242", "dst", "198.19.2.12", "self", "permanent"]]

CASES = {
    "a collector's end is created with its MAC and address": (COLLECTOR, ListingHost(), [
        CREATE[:4] + ["address", COLLECTOR_MAC] + CREATE[4:]] + UP + [["ip", "addr", "add", "198.18.250.1/24", "dev", "nmvx4242"]]),
    "a collector's end as defined changes nothing": (COLLECTOR, ListingHost(
        vxlan(address=COLLECTOR_MAC), addresses=[{"local": "198.18.250.1", "prefixlen": 24}],
        routes=[{"dst": "198.18.250.0/24", "protocol": "kernel"}]), []),
    "a sender's end is created with its collectors' entries": (SENDER, ListingHost(), [CREATE] + UP + SENDER_ENTRIES),
    "a sender's end as defined changes nothing": (SENDER, ListingHost(
        vxlan(), routes=[{"dst": "198.18.250.1"}], neighbours=[{"dst": "198.18.250.1", "lladdr": COLLECTOR_MAC, "state": ["PERMANENT"]}],
        forwarding=[{"mac": COLLECTOR_MAC, "dst": "198.19.2.12", "state": "permanent"}]), []),
    "a collector that moved: the old entries go, the new come": (SENDER, ListingHost(
        vxlan(mtu=1400), routes=[{"dst": "198.18.250.9"}], neighbours=[{"dst": "198.18.250.9", "lladdr": "02:6e:00:00:00:09", "state": ["PERMANENT"]}],
        forwarding=[{"mac": "02:6e:00:00:00:09", "dst": "198.19.2.99"}]), [
        ["ip", "link", "set", "dev", "nmvx4242", "mtu", "1500"],
        ["ip", "route", "del", "198.18.250.9", "dev", "nmvx4242"], SENDER_ENTRIES[0],
        ["ip", "neigh", "del", "198.18.250.9", "dev", "nmvx4242"], SENDER_ENTRIES[1],
        ["bridge", "fdb", "del", "02:6e:00:00:00:09", "dev", "nmvx4242", "dst", "198.19.2.99", "self"], SENDER_ENTRIES[2]]),
    "a device of another kind or VNI under the name is made again": (SENDER, ListingHost(vxlan(remote="198.19.2.12")), [
        ["ip", "link", "del", "dev", "nmvx4242"], CREATE] + UP + SENDER_ENTRIES),
    "a device that is down, with IPv6 addresses on, is brought up without them": (SENDER, ListingHost(
        dict(vxlan(), flags=["BROADCAST"], inet6_addr_gen_mode="eui64"), routes=[{"dst": "198.18.250.1"}],
        neighbours=[{"dst": "198.18.250.1", "lladdr": COLLECTOR_MAC, "state": ["PERMANENT"]}],
        forwarding=[{"mac": COLLECTOR_MAC, "dst": "198.19.2.12"}]), UP),
    "jumbo frames on the host: the tunnel takes their MTU": (SENDER, ListingHost(links=(dict(ETH0, mtu=9000), LO)), [
        CREATE[:5] + ["9000"] + CREATE[6:]] + UP + SENDER_ENTRIES),
}


@pytest.mark.parametrize("name", CASES)
def test_tunnel_commands(name):
    params, host, expected = CASES[name]
    assert tunnel_commands(host, build_tunnel(params))[0] == expected


def test_removal_deletes_the_device_when_there_is_one():
    tunnel = build_tunnel(SENDER)
    assert tunnel_commands(ListingHost(vxlan()), tunnel, "absent") == ([["ip", "link", "del", "dev", "nmvx4242"]], None)
    assert tunnel_commands(ListingHost(), tunnel, "absent") == ([], None)


def test_converge_runs_each_command_with_its_full_path_and_check_mode_none():
    host = ListingHost()
    assert converge_tunnel(host, build_tunnel(SENDER), check_mode=True)["changed"] and host.ran == []
    result = converge_tunnel(host, build_tunnel(SENDER))
    assert (result["device"], result["mtu"]) == ("nmvx4242", 1500)
    assert host.ran == [["/usr/sbin/" + argv[0]] + argv[1:] for argv in [CREATE] + UP + SENDER_ENTRIES]


def test_a_failing_command_names_itself():
    host = ListingHost()
    host.run = lambda argv: (2, "", "RTNETLINK answers: Operation not supported\n")
    with pytest.raises(EngineError, match=r"^ip link add nmvx4242 .* failed \(RTNETLINK answers: Operation not supported\)"):
        converge_tunnel(host, build_tunnel(COLLECTOR))


@pytest.mark.parametrize("params, host, parameter", [
    (dict(SENDER, mtu=1450), ListingHost(), "mtu"),
    (SENDER, ListingHost(unrouted=["198.19.2.12"]), "peers[0].remote"),
])
def test_a_tunnel_that_would_affect_production_or_reach_nothing_is_refused_before_any_command(params, host, parameter):
    with pytest.raises(ValidationError) as error:
        converge_tunnel(host, build_tunnel(params))
    assert error.value.parameter == parameter and host.ran == []


@pytest.mark.parametrize("params, parameter", [
    ({}, "vni"),
    ({"vni": 2 ** 24}, "vni"),
    ({"vni": 42, "port": 0}, "port"),
    ({"vni": 42, "mtu": 1000}, "mtu"),
    ({"vni": 42, "address": "198.18.250.1"}, "address"),
    ({"vni": 42, "address": "198.18.250.1/33"}, "address"),
    ({"vni": 42, "address": "198.18.250.1/24\n"}, "address"),
    ({"vni": 42, "local": "2001:2::1"}, "local"),
    ({"vni": 42, "peers": "198.18.250.1"}, "peers"),
    ({"vni": 42, "peers": [{"address": "198.18.250.1"}]}, "peers[0]"),
    ({"vni": 42, "peers": [{"address": "198.18.250.1", "remote": "2001:2::12"}]}, "peers[0].remote"),
    ({"vni": 42, "peers": [{"address": "198.18.250.1", "remote": "198.19.2.12"}] * 2}, "peers[1].address"),
    ({"vni": 42, "address": "198.18.250.1/24", "peers": [{"address": "198.18.250.2", "remote": "198.19.2.12"}]}, "peers"),
])
def test_a_bad_definition_is_refused_naming_its_parameter(params, parameter):
    with pytest.raises(ValidationError) as error:
        build_tunnel(params)
    assert error.value.parameter == parameter


SENDER_UNIT = """\
# Written by netmagic.netfilter: builds the VXLAN tunnel device nmvx4242 at boot.
[Unit]
Description=VXLAN tunnel nmvx4242 of netmagic.netfilter
DefaultDependencies=no
Wants=network-pre.target
Before=network-pre.target netmagic-netfilter-restore.service shutdown.target
After=local-fs.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart="/usr/sbin/ip" "link" "add" "nmvx4242" "mtu" "1500" "type" "vxlan" "id" "4242" "dstport" "4789" "nolearning"
ExecStart="/usr/sbin/ip" "link" "set" "dev" "nmvx4242" "addrgenmode" "none"
ExecStart="/usr/sbin/ip" "link" "set" "dev" "nmvx4242" "up"
ExecStart="/usr/sbin/ip" "route" "replace" "198.18.250.1" "dev" "nmvx4242"
ExecStart="/usr/sbin/ip" "neigh" "replace" "198.18.250.1" "lladdr" "%(mac)s" "dev" "nmvx4242" "nud" "permanent"
ExecStart="/usr/sbin/bridge" "fdb" "append" "%(mac)s" "dev" "nmvx4242" "dst" "198.19.2.12" "self" "permanent"

[Install]
WantedBy=multi-user.target
""" % {"mac": COLLECTOR_MAC}


def test_a_persisted_end_is_built_at_boot_as_defined_before_the_rules_are_restored(tmp_path):
    """Whatever the device holds now, the unit builds it from nothing, as the definition says."""
    host = ListingHost(vxlan(mtu=1400), routes=[{"dst": "198.18.250.9"}])
    persist = {"path": str(tmp_path), "service": False}
    result = converge_tunnel(host, build_tunnel(SENDER), persist=persist)
    unit = tmp_path / "netmagic-vxlan-4242.service"
    assert result["changed"] and result["persisted"] == {"unit": str(unit)}
    assert unit.read_text() == SENDER_UNIT


def test_a_persisted_end_converges_and_check_mode_writes_nothing(tmp_path):
    defined = ListingHost(vxlan(), routes=[{"dst": "198.18.250.1"}], neighbours=[{"dst": "198.18.250.1", "lladdr": COLLECTOR_MAC, "state": ["PERMANENT"]}],
                          forwarding=[{"mac": COLLECTOR_MAC, "dst": "198.19.2.12"}])
    persist = {"path": str(tmp_path / "persist"), "service": False}
    assert converge_tunnel(defined, build_tunnel(SENDER), check_mode=True, persist=persist)["changed"]
    assert not (tmp_path / "persist").exists()
    assert converge_tunnel(defined, build_tunnel(SENDER), persist=persist)["changed"]
    assert not converge_tunnel(defined, build_tunnel(SENDER), persist=persist)["changed"]
    assert defined.ran == []


def test_removal_removes_the_unit_too(tmp_path):
    persist = {"path": str(tmp_path), "service": False}
    converge_tunnel(ListingHost(), build_tunnel(SENDER), persist=persist)
    unit = tmp_path / "netmagic-vxlan-4242.service"
    assert converge_tunnel(ListingHost(), build_tunnel(SENDER), "absent", check_mode=True, persist=persist)["changed"] and unit.exists()
    assert converge_tunnel(ListingHost(), build_tunnel(SENDER), "absent", persist=persist)["changed"] and not unit.exists()
    assert not converge_tunnel(ListingHost(), build_tunnel(SENDER), "absent", persist=persist)["changed"]
