# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The native nftables engine: tables `ip netmagic` and `ip6 netmagic`, owned whole.

Objects get the same chain names as with iptables; base chains of the table hook them
in with one rule per object, commented `netmagic:<kind>:<name>`. Rules are written and
read as nft JSON (`nft -j`), so the desired rules compare exactly with what nft prints.
A change is one `nft -j -f` transaction; check mode runs the same input with `nft -c`.
"""

from __future__ import annotations

import ipaddress
import json
import tempfile
from dataclasses import dataclass, field

from ansible_collections.netmagic.netfilter.plugins.module_utils._guard import check_nft_commands
from ansible_collections.netmagic.netfilter.plugins.module_utils._host import EngineError, failing_line, writer_failure
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import (
    BALANCER,
    EGRESS,
    FORWARD,
    INGRESS,
    MIRROR,
    chooser_chains,
    mirror_exclusions,
    family_of,
    mirror_hooks,
    mirror_rules,
    reduced_weights,
    round_robin_slots,
    slot_runs,
    source_hash_table,
    HASH_SLOTS,
)
from ansible_collections.netmagic.netfilter.plugins.module_utils._engine import Engine, Live, LiveRule, RecordedState, Snapshot, live_rule
from ansible_collections.netmagic.netfilter.plugins.module_utils._naming import ChainOwners, chain_name, is_owned_shape, jumps_home, owner_of_tag, tag

TABLE = "netmagic"
# The file persistence saves both families' tables in, as one batch.
SAVED_FILE = "nftables.json"
FAMILIES = {4: "ip", 6: "ip6"}
# Priorities as iptables uses them: mangle -150, dstnat -100, srcnat 100.
BASE_CHAINS = {
    "mangle-prerouting": {"type": "filter", "hook": "prerouting", "prio": -150},
    "mangle-output": {"type": "filter", "hook": "output", "prio": -150},
    "mangle-forward": {"type": "filter", "hook": "forward", "prio": -150},
    "nat-prerouting": {"type": "nat", "hook": "prerouting", "prio": -100},
    "nat-output": {"type": "nat", "hook": "output", "prio": -100},
    "nat-postrouting": {"type": "nat", "hook": "postrouting", "prio": 100},
}


# The base chain a mirror's jump goes in, by the hook its packets pass.
HOOK_CHAINS = {EGRESS: "mangle-output", INGRESS: "mangle-prerouting", FORWARD: "mangle-forward"}

# One encoder for every expression: json.dumps makes a new one per call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def canonical(expr):
    """A rule's expression list as one comparable string."""
    return _CANONICAL.encode(expr)


# Services are dispatched by one lookup per new connection: the address, protocol and port of a
# connection key a verdict map whose element jumps to the service's chain (as kube-proxy's
# nftables mode does). The map of nat-output holds the services local clients reach.
SERVICE_MAPS = {"nat-prerouting": "services", "nat-output": "local-services"}
# Balanced connections to masquerade, by original destination address, backend address,
# protocol and backend port (nft 1.0.6 cannot key a set by the original port).
MASQUERADE_SET = "masquerading"
NAT_CHAINS = ("nat-prerouting", "nat-output", "nat-postrouting")
ADDRESS_TYPES = {4: "ipv4_addr", 6: "ipv6_addr"}
# The seed of the source_hash jhash: fixed, so that hosts with the same backends agree.
HASH_SEED = 0x6E6D6E6D
# nft's default size for a set the packet path adds to, written out so the listing compares equal.
AFFINITY_SET_SIZE = 65535


@dataclass
class NftRules:
    """What one object owns in one family's table.

    chains: owned chain -> canonical rule expressions, in order.
    jumps: (base chain, canonical expr) of the object's tagged base-chain rules (mirrors), sorted;
      handles maps each to the live rule handles, for deletion.
    elements: (map, canonical key, target chain) of the object's tagged service-map elements, sorted.
    sets: owned set -> its canonical declaration (a backend's clients with affinity); the elements
      are the packet path's, never compared or written.
    masquerade: canonical keys of the masquerading set the object needs, sorted (shared by
      balancers on one address, protocol and backend, so derived, not tagged).
    """

    tag: str = ""
    chains: dict = field(default_factory=dict)
    jumps: list = field(default_factory=list)
    handles: dict = field(default_factory=dict)
    foreign_jumps: list = field(default_factory=list)
    elements: list = field(default_factory=list)
    masquerade: list = field(default_factory=list)
    sets: dict = field(default_factory=dict)

    def canonical(self):
        return self.chains, sorted(self.jumps), sorted(self.elements), sorted(self.masquerade), self.sets

    def holds(self):
        return bool(self.chains or self.jumps or self.elements or self.masquerade or self.sets)


def _key(*values):
    return canonical(list(values))


def _masquerade_key(address, backend, protocol, port):
    """_key of a masquerading element, formatted directly: addresses and protocol names never
    need escaping, and 10,000 of them are made in every change."""
    return '["%s","%s","%s",%d]' % (address, backend, protocol, port)


def _scaffold_rules(family):
    """The table's own rules in its nat base chains, (chain, canonical expr): the service-map
    lookups and the masquerade of balanced connections."""
    name = FAMILIES[family]
    lookup = {"concat": [_payload(name, "daddr"), {"meta": {"key": "l4proto"}}, _payload("th", "dport")]}
    rules = [(chain, canonical([{"vmap": {"key": lookup, "data": "@" + service_map}}])) for chain, service_map in SERVICE_MAPS.items()]
    balanced = {"concat": [{"ct": {"key": "%s daddr" % name, "dir": "original"}}, _payload(name, "daddr"), {"meta": {"key": "l4proto"}},
                           _payload("th", "dport")]}
    rules.append(("nat-postrouting", canonical([_match({"ct": {"key": "status"}}, "dnat", op="in"), _match(balanced, "@" + MASQUERADE_SET),
                                                {"masquerade": None}])))
    return sorted(rules)


def _scaffold_sets(family):
    """The maps and the set of the table, as nft JSON objects (kind, fields)."""
    address = ADDRESS_TYPES[family]
    maps = [("map", {"name": name, "type": [address, "inet_proto", "inet_service"], "map": "verdict"}) for name in sorted(SERVICE_MAPS.values())]
    return maps + [("set", {"name": MASQUERADE_SET, "type": [address, address, "inet_proto", "inet_service"]})]


# --- render -----------------------------------------------------------------

def _match(left, right, op="=="):
    return {"match": {"op": op, "left": left, "right": right}}


def _payload(protocol, name):
    return {"payload": {"protocol": protocol, "field": name}}


def _l4proto(protocol):
    return _match({"meta": {"key": "l4proto"}}, protocol)


def _address_value(network):
    """A host network prints as its address; others as a prefix."""
    address, _slash, length = network.partition("/")
    full = 32 if ":" not in address else 128
    if not length or int(length) == full:
        return address
    return {"prefix": {"addr": address, "len": int(length)}}


def _port_value(port_range):
    return port_range.first if port_range.first == port_range.last else {"range": [port_range.first, port_range.last]}


def _mirror_match(mirror, match):
    """The nft expressions of a MirrorMatch."""
    family = FAMILIES[mirror.family]
    toward = match.toward_peer
    exprs = []
    if mirror.peer:
        exprs.append(_match(_payload(family, "daddr" if toward else "saddr"), _address_value(mirror.peer)))
    if mirror.interface:
        exprs.append(_match({"meta": {"key": "oifname" if toward else "iifname"}}, mirror.interface.replace("+", "*")))
    if match.port_field:
        exprs.append(_match(_payload(mirror.protocol, match.port_field), _port_value(match.port)))
    elif mirror.protocol != "all":
        exprs.append(_l4proto("ipv6-icmp" if (mirror.protocol, mirror.family) == ("icmp", 6) else mirror.protocol))
    return exprs


def _ct_mark():
    return {"ct": {"key": "mark"}}


def _exclusion_exprs(mirror, exclusion):
    field = "daddr" if exclusion.toward_peer else "saddr"
    return [_match(_payload(FAMILIES[mirror.family], field), _address_value(exclusion.network)), {"return": None}]


def _mirror_exprs(mirror, rule):
    dup = {"dup": dict({"addr": rule.collector}, **({"dev": mirror.gateway_interface} if mirror.gateway_interface else {}))}
    if rule.chooser:
        action = [_match({"ct": {"key": "state"}}, "new", "in"), {"jump": {"target": chain_name(rule.chooser, MIRROR, mirror.name)}}]
    elif rule.mark is None:
        action = [dup]
    else:
        action = [_marked(rule.mark, mirror.mark_mask), dup]
    return _mirror_match(mirror, rule.match) + action


def _marked(value, mask):
    """ct mark & MASK == VALUE, as nft holds it: a mask of the top bits only is a prefix."""
    length = 32 - (mask & -mask).bit_length() + 1
    if mask == (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF:
        return _match(_ct_mark(), {"prefix": {"addr": value, "len": length}})
    return _match({"&": [_ct_mark(), mask]}, value)


def _set_field(mask, value):
    """ct mark set ct mark & KEEP | VALUE: the field's other bits cleared, as nft holds it (it
    keeps the bits VALUE sets out of the cleared ones, and drops an & that keeps every bit)."""
    keep = (mask ^ 0xFFFFFFFF) | value
    kept = _ct_mark() if keep == 0xFFFFFFFF else {"&": [_ct_mark(), keep]}
    return {"mangle": {"key": _ct_mark(), "value": {"|": [kept, value]}}}


def _chooser_exprs(mirror, rule):
    exprs = [_marked(0, mirror.mark_mask)] if rule.unnumbered else []
    if rule.every:
        exprs.append(_match({"numgen": {"mode": "inc", "mod": rule.every, "offset": 0}}, 0))
    if rule.limit:
        exprs.append({"limit": {"rate": rule.limit, "burst": rule.limit, "per": "second"}})
    if rule.jump:
        return exprs + [{"jump": {"target": chain_name(rule.jump, MIRROR, mirror.name)}}]
    return exprs + [_set_field(mirror.mark_mask, rule.mark)]


def render_mirror(mirror):
    rules = NftRules(tag=tag(MIRROR, mirror.name))
    for role, hook in mirror_hooks(mirror):
        chain = chain_name(role, MIRROR, mirror.name)
        rules.chains[chain] = ([canonical(_exclusion_exprs(mirror, exclusion)) for exclusion in mirror_exclusions(mirror)]
                               + [canonical(_mirror_exprs(mirror, rule)) for rule in mirror_rules(mirror, hook)])
        rules.jumps.append((HOOK_CHAINS[hook], canonical([{"jump": {"target": chain}}])))
    if mirror.chooses:
        for role, chooser_rules in chooser_chains(mirror).items():
            rules.chains[chain_name(role, MIRROR, mirror.name)] = [canonical(_chooser_exprs(mirror, rule)) for rule in chooser_rules]
    rules.jumps.sort()
    return {mirror.family: rules}


def _weighted_runs(backends, weights):
    """(first index, last index, backend) intervals of the given widths, without listing each
    index: weights have no upper bound."""
    runs, first = [], 0
    for backend, weight in zip(backends, weights):
        runs.append((first, first + weight - 1, backend))
        first += weight
    return runs


def _choice(family, key, runs):
    """A number (numgen, or the hash of the client's address) over (first, last, backend) index
    intervals, mapped to the backend's address and port in the DNAT itself: one rule per service,
    and no chain per backend."""
    elements = [
        [first if first == last else {"range": [first, last]}, {"concat": [backend.address, backend.port]}]
        for first, last, backend in runs
    ]
    return {"dnat": {"family": FAMILIES[family], "addr": {"map": {"key": key, "data": {"set": elements}}}}}


def _numgen(mode, runs):
    return {"numgen": {"mode": mode, "mod": runs[-1][1] + 1, "offset": 0}}


def _source_hash(family):
    """jhash of the client's address into the lookup table's slots, with a fixed seed: every host
    with the same backends maps a client alike."""
    return {"jhash": {"mod": HASH_SLOTS, "seed": HASH_SEED, "expr": _payload(FAMILIES[family], "saddr")}}


def _source_intervals(source_ranges):
    """The networks as nft holds them in a set: adjacent ones merged into one interval, shown as a
    prefix where it is one and as a range where it is not."""
    intervals = []
    for network in map(ipaddress.ip_network, source_ranges):
        if intervals and int(intervals[-1][1]) + 1 == int(network.network_address):
            intervals[-1][1] = network.broadcast_address
        else:
            intervals.append([network.network_address, network.broadcast_address])
    values = []
    for first, last in intervals:
        networks = list(ipaddress.summarize_address_range(first, last))
        values.append(_address_value(str(networks[0])) if len(networks) == 1 else {"range": [str(first), str(last)]})
    return values


def _source_filter(balancer):
    """`ip saddr != RANGES return`: a client outside source_ranges is not balanced."""
    values = _source_intervals(balancer.source_ranges)
    right = values[0] if len(values) == 1 else {"set": values}
    return [_match(_payload(FAMILIES[balancer.family], "saddr"), right, "!="), {"return": None}]


def _affinity_set(family):
    """A backend's clients with affinity: the packet path adds each with its own timeout."""
    return canonical({"type": ADDRESS_TYPES[family], "flags": ["timeout"], "size": AFFINITY_SET_SIZE})


def _affinity_chains(balancer, rules, mode, runs):
    """As kube-proxy's nftables mode: a client in a backend's set goes back to it; others are
    chosen by numgen among endpoint chains, each of which puts the client in its set (or renews
    its timeout) and translates."""
    family = FAMILIES[balancer.family]
    client = _payload(family, "saddr")
    endpoint_chains, lookups = {}, []
    for index, backend in balancer.serving_indexed:
        chain, clients = chain_name("SEP", BALANCER, balancer.name, index), chain_name("AFF", BALANCER, balancer.name, index)
        endpoint_chains[backend] = chain
        rules.sets[clients] = _affinity_set(balancer.family)
        remember = {"set": {"op": "update", "elem": {"elem": {"val": client, "timeout": balancer.affinity_timeout}}, "set": "@" + clients}}
        rules.chains[chain] = [canonical([remember, _l4proto(balancer.protocol), {"dnat": {"addr": backend.address, "port": backend.port}}])]
        lookups.append(canonical([_match(client, "@" + clients), {"goto": {"target": chain}}]))
    verdicts = [[first if first == last else {"range": [first, last]}, {"goto": {"target": endpoint_chains[backend]}}]
                for first, last, backend in runs]
    choice = {"vmap": {"key": _numgen(mode, runs), "data": {"set": verdicts}}}
    return lookups + [canonical([choice])]


def render_balancer(balancer):
    rules = NftRules(tag=tag(BALANCER, balancer.name))
    if balancer.mode == "source_hash":
        runs = slot_runs(source_hash_table(balancer.serving))
        key = _source_hash(balancer.family)
    elif balancer.mode == "round_robin":
        runs = slot_runs(round_robin_slots(balancer.serving))
        mode, key = "inc", _numgen("inc", runs)
    else:
        # Weights as intervals of a random number: each backend's share is its weight.
        runs = _weighted_runs(balancer.serving, reduced_weights(balancer.serving))
        mode, key = "random", _numgen("random", runs)
    service_chain = chain_name("SVC", BALANCER, balancer.name)
    if balancer.affinity == "client_ip":
        choice = _affinity_chains(balancer, rules, mode, runs)
    else:
        choice = [canonical([_l4proto(balancer.protocol), _choice(balancer.family, key, runs)])]
    rules.chains[service_chain] = ([canonical(_source_filter(balancer))] if balancer.source_ranges else []) + choice
    service = _key(balancer.vip, balancer.protocol, balancer.port)
    hooks = ["nat-prerouting"] + (["nat-output"] if balancer.local_clients else [])
    rules.elements = sorted((SERVICE_MAPS[hook], service, service_chain) for hook in hooks)
    if balancer.masquerade:
        rules.masquerade = sorted({_masquerade_key(balancer.vip, b.address, balancer.protocol, b.port) for b in balancer.serving})
    return {balancer.family: rules}


def render(obj):
    return render_mirror(obj) if obj.kind == MIRROR else render_balancer(obj)


# --- live table -------------------------------------------------------------

@dataclass
class Table:
    """One family's table as listed: chain names, rules as (chain, handle, comment, expr), the
    service-map elements as (map, canonical key, comment, target), the masquerading set's keys,
    and every other set as name -> canonical declaration."""

    chains: list = field(default_factory=list)
    rules: list = field(default_factory=list)
    elements: list = field(default_factory=list)
    masquerade: set = field(default_factory=set)
    sets: dict = field(default_factory=dict)


# What a set's listing holds besides its declaration.
NOT_DECLARED = ("family", "table", "name", "handle", "elem")


def declaration(fields):
    """A listed set's declaration, canonical: its type, flags and size, not its place or elements."""
    return canonical({key: value for key, value in fields.items() if key not in NOT_DECLARED})


def _element(entry):
    """(canonical key, comment) of a listed set or map element, with or without its comment."""
    value = entry.get("elem", {}).get("val", entry) if isinstance(entry, dict) else entry
    comment = entry.get("elem", {}).get("comment") if isinstance(entry, dict) else None
    values = value["concat"] if isinstance(value, dict) and "concat" in value else [value]
    return canonical(values), comment


def parse_table(items):
    """Table of the items of `nft -j list table`."""
    table = Table()
    for item in items:
        if "chain" in item:
            table.chains.append(item["chain"]["name"])
        elif "rule" in item:
            rule = item["rule"]
            table.rules.append((rule["chain"], rule["handle"], rule.get("comment"), rule["expr"]))
        elif "map" in item and item["map"]["name"] in SERVICE_MAPS.values():
            for entry, verdict in item["map"].get("elem", []):
                key, comment = _element(entry)
                targets = jump_targets(verdict)
                table.elements.append((item["map"]["name"], key, comment, targets[0] if targets else None))
        elif "set" in item and item["set"]["name"] == MASQUERADE_SET:
            table.masquerade.update(_element(entry)[0] for entry in item["set"].get("elem", []))
        elif "set" in item:
            table.sets[item["set"]["name"]] = declaration(item["set"])
    return table


def dnat_endpoints(expr):
    """(address, port) of every backend a rule's DNAT sends to: one, or each of a numgen map's."""
    found = []
    for statement in expr:
        target = statement.get("dnat") if isinstance(statement, dict) else None
        if not isinstance(target, dict):
            continue
        if isinstance(target.get("addr"), dict) and "map" in target["addr"]:
            found += [tuple(data["concat"]) for _key, data in target["addr"]["map"]["data"]["set"] if isinstance(data, dict) and "concat" in data]
        else:
            found.append((target.get("addr"), target.get("port")))
    return found


def jump_targets(value):
    """Every jump or goto target inside a rule's expression (vmap verdicts included)."""
    if isinstance(value, dict):
        found = [value[verb]["target"] for verb in ("jump", "goto") if isinstance(value.get(verb), dict)]
        return found + [t for item in value.values() for t in jump_targets(item)]
    if isinstance(value, list):
        return [t for item in value for t in jump_targets(item)]
    return []


def owned_rules_of(table, keys):
    """{(kind, name): NftRules} of each key in one family's Table, from one pass over it.

    A chain is owned only if its name is exactly one of the object's chain names; a base-chain
    rule or a service-map element only if its comment is exactly the object's tag. A balancer's
    masquerading keys are those of the set that its service and its endpoint chains give."""
    by_tag = {tag(*key): key for key in keys}
    owned = {key: NftRules(tag=tag(*key)) for key in keys}
    # Chains are named once for the keys and every balancer of the table (whose endpoints the
    # masquerading keys need): one ChainOwners lookup per chain.
    balancers = {owner_of_tag(comment) for _map, _key, comment, _target in table.elements} - {None}
    named = ChainOwners(set(keys) | balancers)
    every_owner = {chain: owner for chain in table.chains for owner in [named.owner(chain)] if owner}
    chain_owner = {chain: owner for chain, owner in every_owner.items() if owner in owned}
    for chain, key in chain_owner.items():
        owned[key].chains[chain] = []
    for name, declared in table.sets.items():
        key = named.owner(name)
        if key in owned:
            owned[key].sets[name] = declared
    endpoints = {}
    for chain, handle, comment, expr in table.rules:
        if chain in every_owner:
            endpoints.setdefault(every_owner[chain], set()).update(dnat_endpoints(expr))
        if chain in chain_owner:
            owned[chain_owner[chain]].chains[chain].append(canonical(expr))
        elif chain in BASE_CHAINS and comment in by_tag:
            mine = owned[by_tag[comment]]
            jump = (chain, canonical(expr))
            mine.jumps.append(jump)
            mine.handles.setdefault(jump, []).append(handle)
        else:
            for target in jump_targets(expr):
                if target in chain_owner:
                    owned[chain_owner[target]].foreign_jumps.append((target, "%s: %s" % (chain, rule_text(canonical(expr)))))
    for service_map, key, comment, target in table.elements:
        if comment in by_tag:
            owned[by_tag[comment]].elements.append((service_map, key, target))
        elif target in chain_owner:
            owned[chain_owner[target]].foreign_jumps.append((target, element_text(service_map, key, target, comment)))
    present = _masquerade_index(table)
    served = _served(table, endpoints) if present else {}
    # Keys of a service that no balancer sends to: each balancer of that service holds them.
    stray = {service: [key for endpoint, key in keys.items() if endpoint not in served.get(service, ())] for service, keys in present.items()}
    for key, mine in owned.items():
        mine.jumps.sort()
        mine.elements.sort()
        mine.masquerade = sorted(_masquerade_keys(mine, endpoints.get(key, set()), present, stray)) if present else []
    return owned


def _masquerade_index(table):
    """{(address, protocol): {backend endpoint: key}} of the masquerading set's keys."""
    index = {}
    for key in table.masquerade:
        vip, address, protocol, port = json.loads(key)
        index.setdefault((vip, protocol), {})[(address, port)] = key
    return index


def _served(table, endpoints):
    """{(address, protocol): endpoints} every balancer of the table sends its service's connections
    to; endpoints: {owner: (address, port) its endpoint chains DNAT to}."""
    served = {}
    for _map, key, comment, _target in table.elements:
        owner = owner_of_tag(comment)
        if owner:
            served.setdefault(tuple(json.loads(key)[:2]), set()).update(endpoints.get(owner, ()))
    return served


def _masquerade_keys(rules, endpoints, present, stray):
    """The keys of the masquerading set that serve a balancer: those of its service whose backend
    it sends to, and its service's stray keys, that no balancer sends to (so a backend rule
    deleted by hand is drift of that rule alone, and a stray key goes with the next change)."""
    found = set()
    for service in {tuple(json.loads(key)[:2]) for _map, key, _target in rules.elements}:
        keys = present.get(service, {})
        found.update(keys[endpoint] for endpoint in endpoints if endpoint in keys)
        found.update(stray.get(service, ()))
    return found


def service_signature(service_map, key):
    """What a balancer's prerouting element matches (address, protocol, port): two balancers with
    the same signature claim the same service."""
    return "%s %s" % (service_map, key) if service_map == SERVICE_MAPS["nat-prerouting"] else None


def element_text(service_map, key, target=None, comment=None):
    """A set or map element in nft syntax (as nft lists it), prefixed by its set."""
    values = " . ".join(str(value) for value in json.loads(key))
    return "%s: %s%s%s" % (service_map, values, ' comment "%s"' % comment if comment else "", " : jump %s" % target if target else "")


def set_texts(name, keys):
    """element_text of many keys of a set, parsed in one call."""
    return ["%s: %s" % (name, " . ".join(str(value) for value in values)) for values in json.loads("[%s]" % ",".join(keys))]


def set_text(name, declared):
    """An owned set's declaration in nft syntax."""
    fields = json.loads(declared)
    parts = ["type %s" % fields.get("type")] + (["flags %s" % ",".join(fields["flags"])] if fields.get("flags") else [])
    parts += ["size %d" % fields["size"]] if "size" in fields else []
    return "set %s { %s }" % (name, "; ".join(parts))


def same_rules(current, desired):
    empty = NftRules()
    return all(current.get(f, empty).canonical() == desired.get(f, empty).canonical() for f in set(current) | set(desired))


def _value_text(value):
    if isinstance(value, dict) and "prefix" in value:
        return "%s/%d" % (value["prefix"]["addr"], value["prefix"]["len"])
    if isinstance(value, dict) and "range" in value:
        return "%s-%s" % tuple(value["range"])
    if isinstance(value, dict) and "set" in value:
        return "{ %s }" % ", ".join(_value_text(item) for item in value["set"])
    return str(value)


def _left_text(left):
    if "concat" in left:
        return " . ".join(_left_text(part) for part in left["concat"])
    if "payload" in left:
        return "%s %s" % (left["payload"]["protocol"], left["payload"]["field"])
    if "meta" in left:
        return "meta %s" % left["meta"]["key"]
    if "ct" in left:
        return "ct %s%s" % (left["ct"]["dir"] + " " if "dir" in left["ct"] else "", left["ct"]["key"])
    if "numgen" in left:
        return _number_text(left)
    for operator in ("&", "|"):
        if operator in left:
            operand, bits = left[operator]
            return "%s %s 0x%08x" % (_left_text(operand), operator, bits)
    raise KeyError(left)


def _statement_text(statement):
    (kind, value), = statement.items()
    if kind == "match":
        # As nft prints them: a masked mark with its ==, the other equalities without.
        masked = "&" in value["left"]
        operator = "" if value["op"] in ("==", "in") and not masked else value["op"] + " "
        right = "0x%08x" % value["right"] if masked else _value_text(value["right"])
        return "%s %s%s" % (_left_text(value["left"]), operator, right)
    if kind in ("jump", "goto"):
        return "%s %s" % (kind, value["target"])
    if kind == "set":
        element = value["elem"]["elem"]
        return "%s %s { %s timeout %ds }" % (value["op"], value["set"], _left_text(element["val"]), element["timeout"])
    if kind == "dup":
        return "dup to %s" % value["addr"] + (' device "%s"' % value["dev"] if "dev" in value else "")
    if kind == "limit":
        return "limit rate %d/%s burst %d packets" % (value["rate"], value["per"], value["burst"])
    if kind == "mangle":
        return "%s set %s" % (_left_text(value["key"]), _left_text(value["value"]))
    if kind == "dnat" and isinstance(value["addr"], dict):
        chosen = value["addr"]["map"]
        elements = ", ".join("%s : %s . %d" % (_value_text(key), *data["concat"]) for key, data in chosen["data"]["set"])
        return "dnat %s to %s map { %s }" % (value["family"], _number_text(chosen["key"]), elements)
    if kind == "dnat":
        address = "[%s]" % value["addr"] if ":" in value["addr"] else value["addr"]
        return "dnat to %s:%d" % (address, value["port"])
    if kind in ("masquerade", "return"):
        return kind
    if kind == "vmap" and isinstance(value["data"], str):
        return "%s vmap %s" % (_left_text(value["key"]), value["data"])
    if kind == "vmap":
        numgen = value["key"]["numgen"]
        elements = ", ".join("%s : %s" % (_value_text(key), _statement_text(verdict)) for key, verdict in value["data"]["set"])
        return "numgen %s mod %d vmap { %s }" % (numgen["mode"], numgen["mod"], elements)
    raise KeyError(kind)


def _number_text(key):
    if "jhash" in key:
        jhash = key["jhash"]
        return "jhash %s mod %d seed 0x%x" % (_left_text(jhash["expr"]), jhash["mod"], jhash["seed"])
    return "numgen %s mod %d" % (key["numgen"]["mode"], key["numgen"]["mod"])


def rule_text(expr):
    """A rule in nft syntax; anything this collection does not write stays as JSON."""
    try:
        return " ".join(_statement_text(statement) for statement in json.loads(expr))
    except (KeyError, TypeError, ValueError):
        return expr


def as_text(owned):
    """Owned rules in nft syntax, for diffs and reports."""
    out = []
    for family in sorted(owned):
        rules = owned[family]
        out.append("table %s %s" % (FAMILIES[family], TABLE))
        out.extend("  %s: %s comment \"%s\"" % (chain, rule_text(expr), rules.tag) for chain, expr in rules.jumps)
        out.extend("  %s" % element_text(*element, comment=rules.tag) for element in rules.elements)
        out.extend("  %s" % text for text in set_texts(MASQUERADE_SET, rules.masquerade))
        out.extend("  %s" % set_text(name, declared) for name, declared in sorted(rules.sets.items()))
        for chain in sorted(rules.chains):
            out.append("  chain %s" % chain)
            out.extend("    %s" % rule_text(expr) for expr in rules.chains[chain])
    return "\n".join(out) + ("\n" if out else "")


# --- plan -------------------------------------------------------------------

def _ref(family, **fields):
    return dict({"family": FAMILIES[family], "table": TABLE}, **fields)


def _table(family):
    return {"family": FAMILIES[family], "name": TABLE}


def _elements(family, name, entries):
    return _ref(family, name=name, elem=entries)


def _key_value(key):
    return _key_values([key])[0]


def _key_values(keys):
    """The nft JSON values of canonical keys, parsed in one call (10,000 masquerading keys)."""
    return [{"concat": values} if len(values) > 1 else values[0] for values in json.loads("[%s]" % ",".join(keys))]


@dataclass
class FamilyState:
    """What the plan needs of one family's table besides the objects changed: whether anything
    else keeps the table (other objects' chains, anyone's chains), whether its scaffold is there,
    the masquerading set's keys, and of the keys the change holds or asks for, those that objects
    not in the change need too (the others' other keys stay as they are, whatever the change)."""

    kept: bool = False
    scaffold: bool = False
    masquerade: set = field(default_factory=set)
    kept_masquerade: set = field(default_factory=set)


def _family_commands(family, pairs, state):
    """nft JSON commands for one family; pairs: (current, desired) NftRules of each changed
    object. Phases across all objects, so a key or a chain moving between objects is deleted
    before it is added: chains made, then deletions, then the new rules and elements, then the
    masquerading set, then stale chains removed."""
    if not any(desired.holds() for _current, desired in pairs) and not state.kept and not state.kept_masquerade:
        return [{"delete": {"table": _table(family)}}] if any(current.holds() for current, _desired in pairs) or state.scaffold else []
    commands = [{"add": {"table": _table(family)}}]
    base_chains = {chain for _current, desired in pairs for chain, _expr in desired.jumps}
    balancing = any(desired.elements for _current, desired in pairs) and not state.scaffold
    if balancing:
        base_chains.update(NAT_CHAINS)
    commands += [{"add": {"chain": _ref(family, name=chain, policy="accept", **BASE_CHAINS[chain])}} for chain in sorted(base_chains)]
    if balancing:
        commands += [{"add": {kind: _ref(family, **fields)}} for kind, fields in _scaffold_sets(family)]
        commands += [{"add": {"rule": _ref(family, chain=chain, expr=json.loads(expr))}} for chain, expr in _scaffold_rules(family)]
    rewritten = [(current, desired, _rewritten_chains(current, desired)) for current, desired in pairs]
    for current, _desired, chains in rewritten:
        for chain in chains:
            # A chain the object does not hold yet is not in the table: nothing to flush.
            commands += [{"add": {"chain": _ref(family, name=chain)}}] + ([{"flush": {"chain": _ref(family, name=chain)}}] if chain in current.chains else [])
    for current, desired in pairs:
        commands += _deletions(family, current, desired)
    for current, desired in pairs:
        commands += _set_declarations(family, current, desired)
    for _current, desired, chains in rewritten:
        commands += [{"add": {"rule": _ref(family, chain=chain, expr=json.loads(expr))}} for chain in chains for expr in desired.chains[chain]]
    for current, desired in pairs:
        commands += _additions(family, current, desired)
    commands += _masquerade_commands(family, pairs, state)
    for current, desired in pairs:
        commands += _chain_removals(family, sorted(set(current.chains) - set(desired.chains)))
    for current, desired in pairs:
        commands += [{"delete": {"set": _ref(family, name=name)}} for name in sorted(set(current.sets) - set(desired.sets))]
    return commands


def _redeclared(current, desired):
    """The object's sets listed with another declaration than it gives them."""
    return sorted(name for name, declared in desired.sets.items() if name in current.sets and current.sets[name] != declared)


def _rewritten_chains(current, desired):
    """The chains that differ; all of the object's when one of its sets is declared again: a set
    that rules refer to cannot be deleted."""
    if _redeclared(current, desired):
        return sorted(desired.chains)
    return sorted(c for c in desired.chains if current.chains.get(c) != desired.chains[c])


def _set_declarations(family, current, desired):
    """New sets added, and sets listed with another declaration deleted and added again (their
    chains are flushed by then), before the rules that refer to them."""
    redeclared = _redeclared(current, desired)
    commands = [{"delete": {"set": _ref(family, name=name)}} for name in redeclared]
    for name in sorted(desired.sets):
        if name not in current.sets or name in redeclared:
            commands.append({"add": {"set": _ref(family, name=name, **json.loads(desired.sets[name]))}})
    return commands


def _deletions(family, current, desired):
    commands = []
    for jump in sorted(set(current.jumps)):
        surplus = current.jumps.count(jump) - desired.jumps.count(jump)
        commands += [{"delete": {"rule": _ref(family, chain=jump[0], handle=handle)}} for handle in current.handles[jump][:max(surplus, 0)]]
    for service_map, key, _target in sorted(set(current.elements) - set(desired.elements)):
        commands.append({"delete": {"element": _elements(family, service_map, [_key_value(key)])}})
    return commands


def _additions(family, current, desired):
    commands = [{"add": {"rule": _ref(family, chain=chain, expr=json.loads(expr), comment=desired.tag)}}
                for chain, expr in desired.jumps if (chain, expr) not in current.jumps]
    for service_map, key, target in desired.elements:
        if (service_map, key, target) not in current.elements:
            entry = [{"elem": {"val": _key_value(key), "comment": desired.tag}}, {"jump": {"target": target}}]
            commands.append({"add": {"element": _elements(family, service_map, [entry])}})
    return commands


def _masquerade_commands(family, pairs, state):
    """The masquerading set's keys: added where a desired balancer needs one the set lacks,
    deleted where a changed balancer held one that no balancer needs any more."""
    needed = set(state.kept_masquerade).union(*(desired.masquerade for _current, desired in pairs))
    held = set().union(*(current.masquerade for current, _desired in pairs))
    commands = []
    gone = sorted((held & state.masquerade) - needed)
    if gone:
        commands.append({"delete": {"element": _elements(family, MASQUERADE_SET, _key_values(gone))}})
    new = sorted(needed - state.masquerade)
    if new:
        commands.append({"add": {"element": _elements(family, MASQUERADE_SET, _key_values(new))}})
    return commands


def _chain_removals(family, stale):
    flushes = [{"flush": {"chain": _ref(family, name=chain)}} for chain in stale]
    return flushes + [{"delete": {"chain": _ref(family, name=chain)}} for chain in stale]


def _kernel_hint(error):
    """nft cannot say which expression the kernel lacks; name the ones this engine uses."""
    if "Could not process rule" not in error or not ("No such file or directory" in error or "not supported" in error):
        return ""
    return ("; the kernel may lack an nftables expression this change uses: dup (CONFIG_NFT_DUP_IPV4/IPV6), "
            "numgen (CONFIG_NFT_NUMGEN), nat and masquerade (CONFIG_NFT_NAT, CONFIG_NFT_MASQ), ct (CONFIG_NFT_CT)")


# --- what netfilter_info reports, and what persistence saves ----------------

def _live_rule(scope, rule):
    expr = rule["expr"]
    counters = [statement["counter"] for statement in expr if "counter" in statement]
    packets = sum(c["packets"] for c in counters) if counters else None
    octets = sum(c["bytes"] for c in counters) if counters else None
    bare = canonical([statement for statement in expr if "counter" not in statement])
    owner = owner_of_tag(rule.get("comment")) if rule["chain"] in BASE_CHAINS else None
    targets = tuple(t for t in jump_targets(expr) if is_owned_shape(t))
    text = "%s: %s" % (rule["chain"], rule_text(bare))
    return live_rule(scope, rule["chain"], text, (packets, octets), owner, targets, is_owned_shape(rule["chain"]), "return" in expr[-1])


def _element_rules(scope, table):
    """LiveRules of the service-map elements (tagged, like jumps) and of the masquerading keys,
    each given to every balancer whose service and endpoints call for it."""
    rules = [LiveRule(scope, service_map, element_text(service_map, key, target, comment), owner=owner_of_tag(comment),
                      targets=(target,) if target and is_owned_shape(target) else (), foreign=not owner_of_tag(comment))
             for service_map, key, comment, target in table.elements]
    owners = sorted({rule.owner for rule in rules if rule.owner and rule.owner[0] == BALANCER})
    for owner, mine in owned_rules_of(table, owners).items():
        rules += [LiveRule(scope, MASQUERADE_SET, element_text(MASQUERADE_SET, key), owner=owner) for key in mine.masquerade]
    return [rule for rule in rules if rule.owner or rule.targets]


def live_of(items_by_family, tables):
    """Live from {family: items of the family's netmagic table} and their Tables; counters only
    where rules hold counter statements."""
    live = Live()
    for family, items in sorted(items_by_family.items()):
        scope = (family, TABLE)
        live.chains[scope] = set()
        for item in items:
            if "chain" in item and is_owned_shape(item["chain"]["name"]):
                live.chains[scope].add(item["chain"]["name"])
            elif "rule" in item:
                rule = _live_rule(scope, item["rule"])
                if rule:
                    live.rules.append(rule)
        live.rules += _element_rules(scope, tables[family])
    live.counters = any(rule.packets is not None for rule in live.rules)
    return live


def _without_handle(fields):
    return {key: value for key, value in fields.items() if key != "handle"}


def _owned_items(family, items, table):
    """The table, its base chains, maps and set with their scaffold rules, the chains of every
    object with a tagged base-chain rule or service element, and their rules; of the maps, only
    the elements of those objects."""
    keys = {owner_of_tag(item["rule"].get("comment")) for item in items if "rule" in item and item["rule"]["chain"] in BASE_CHAINS}
    keys |= {owner_of_tag(comment) for _map, _key, comment, _target in table.elements}
    owners = ChainOwners(keys - {None})
    scaffold = set(_scaffold_rules(family))
    kept = []
    for item in items:
        if "table" in item or ("set" in item and item["set"]["name"] == MASQUERADE_SET):
            kept.append(item)
        elif "set" in item and owners.owner(item["set"]["name"]):
            # Affinity sets without their clients: after a restore, clients are balanced afresh.
            kept.append({"set": {key: value for key, value in item["set"].items() if key != "elem"}})
        elif "map" in item and item["map"]["name"] in SERVICE_MAPS.values():
            elements = [[entry, verdict] for entry, verdict in item["map"].get("elem", [])
                        if jumps_home(owner_of_tag(_element(entry)[1]), jump_targets(verdict), owners)]
            kept.append({"map": dict(item["map"], elem=elements) if elements else {k: v for k, v in item["map"].items() if k != "elem"}})
        elif "chain" in item and (item["chain"]["name"] in BASE_CHAINS or owners.owner(item["chain"]["name"])):
            kept.append(item)
        elif "rule" in item:
            rule = item["rule"]
            base = rule["chain"] in BASE_CHAINS
            if (base and jumps_home(owner_of_tag(rule.get("comment")), jump_targets(rule["expr"]), owners)) or (
                    not base and owners.owner(rule["chain"])) or (rule["chain"], canonical(rule["expr"])) in scaffold:
                kept.append(item)
    return kept


def saved_batch(items_by_family, tables):
    """The owned part of the netmagic tables as the commands of one `nft -j -f` batch that replaces
    them whole (add, delete, refill); not yet checked by the writer guard."""
    commands = []
    for family, items in sorted(items_by_family.items()):
        phases = {"table": [], "chain": [], "map": [], "set": [], "rule": [], "element": []}
        for item in _owned_items(family, items, tables[family]):
            (kind, fields), = item.items()
            fields = _without_handle(fields)
            if kind == "table":
                phases["table"] += [{"add": {"table": fields}}, {"delete": {"table": fields}}, {"add": {"table": fields}}]
                continue
            if kind in ("map", "set") and fields.get("elem"):
                # Elements after the chains their verdicts jump to.
                phases["element"].append({"add": {"element": _ref(family, name=fields["name"], elem=fields["elem"])}})
                fields = {key: value for key, value in fields.items() if key != "elem"}
            phases[kind].append({"add": {kind: fields}})
        commands += [command for phase in phases.values() for command in phase]
    return commands


class NftablesSnapshot(Snapshot):
    """{family: items of `nft -j list table FAMILY netmagic`} parsed once."""

    def __init__(self, listings):
        self.items = {family: json.loads(listing).get("nftables", []) for family, listing in listings.items()}
        self.tables = {family: parse_table(items) for family, items in self.items.items()}
        self._claims = {}
        for table in self.tables.values():
            for chain, _handle, comment, _expr in table.rules:
                owner = owner_of_tag(comment) if chain in BASE_CHAINS else None
                if owner:
                    self._claims.setdefault(owner, set())
            for service_map, key, comment, _target in table.elements:
                owner = owner_of_tag(comment)
                if owner:
                    self._claims.setdefault(owner, set()).update(filter(None, [service_signature(service_map, key)]))

    @property
    def claims(self):
        return self._claims

    def owned(self, keys):
        """{(kind, name): {family: NftRules}} for each key."""
        owned = {key: {} for key in keys}
        for family, table in self.tables.items():
            for key, mine in owned_rules_of(table, keys).items():
                if mine.holds():
                    owned[key][family] = mine
        return owned

    def live(self):
        return live_of(self.items, self.tables)

    def persisted(self):
        return {SAVED_FILE: json.dumps({"nftables": check_nft_commands(saved_batch(self.items, self.tables), "the saved rules")}) + "\n"}

    def holds_only(self, owned):
        """Every chain of the tables is a base chain or one of owned's, every base-chain rule a
        scaffold rule or one of owned's jumps, every element tagged by one of owned's objects,
        every masquerading key one that owned needs, and no set, map or other object of anyone
        else's; and the scaffold is there exactly when a balancer is."""
        for family, table in self.tables.items():
            mine = [scopes[family] for scopes in owned.values() if family in scopes]
            chains = {chain for rules in mine for chain in rules.chains}
            jumps = {jump for rules in mine for jump in rules.jumps}
            scaffold = set(_scaffold_rules(family))
            if any(rules.foreign_jumps for rules in mine) or any(c not in BASE_CHAINS and c not in chains for c in table.chains):
                return False
            if any(chain not in chains and (chain, canonical(expr)) not in scaffold and (chain, canonical(expr)) not in jumps
                   for chain, _handle, _comment, expr in table.rules):
                return False
            tags = {rules.tag for rules in mine}
            if any(comment not in tags for _map, _key, comment, _target in table.elements):
                return False
            if not table.masquerade <= set().union(*(rules.masquerade for rules in mine)) or any(
                    not set(rules.masquerade) <= _derived_masquerade(rules) for rules in mine):
                return False
            owned_sets = {name for rules in mine for name in rules.sets}
            if not self._only_own_sets(family, owned_sets) or self._has_scaffold(family) != any(rules.elements for rules in mine):
                return False
        return True

    def _only_own_sets(self, family, owned_sets):
        maps = set(SERVICE_MAPS.values())
        return all(next(iter(item)) in ("table", "chain", "rule") or ("map" in item and item["map"]["name"] in maps)
                   or ("set" in item and (item["set"]["name"] == MASQUERADE_SET or item["set"]["name"] in owned_sets))
                   for item in self.items[family])

    def _has_scaffold(self, family):
        rules = {(chain, canonical(expr)) for chain, _handle, _comment, expr in self.tables[family].rules if chain in BASE_CHAINS}
        return set(_scaffold_rules(family)) <= rules

    def family_state(self, family, keys, candidates):
        """FamilyState of one family's table for a change of the objects keys (the others stay),
        whose rules before and after hold the masquerading keys candidates."""
        table = self.tables.get(family)
        if table is None:
            return FamilyState()
        changing = ChainOwners(keys)
        others = owned_rules_of(table, [key for key in self._claims if key not in keys])
        sets = {item[kind]["name"] for item in self.items[family] for kind in ("map", "set") if kind in item}
        return FamilyState(
            # Any other chain keeps the table: deleting it would take that chain along.
            kept=any(chain not in BASE_CHAINS and not changing.owner(chain) for chain in table.chains),
            scaffold=self._has_scaffold(family) and {fields["name"] for _kind, fields in _scaffold_sets(family)} <= sets,
            masquerade=set(table.masquerade),
            kept_masquerade={key for mine in others.values() for key in mine.masquerade if key in candidates},
        )


def _derived_masquerade(rules):
    """Every masquerading key an object's services and endpoint chains could call for: a key
    attributed to it beyond these is a stray one, which no record of it would know."""
    services = [json.loads(key) for _map, key, _target in rules.elements]
    endpoints = {endpoint for exprs in rules.chains.values() for expr in exprs for endpoint in dnat_endpoints(json.loads(expr))}
    return {_key(address, backend, protocol, port) for address, protocol, _port in services for backend, port in endpoints}


def _family_of_definition(definition):
    return family_of(definition.get("vip") or definition["gateway"])


class NftablesRecordedState(RecordedState):
    """RecordedState with the FamilyState a plan needs, from the record: a trusted record holds
    every object of the tables and nothing else (NftablesSnapshot.holds_only), so the scaffold is
    there exactly when a balancer is and the masquerading set holds exactly the balancers' keys."""

    def can_plan(self, changes):
        """A tagged base-chain rule (a mirror's jump) is deleted by its handle, which only a
        listing gives, unless its whole table goes: when no object is left in the family."""
        for current, desired in changes.values():
            for family, rules in current.items():
                dropped = any(jump not in desired.get(family, NftRules()).jumps for jump in rules.jumps)
                if dropped and self._family_kept(family, changes):
                    return False
        return True

    def clearing_plan(self):
        """The tables hold the recorded objects and nothing else (NftablesSnapshot.holds_only):
        each family's table that holds any goes whole."""
        families = {_family_of_definition(entry["definition"]) for entry in self.recorded.values()}
        return _batch([{"delete": {"table": _table(family)}} for family in FAMILIES if family in families])

    def _family_kept(self, family, changes):
        """Whether any object holds rules in the family after changes."""
        if any(desired.get(family) and desired[family].holds() for _current, desired in changes.values()):
            return True
        return any(key not in changes and _family_of_definition(entry["definition"]) == family for key, entry in self.recorded.items())

    def family_state(self, family, keys, candidates):
        changing = set(keys)
        here = {key: entry["definition"] for key, entry in self.recorded.items() if _family_of_definition(entry["definition"]) == family}
        # Only whether another balancer needs a candidate key matters: looked up by its fields,
        # so a change of one service costs its own keys, not every endpoint's. A drained backend
        # has no key (render_balancer).
        wanted = {tuple(json.loads(key)) for key in candidates}
        kept = {_masquerade_key(definition["vip"], backend["address"], definition["protocol"], backend["port"])
                for key, definition in here.items() if key not in changing and key[0] == BALANCER and definition["masquerade"]
                for backend in definition["backends"]
                if not backend.get("drain") and (definition["vip"], backend["address"], definition["protocol"], backend["port"]) in wanted}
        held = set().union(*(owned[family].masquerade for owned in self.owned([key for key in changing if key in here]).values() if family in owned))
        return FamilyState(kept=any(key not in changing for key in here), scaffold=any(key[0] == BALANCER for key in here),
                           masquerade=kept | held, kept_masquerade=kept)


@dataclass
class NftPlan:
    """One nft JSON batch, one command per line, checked by the writer guard ("" when nothing changes)."""

    batch: str = ""

    def __bool__(self):
        return bool(self.batch)


def _batch(commands):
    """The checked plan of nft commands (empty when there are none)."""
    if not commands:
        return NftPlan()
    # One command per line, so an error that names a line of the input can be shown in context.
    return NftPlan('{"nftables": [\n%s\n]}' % ",\n".join(json.dumps(command) for command in check_nft_commands(commands)))


class NftablesEngine(Engine):
    """Owns tables `ip netmagic` and `ip6 netmagic`; one `nft -j -f` per change."""

    name = "nftables"
    backend = "nftables"
    persist_files = [(SAVED_FILE, ["nft", "-j", "-f"])]

    def _nft(self):
        path = self.host.which("nft")
        if not path:
            raise EngineError("nft not found: engine nftables needs the 'nftables' package (1.0 or later)")
        return path

    def available(self):
        return bool(self.host.which("nft"))

    def holds_tables(self):
        """Whether this host already has a netmagic table: then it is the engine in use."""
        return any(self._listing(family) is not None for family in FAMILIES)

    def holds_nothing(self):
        tables = self.host.ruleset_tables()
        return tables is not None and not any((FAMILIES[family], TABLE) in tables for family in FAMILIES)

    def _listing(self, family):
        """`nft -j list table` output of one family's netmagic table, or None where there is none."""
        rc, out, err = self.host.read([self._nft(), "-j", "list", "table", FAMILIES[family], TABLE])
        if rc == 0:
            return out
        if "No such file or directory" in err:
            return None
        raise EngineError("nft list table %s %s failed (rc=%d): %s" % (FAMILIES[family], TABLE, rc, err.strip()))

    def read(self, counters=False):
        """The netmagic table of each family that has one; its rules carry counters only if someone
        added counter statements (this engine writes none), so counters changes nothing."""
        # Each family's table listed on its own: `nft list tables` would load the whole ruleset,
        # iptables-nft's tables included (0.19 s against 0.01 s at 10,000 rules).
        listings = {family: self._listing(family) for family in FAMILIES}
        return NftablesSnapshot({family: listing for family, listing in listings.items() if listing is not None})

    @staticmethod
    def signatures(owned):
        """The service signatures of an object's rendered rules."""
        return {signature for rules in owned.values() for signature in (service_signature(m, k) for m, k, _t in rules.elements) if signature}

    def recorded_state(self, recorded, rebuild):
        return NftablesRecordedState(self, recorded, rebuild)

    render = staticmethod(render)
    same = staticmethod(same_rules)
    as_text = staticmethod(as_text)

    def plan(self, snapshot, changes):
        """changes: {key: (current, desired)}. Every family's change in one batch; a change touches
        only the chains, rules and elements of the objects that changed."""
        empty = NftRules()
        commands = []
        for family in FAMILIES:
            pairs = {key: (current.get(family, empty), desired.get(family, empty)) for key, (current, desired) in changes.items()}
            changed = {key: pair for key, pair in pairs.items() if pair[0].canonical() != pair[1].canonical()}
            if changed:
                candidates = {key for current, desired in changed.values() for key in (*current.masquerade, *desired.masquerade)}
                commands += _family_commands(family, list(changed.values()), snapshot.family_state(family, list(changed), candidates))
        return _batch(commands)

    def apply(self, plan, check_only=False):
        """The batch in one transaction; nft -c in check mode."""
        # From a file, not stdin: nft 1.0.6 answers 0 to JSON on stdin that it cannot parse.
        with tempfile.NamedTemporaryFile("w", prefix="netmagic-", suffix=".json") as handle:
            handle.write(plan.batch)
            handle.flush()
            argv = [self._nft()] + (["-c"] if check_only else []) + ["-j", "-f", handle.name]
            rc, _out, err = self.host.run(argv)
        if rc != 0:
            raise EngineError("%s%s%s" % (writer_failure("nft", rc, err), _kernel_hint(err), failing_line(plan.batch, err)))

    def generation(self):
        return self.host.ruleset_generation()

    @staticmethod
    def fingerprint():
        """nf_tables has a generation."""
        return None

    @staticmethod
    def commits(plan):
        """One batch, one transaction."""
        return 1 if plan else 0

    @staticmethod
    def describe(owned):
        """Chains, and every rule as 'CHAIN: rule' in nft syntax, for module results."""
        chains = sorted(chain for rules in owned.values() for chain in rules.chains)
        lines = []
        for rules in owned.values():
            lines.extend("%s: %s" % (chain, rule_text(expr)) for chain, expr in rules.jumps)
            lines.extend(element_text(*element, comment=rules.tag) for element in rules.elements)
            lines.extend(set_texts(MASQUERADE_SET, rules.masquerade))
            lines.extend(set_text(name, declared) for name, declared in sorted(rules.sets.items()))
            lines.extend("%s: %s" % (chain, rule_text(expr)) for chain in sorted(rules.chains) for expr in rules.chains[chain])
        return chains, lines
