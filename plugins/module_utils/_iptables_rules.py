# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The model rendered as iptables-save lines, the owned part of a live ruleset, and
the one iptables-restore --noflush buffer that turns one into the other.

Owned rules are keyed by (family, table): family 4 is iptables, 6 is ip6tables.
Pure text in, text out: no process is run here.
"""

from __future__ import annotations

import collections
import re
from dataclasses import dataclass, field

from ansible_collections.netmagic.netfilter.plugins.module_utils._model import (
    BALANCER,
    EGRESS,
    FORWARD,
    HASH_SLOTS,
    INGRESS,
    MIRROR,
    chooser_chains,
    mirror_exclusions,
    mirror_hooks,
    mirror_rules,
    random_probabilities,
    round_robin_slots,
    slot_runs,
    source_hash_table,
)
from ansible_collections.netmagic.netfilter.plugins.module_utils._engine import Live, live_rule
from ansible_collections.netmagic.netfilter.plugins.module_utils._naming import (
    CHAIN_PREFIX,
    ChainOwners,
    chain_name,
    is_owned_shape,
    jumps_home,
    owner_of_tag,
    tag,
)

# A word of an iptables-save line: a double-quoted string (with \" and \\ escapes) or a run of non-blanks.
SAVE_WORD = re.compile(r'"(?:[^"\\]|\\.)*"|\S+')
JUMP_TARGET = re.compile(r"(?:^| )-[jg] (%s\S+)" % CHAIN_PREFIX)
# A rule line of `iptables-save -c`: "[packets:bytes] -A ...".
COUNTED = re.compile(r"^\[(\d+):(\d+)\] (-A .*)$")
# A balancer's source range in its jump: the service it claims is the same for every range.
SOURCE_MATCH = re.compile(r" -s \S+")


@dataclass
class TableRules:
    """What one object owns in one table.

    chains: owned chain name -> its rule lines, in order.
    jumps: the object's tagged rules in built-in chains, sorted (position is not ours to keep).
    foreign_jumps: (owned chain, rule) of rules of others that jump into the object's chains (read, never written).
    """

    chains: dict = field(default_factory=dict)
    jumps: list = field(default_factory=list)
    foreign_jumps: list = field(default_factory=list)

    def canonical(self):
        return ({name: list(rules) for name, rules in self.chains.items()}, sorted(self.jumps))


def _comment(kind, name):
    return '-m comment --comment "%s"' % tag(kind, name)


def _line(chain, *parts):
    return " ".join(["-A", chain] + [part for part in parts if part])


# --- mirror -----------------------------------------------------------------

HOOK_CHAINS = {EGRESS: "OUTPUT", INGRESS: "PREROUTING", FORWARD: "FORWARD"}


def _port_match(protocol, flag, port_range):
    return "-p %s -m %s --%s %s" % (protocol, protocol, flag, port_range)


def _mirror_match(mirror, match):
    """The iptables words of a MirrorMatch."""
    toward = match.toward_peer
    address = ("-d %s" if toward else "-s %s") % mirror.peer if mirror.peer else ""
    interface = ("-o %s" if toward else "-i %s") % mirror.interface if mirror.interface else ""
    if match.port_field:
        protocol = _port_match(mirror.protocol, match.port_field, match.port)
    else:
        protocol = "" if mirror.protocol == "all" else "-p %s" % _protocol_name(mirror.protocol, mirror.family)
    return address, interface, protocol


def _exclusion_line(chain, exclusion):
    return _line(chain, ("-d %s" if exclusion.toward_peer else "-s %s") % exclusion.network, "-j RETURN")


def _mirror_line(mirror, chain, rule):
    tee = "-j TEE --gateway %s" % rule.collector + (" --oif %s" % mirror.gateway_interface if mirror.gateway_interface else "")
    if rule.chooser:
        action = "-m conntrack --ctstate NEW -j %s" % chain_name(rule.chooser, MIRROR, mirror.name)
    elif rule.mark is None:
        action = tee
    else:
        action = "-m connmark --mark %#x/%#x %s" % (rule.mark, mirror.mark_mask, tee)
    return _line(chain, *_mirror_match(mirror, rule.match), action)


def _chooser_line(mirror, chain, rule):
    unnumbered = "-m connmark --mark 0x0/%#x" % mirror.mark_mask if rule.unnumbered else ""
    nth = "-m statistic --mode nth --every %d --packet 0" % rule.every if rule.every else ""
    # iptables-save leaves out a burst of 5, the default.
    limit = "-m limit --limit %d/sec%s" % (rule.limit, " --limit-burst %d" % rule.limit if rule.limit != 5 else "") if rule.limit else ""
    if rule.jump:
        action = "-j %s" % chain_name(rule.jump, MIRROR, mirror.name)
    else:
        action = "-j CONNMARK --set-xmark %#x/%#x" % (rule.mark, mirror.mark_mask)
    return _line(chain, unnumbered, nth, limit, action)


def _protocol_name(protocol, family):
    return "ipv6-icmp" if (protocol, family) == ("icmp", 6) else protocol


def render_mirror(mirror):
    rules = TableRules()
    for role, hook in mirror_hooks(mirror):
        builtin = HOOK_CHAINS[hook]
        chain = chain_name(role, MIRROR, mirror.name)
        rules.chains[chain] = ([_exclusion_line(chain, exclusion) for exclusion in mirror_exclusions(mirror)]
                               + [_mirror_line(mirror, chain, rule) for rule in mirror_rules(mirror, hook)])
        rules.jumps.append(_line(builtin, _comment(MIRROR, mirror.name), "-j %s" % chain))
    if mirror.chooses:
        for role, chooser_rules in chooser_chains(mirror).items():
            chain = chain_name(role, MIRROR, mirror.name)
            rules.chains[chain] = [_chooser_line(mirror, chain, rule) for rule in chooser_rules]
    rules.jumps.sort()
    return {(mirror.family, "mangle"): rules}


# --- balancer ---------------------------------------------------------------

def iptables_probability(probability):
    """The probability as iptables-save prints it: stored as a 31-bit fraction, shown with 11 decimals."""
    stored = int(probability * 0x80000000 + 0.5)
    return "%.11f" % (stored / 0x80000000)


def _cascade(chain, targets, conditions):
    """One rule per target; every rule but the last carries its statistic condition."""
    lines = [_line(chain, condition, "-j %s" % target) for target, condition in zip(targets, conditions)]
    lines.append(_line(chain, "-j %s" % targets[-1]))
    return lines


# Knuth's multiplicative hash of the source address, as a classic BPF program run by -m bpf: the
# product's top bits are the slot. IPv6 folds the address's four words in with xor.
HASH_FACTOR = 2654435761
SLOT_BITS = HASH_SLOTS.bit_length() - 1
BLOCK_BITS = 5  # the lookup table in 32 blocks: a new connection passes at most 32 + one block's rules
LOAD_WORD, MULTIPLY, MOVE_TO_X, XOR_X, SHIFT_RIGHT, JUMP_IF_AT_LEAST, JUMP_IF_ABOVE, RETURN = 32, 36, 7, 172, 116, 53, 37, 6


def _hash_program(family, bits):
    """BPF instructions (code, jt, jf, k) leaving the top bits of the source address's hash in A."""
    words = [12] if family == 4 else [8, 12, 16, 20]
    program = []
    for index, offset in enumerate(words):
        program.append((LOAD_WORD, 0, 0, offset))
        if index:
            program.append((XOR_X, 0, 0, 0))
        program.append((MULTIPLY, 0, 0, HASH_FACTOR))
        if index < len(words) - 1:
            program.append((MOVE_TO_X, 0, 0, 0))
    return program + [(SHIFT_RIGHT, 0, 0, 32 - bits)]


def hash_match(family, bits, first, last):
    """-m bpf matching the source addresses whose hash's top bits are in [first, last]."""
    program = _hash_program(family, bits) + [(JUMP_IF_AT_LEAST, 0, 2, first), (JUMP_IF_ABOVE, 1, 0, last), (RETURN, 0, 0, 1), (RETURN, 0, 0, 0)]
    return '-m bpf --bytecode "%d,%s"' % (len(program), ",".join("%d %d %d %d" % instruction for instruction in program))


def _source_hash_rules(balancer, chain, endpoint_chains, rules):
    """The lookup table's runs of slots as -m bpf ranges, in blocks: the service chain sends a
    connection to its block's chain (or straight to the endpoint when one backend holds the whole
    block), the block's chain to the endpoint of its slot's run; each chain's last rule matches
    whatever is left."""
    table = source_hash_table(balancer.serving)
    block = HASH_SLOTS >> BLOCK_BITS
    lines = []
    for number in range(1 << BLOCK_BITS):
        first = number * block
        inside = [(first + a, first + b, backend) for a, b, backend in slot_runs(table[first:first + block])]
        condition = hash_match(balancer.family, BLOCK_BITS, number, number) if number < (1 << BLOCK_BITS) - 1 else ""
        if len(inside) == 1:
            lines.append(_line(chain, condition, "-j %s" % endpoint_chains[inside[0][2]]))
            continue
        block_chain = chain_name("HSH", BALANCER, balancer.name, number)
        rules.chains[block_chain] = [_line(block_chain, hash_match(balancer.family, SLOT_BITS, a, b), "-j %s" % endpoint_chains[backend])
                                     for a, b, backend in inside[:-1]] + [_line(block_chain, "-j %s" % endpoint_chains[inside[-1][2]])]
        lines.append(_line(chain, condition, "-j %s" % block_chain))
    return lines


def _service_rules(balancer, chain, endpoint_chains):
    if balancer.mode == "round_robin":
        slots = [endpoint_chains[backend] for backend in round_robin_slots(balancer.serving)]
        count = len(slots)
        conditions = ["-m statistic --mode nth --every %d --packet 0" % (count - i) for i in range(count - 1)]
        return _cascade(chain, slots, conditions)
    targets = [endpoint_chains[backend] for backend in balancer.serving]
    conditions = ["-m statistic --mode random --probability %s" % iptables_probability(p) for p in random_probabilities(balancer.serving)]
    return _cascade(chain, targets, conditions)


def _recent(balancer, index):
    """The xt_recent list of the clients a backend has, by whole source address (as kube-proxy's)."""
    mask = "255.255.255.255" if balancer.family == 4 else ":".join(["ffff"] * 8)
    return "--name %s --mask %s --rsource" % (chain_name("AFF", BALANCER, balancer.name, index), mask)


def _affinity_rules(balancer, chain, endpoint_chains):
    """A client seen within the timeout goes back to its backend, ahead of the cascade."""
    return [_line(chain, "-m recent --rcheck --seconds %d --reap %s" % (balancer.affinity_timeout, _recent(balancer, index)),
                  "-j %s" % endpoint_chains[backend])
            for index, backend in balancer.serving_indexed]


def render_balancer(balancer):
    rules = TableRules()
    kind, name = BALANCER, balancer.name
    service_chain = chain_name("SVC", kind, name)
    affinity = balancer.affinity == "client_ip"
    endpoint_chains = {}
    # A drained backend has no endpoint chain; the others keep the index of their place in backends.
    for index, backend in balancer.serving_indexed:
        chain = chain_name("SEP", kind, name, index)
        endpoint_chains[backend] = chain
        remember = "-m recent --set %s" % _recent(balancer, index) if affinity else ""
        rules.chains[chain] = [_line(chain, "-p %s" % balancer.protocol, remember, "-j DNAT --to-destination %s" % backend.endpoint)]
    if balancer.mode == "source_hash":
        rules.chains[service_chain] = _source_hash_rules(balancer, service_chain, endpoint_chains, rules)
    else:
        rules.chains[service_chain] = ((_affinity_rules(balancer, service_chain, endpoint_chains) if affinity else [])
                                       + _service_rules(balancer, service_chain, endpoint_chains))

    host_prefix = 32 if balancer.family == 4 else 128
    service_match = "-d %s/%d %s" % (balancer.vip, host_prefix, _port_match(balancer.protocol, "dport", balancer.port))
    hooks = ["PREROUTING"] + (["OUTPUT"] if balancer.local_clients else [])
    # Without source_ranges every client; with them, one jump per network.
    sources = ["-s %s " % network for network in balancer.source_ranges] or [""]
    for builtin in hooks:
        for source in sources:
            rules.jumps.append(_line(builtin, source + service_match, _comment(kind, name), "-j %s" % service_chain))
    if balancer.masquerade:
        masquerade_chain = chain_name("MASQ", kind, name)
        rules.chains[masquerade_chain] = [_line(masquerade_chain, "-j MASQUERADE")]
        balanced = "-p %s -m conntrack --ctstate DNAT --ctorigdst %s --ctorigdstport %d" % (balancer.protocol, balancer.vip, balancer.port)
        rules.jumps.append(_line("POSTROUTING", balanced, _comment(kind, name), "-j %s" % masquerade_chain))
    rules.jumps.sort()
    return {(balancer.family, "nat"): rules}


def render(obj):
    """Desired owned rules of a Mirror or Balancer, per table."""
    return render_mirror(obj) if obj.kind == MIRROR else render_balancer(obj)


# --- live ruleset -----------------------------------------------------------

def parse_save(text, counts=None):
    """iptables-save output as {table: {chain: [rule lines]}}, chains in save order, rule lines
    without their counters; with counts (a dict), the `iptables-save -c` counters go there as
    {(table, chain): [(packets, bytes) of each line]}."""
    tables = {}
    chains = table = None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") or line[-1:] in (" ", "\t", "\r"):
            line = line.strip()
        first = line[:1]
        if first == "-" or first == "[":
            counted = COUNTED.match(line) if first == "[" else None
            if counted:
                line = counted.group(3)
            if not line.startswith("-A "):
                continue
            chain = line[3:line.find(" ", 3) if " " in line[3:] else len(line)]
            rules = chains.get(chain)
            if rules is None:
                rules = chains[chain] = []
            rules.append(line)
            if counts is not None:
                counts.setdefault((table, chain), []).append((int(counted.group(1)), int(counted.group(2))) if counted else (None, None))
        elif first == "*":
            table = line[1:]
            chains = tables.setdefault(table, {})
        elif first == ":":
            chains.setdefault(line[1:].split(" ", 1)[0], [])
    return tables


def _unquoted(word):
    if word.startswith('"'):
        return re.sub(r'\\(.)', r'\1', word[1:-1])
    return word


def rule_comments(line):
    """The comments of an iptables-save rule line, unquoted, from its words (so a comment-like text
    inside another option's quoted value is not taken for one)."""
    words = SAVE_WORD.findall(line)
    return [_unquoted(words[i + 3]) for i in range(len(words) - 3) if words[i:i + 3] == ["-m", "comment", "--comment"]]


def rule_tag(line):
    """The rule's one comment, when it has exactly one, else None."""
    if "netmagic:" not in line:
        return None
    comments = rule_comments(line)
    return comments[0] if len(comments) == 1 else None


def jump_targets(line):
    return JUMP_TARGET.findall(line) if CHAIN_PREFIX in line else []


def owned_rules_of(tables, keys, family=4):
    """The parts of a parsed ruleset of one family that belong to each (kind, name) key:
    {key: {(family, table): TableRules}}, one pass over the ruleset for all keys.

    A chain is owned only if its name is exactly one of the object's chain names; a rule in a
    built-in chain only if its comment is exactly the object's tag."""
    owners = ChainOwners(keys)
    by_tag = {tag(*key): key for key in keys}
    owned = {key: {} for key in keys}
    for table, chains in tables.items():
        chain_owner = {chain: owners.owner(chain) for chain in chains if chain.startswith(CHAIN_PREFIX)}
        for chain, key in chain_owner.items():
            if key:
                _table_rules(owned[key], family, table).chains[chain] = list(chains[chain])
        for chain, lines in chains.items():
            if chain_owner.get(chain):
                continue
            for line in lines:
                key = by_tag.get(rule_tag(line))
                if key:
                    _table_rules(owned[key], family, table).jumps.append(line)
                    continue
                for target in jump_targets(line):
                    if chain_owner.get(target):
                        _table_rules(owned[chain_owner[target]], family, table).foreign_jumps.append((target, line))
    for tables_of_key in owned.values():
        for rules in tables_of_key.values():
            rules.jumps.sort()
    return owned


def tagged_jumps(tables):
    """{(kind, name): [rule lines]} of every object with a tagged rule in a built-in chain of a parsed ruleset."""
    found = {}
    for chains in tables.values():
        for chain, lines in chains.items():
            if chain.startswith(CHAIN_PREFIX):
                continue
            for line in lines:
                owner = owner_of_tag(rule_tag(line))
                if owner:
                    found.setdefault(owner, []).append(line)
    return found


def service_signature(line):
    """What a balancer's PREROUTING jump matches (destination, protocol, port), without its tag
    and target: two balancers with the same signature claim the same service."""
    if not line.startswith("-A PREROUTING "):
        return None
    return SOURCE_MATCH.sub("", line.split(" -m comment --comment ", 1)[0])


def _table_rules(owned, family, table):
    return owned.setdefault((family, table), TableRules())


def same_rules(current, desired):
    tables = set(current) | set(desired)
    empty = TableRules()
    return all(current.get(t, empty).canonical() == desired.get(t, empty).canonical() for t in tables)


def as_text(owned):
    """Owned rules in iptables-save layout, for diffs and reports."""
    out = []
    for family, table in sorted(owned):
        rules = owned[(family, table)]
        if family == 6:
            out.append("# ip6tables")
        out.append("*%s" % table)
        out.extend(":%s - [0:0]" % chain for chain in sorted(rules.chains))
        out.extend(rules.jumps)
        for chain in sorted(rules.chains):
            out.extend(rules.chains[chain])
    return "\n".join(out) + ("\n" if out else "")


def rule_spec(line):
    """'-A CHAIN rest' -> ('CHAIN', 'rest')."""
    chain, spec = (line.split(" ", 2) + [""])[1:3]
    return chain, spec


def _table_restore_lines(current, desired):
    stale_chains = sorted(set(current.chains) - set(desired.chains))
    # Created in render order, not name order: iptables-nft-save takes quadratic time over chains
    # created in name order (1 s instead of 0.2 s for 10000 chains), and restore is slower in a hashed order.
    rewritten = [c for c in desired.chains if current.chains.get(c) != desired.chains[c]]
    lines = [":%s - [0:0]" % chain for chain in rewritten + stale_chains]
    # Counted once: netfilter_apply merges the jumps of every listed object.
    current_jumps, desired_jumps = collections.Counter(current.jumps), collections.Counter(desired.jumps)
    for jump in sorted(current_jumps - desired_jumps):
        lines.extend(["-D %s %s" % rule_spec(jump)] * (current_jumps[jump] - desired_jumps[jump]))
    for chain in rewritten:
        lines.extend(desired.chains[chain])
    for jump in desired.jumps:
        if jump not in current_jumps:
            lines.append("-I %s 1 %s" % rule_spec(jump))
    lines.extend("-X %s" % chain for chain in stale_chains)
    return lines


def merged(owned_list):
    """The owned rules of several objects as one: their chains and jumps never overlap."""
    out = {}
    for owned in owned_list:
        for key, rules in owned.items():
            table = out.setdefault(key, TableRules())
            table.chains.update(rules.chains)
            table.jumps.extend(rules.jumps)
    for rules in out.values():
        rules.jumps.sort()
    return out


def restore_buffer(current, desired, family=4):
    """One iptables-restore --noflush input for one family that changes only the owned rules."""
    out = []
    empty = TableRules()
    for key in sorted(k for k in set(current) | set(desired) if k[0] == family):
        table = key[1]
        lines = _table_restore_lines(current.get(key, empty), desired.get(key, empty))
        if lines:
            out.extend(["*%s" % table] + lines + ["COMMIT"])
    return "\n".join(out) + "\n" if out else ""


# --- what netfilter_info reports, and what persistence saves ----------------

def _live_rule(scope, line, counted):
    """LiveRule of a rule line, or None when it is neither owned nor a jump into an owned chain."""
    chain = line.split(" ", 2)[1]
    owned_chain = is_owned_shape(chain)
    owner = None if owned_chain else owner_of_tag(rule_tag(line))
    return live_rule(scope, chain, line, counted, owner, tuple(t for t in jump_targets(line) if is_owned_shape(t)), owned_chain,
                     line.endswith(" -j RETURN"))


def live_of(tables_by_family, counts_by_family):
    """Live from {family: parse_save tables} and {family: their counts}."""
    live = Live()
    for family, tables in sorted(tables_by_family.items()):
        counts = counts_by_family.get(family, {})
        for table, chains in tables.items():
            scope = (family, table)
            live.chains[scope] = {chain for chain in chains if is_owned_shape(chain)}
            for chain, lines in chains.items():
                counted = counts.get((table, chain)) or [(None, None)] * len(lines)
                live.rules.extend(filter(None, (_live_rule(scope, line, count) for line, count in zip(lines, counted))))
    return live


def saved_buffer(tables):
    """The owned part of one family's parsed ruleset as an iptables-restore --noflush buffer:
    the chains of every object with a tagged jump, exactly named, and those jumps (not yet
    checked by the writer guard).

    Jumps are inserted at the top in reverse, so they end in the order they had, ahead of
    rules other tools load later.
    """
    owners = ChainOwners(tagged_jumps(tables))
    out = []
    for table, chains in tables.items():
        owned = sorted(chain for chain in chains if chain.startswith(CHAIN_PREFIX) and owners.owner(chain))
        jumps = [line for chain, lines in chains.items() if not chain.startswith(CHAIN_PREFIX)
                 for line in lines if jumps_home(owner_of_tag(rule_tag(line)), jump_targets(line), owners)]
        if not owned and not jumps:
            continue
        out += ["*%s" % table] + [":%s - [0:0]" % chain for chain in owned]
        out += [line for chain in owned for line in chains[chain]]
        out += ["-I %s 1 %s" % rule_spec(line) for line in reversed(jumps)]
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""
