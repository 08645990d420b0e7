# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""VXLAN tunnels to remote collectors: the definition, validated, and the `ip` and `bridge`
commands that bring one host's end of a tunnel to it.

A collector's end holds the tunnel's inner address and learns nothing, so it never sends on the
tunnel. A sender's end knows each collector of the tunnel by a permanent neighbour entry (its
inner address to its device's MAC, which both ends derive from that address) and a permanent
forwarding entry (that MAC to the collector's underlay address): it never asks either.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass

from ansible_collections.netmagic.netfilter.plugins.module_utils._host import EngineError
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import (
    ValidationError,
    bounded,
    bounded_list,
    family_of,
    refuse_repeats,
    unicast_address,
)
from ansible_collections.netmagic.netfilter.plugins.module_utils._persist import UNIT_NAME as RULES_UNIT_NAME
from ansible_collections.netmagic.netfilter.plugins.module_utils._persist import install_unit, remove_unit, unit_text

MAX_VNI = 2 ** 24 - 1
DEFAULT_PORT = 4789
# IPv6's minimum link MTU; the largest a VXLAN device without a lower device takes.
MIN_MTU, MAX_MTU = 1280, 65535
MAX_PEERS = 64
DEVICE_PREFIX = "nmvx"
DEVICE_NAME = re.compile(DEVICE_PREFIX + "([1-9][0-9]{0,7})")


def device_name(vni):
    """The tunnel's device on every host: nmvx and the VNI, at most 12 characters."""
    return "%s%d" % (DEVICE_PREFIX, vni)


def device_vni(name):
    """The VNI of one of the collection's tunnel devices, by its name; None for any other device."""
    match = DEVICE_NAME.fullmatch(name)
    return int(match.group(1)) if match and int(match.group(1)) <= MAX_VNI else None


def unit_name(vni):
    """The systemd unit that builds the tunnel's device at boot."""
    return "netmagic-vxlan-%d.service" % vni


def device_mac(address):
    """The MAC of the device holding an inner address, locally administered, from the address
    alone: a sender knows a collector's MAC without asking it."""
    digest = hashlib.sha256(address.encode("ascii")).digest()
    return "02:6e:" + ":".join("%02x" % byte for byte in digest[:4])


@dataclass(frozen=True)
class Peer:
    address: str  # inner
    remote: str  # underlay

    @property
    def mac(self):
        return device_mac(self.address)


@dataclass(frozen=True)
class Tunnel:
    vni: int
    port: int = DEFAULT_PORT
    mtu: int = None  # None: the largest MTU of the host's other links
    address: str = None  # the collector's inner address, ADDRESS/LENGTH
    peers: tuple = ()  # the sender's collectors
    local: str = None

    @property
    def name(self):
        return device_name(self.vni)

    @property
    def mac(self):
        return device_mac(self.address.split("/", maxsplit=1)[0]) if self.address else None


def _interface_address(parameter, value):
    """ADDRESS/LENGTH, canonical; the address as unicast_address takes it."""
    if not isinstance(value, str) or value.count("/") != 1:
        raise ValidationError(parameter, value, "is not an address with its prefix length, such as 198.18.250.1/24")
    text, length = value.split("/")
    address = unicast_address(parameter, text)
    prefix = bounded(parameter, length, None, 1, 32 if family_of(address) == 4 else 128)
    return "%s/%d" % (address, prefix)


def _underlay(parameter, value):
    address = unicast_address(parameter, value)
    if family_of(address) != 4:
        raise ValidationError(parameter, value, "is IPv6: a tunnel's underlay is IPv4 (its inner addresses may be IPv6)")
    return address


def _peer(where, value):
    if not isinstance(value, dict) or set(value) != {"address", "remote"}:
        raise ValidationError(where, value, "must have exactly the keys address (inner) and remote (underlay)")
    return Peer(unicast_address(where + ".address", value["address"]), _underlay(where + ".remote", value["remote"]))


def _peers(values):
    peers = bounded_list("peers", values, MAX_PEERS, "collectors, each an address and a remote", _peer)
    refuse_repeats("peers[%d].address", [value["address"] for value in values or ()], [peer.address for peer in peers])
    return peers


def build_tunnel(params):
    """A validated Tunnel from the module's parameters (a dict)."""
    mtu = params.get("mtu")
    tunnel = Tunnel(
        vni=bounded("vni", params.get("vni"), None, 1, MAX_VNI),
        port=bounded("port", params.get("port"), DEFAULT_PORT, 1, 65535),
        mtu=None if mtu in (None, "auto") else bounded("mtu", mtu, None, MIN_MTU, MAX_MTU),
        address=_interface_address("address", params["address"]) if params.get("address") else None,
        peers=_peers(params.get("peers")),
        local=_underlay("local", params["local"]) if params.get("local") else None,
    )
    if tunnel.vni is None:
        raise ValidationError("vni", None, "is required: the tunnel's VXLAN network identifier, 1 to %d" % MAX_VNI)
    if tunnel.address and tunnel.peers:
        raise ValidationError("peers", params.get("peers"), "and address are exclusive: a collector's end has its address, a sender's end its collectors")
    return tunnel


# --- the host's end ---------------------------------------------------------

def resolved(host, argv):
    """argv with its program's full path: `ip` and `bridge` (iproute2) live in sbin."""
    path = host.which(argv[0])
    if not path:
        raise EngineError("the tunnel needs the %r command (iproute2)" % argv[0])
    return [path] + argv[1:]


def _json(host, argv):
    """Parsed JSON output of an `ip` or `bridge` listing; None when the device does not exist."""
    rc, out, _err = host.read(resolved(host, argv))
    return json.loads(out or "[]") if rc == 0 else None


def production_mtu(links):
    """(MTU, link) of the largest MTU among the host's links but loopback and its tunnels."""
    others = [link for link in links if "LOOPBACK" not in link.get("flags", []) and not link["ifname"].startswith(DEVICE_PREFIX)]
    if not others:
        return None, None
    largest = max(others, key=lambda link: link["mtu"])
    return largest["mtu"], largest["ifname"]


def desired_mtu(tunnel, links):
    """The device's MTU: at least the production MTU, so that no clone of a full-size packet is
    dropped (TEE sets DF), and no production peer is told to send smaller packets."""
    largest, link = production_mtu(links)
    if tunnel.mtu is None:
        return max(largest or 1500, MIN_MTU)
    if largest and tunnel.mtu < largest:
        raise ValidationError("mtu", tunnel.mtu, "is below the MTU %d of %s: clones of full-size packets would be dropped and their "
                                                 "production peer told to send smaller packets (ICMP fragmentation needed)" % (largest, link))
    return tunnel.mtu


def _link_matches(tunnel, link):
    info = link.get("linkinfo", {})
    data = info.get("info_data", {})
    return (info.get("info_kind") == "vxlan" and data.get("id") == tunnel.vni and data.get("port") == tunnel.port
            and data.get("learning") is False and "remote" not in data and "group" not in data and data.get("local") == tunnel.local)


def _create(tunnel, mtu):
    argv = ["ip", "link", "add", tunnel.name] + (["address", tunnel.mac] if tunnel.mac else [])
    argv += ["mtu", str(mtu), "type", "vxlan", "id", str(tunnel.vni), "dstport", str(tunnel.port), "nolearning"]
    return [argv + (["local", tunnel.local] if tunnel.local else []),
            # No IPv6 link-local address: nothing of the host's own ever goes into the tunnel.
            ["ip", "link", "set", "dev", tunnel.name, "addrgenmode", "none"],
            ["ip", "link", "set", "dev", tunnel.name, "up"]]


def _link_commands(tunnel, link, mtu):
    if link is None:
        return _create(tunnel, mtu), True
    if not _link_matches(tunnel, link):
        return [["ip", "link", "del", "dev", tunnel.name]] + _create(tunnel, mtu), True
    commands = []
    if link["mtu"] != mtu:
        commands.append(["ip", "link", "set", "dev", tunnel.name, "mtu", str(mtu)])
    if tunnel.mac and link.get("address") != tunnel.mac:
        commands.append(["ip", "link", "set", "dev", tunnel.name, "address", tunnel.mac])
    if link.get("inet6_addr_gen_mode") != "none":
        commands.append(["ip", "link", "set", "dev", tunnel.name, "addrgenmode", "none"])
    if "UP" not in link.get("flags", []):
        commands.append(["ip", "link", "set", "dev", tunnel.name, "up"])
    return commands, False


def _canonical(address):
    return str(ipaddress.ip_address(address))


def _end_commands(tunnel, live):
    """Commands for the addresses, routes, neighbours and forwarding entries of the device, from
    what it holds (nothing when it is created)."""
    name = tunnel.name
    addresses = {"%s/%d" % (_canonical(a["local"]), a["prefixlen"]) for a in live["addresses"]}
    wanted = {tunnel.address} if tunnel.address else set()
    commands = [["ip", "addr", "del", a, "dev", name] for a in sorted(addresses - wanted)]
    commands += [["ip", "addr", "add", a, "dev", name] for a in sorted(wanted - addresses)]
    routes = {_canonical(route["dst"].split("/")[0]) for route in live["routes"] if route.get("protocol") != "kernel" and route["dst"] != "default"}
    inner = {peer.address for peer in tunnel.peers}
    commands += [["ip", "route", "del", route, "dev", name] for route in sorted(routes - inner)]
    commands += [["ip", "route", "replace", peer.address, "dev", name] for peer in tunnel.peers if peer.address not in routes]
    neighbours = {_canonical(entry["dst"]): entry.get("lladdr") for entry in live["neighbours"] if "PERMANENT" in entry.get("state", [])}
    commands += [["ip", "neigh", "del", address, "dev", name] for address in sorted(set(neighbours) - inner)]
    commands += [["ip", "neigh", "replace", peer.address, "lladdr", peer.mac, "dev", name, "nud", "permanent"]
                 for peer in tunnel.peers if neighbours.get(peer.address) != peer.mac]
    entries = {(entry["mac"], _canonical(entry["dst"])) for entry in live["forwarding"] if "dst" in entry}
    wanted_entries = {(peer.mac, peer.remote) for peer in tunnel.peers}
    commands += [["bridge", "fdb", "del", mac, "dev", name, "dst", remote, "self"] for mac, remote in sorted(entries - wanted_entries)]
    commands += [["bridge", "fdb", "append", mac, "dev", name, "dst", remote, "self", "permanent"] for mac, remote in sorted(wanted_entries - entries)]
    return commands


def read_end(host, name):
    """What the host holds of a tunnel's device: its link (None: no such device), addresses,
    routes, permanent neighbours and forwarding entries."""
    shown = _json(host, ["ip", "-d", "-j", "link", "show", "dev", name])
    if not shown:
        return None
    addresses = [info for entry in _json(host, ["ip", "-j", "addr", "show", "dev", name]) or [] for info in entry.get("addr_info", [])]
    routes = (_json(host, ["ip", "-4", "-j", "route", "show", "dev", name]) or []) + (_json(host, ["ip", "-6", "-j", "route", "show", "dev", name]) or [])
    return {"link": shown[0], "addresses": addresses, "routes": routes, "neighbours": _json(host, ["ip", "-j", "neigh", "show", "dev", name]) or [],
            "forwarding": _json(host, ["bridge", "-j", "fdb", "show", "dev", name]) or []}


EMPTY_END = {"addresses": [], "routes": [], "neighbours": [], "forwarding": []}


def tunnel_commands(host, tunnel, state="present"):
    """(the commands that bring the host's end of the tunnel to the definition, in order, none
    when it is there already; the device's MTU). Every check comes before the first command."""
    live = read_end(host, tunnel.name)
    if state == "absent":
        return ([["ip", "link", "del", "dev", tunnel.name]] if live else []), None
    for index, peer in enumerate(tunnel.peers):
        if host.read(resolved(host, ["ip", "route", "get", peer.remote]))[0] != 0:
            raise ValidationError("peers[%d].remote" % index, peer.remote, "has no route from this host: the tunnel could not reach it")
    mtu = desired_mtu(tunnel, _json(host, ["ip", "-j", "link", "show"]) or [])
    commands, created = _link_commands(tunnel, live and live["link"], mtu)
    return commands + _end_commands(tunnel, EMPTY_END if created else live), mtu


def boot_unit(host, tunnel, mtu):
    """The unit that builds the device as defined, at boot: before the network comes up and
    before the owned rules are restored (an nftables mirror into a device that does not exist
    would fail the whole restore)."""
    commands = [resolved(host, argv) for argv in _create(tunnel, mtu) + _end_commands(tunnel, EMPTY_END)]
    return unit_text(commands, {
        "comment": "builds the VXLAN tunnel device %s at boot" % tunnel.name,
        "description": "VXLAN tunnel %s of netmagic.netfilter" % tunnel.name,
        "before": "network-pre.target %s shutdown.target" % RULES_UNIT_NAME,
        "after": "local-fs.target",
    })


def _run(host, commands):
    for argv in commands:
        rc, _out, err = host.run(resolved(host, argv))
        if rc != 0:
            raise EngineError("%s failed (%s); the commands before it ran" % (" ".join(argv), err.strip()))


def converge_tunnel(host, tunnel, state="present", check_mode=False, persist=None):
    """Runs the tunnel's commands (none in check mode); the module's result.

    persist: {"path", "service"} (persist_path validated) to keep the device across reboots with
    a unit, or None. Removal also removes a unit written before, from the persist path given."""
    commands, mtu = tunnel_commands(host, tunnel, state)
    if not check_mode:
        _run(host, commands)
    persisted, unit_changed = {}, False
    if persist and state == "present":
        unit_changed, path = install_unit(host, persist["path"], unit_name(tunnel.vni), boot_unit(host, tunnel, mtu), persist["service"], check_mode)
        persisted = {"unit": path}
    elif persist is not None and state == "absent":
        unit_changed = remove_unit(host, persist["path"], unit_name(tunnel.vni), check_mode)
    return {"changed": bool(commands) or unit_changed, "device": tunnel.name, "mtu": mtu, "commands": commands, "persisted": persisted}
