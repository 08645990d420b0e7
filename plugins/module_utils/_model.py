# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The declarative model: what one mirror or one balancer is, validated.

Every parameter is checked here before any engine sees it; a failure raises
ValidationError naming the parameter and the offending value.
"""

from __future__ import annotations

import collections
import hashlib
import ipaddress
import json
import math
import re
import struct
from contextlib import contextmanager
from dataclasses import dataclass
from math import gcd
from functools import lru_cache, reduce

# Every pattern is used with fullmatch: re.match with "$" accepts a trailing newline.
NAME_CHARACTERS = r"[A-Za-z0-9_.-]"
NAME_PATTERN = re.compile(NAME_CHARACTERS + "{1,64}")
INTERFACE_PATTERN = re.compile(r"[A-Za-z0-9_.:@-]{1,15}\+?")
# One interface by its whole name, as a device is created (no '+' wildcard).
DEVICE_PATTERN = re.compile(r"[A-Za-z0-9_.:@-]{1,15}")
# ASCII digits only: str.isdigit() also takes '²' and other Unicode digits.
NUMBER_PATTERN = re.compile(r"[0-9]{1,10}")
PORT_PATTERN = re.compile(r"([0-9]{1,5})(?:[:-]([0-9]{1,5}))?")
# Characters of an IPv4 or IPv6 address or network in text; a zone id ('%eth0') is refused on its own.
ADDRESS_PATTERN = re.compile(r"[0-9A-Fa-f.:]{2,45}")
NETWORK_PATTERN = re.compile(r"[0-9A-Fa-f.:]{2,45}(?:/[0-9]{1,3})?")
# IPv4 inside IPv6 (::ffff:a.b.c.d mapped, ::a.b.c.d compatible): the kernel tools print these
# as dotted quads and Python does not, and an IPv4 peer is reached with IPv4 anyway.
IPV4_IN_IPV6 = (ipaddress.IPv6Network("::ffff:0:0/96"), ipaddress.IPv6Network("::/96"))

MIRROR = "mirror"
BALANCER = "balancer"

MIRROR_PROTOCOLS = ("tcp", "udp", "icmp", "all")
BALANCER_PROTOCOLS = ("tcp", "udp")
SERVICES = ("remote", "local", "routed")
DIRECTIONS = ("both", "ingress", "egress")
MODES = ("round_robin", "random", "source_hash")
# source_hash: a client's address hashes to one of these slots, and the lookup table gives each
# slot a backend.
HASH_SLOTS = 4096
AFFINITIES = ("none", "client_ip")
# kube-proxy's default and its upper bound for sessionAffinityConfig.clientIP.timeoutSeconds.
DEFAULT_AFFINITY_TIMEOUT = 10800
MAX_AFFINITY_TIMEOUT = 86400
# Each round-robin slot is one rule; this bounds the chain a weight list can produce.
MAX_SLOTS = 4096
MAX_WEIGHT = 65535
# Per-connection sampling: 1 in at most this many connections; the connection mark bit it sets.
MAX_SAMPLE = 1000000
DEFAULT_CONNMARK_BIT = 20
# New connections a second a mirror may choose: xt_limit's largest rate.
MAX_NEW_CONNECTIONS = 10000
# Collectors of one pool: their numbers fill a field of the connection mark.
MAX_COLLECTORS = 64
# Networks a mirror never clones traffic with, besides its collectors.
MAX_EXCLUDED = 64
BROADCAST = ipaddress.IPv4Address("255.255.255.255")
# A dotted quad already in canonical form (no leading zeros, octets up to 255): the common case,
# checked without building an IPv4Address (a tenth of the time, at 10,000 backends).
OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
CANONICAL_IPV4 = re.compile(r"\.".join([OCTET] * 4))
# The usual backend, 'A.B.C.D' or 'A.B.C.D:PORT' in canonical form, told in one match.
CANONICAL_IPV4_ENDPOINT = re.compile(r"(?P<address>%s)(?::(?P<port>[1-9][0-9]{0,4}))?" % CANONICAL_IPV4.pattern)


class ValidationError(ValueError):
    """A parameter value that cannot be used; the message names both."""

    def __init__(self, parameter, value, reason):
        self.parameter = parameter
        self.value = value
        self.reason = reason
        super().__init__("parameter '%s': %r %s" % (parameter, value, reason))


@dataclass(frozen=True)
class PortRange:
    first: int
    last: int

    def __str__(self):
        return str(self.first) if self.first == self.last else "%d:%d" % (self.first, self.last)


def family_of(address):
    """4 or 6, from an address or network as the model stores it."""
    return 6 if ":" in address else 4


@dataclass(frozen=True)
class Mirror:
    name: str
    gateway: str
    protocol: str = "tcp"
    ports: tuple = ()
    service: str = "remote"
    direction: str = "both"
    peer: str = None
    interface: str = None
    sample: int = 1
    connmark_bit: int = DEFAULT_CONNMARK_BIT
    max_new_connections: int = None
    pool: tuple = ()  # with gateways: every collector, gateway the first
    gateway_interface: str = None
    exclude: tuple = ()  # networks, canonical

    kind = MIRROR

    @property
    def collectors(self):
        return self.pool or (self.gateway,)

    @property
    def chooses(self):
        """Whether connections are chosen (one in sample, at most max_new_connections a second, a
        collector of a pool) and marked, rather than every packet cloned to the one gateway."""
        return self.sample > 1 or bool(self.max_new_connections) or len(self.collectors) > 1

    @property
    def mark_mask(self):
        """The field of the connection mark holding the chosen collector's number (1, 2, ...),
        from bit connmark_bit; 0 in it: not chosen."""
        return ((1 << len(self.collectors).bit_length()) - 1) << self.connmark_bit

    def collector_mark(self, index):
        return (index + 1) << self.connmark_bit

    @property
    def family(self):
        return family_of(self.gateway)

    @property
    def excluded(self):
        """Networks whose traffic is never cloned: each collector (a clone of a packet to a
        collector would reach it as a duplicate), then the listed ones, each once."""
        host = "/32" if self.family == 4 else "/128"
        networks = [collector + host for collector in self.collectors] + list(self.exclude)
        return tuple(network for index, network in enumerate(networks) if networks.index(network) == index)


@dataclass(frozen=True)
class Backend:
    address: str
    port: int
    weight: int = 1
    drain: bool = False

    @property
    def endpoint(self):
        """ADDRESS:PORT, with an IPv6 address in brackets, as DNAT targets are written."""
        host = "[%s]" % self.address if family_of(self.address) == 6 else self.address
        return "%s:%d" % (host, self.port)

    def as_dict(self):
        """The backend as a definition's dict; drain only when set."""
        return dict({"address": self.address, "port": self.port, "weight": self.weight}, **({"drain": True} if self.drain else {}))


@dataclass(frozen=True)
class Balancer:
    name: str
    vip: str
    port: int
    backends: tuple
    protocol: str = "tcp"
    mode: str = "round_robin"
    masquerade: bool = True
    local_clients: bool = True
    source_ranges: tuple = ()
    affinity: str = "none"
    affinity_timeout: int = DEFAULT_AFFINITY_TIMEOUT

    kind = BALANCER

    @property
    def family(self):
        return family_of(self.vip)

    @property
    def serving(self):
        """The backends new connections go to: all but the drained ones."""
        return tuple(backend for backend in self.backends if not backend.drain)

    @property
    def serving_indexed(self):
        """(place in backends, backend) of each serving backend: the index names its endpoint chain."""
        return [(index, backend) for index, backend in enumerate(self.backends) if not backend.drain]


def validate_name(name):
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValidationError("name", name, "must be 1-64 characters of letters, digits, '-', '_' or '.'")
    return name


@contextmanager
def naming(item):
    """An error about a parameter of a listed item names the item: 'balancers[2].port'."""
    try:
        yield
    except ValidationError as error:
        raise ValidationError("%s.%s" % (item, error.parameter), error.value, error.reason) from None


def build_listed(option, kind, build, items):
    """{(kind, name): model object, or None for state absent} of the definitions listed in an
    option, in order; errors name the item."""
    objects = {}
    for index, params in enumerate(items):
        item = "%s[%d]" % (option, index)
        with naming(item):
            name = validate_name(params.get("name"))
            obj = None if params.get("state") == "absent" else build(params)
        if (kind, name) in objects:
            raise ValidationError(item + ".name", name, "is listed twice in %s" % option)
        objects[(kind, name)] = obj
    if kind == BALANCER:
        _refuse_shared_services(option, list(objects.values()))
    return objects


def _refuse_shared_services(option, balancers):
    """Two balancers on one VIP, port and protocol: which one gets the traffic would depend on the engine."""
    seen = {}
    for index, balancer in enumerate(balancers):
        if balancer is None:
            continue
        service = (balancer.vip, balancer.port, balancer.protocol)
        if service in seen:
            raise ValidationError("%s[%d].vip" % (option, index), balancer.vip, "port %d/%s is balanced by %s[%d] ('%s') too: "
                                  "one service, one balancer" % (balancer.port, balancer.protocol, option, seen[service][0], seen[service][1]))
        seen[service] = (index, balancer.name)


def _choice(parameter, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValidationError(parameter, value, "must be one of %s" % ", ".join(choices))
    return value


def _flag(parameter, value, default):
    """A bool as Ansible's bool type gives it; anything else (the string 'no' included) is refused."""
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ValidationError(parameter, value, "must be true or false")
    return value


def _address_text(parameter, value, pattern, what):
    """The text of an address or network, stripped of spaces, once it holds only the characters
    one can hold; a zone id is refused with its own reason."""
    if not isinstance(value, str):
        raise ValidationError(parameter, value, "is not %s" % what)
    text = value.strip(" ")
    if "%" in text:
        raise ValidationError(parameter, value, "has an IPv6 zone id ('%...'): zone ids are not accepted; "
                                                "give the address alone (an interface option selects the link)")
    if not pattern.fullmatch(text):
        raise ValidationError(parameter, value, "is not %s" % what)
    return text


def _refuse_ipv4_in_ipv6(parameter, value, address):
    if address.version == 6 and address != ipaddress.IPv6Address("::") and any(address in network for network in IPV4_IN_IPV6):
        raise ValidationError(parameter, value, "is an IPv4-mapped or IPv4-compatible IPv6 address: give the IPv4 address instead")


def _canonical_unicast_ipv4(text):
    """text when it is a canonical dotted quad of a unicast address; None for anything else (then
    ipaddress decides, and gives the reason)."""
    match = CANONICAL_IPV4.fullmatch(text)
    if not match:
        return None
    first = int(match.group(1))
    if first == 127 or 224 <= first <= 239 or text in ("0.0.0.0", "255.255.255.255"):
        return None
    return text


def unicast_address(parameter, value):
    """The address in the form iptables-save and nft print it."""
    text = _address_text(parameter, value, ADDRESS_PATTERN, "an IPv4 or IPv6 address")
    canonical = _canonical_unicast_ipv4(text)
    if canonical:
        return canonical
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ValidationError(parameter, value, "is not an IPv4 or IPv6 address") from None
    if address.is_unspecified or address.is_multicast or address.is_loopback or address == BROADCAST:
        raise ValidationError(parameter, value, "must be a unicast address (not unspecified, loopback, multicast or broadcast)")
    _refuse_ipv4_in_ipv6(parameter, value, address)
    return str(address)


def _same_family(parameter, value, family, anchor):
    if family_of(value) != family:
        raise ValidationError(parameter, value, "is IPv%d but %s is IPv%d: one definition cannot mix IPv4 and IPv6" % (family_of(value), anchor, family))
    return value


def _whole_number(parameter, value, reason):
    """An int from an int or from ASCII digits; bools, floats and other text are refused."""
    if isinstance(value, bool):
        raise ValidationError(parameter, value, reason)
    if isinstance(value, int):
        return value
    text = value.strip(" ") if isinstance(value, str) else None
    if text is None or not NUMBER_PATTERN.fullmatch(text):
        raise ValidationError(parameter, value, reason)
    return int(text)


def _port(parameter, value):
    port = _whole_number(parameter, value, "is not a port between 1 and 65535")
    if not 1 <= port <= 65535:
        raise ValidationError(parameter, value, "is not a port between 1 and 65535")
    return port


def _port_range(parameter, value):
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    match = PORT_PATTERN.fullmatch(value.strip(" ")) if isinstance(value, str) else None
    if not match:
        raise ValidationError(parameter, value, "is not a port or a range FIRST:LAST")
    first = _port(parameter, match.group(1))
    last = _port(parameter, match.group(2)) if match.group(2) else first
    if first > last:
        raise ValidationError(parameter, value, "is a range whose first port is above its last")
    return PortRange(first, last)


def _list(parameter, value):
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise ValidationError(parameter, value, "must be a list")
    return list(value)


def _ports(protocol, ports):
    ports = _list("ports", ports)
    if ports and protocol not in ("tcp", "udp"):
        raise ValidationError("ports", ports, "can only be given with protocol tcp or udp, not %s" % protocol)
    ranges = []
    for index, value in enumerate(ports):
        port_range = _port_range("ports[%d]" % index, value)
        for other, earlier in enumerate(ranges):
            if port_range.first <= earlier.last and earlier.first <= port_range.last:
                reason = "is listed twice" if port_range == earlier else "overlaps ports[%d] (%s): each packet would be cloned twice" % (other, earlier)
                raise ValidationError("ports[%d]" % index, value, reason)
        ranges.append(port_range)
    return tuple(ranges)


def _network(parameter, value):
    """A network in the form iptables-save prints it (ADDRESS/LENGTH)."""
    text = _address_text(parameter, value, NETWORK_PATTERN, "an IP address or CIDR network")
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as error:
        raise ValidationError(parameter, value, "is not an IP address or CIDR network (%s)" % error) from None
    _refuse_ipv4_in_ipv6(parameter, value, network.network_address)
    return str(network)


def _interface(value):
    if not isinstance(value, str) or not INTERFACE_PATTERN.fullmatch(value):
        raise ValidationError("interface", value, "is not an interface name (at most 15 of letters, digits, '_.:@-', optional trailing '+')")
    return value


def _device(parameter, value):
    if not isinstance(value, str) or not DEVICE_PATTERN.fullmatch(value):
        raise ValidationError(parameter, value, "is not the name of one interface (at most 15 of letters, digits, '_.:@-')")
    return value


def _excluded(values, family):
    """The networks of exclude, of the mirror's family, each once."""
    networks = bounded_list("exclude", values, MAX_EXCLUDED, "addresses or networks",
                            lambda where, value: _same_family(where, _network(where, value), family, "gateway"))
    return tuple(dict.fromkeys(networks))


def build_mirror(params):
    """Validated Mirror from module parameters (a dict)."""
    protocol = _choice("protocol", params.get("protocol") or "tcp", MIRROR_PROTOCOLS)
    peer = params.get("peer")
    interface = params.get("interface")
    collectors = mirror_collectors(params)
    gateway = collectors[0]
    pool = collectors if len(collectors) > 1 else ()
    connmark_bit = bounded("connmark_bit", params.get("connmark_bit"), DEFAULT_CONNMARK_BIT, 0, 31)
    if connmark_bit + len(pool).bit_length() > 32:
        raise ValidationError("connmark_bit", connmark_bit, "leaves no room for the numbers of %d collectors below bit 32" % len(pool))
    return Mirror(
        name=validate_name(params.get("name")),
        gateway=gateway,
        pool=pool,
        protocol=protocol,
        ports=_ports(protocol, params.get("ports")),
        service=_choice("service", params.get("service") or "remote", SERVICES),
        direction=_direction(params.get("direction") or "both", params.get("service") or "remote"),
        peer=_same_family("peer", _network("peer", peer), family_of(gateway), "gateway") if peer else None,
        interface=_interface(interface) if interface else None,
        sample=bounded("sample", params.get("sample"), 1, 1, MAX_SAMPLE),
        connmark_bit=connmark_bit,
        max_new_connections=bounded("max_new_connections", params.get("max_new_connections"), None, 1, MAX_NEW_CONNECTIONS),
        gateway_interface=_device("gateway_interface", params["gateway_interface"]) if params.get("gateway_interface") else None,
        exclude=_excluded(params.get("exclude"), family_of(gateway)),
    )


def mirror_collectors(params):
    """The validated collectors of a mirror's parameters: its gateways, else its one gateway."""
    return _collectors(params.get("gateways"), params.get("gateway")) or (unicast_address("gateway", params.get("gateway")),)


def _collectors(gateways, gateway):
    """The collectors given as gateways, of one family, each once; () when not given."""
    if gateways is None or gateways == []:
        return ()
    if gateway is not None:
        raise ValidationError("gateways", gateways, "and gateway are mutually exclusive: give one collector or a pool")
    pool = bounded_list("gateways", gateways, MAX_COLLECTORS, "collector addresses", unicast_address)
    refuse_repeats("gateways[%d]", gateways, pool)
    for index, address in enumerate(pool):
        _same_family("gateways[%d]" % index, address, family_of(pool[0]), "gateways[0]")
    return pool


def bounded_list(parameter, values, most, what, validate):
    """Each of a list of at most `most` values, as validate(where, value) returns it; () when unset."""
    if values is None:
        return ()
    if not isinstance(values, list) or len(values) > most:
        raise ValidationError(parameter, values, "must be a list of at most %d %s" % (most, what))
    return tuple(validate("%s[%d]" % (parameter, index), value) for index, value in enumerate(values))


def refuse_repeats(where, originals, keys):
    """Refuses the first of originals whose key (validated, in the same order) came before."""
    for index, key in enumerate(keys):
        if keys.index(key) != index:
            raise ValidationError(where % index, originals[index], "is listed twice")


def bounded(parameter, value, default, lowest, highest):
    """A whole number within bounds; default when unset (None)."""
    reason = "is not a whole number between %d and %d" % (lowest, highest)
    if value is None:
        return default
    number = _whole_number(parameter, value, reason)
    if not lowest <= number <= highest:
        raise ValidationError(parameter, value, reason)
    return number


def _direction(value, service):
    direction = _choice("direction", value, DIRECTIONS)
    if service == "routed" and direction != "both":
        raise ValidationError("direction", value, "must be both with service routed: the host neither sends nor receives the "
                              "traffic it routes, and clones its requests and its responses as it forwards them")
    return direction


# Where a mirror's packets pass: egress in OUTPUT, ingress in PREROUTING, routed in FORWARD.
EGRESS, INGRESS, FORWARD = "egress", "ingress", "forward"


ROLE_OF_HOOK = {EGRESS: "MIRO", INGRESS: "MIRI", FORWARD: "MIRF"}


def mirror_hooks(mirror):
    """(chain role, hook) for each hook the mirror clones in, or samples in: MIRO for egress, MIRI
    for ingress, MIRF for the traffic the host routes."""
    if mirror.service == "routed":
        hooks = [FORWARD]
    else:
        hooks = [hook for hook, directions in ((EGRESS, ("both", "egress")), (INGRESS, ("both", "ingress"))) if mirror.direction in directions]
    if mirror.chooses and request_hook(mirror) not in hooks:
        hooks.append(request_hook(mirror))
    return [(ROLE_OF_HOOK[hook], hook) for hook in sorted(hooks, key=list(ROLE_OF_HOOK).index)]


def request_hook(mirror):
    """The hook a connection's first packet passes: where a sampled connection is chosen."""
    return {"remote": EGRESS, "local": INGRESS, "routed": FORWARD}[mirror.service]


def clones_in(mirror, hook):
    """Whether the mirror clones the packets of the hook (it may only choose connections there)."""
    return mirror.service == "routed" or mirror.direction in ("both", hook)


def mirror_legs(mirror, hook):
    """(the service's port is the destination port, peer and interface are the packet's
    destination and way out) for each kind of packet the hook clones. A client of a remote
    service sends to its port and hears back from it, a local service the other way round; a
    routed service's peer is its servers: requests go to them, responses come from them."""
    if hook == FORWARD:
        return [(True, True), (False, False)]
    egress = hook == EGRESS
    return [(egress == (mirror.service == "remote"), egress)]


# The matches of one mirror rule. toward_peer: True matches the peer as destination and the
# interface as the way out, False as source and way in, None neither (the mirror has no peer or
# interface). port_field: "dport", "sport", or None for a mirror without ports (then port is None).
MirrorMatch = collections.namedtuple("MirrorMatch", "toward_peer port_field port")

# A rule of a hook's chain: its matches, then either a jump for new connections to the chain of
# role `chooser`, or a clone to `collector` of the connections whose mark field holds `mark`
# (None: every packet matched).
MirrorRule = collections.namedtuple("MirrorRule", "match chooser collector mark")

# A rule choosing a new connection: only one not numbered yet (`unnumbered`), the first of every
# `every`, at most `limit` a second (None: no such match); then set the mark field to `mark` or
# jump to the chain of role `jump`.
ChooserRule = collections.namedtuple("ChooserRule", "unnumbered every limit mark jump")


# A rule that every hook chain of a mirror starts with: traffic with `network` as its source
# (toward_peer False) or destination (True) leaves the chain uncloned.
Exclusion = collections.namedtuple("Exclusion", "toward_peer network")


def mirror_exclusions(mirror):
    """The Exclusions of each network the mirror never clones (Mirror.excluded), both ways."""
    return [Exclusion(toward, network) for network in mirror.excluded for toward in (True, False)]


def mirror_matches(mirror, hook):
    """The MirrorMatch of each kind of packet the hook clones, each once: without ports, peer or
    interface the legs of routed traffic match alike."""
    found = []
    for destination_port, toward_peer in mirror_legs(mirror, hook):
        toward = toward_peer if mirror.peer or mirror.interface else None
        if mirror.ports:
            field = "dport" if destination_port else "sport"
            leg = [MirrorMatch(toward, field, port) for port in mirror.ports]
        else:
            leg = [MirrorMatch(toward, None, None)]
        found += [match for match in leg if match not in found]
    return found


def mirror_rules(mirror, hook):
    """The rules of one hook's chain: when connections are chosen, first the jumps to MIRS for
    new connections (where their first packet passes: toward the service's port), then the clones
    of the chosen connections' packets to their collector."""
    matches = mirror_matches(mirror, hook)
    rules = []
    if mirror.chooses and hook == request_hook(mirror):
        rules += [MirrorRule(match, "MIRS", None, None) for match in matches if match.port_field != "sport"]
    if clones_in(mirror, hook):
        for match in matches:
            if not mirror.chooses:
                rules.append(MirrorRule(match, None, mirror.gateway, None))
                continue
            rules += [MirrorRule(match, None, collector, mirror.collector_mark(index)) for index, collector in enumerate(mirror.collectors)]
    return rules


def chooser_chains(mirror):
    """{chain role: [ChooserRule]} choosing a new connection. MIRS: one in `sample` (the first of
    each run), at most max_new_connections a second (a second's worth at once); then, for a pool,
    MIRP: each collector in turn, its number set in the mark field (an nth cascade, as the
    balancer's, each rule only for a connection no rule before it numbered)."""
    every = mirror.sample if mirror.sample > 1 else None
    limit = mirror.max_new_connections or None
    if not mirror.pool:
        return {"MIRS": [ChooserRule(False, every, limit, mirror.collector_mark(0), None)]}
    count = len(mirror.pool)
    cascade = [ChooserRule(True, count - index if index < count - 1 else None, None, mirror.collector_mark(index), None) for index in range(count)]
    if not (every or limit):
        return {"MIRS": cascade}
    return {"MIRS": [ChooserRule(False, every, limit, None, "MIRP")], "MIRP": cascade}


def _weight(parameter, value):
    weight = _whole_number(parameter, value, "is not a whole number between 1 and %d" % MAX_WEIGHT)
    if not 1 <= weight <= MAX_WEIGHT:
        raise ValidationError(parameter, value, "is not a whole number between 1 and %d" % MAX_WEIGHT)
    return weight


def _split_endpoint(text):
    """'A', 'A:P', 'V6', '[V6]' or '[V6]:P' -> (address, port or None)."""
    text = text.strip(" ")
    if text.startswith("[") and "]" in text:
        address, _bracket, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            return text, None  # '[V6]PORT' without its colon: refused whole, as an address
        return address, rest[1:] if rest else None
    if text.count(":") > 1:
        return text, None
    address, separator, port = text.rpartition(":")
    return (address, port) if separator else (port, None)


def _backend_from_string(parameter, text, default_port):
    """_parsed_backend, with the usual backend told by one match (10,000 of them in a run)."""
    usual = CANONICAL_IPV4_ENDPOINT.fullmatch(text)
    address, port = usual.group("address", "port") if usual else (None, None)
    if usual and _canonical_unicast_ipv4(address) and (port is None or int(port) <= 65535):
        return Backend(address=address, port=int(port) if port else default_port)
    return _parsed_backend(parameter, text, default_port)


def _parsed_backend(parameter, text, default_port):
    address, port = _split_endpoint(text)
    address = unicast_address(parameter, address)
    if text.strip(" ").startswith("[") and family_of(address) == 4:
        raise ValidationError(parameter, text, "puts an IPv4 address in brackets, which only an IPv6 address takes")
    return Backend(
        address=address,
        port=_port(parameter, port) if port is not None else default_port,
    )


def _backend(index, item, default_port):
    parameter = "backends[%d]" % index
    if isinstance(item, str):
        return _backend_from_string(parameter, item, default_port)
    if not isinstance(item, dict):
        raise ValidationError(parameter, item, "must be 'ADDRESS', 'ADDRESS:PORT' or a dict with address, port, weight, drain")
    unknown = sorted(set(item) - {"address", "port", "weight", "drain"})
    if unknown:
        raise ValidationError(parameter, item, "has unknown keys: %s" % ", ".join(unknown))
    if item.get("address") in (None, ""):
        raise ValidationError(parameter + ".address", item.get("address"), "is required")
    port = item.get("port")
    weight = item.get("weight")
    return Backend(
        address=unicast_address(parameter + ".address", item["address"]),
        port=_port(parameter + ".port", port) if port is not None else default_port,
        weight=_weight(parameter + ".weight", weight) if weight is not None else 1,
        drain=_flag(parameter + ".drain", item.get("drain"), False),
    )


def _backends(items, default_port):
    items = _list("backends", items)
    if not items:
        raise ValidationError("backends", items, "must list at least one backend")
    backends = []
    seen = {}
    for index, item in enumerate(items):
        backend = _backend(index, item, default_port)
        key = (backend.address, backend.port)
        if key in seen:
            raise ValidationError("backends[%d]" % index, item, "repeats backend %s (backends[%d])" % (backend.endpoint, seen[key]))
        seen[key] = index
        backends.append(backend)
    return tuple(backends)


def _source_ranges(items):
    """The networks as the fewest CIDR networks covering the same addresses, sorted: how the kernel
    tools hold them (nft merges adjacent and overlapping ranges of a set, so must the model)."""
    networks = [ipaddress.ip_network(_network("source_ranges[%d]" % index, item)) for index, item in enumerate(_list("source_ranges", items))]
    families = {network.version for network in networks}
    if len(families) > 1:
        raise ValidationError("source_ranges", items, "mixes IPv4 and IPv6 networks")
    return tuple(str(network) for network in ipaddress.collapse_addresses(networks))


def _affinity_timeout(value):
    if value is None:
        return DEFAULT_AFFINITY_TIMEOUT
    reason = "is not a whole number of seconds between 1 and %d" % MAX_AFFINITY_TIMEOUT
    seconds = _whole_number("affinity_timeout", value, reason)
    if not 1 <= seconds <= MAX_AFFINITY_TIMEOUT:
        raise ValidationError("affinity_timeout", value, reason)
    return seconds


def build_balancer(params):
    """Validated Balancer from module parameters (a dict)."""
    port = _port("port", params.get("port"))
    balancer = Balancer(
        name=validate_name(params.get("name")),
        vip=unicast_address("vip", params.get("vip")),
        port=port,
        protocol=_choice("protocol", params.get("protocol") or "tcp", BALANCER_PROTOCOLS),
        backends=_backends(params.get("backends"), port),
        mode=_choice("mode", params.get("mode") or "round_robin", MODES),
        masquerade=_flag("masquerade", params.get("masquerade"), True),
        local_clients=_flag("local_clients", params.get("local_clients"), True),
        source_ranges=_source_ranges(params.get("source_ranges")),
        affinity=_choice("affinity", params.get("affinity") or "none", AFFINITIES),
        affinity_timeout=_affinity_timeout(params.get("affinity_timeout")),
    )
    for network in balancer.source_ranges:
        _same_family("source_ranges", network, balancer.family, "vip")
    for index, backend in enumerate(balancer.backends):
        if family_of(backend.address) != balancer.family:
            _same_family("backends[%d]" % index, backend.address, balancer.family, "vip")
        if (backend.address, backend.port) == (balancer.vip, balancer.port):
            raise ValidationError("backends[%d]" % index, backend.endpoint, "is the VIP itself: connections would loop")
    if balancer.mode == "source_hash" and balancer.affinity != "none":
        raise ValidationError("affinity", balancer.affinity,
                              "cannot be combined with mode source_hash, which keeps each client on one backend already")
    if not balancer.serving:
        raise ValidationError("backends", "drain", "are all drained: keep at least one serving, or remove the service (state: absent)")
    # Round robin writes one rule per slot, random one numgen interval per weight unit; source_hash
    # has its table of HASH_SLOTS whatever the weights.
    if balancer.mode != "source_hash" and sum(reduced_weights(balancer.serving)) > MAX_SLOTS:
        raise ValidationError("backends", "weights", "add up to more than %d (after dividing by their common divisor); "
                                                     "reduce the weights or the number of backends" % MAX_SLOTS)
    return balancer


def definition(obj):
    """A validated object as the parameters that build it again (rebuild): canonical values only."""
    if obj.kind == MIRROR:
        return {"name": obj.name, "gateway": obj.gateway, "protocol": obj.protocol, "ports": [str(p) for p in obj.ports],
                "service": obj.service, "direction": obj.direction, "peer": obj.peer, "interface": obj.interface,
                "sample": obj.sample, "connmark_bit": obj.connmark_bit, "max_new_connections": obj.max_new_connections,
                "gateway_interface": obj.gateway_interface, "exclude": list(obj.exclude),
                **({"gateway": None, "gateways": list(obj.pool)} if obj.pool else {})}
    return {"name": obj.name, "vip": obj.vip, "port": obj.port, "protocol": obj.protocol, "mode": obj.mode,
            "backends": [backend.as_dict() for backend in obj.backends], "masquerade": obj.masquerade, "local_clients": obj.local_clients,
            "source_ranges": list(obj.source_ranges), "affinity": obj.affinity, "affinity_timeout": obj.affinity_timeout}


def rebuild(kind, params):
    """The validated object of a definition (validated again: it was read from a file)."""
    return build_mirror(params) if kind == MIRROR else build_balancer(params)


def digest(obj):
    """A digest of a validated object: equal digests, equal objects (the repr of frozen dataclasses
    of canonical values)."""
    if isinstance(obj, Recalled):
        return obj.model_digest
    return hashlib.sha256(repr(obj).encode()).hexdigest()


def input_digest(params):
    """A digest of a definition as a module was given it (after its argument spec): equal digests,
    equal input. None for a value JSON cannot hold."""
    try:
        text = json.dumps(params, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()


class Recalled:
    """A definition that this very code validated before, known by its input digest from a record:
    its object is the record's canonical definition, built again (and so validated again) only
    when an attribute beyond these is read; a run that leaves it unchanged never builds it."""

    def __init__(self, kind, canonical, model_digest):
        self.kind, self.name, self.canonical, self.model_digest = kind, canonical["name"], canonical, model_digest
        if kind == BALANCER:
            # What the check of services shared between balancers reads.
            self.vip, self.port, self.protocol = canonical["vip"], canonical["port"], canonical["protocol"]

    def __getattr__(self, attribute):
        model = self.__dict__.get("model")
        if model is None:
            model = self.__dict__["model"] = rebuild(self.kind, self.canonical)
        return getattr(model, attribute)


def reduced_weights(backends):
    """Weights divided by their common divisor: 2:2 rotates like 1:1, in fewer rules."""
    divisor = reduce(gcd, (b.weight for b in backends))
    return [b.weight // divisor for b in backends]


def round_robin_slots(backends):
    """The rotation as a list of backends, each appearing weight/gcd times.

    A backend of weight w takes its k-th turn at (k + 1/2) / w of the cycle, so a heavy
    backend's turns are spread over the cycle instead of given back to back; ties go to
    the earlier backend. Sorting keeps this O(T log T) for T turns.
    """
    turns = []
    for index, weight in enumerate(reduced_weights(backends)):
        turns.extend(((2 * k + 1) / (2 * weight), index) for k in range(weight))
    return [backends[index] for _moment, index in sorted(turns)]


def _slot_values(endpoint):
    """HASH_SLOTS numbers in (0, 1), one per slot, from a hash of a backend's address and port."""
    words = struct.unpack(">%dQ" % HASH_SLOTS, hashlib.shake_256(endpoint.encode()).digest(8 * HASH_SLOTS))
    return [(word + 1) / (2 ** 64 + 1) for word in words]


@lru_cache(maxsize=256)
def _table_indexes(weighted):
    """The index into weighted ((endpoint, weight), ...) of each slot's backend."""
    scores = [[-weight / math.log(value) for value in _slot_values(endpoint)] for endpoint, weight in weighted]
    indexes = range(len(weighted))
    return tuple(max(indexes, key=slot.__getitem__) for slot in zip(*scores))


def source_hash_table(backends):
    """The backend of each of HASH_SLOTS slots, by weighted rendezvous hashing: each slot goes to
    the backend with the highest score -weight / ln(u), u a hash of the slot and the backend's
    address and port. A slot's backend depends only on the backends present, not on their order:
    removing one moves its slots alone, adding it back gives them back, and each backend's share
    of the slots follows its weight."""
    return [backends[index] for index in _table_indexes(tuple((backend.endpoint, backend.weight) for backend in backends))]


def slot_runs(slots):
    """Consecutive equal items of a list of slots as (first index, last index, item)."""
    runs = []
    for index, item in enumerate(slots):
        if runs and runs[-1][2] == item:
            runs[-1] = (runs[-1][0], index, item)
        else:
            runs.append((index, index, item))
    return runs


def random_probabilities(backends):
    """Probability cascade: rule i takes w_i of the weight still left; the last takes all."""
    remaining = sum(b.weight for b in backends)
    probabilities = []
    for backend in backends[:-1]:
        probabilities.append(backend.weight / remaining)
        remaining -= backend.weight
    return probabilities
