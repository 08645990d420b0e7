# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writer guards: the last check before a restore buffer or an nft batch reaches a tool or a file.

Each line (each command) must fit the grammar the renderers can produce: no stray whitespace,
newline, quote or NUL, no table or COMMIT line the renderer did not emit, only the chains and
statements this collection writes. It holds even if a validator upstream were wrong; a
violation is an internal error, raised before anything is applied or written.
"""

from __future__ import annotations

import functools
import re

from ansible_collections.netmagic.netfilter.plugins.module_utils._host import EngineError, excerpt
from ansible_collections.netmagic.netfilter.plugins.module_utils._naming import CHAIN_GRAMMAR, TAG_PATTERN

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
ADDR4 = r"%s(?:\.%s){3}" % (_OCTET, _OCTET)
ADDR6 = r"[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}"
ADDR = r"(?:%s|%s)" % (ADDR4, ADDR6)
NET = r"%s/[0-9]{1,3}" % ADDR
PORT = r"[1-9][0-9]{0,4}"
PORTS = r"%s(?::%s)?" % (PORT, PORT)
IFACE = r"[A-Za-z0-9_.:@-]{1,15}\+?"
DEVICE = r"[A-Za-z0-9_.:@-]{1,15}"
OWNED = CHAIN_GRAMMAR.pattern
TAG = '"%s"' % TAG_PATTERN.pattern
L4 = r"(?:tcp|udp)"
BUILTIN = r"(?:PREROUTING|FORWARD|OUTPUT|POSTROUTING)"
# A backend's xt_recent list of clients (session affinity), matched on the whole source address.
RECENT = r"--name {owned} --mask (?:255\.255\.255\.255|ffff(?::ffff){{7}}) --rsource"

# Every rule the iptables renderer writes, after '-A CHAIN ' (or '-I CHAIN 1 '), with the target
# of its last -j (None: an owned chain). A shape fits only rules with its own target.
RULE_SHAPES = (
    # mirror: TEE
    ("TEE", r"(?:-[ds] {net} )?(?:-[io] {iface} )?(?:-p {l4} -m {l4} --[ds]port {ports} |-p (?:tcp|udp|icmp|ipv6-icmp) )?"
            r"(?:-m connmark --mark {mark}/{mark} )?-j TEE --gateway {addr}(?: --oif {device})?"),
    # mirror: traffic with a collector or an excluded network is not cloned
    ("RETURN", r"-[ds] {net} -j RETURN"),
    # sampled mirror: a new connection goes to the sampler, which marks one in N
    (None, r"(?:-[ds] {net} )?(?:-[io] {iface} )?(?:-p {l4} -m {l4} --[ds]port {ports} |-p (?:tcp|udp|icmp|ipv6-icmp) )?"
           r"-m conntrack --ctstate NEW -j {owned}"),
    ("CONNMARK", r"(?:-m connmark --mark 0x0/{mark} )?(?:-m statistic --mode nth --every [1-9][0-9]{{0,6}} --packet 0 )?"
                 r"(?:-m limit --limit [1-9][0-9]{{0,4}}/sec (?:--limit-burst [1-9][0-9]{{0,4}} )?)?-j CONNMARK --set-xmark {mark}/{mark}"),
    # a pool's sampler hands the connections it takes to the pool's chooser
    (None, r"(?:-m statistic --mode nth --every [1-9][0-9]{{0,6}} --packet 0 )?"
           r"(?:-m limit --limit [1-9][0-9]{{0,4}}/sec (?:--limit-burst [1-9][0-9]{{0,4}} )?)?-j {owned}"),
    # mirror jump
    (None, r"-m comment --comment {tag} -j {owned}"),
    # balancer: endpoint, service cascade, masquerade and their jumps
    ("DNAT", r"-p {l4} (?:-m recent --set {recent} )?-j DNAT --to-destination (?:{addr4}|\[{addr6}\]):{port}"),
    (None, r"-m recent --rcheck --seconds [1-9][0-9]{{0,4}} --reap {recent} -j {owned}"),
    # source_hash: a classic BPF program of at most 64 instructions, as numbers only
    (None, r'-m bpf --bytecode "[1-9][0-9]?(?:,[0-9]{{1,3}} [0-9]{{1,3}} [0-9]{{1,3}} [0-9]{{1,10}}){{1,64}}" -j {owned}'),
    (None, r"(?:-m statistic --mode nth --every [0-9]{{1,4}} --packet 0 |-m statistic --mode random --probability [01]\.[0-9]{{11}} )?-j {owned}"),
    (None, r"(?:-s {net} )?-d {net} -p {l4} -m {l4} --dport {port} -m comment --comment {tag} -j {owned}"),
    ("MASQUERADE", r"-j MASQUERADE"),
    (None, r"-p {l4} -m conntrack --ctstate DNAT --ctorigdst {addr} --ctorigdstport {port} -m comment --comment {tag} -j {owned}"),
)
# A value or mask of the connection mark, as iptables-save prints it.
MARK = r"0x(?:0|[1-9a-f][0-9a-f]{0,7})"
FIELDS = dict(net=NET, iface=IFACE, device=DEVICE, l4=L4, ports=PORTS, port=PORT, addr=ADDR, addr4=ADDR4, addr6=ADDR6, mark=MARK,
              tag=TAG, owned=OWNED, recent=RECENT.format(owned=OWNED))
# Owned chain names have no space, so a rule line splits at its head unambiguously.
RULE_HEAD = re.compile(r"-A (?:{owned}|{builtin}) |-I {builtin} 1 ".format(owned=OWNED, builtin=BUILTIN))
OTHER_LINE = re.compile("|".join((
    r":{owned} - \[0:0\]",
    # A deletion names a rule as iptables-save printed it: printable ASCII, one line.
    r"-D {builtin} [\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?",
    r"-X {owned}",
)).format(owned=OWNED, builtin=BUILTIN))
SHAPES_OF_TARGET = {target: [index for index, (own, _shape) in enumerate(RULE_SHAPES) if own == target]
                    for target in {target for target, _shape in RULE_SHAPES}}
TABLE_LINE = re.compile(r"\*(nat|mangle)")


class GuardError(EngineError):
    """A buffer or batch holds what no renderer of this collection writes."""


@functools.lru_cache(maxsize=None)
def _rule_shape(index):
    """Compiled on first use: a run compiles only the shapes of the rules it writes."""
    return re.compile(RULE_SHAPES[index][1].format(**FIELDS))


def _fitting_shape(rule, first):
    """The index of the shape rule fits, trying first the shape of the line before; None if none."""
    target = (" " + rule).rpartition(" -j ")[2].partition(" ")[0]
    shapes = SHAPES_OF_TARGET.get(target) or SHAPES_OF_TARGET[None]
    return next((index for index in ([first] if first in shapes else []) + shapes if _rule_shape(index).fullmatch(rule)), None)


def _refuse(what, lines, index, reason):
    raise GuardError("internal error: %s, line %d, %s; nothing was applied or written:\n%s"
                     % (what, index + 1, reason, excerpt(lines, index)))


def check_restore_buffer(buffer, what="the iptables-restore input"):
    """Every line of an iptables-restore --noflush buffer fits the renderers' grammar."""
    lines = buffer.split("\n")
    if lines[-1] == "":
        lines.pop()
    table = shape = None
    for index, line in enumerate(lines):
        if table is None:
            match = TABLE_LINE.fullmatch(line)
            if not match:
                _refuse(what, lines, index, "expected a table line (*nat or *mangle)")
            table = match.group(1)
        elif line == "COMMIT":
            table = None
        elif OTHER_LINE.fullmatch(line):
            continue
        else:
            head = RULE_HEAD.match(line)
            shape = _fitting_shape(line[head.end():], shape) if head else None
            if shape is None:
                _refuse(what, lines, index, "a line of a shape this collection never writes")
    if table is not None:
        _refuse(what, lines, len(lines) - 1, "table %s is not committed" % table)
    return buffer


# --- nft JSON ---------------------------------------------------------------

FAMILIES = ("ip", "ip6")
TABLE_NAME = "netmagic"
BASE_CHAIN_NAMES = ("mangle-prerouting", "mangle-output", "mangle-forward", "nat-prerouting", "nat-output", "nat-postrouting")
VERBS = ("add", "delete", "flush")
# Keys of the expressions the nft renderer writes (and nft lists back, counters included).
EXPRESSION_KEYS = frozenset((
    "match", "op", "left", "right", "payload", "protocol", "field", "meta", "key", "ct", "dir", "prefix", "addr", "len",
    "range", "set", "dup", "dnat", "port", "masquerade", "jump", "goto", "target", "vmap", "numgen", "mode", "mod",
    "offset", "data", "counter", "packets", "bytes", "device", "dev", "family", "concat", "map", "return", "elem", "val", "timeout",
    "jhash", "seed", "expr", "mangle", "value", "&", "|", "limit", "rate", "burst", "per",
))
# The table's maps and set, with the types of their keys.
SET_NAMES = {"services": "map", "local-services": "map", "masquerading": "set"}
SET_TYPES = {
    "services": (["ipv4_addr", "inet_proto", "inet_service"], ["ipv6_addr", "inet_proto", "inet_service"]),
    "local-services": (["ipv4_addr", "inet_proto", "inet_service"], ["ipv6_addr", "inet_proto", "inet_service"]),
    "masquerading": (["ipv4_addr", "ipv4_addr", "inet_proto", "inet_service"], ["ipv6_addr", "ipv6_addr", "inet_proto", "inet_service"]),
}
OPERATORS = ("==", "!=", "in")
WORD = re.compile(r"[A-Za-z0-9_.:*@+-]{1,64}(?: [a-z0-9]{1,8})?")
MAX_NUMBER = 2 ** 64 - 1


def _fits(value, operator=False):
    """Whether value fits the expression grammar (_check_value without building the path of each value)."""
    kind = type(value)
    if value is None or kind is int:
        return value is None or 0 <= value <= MAX_NUMBER
    if kind is str:
        return bool(WORD.fullmatch(value)) or (operator and value in OPERATORS)
    if kind is list:
        for item in value:
            if not _fits(item):
                return False
        return True
    if kind is dict:
        for key, item in value.items():
            if key not in EXPRESSION_KEYS or not _fits(item, key == "op"):
                return False
        return True
    return False


def _check_value(value, path):
    """None when value fits the expression grammar, else where it does not."""
    if _fits(value, path.endswith(".op")):
        return None
    return _misfit(value, path)


def _misfit(value, path):
    """Where value does not fit the expression grammar, or None."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_NUMBER):
        return None
    if isinstance(value, str):
        return None if WORD.fullmatch(value) or (path.endswith(".op") and value in OPERATORS) else path
    if isinstance(value, list):
        return next((found for index, item in enumerate(value) for found in [_misfit(item, "%s[%d]" % (path, index))] if found), None)
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in EXPRESSION_KEYS:
                return "%s.%s" % (path, key)
            found = _misfit(item, "%s.%s" % (path, key))
            if found:
                return found
        return None
    return path


def _command_problem(command):
    """What is wrong with one nft JSON command, or None."""
    if not isinstance(command, dict) or len(command) != 1:
        return "not one command"
    (verb, body), = command.items()
    if verb not in VERBS or not isinstance(body, dict) or len(body) != 1:
        return "unknown command %r" % verb
    (kind, fields), = body.items()
    if kind not in ("table", "chain", "rule", "map", "set", "element") or not isinstance(fields, dict):
        return "unknown object %r" % kind
    if fields.get("family") not in FAMILIES:
        return "family must be ip or ip6"
    if fields.get("name" if kind == "table" else "table") != TABLE_NAME:
        return "table must be %s" % TABLE_NAME
    if kind == "chain":
        return _chain_problem(fields)
    if kind == "rule":
        return _rule_problem(fields)
    if kind in ("map", "set", "element"):
        return _set_problem(verb, kind, fields)
    return None if set(fields) <= {"family", "name"} else "unknown table field"


AFFINITY_SET = {"type": ("ipv4_addr", "ipv6_addr"), "flags": (["timeout"],), "size": (65535,)}


def _affinity_set_problem(verb, kind, fields):
    """A backend's set of clients with affinity: declared or deleted, never given elements (the
    packet path adds them)."""
    if kind != "set":
        return "%s %r is not one this collection names" % (kind, fields.get("name"))
    declared = {key: value for key, value in fields.items() if key not in ("family", "table", "name")}
    if verb == "delete" and not declared:
        return None
    if verb != "add" or set(declared) != set(AFFINITY_SET) or any(declared[key] not in AFFINITY_SET[key] for key in AFFINITY_SET):
        return "set %s has a declaration this collection never writes" % fields.get("name")
    return None


def _set_problem(verb, kind, fields):
    """A map or set of the table as the renderer declares it, or elements of one (an element added
    to a map is a [key, verdict] pair; one deleted is its key)."""
    name = fields.get("name")
    if isinstance(name, str) and name.startswith("NM-AFF-") and CHAIN_GRAMMAR.fullmatch(name):
        return _affinity_set_problem(verb, kind, fields)
    if name not in SET_NAMES or (kind != "element" and kind != SET_NAMES[name]):
        return "%s %r is not one this collection names" % (kind, name)
    allowed = {"family", "table", "name", "elem"} | ({"type", "map", "handle", "flags"} if kind != "element" else set())
    if not set(fields) <= allowed:
        return "unknown %s field" % kind
    if kind != "element" and (fields.get("type") not in SET_TYPES[name] or fields.get("map", "verdict" if kind == "map" else None)
                              != ("verdict" if kind == "map" else None)):
        return "%s %s has a type this collection never declares" % (kind, name)
    for index, entry in enumerate(fields.get("elem", [])):
        problem = _element_problem(SET_NAMES[name] == "map" and verb == "add", entry)
        if problem:
            return "elem[%d] %s" % (index, problem)
    return None


def _element_problem(pair, entry):
    """An element is a key, or with pair a [key, verdict] pair; a key carries at most a tag as comment."""
    key, verdict = (entry if isinstance(entry, list) and len(entry) == 2 else (None, None)) if pair else (entry, None)
    if isinstance(key, dict) and "elem" in key:
        element = key["elem"]
        if not isinstance(element, dict) or not set(element) <= {"val", "comment"}:
            return "is not an element"
        if "comment" in element and not (isinstance(element["comment"], str) and TAG_PATTERN.fullmatch(element["comment"])):
            return "comment %r is not a tag" % (element["comment"],)
        key = element.get("val")
    if key is None or _check_value(key, "key"):
        return "key does not fit the expression grammar"
    jump = verdict.get("jump") if isinstance(verdict, dict) and set(verdict) == {"jump"} else None
    if pair and not (isinstance(jump, dict) and not _chain_name_problem(jump.get("target"))):
        return "verdict is not a jump to a chain this collection names"
    return None


def _chain_name_problem(name):
    if not isinstance(name, str) or not (name in BASE_CHAIN_NAMES or CHAIN_GRAMMAR.fullmatch(name)):
        return "chain %r is not one this collection names" % (name,)
    return None


def _chain_problem(fields):
    allowed = {"family", "table", "name", "type", "hook", "prio", "policy"}
    if not set(fields) <= allowed:
        return "unknown chain field"
    if fields.get("type", "filter") not in ("filter", "nat") or fields.get("hook", "output") not in ("prerouting", "forward", "output", "postrouting"):
        return "unknown chain type or hook"
    if fields.get("policy", "accept") != "accept" or not isinstance(fields.get("prio", 0), int):
        return "unknown chain policy or priority"
    return _chain_name_problem(fields.get("name"))


def _rule_problem(fields):
    if not set(fields) <= {"family", "table", "chain", "expr", "comment", "handle"}:
        return "unknown rule field"
    if "comment" in fields and not (isinstance(fields["comment"], str) and TAG_PATTERN.fullmatch(fields["comment"])):
        return "comment %r is not a tag" % (fields["comment"],)
    if "handle" in fields and not (isinstance(fields["handle"], int) and not isinstance(fields["handle"], bool)):
        return "handle is not a number"
    found = _check_value(fields.get("expr", []), "expr")
    if found:
        return "%s does not fit the expression grammar" % found
    return _chain_name_problem(fields.get("chain"))


def check_nft_commands(commands, what="the nft batch"):
    """Every command of an nft JSON batch is one this collection writes, on its own tables."""
    for index, command in enumerate(commands):
        problem = _command_problem(command)
        if problem:
            _refuse(what, [repr(c) for c in commands], index, problem)
    return commands
