# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The python-iptables engine: the iptc library writes legacy x_tables, one commit per table.

The rules, chain names and plan are those of engine iptables-legacy: the restore buffer that
engine would give iptables-legacy-restore is run line by line on iptc table handles, and
each table is committed once, atomically, under the xtables lock (iptc does not take it).
Reading goes through iptables-legacy-save, which prints exactly the lines the renderer
produces and dumps only tables that exist: iptc has no save format, compares rules ignoring
match order, and creates every table it opens.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
import traceback
from dataclasses import dataclass

from ansible_collections.netmagic.netfilter.plugins.module_utils._host import AnsibleHost, EngineError, MissingLibraryError, xtables_lock
from ansible_collections.netmagic.netfilter.plugins.module_utils._iptables_engine import (
    FAMILY_COMMANDS,
    XTABLES_WAIT,
    IptablesLegacyEngine,
    count_rule_lines,
    save_output,
)
from ansible_collections.netmagic.netfilter.plugins.module_utils._naming import CHAIN_PREFIX

LIBRARY = "python-iptables"
INSTALL_HINT = (
    "for engine python-iptables; install it on the managed host with 'pip install python-iptables==1.2.0', "
    "which builds it from source with gcc and the Python headers (python3-dev on Debian)"
)
TABLE_NAMES = {4: "/proc/net/ip_tables_names", 6: "/proc/net/ip6_tables_names"}
RULE_FIELDS = {"-s": "src", "-d": "dst", "-i": "in_interface", "-o": "out_interface", "-p": "protocol"}
# iptc knows ICMPv6 by number only; the other protocol names the renderer writes it knows.
PROTOCOL_NUMBERS = {"ipv6-icmp": "58"}
# Rules that load a target extension (see IptcEngine.apply).
TARGET_RULE = re.compile(r"^-[AI] .* -j (TEE|DNAT|MASQUERADE)( |$)", re.MULTILINE)
RESTORE_ACTIONS = {"-A": "append", "-D": "delete", "-I": "insert", "-X": "remove"}


@dataclass(frozen=True)
class RuleSpec:
    """One rule as iptc builds it: header fields, matches in order, target; options as (name, value)."""

    fields: tuple
    matches: tuple
    target: tuple


@dataclass(frozen=True)
class Operation:
    """One line of a restore buffer: declare, append, delete, insert (at the top) or remove a chain."""

    action: str
    chain: str
    line: str
    rule: RuleSpec = None


def _options(words, position):
    """The '--name VALUE' pairs and '--flag' options (as ('flag', ''), how iptc holds them) from
    position on; returns them and where they end."""
    options = []
    while position < len(words) and words[position].startswith("--"):
        if position + 1 < len(words) and not words[position + 1].startswith("-"):
            options.append((words[position][2:], words[position + 1]))
            position += 2
        else:
            options.append((words[position][2:], ""))
            position += 1
    return tuple(options), position


def rule_spec(words):
    """The words of a rule after its chain ('-p tcp -m tcp --dport 80 -j TEE --gateway A') as a RuleSpec."""
    fields, matches, target = [], [], None
    position = 0
    while position < len(words):
        word = words[position]
        if word in RULE_FIELDS and position + 1 < len(words):
            value = words[position + 1]
            fields.append((RULE_FIELDS[word], PROTOCOL_NUMBERS.get(value, value) if word == "-p" else value))
            position += 2
        elif word in ("-m", "-j") and position + 1 < len(words):
            options, end = _options(words, position + 2)
            if word == "-m":
                matches.append((words[position + 1], options))
            else:
                target = (words[position + 1], options)
            position = end
        else:
            raise EngineError("engine python-iptables cannot translate %r in the rule %r" % (word, " ".join(words)))
    if target is None:
        raise EngineError("engine python-iptables cannot translate a rule without a target: %r" % " ".join(words))
    return RuleSpec(tuple(fields), tuple(matches), target)


def _words(line):
    """A restore line's words: shlex, slow in pure Python, only where a quote or escape needs it
    (a tag's comment); a plain line splits at its spaces the same."""
    return shlex.split(line) if any(character in line for character in "\"'\\") else line.split()


def operation(line):
    """One restore-buffer line (':CHAIN - [0:0]', '-A', '-D', '-I CHAIN 1', '-X') as an Operation."""
    words = _words(line)
    if line.startswith(":"):
        return Operation("declare", words[0][1:], line)
    action = RESTORE_ACTIONS[words[0]]
    if action == "remove":
        return Operation(action, words[1], line)
    # restore_buffer inserts at position 1 only: the words after it are the rule.
    return Operation(action, words[1], line, rule_spec(words[3:] if action == "insert" else words[2:]))


def table_operations(buffer):
    """A restore buffer as [(table, [Operation, ...])], in its order."""
    tables = []
    for line in buffer.splitlines():
        if line.startswith("*"):
            tables.append((line[1:], []))
        elif line != "COMMIT":
            tables[-1][1].append(operation(line))
    return tables


# --- iptc -------------------------------------------------------------------

def _importable(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ValueError:
        # A module already imported without a spec.
        return name in sys.modules


def load_iptc():
    """The iptc module, imported only when this engine runs, so the other engines work without it."""
    try:
        import iptc
    except ImportError as error:
        if error.name != "iptc":
            # Installed, but something it imports is not there on this Python (as distutils,
            # which Python 3.12 removed and older releases of the library needed).
            raise EngineError("python-iptables is installed but cannot be imported on Python %d.%d: %s. Install python-iptables 1.2.0 "
                              "(tested on Python 3.11 to 3.13), or use engine iptables-legacy, which writes the same tables "
                              "with iptables-legacy-restore and needs no Python library" % (sys.version_info[:2] + (error,))) from None
        raise MissingLibraryError(LIBRARY, INSTALL_HINT, traceback.format_exc()) from None
    except Exception as error:
        # Importing iptc loads libxtables and finds its extensions; any failure there lands here.
        raise EngineError("python-iptables cannot load libxtables and its extensions (%s): install the 'iptables' package" % error) from None
    return iptc


def _set_options(extension, options):
    """Sets each option, then reads back what the library holds: it drops some bad values silently."""
    for name, value in options:
        extension.set_parameter(name, value)
    asked = {name.replace("-", "_"): value for name, value in options}
    held = extension.parameters
    if held != asked:
        raise ValueError("%s would hold %s instead of %s" % (extension.name, held, asked))


def _target(iptc, rule, name, options):
    if name.startswith(CHAIN_PREFIX) or name == "RETURN":
        # A jump to an owned chain, or a return, is the standard target named after it;
        # iptc.Target(rule, chain) would open every table to look for the chain, creating the
        # tables that do not exist.
        target = iptc.Target(rule, "")
        target.standard_target = name
        return target
    target = iptc.Target(rule, name)
    _set_options(target, options)
    return target


def build_rule(iptc, family, spec):
    """An iptc Rule (Rule6 for IPv6) from a RuleSpec."""
    rule = iptc.Rule() if family == 4 else iptc.Rule6()
    for attribute, value in spec.fields:
        setattr(rule, attribute, value)
    for name, options in spec.matches:
        _set_options(rule.create_match(name), options)
    rule.target = _target(iptc, rule, *spec.target)
    return rule


def live_tables(family):
    """The legacy tables of one family that exist in this network namespace."""
    # No file: that family's x_tables are not loaded, so no table exists.
    return set((AnsibleHost.read_text(TABLE_NAMES[family]) or "").split())


def hide_missing_tables(iptc, existing):
    """Marks the tables that do not exist as unavailable in iptc's cache.

    Creating a target such as TEE makes iptc look for a chain of that name in every
    available table, and it finds out whether a table is available by opening (so creating) it.
    """
    for table_class, family in ((iptc.Table, 4), (iptc.Table6, 6)):
        table_class.existing_table_names.update({name: False for name in table_class.ALL if name not in existing[family]})


def _run(iptc, table, step, rule):
    chain = iptc.Chain(table, step.chain)
    if step.action == "declare":
        # What ':CHAIN - [0:0]' does under --noflush: create the chain, or empty it.
        if table.is_chain(step.chain):
            chain.flush()
        else:
            table.create_chain(step.chain)
    elif step.action == "append":
        chain.append_rule(rule)
    elif step.action == "insert":
        chain.insert_rule(rule)
    elif step.action == "delete":
        chain.delete_rule(rule)
    else:
        table.delete_chain(step.chain)


def _refused(error, family, name, step):
    return EngineError("python-iptables refused the change, nothing was applied: %s\nin IPv%d table %s: %s" % (error, family, name, step.line))


def build_rules(iptc, family, name, steps):
    """Every rule of one table's steps built, before any table is opened: a rule the library
    refuses then leaves the kernel as it was, tables included (opening a table creates it)."""
    built = []
    for step in steps:
        try:
            built.append(build_rule(iptc, family, step.rule) if step.rule else None)
        # AttributeError is how iptc rejects an option the extension does not have.
        except (iptc.IPTCError, iptc.XTablesError, ValueError, AttributeError) as error:
            raise _refused(error, family, name, step) from None
    return built


def prepare_table(iptc, family, name, steps, built):
    """Runs one table's steps, with their rules built already, on a fresh handle; returns it uncommitted."""
    table = (iptc.Table if family == 4 else iptc.Table6)(name, autocommit=False)
    table.refresh()  # a snapshot taken now, under the xtables lock
    for step, rule in zip(steps, built):
        try:
            _run(iptc, table, step, rule)
        except (iptc.IPTCError, iptc.XTablesError, ValueError, AttributeError) as error:
            raise _refused(error, family, name, step) from None
    return table


def commit_tables(iptc, tables):
    """Commits each prepared table; the kernel swaps in each one whole, or refuses it whole."""
    committed = []
    for family, name, table in tables:
        try:
            table.commit()
        except iptc.IPTCError as error:
            done = ", already committed: %s" % ", ".join(committed) if committed else ""
            raise EngineError("the kernel refused the python-iptables commit of IPv%d table %s, which is unchanged%s: %s"
                              % (family, name, done, error)) from None
        committed.append("IPv%d %s" % (family, name))


def _refuse_a_target_in_two_families(buffers):
    ipv4, ipv6 = ({match.group(1) for match in TARGET_RULE.finditer(buffers[family])} for family in FAMILY_COMMANDS)
    both = sorted(ipv4 & ipv6)
    if both:
        raise EngineError("engine python-iptables cannot write %s rules of IPv4 and of IPv6 in one run (iptc loads a target "
                          "extension for one family per process): apply the IPv4 and the IPv6 objects in separate runs"
                          % " and ".join(both))


class IptcEngine(IptablesLegacyEngine):
    """Writes legacy x_tables through python-iptables; reads, renders, compares and persists as engine iptables-legacy."""

    name = "python-iptables"

    def __init__(self, host, library=None):
        super().__init__(host)
        self._library = library

    def _iptc(self):
        if self._library is None:
            self._library = load_iptc()
        return self._library

    def available(self):
        if not super().available():
            return False
        try:
            self._iptc()
        except EngineError:
            return False
        return True

    def read(self, counters=False):
        """Refuses before reading when iptc is missing or the host's rules are in nf_tables. The
        library itself (a few hundred milliseconds to import, with its extensions) is loaded only
        by a write: a run that changes nothing never needs it."""
        if self._library is None and not _importable("iptc"):
            self._iptc()  # the import's own error, saying what to install
        self._refuse_nf_tables()
        return super().read(counters)

    def fingerprint(self):
        """Refuses first, as a read does: a run trusting its record reads nothing else."""
        self._refuse_nf_tables()
        return super().fingerprint()

    def _refuse_nf_tables(self):
        count = sum(count_rule_lines(save_output(self.host, "%s-nft-save" % command)) for command in FAMILY_COMMANDS.values())
        if count:
            raise EngineError(
                "this host's live rules are in nf_tables (%d rules in iptables-nft-save): engine python-iptables reads and "
                "writes only legacy x_tables, so it can neither see nor change them, and for NAT the nf_tables rules take "
                "precedence; use engine iptables-nft (or auto) on this host" % count
            )

    def apply(self, plan, check_only=False):
        """Every table with changes prepared on its own handle, then each committed once; none in check mode.

        Only desired rules carry target extensions (TEE, DNAT, MASQUERADE): iptc loads each for
        one family per process, and loading it for a second family exits the process, so a change
        writing one target in both families is refused before anything is built.
        """
        iptc = self._iptc()
        buffers = {family: plan.buffers.get(family, "") for family in FAMILY_COMMANDS}
        _refuse_a_target_in_two_families(buffers)
        work = [(family, table, steps) for family in FAMILY_COMMANDS for table, steps in table_operations(buffers[family])]
        with xtables_lock(int(XTABLES_WAIT)):
            existing = {family: live_tables(family) for family in FAMILY_COMMANDS}
            hide_missing_tables(iptc, existing)
            built = [build_rules(iptc, family, table, steps) for family, table, steps in work]
            # Check mode opens only tables that exist: the rules are built, which checks every option the library takes.
            prepared = [(family, table, prepare_table(iptc, family, table, steps, rules))
                        for (family, table, steps), rules in zip(work, built) if not check_only or table in existing[family]]
            if not check_only:
                self.host.forget_reads()
                commit_tables(iptc, prepared)
