# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the collection owns on a host: every mirror and balancer, their rules and counters, and drift.

Objects are found from the tagged jumps (`netmagic:<kind>:<name>`) and from the object token of
the NM- chains, in the Live rules the engine's snapshot gives (read with counters where the
engine has them). Nothing here knows an engine's format, and nothing here changes the host.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from ansible_collections.netmagic.netfilter.plugins.module_utils._model import (
    BALANCER,
    MIRROR,
    ValidationError,
    build_balancer,
    build_listed,
    build_mirror,
    rebuild,
)
from ansible_collections.netmagic.netfilter.plugins.module_utils._naming import CHAIN_PREFIX, ChainOwners, chain_role


# --- objects and drift ------------------------------------------------------

def finding(issue, owner=None, **details):
    """One drift finding; owner is (kind, name) or None for chains no object claims."""
    return dict(issue=issue, object="%s:%s" % owner if owner else None, **details)


def objects_of(live):
    """{(kind, name): [LiveRule, ...]} of tagged jumps and owned-chain rules, plus chains no tagged jump claims."""
    objects = collections.OrderedDict()
    for rule in live.rules:
        if rule.owner:
            objects.setdefault(rule.owner, [])
    owners = ChainOwners(objects)
    for rule in live.rules:
        owner = None if rule.foreign else rule.owner or owners.owner(rule.chain)
        if owner:
            objects[owner].append(rule)
    orphans = sorted((scope, chain) for scope, chains in live.chains.items() for chain in chains if not owners.owner(chain))
    return objects, orphans


def foreign_jumps(live, objects):
    """Rules of others that jump into an owned chain: removing that chain would fail, so they are reported."""
    owners = ChainOwners(objects)
    return [finding("foreign_jump", owners.owner(target), rule=rule.text, chain=target, family=rule.scope[0], table=rule.scope[1])
            for rule in live.rules if rule.foreign for target in rule.targets]


def _reached(jumps, rules):
    """(scope, chain) pairs reachable from the tagged jumps through the object's owned chains."""
    edges = collections.defaultdict(set)
    for rule in rules:
        edges[(rule.scope, rule.chain)].update((rule.scope, target) for target in rule.targets)
    pending = [(jump.scope, target) for jump in jumps for target in jump.targets]
    reached = set()
    while pending:
        node = pending.pop()
        if node not in reached:
            reached.add(node)
            pending.extend(edges[node])
    return reached


def structural_drift(owner, rules, live):
    """Duplicate jumps, jumps to chains that are gone, and owned chains no tagged jump reaches."""
    jumps = [rule for rule in rules if rule.owner]
    findings = []
    counts = collections.Counter((jump.scope, jump.text) for jump in jumps)
    findings += [finding("jump_duplicated", owner, rule=text, copies=count) for (_scope, text), count in sorted(counts.items()) if count > 1]
    owners = ChainOwners([owner])
    own_chains = {(scope, chain) for scope, chains in live.chains.items() for chain in chains if owners.owner(chain)}
    for jump in jumps:
        findings += [finding("chain_missing", owner, chain=target, rule=jump.text) for target in jump.targets if (jump.scope, target) not in own_chains]
    reached = _reached(jumps, rules)
    findings += [finding("jump_missing", owner, chain=chain) for scope, chain in sorted(own_chains - reached)]
    return findings


def _chain_of(line):
    """The chain of a described rule: '-A CHAIN ...' (iptables) or 'CHAIN: ...' (nftables)."""
    return line.split(" ", 2)[1] if line.startswith("-A ") else line.split(":", 1)[0]


def _grouped(lines):
    groups = collections.OrderedDict()
    for line in lines:
        groups.setdefault(_chain_of(line), []).append(line)
    return groups


def _surplus(lines, other):
    """Lines of lines not matched one for one in other, in order."""
    left = collections.Counter(other)
    out = []
    for line in lines:
        if left[line]:
            left[line] -= 1
        else:
            out.append(line)
    return out


def _chain_drift(owner, chain, found, expected):
    missing, added = _surplus(expected, found), _surplus(found, expected)
    if not missing and not added:
        return [finding("rules_reordered", owner, chain=chain)]
    paired = [finding("rule_changed", owner, chain=chain, rule=new, expected=old) for old, new in zip(missing, added)]
    rest = [finding("rule_missing", owner, chain=chain, rule=line) for line in missing[len(added):]]
    rest += [finding("rule_added", owner, chain=chain, rule=line) for line in added[len(missing):]]
    return paired + rest


def definition_drift(engine, owner, current, desired):
    """How the object's owned rules differ from the rendering of its definition."""
    return described_drift(owner, engine.describe(current), engine.describe(desired))


def described_drift(owner, current, desired):
    """How an object's rules differ from what they should be, both as (chains, rule lines) as the engine describes them."""
    (current_chains, current_lines), (desired_chains, desired_lines) = current, desired
    findings = [finding("chain_missing", owner, chain=c) for c in desired_chains if c not in current_chains]
    findings += [finding("chain_added", owner, chain=c) for c in current_chains if c not in desired_chains]
    found, expected = _grouped(current_lines), _grouped(desired_lines)
    for chain in list(expected) + [c for c in found if c not in expected]:
        whole_chain = chain in current_chains and chain not in desired_chains or chain in desired_chains and chain not in current_chains
        if whole_chain or found.get(chain, []) == expected.get(chain, []):
            continue
        if chain.startswith(CHAIN_PREFIX):
            findings += _chain_drift(owner, chain, found.get(chain, []), expected.get(chain, []))
        else:  # built-in chains: the jumps' positions are not ours to keep
            unordered = _chain_drift(owner, chain, sorted(found.get(chain, [])), sorted(expected.get(chain, [])))
            findings += [f for f in unordered if f["issue"] != "rules_reordered"]
    return findings


def rule_report(rule):
    family, table = rule.scope
    return {"family": family, "table": table, "chain": rule.chain, "rule": rule.text, "packets": rule.packets, "bytes": rule.bytes}


def mirrored_packets(rules):
    """Clones sent, from the TEE rule counters; None without counters.

    A clone of an egress packet leaves through mangle OUTPUT and matches the egress (MIRO)
    rule again (TEE then declines to clone a clone), so those rules count every packet twice;
    in a sampled mirror (one with a sampler, MIRS) they do not, as a clone has no connection
    and so no mark.
    """
    # The rules that choose connections (a jump to a sampler, the sampler's own) clone nothing,
    # nor do the exclusions, which return.
    counted = [rule for rule in rules if not (rule.owner or rule.targets or rule.returns) and chain_role(rule.chain) != "MIRS"]
    if not counted or any(rule.packets is None for rule in counted):
        return None
    sampled = any(chain_role(target) == "MIRS" for rule in rules for target in rule.targets)
    return sum(rule.packets // 2 if chain_role(rule.chain) == "MIRO" and not sampled else rule.packets for rule in counted)


def object_report(owner, rules, findings):
    kind, name = owner
    extra = {"mirrored_packets": mirrored_packets(rules)} if kind == MIRROR else {}
    return dict(extra, **{
        "name": name,
        "families": sorted({rule.scope[0] for rule in rules}),
        "chains": sorted({rule.chain for rule in rules if not rule.owner}),
        "rules": [rule_report(rule) for rule in rules],
        "drift": [f for f in findings if f["object"] == "%s:%s" % (kind, name)],
    })


@dataclass
class Expected:
    """The definitions the user passed, validated: {(kind, name): model object or None for absent}.

    kinds: the kinds whose list was given; owned objects of those kinds not listed are drift.
    """

    objects: dict = field(default_factory=dict)
    kinds: tuple = ()


def expected_drift(engine, expected, objects, owned_of):
    findings = []
    owned = owned_of(list(expected.objects))
    for owner, obj in expected.objects.items():
        if obj is None:
            if owner in objects:
                findings.append(finding("object_unexpected", owner))
        elif owner not in objects and not owned[owner]:
            findings.append(finding("object_missing", owner))
        else:
            findings += definition_drift(engine, owner, owned[owner], engine.render(obj))
    findings += [finding("object_unexpected", owner) for owner in objects if owner[0] in expected.kinds and owner not in expected.objects]
    return findings


def recorded_drift(engine, recorded, objects, owned_of, kinds):
    """Without definitions: how each object of the other kinds differs from what the collection
    last applied, the rendering of the definition it recorded (validated again: it comes from a
    file; an entry whose definition does not validate tells nothing)."""
    applied = {}
    for owner, entry in recorded.items():
        definition = entry.get("definition")
        if owner[0] not in kinds and isinstance(definition, dict):
            try:
                applied[owner] = engine.render(rebuild(owner[0], definition))
            except ValidationError:
                continue
    owned = owned_of(list(applied))
    findings = []
    for owner, rules in sorted(applied.items()):
        if owner not in objects and not owned[owner]:
            findings.append(finding("object_missing", owner, detail="applied by the collection, and its rules are gone"))
        else:
            findings += definition_drift(engine, owner, owned[owner], rules)
    return findings


def host_info(engine, expected, recorded=None):
    """The module result: engine, every owned mirror and balancer with rules and counters, and drift."""
    snapshot = engine.read(counters=True)
    live, owned_of = snapshot.live(), snapshot.owned
    objects, orphans = objects_of(live)
    findings = [f for owner, rules in objects.items() for f in structural_drift(owner, rules, live)]
    findings += [finding("chain_orphaned", chain=chain, family=scope[0], table=scope[1]) for scope, chain in orphans]
    findings += foreign_jumps(live, objects)
    findings += expected_drift(engine, expected, objects, owned_of)
    findings += recorded_drift(engine, recorded or {}, objects, owned_of, expected.kinds)
    reports = {kind: [object_report(owner, rules, findings) for owner, rules in objects.items() if owner[0] == kind] for kind in (MIRROR, BALANCER)}
    return {
        "changed": False,
        "engine": engine.name,
        "counters": live.counters,
        "mirrors": reports[MIRROR],
        "balancers": reports[BALANCER],
        "drift": findings,
        "drifted": bool(findings),
    }


def build_expected(mirrors, balancers):
    """Expected from the options mirrors and balancers, as netfilter_apply's argument spec gave them
    (None: that kind is not compared)."""
    expected = Expected()
    for kind, option, build, items in ((MIRROR, "mirrors", build_mirror, mirrors), (BALANCER, "balancers", build_balancer, balancers)):
        if items is not None:
            expected.kinds += (kind,)
            expected.objects.update(build_listed(option, kind, build, items))
    return expected


def _connections(report):
    """New connections a balancer sent to its backends: the packets of its NM-SEP- rules (None without counters)."""
    counts = [rule["packets"] for rule in report["rules"] if rule["chain"].startswith("NM-SEP-")]
    return None if not counts or None in counts else sum(counts)


def summary(info):
    """One line for a host's netfilter_info result: its objects, their counters and its drift."""
    mirrors = ", ".join("%s (%s clones)" % (m["name"], "?" if m["mirrored_packets"] is None else m["mirrored_packets"])
                        for m in info["mirrors"]) or "none"
    balancers = ", ".join("%s (%s connections)" % (b["name"], "?" if _connections(b) is None else _connections(b))
                          for b in info["balancers"]) or "none"
    drift = "; ".join("%s %s" % (f["issue"], f["object"] or f.get("chain")) for f in info["drift"])
    return "engine %s; mirrors: %s; balancers: %s; drift: %s" % (info["engine"], mirrors, balancers, drift or "none")
