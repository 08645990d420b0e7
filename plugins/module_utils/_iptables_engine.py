# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The iptables engine: one iptables-save to read, one iptables-restore --noflush to apply.

Works with either backend of iptables 1.8 (nf_tables or legacy x_tables); which one a
host uses is detected the way kube-proxy's iptables-wrapper does it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ansible_collections.netmagic.netfilter.plugins.module_utils import _iptables_rules as rules
from ansible_collections.netmagic.netfilter.plugins.module_utils._engine import Engine, RecordedState, Snapshot
from ansible_collections.netmagic.netfilter.plugins.module_utils._guard import check_restore_buffer
from ansible_collections.netmagic.netfilter.plugins.module_utils._host import EngineError, failing_line, writer_failure
from ansible_collections.netmagic.netfilter.plugins.module_utils._naming import is_owned_shape

VARIANTS = ("nft", "legacy")
# Seconds iptables-restore waits for the xtables lock held by another writer.
XTABLES_WAIT = "10"


# Extensions a buffer may use, as the kernel lists them in /proc/net/ip{,6}_tables_{targets,matches}.
TARGETS = ("TEE", "DNAT", "MASQUERADE")
MATCHES = ("statistic", "comment", "conntrack")
UNKNOWN_EXTENSION = ("No chain/target/match by that name", "Couldn't load", "does not exist", "not supported")


def missing_extensions_hint(host, family, buffer, error):
    """Names the extensions the buffer needs that the kernel lacks, when that is why it failed."""
    if not any(text in error for text in UNKNOWN_EXTENSION):
        return ""
    prefix = "/proc/net/ip_tables_" if family == 4 else "/proc/net/ip6_tables_"
    missing = []
    for kind, names, flag in (("targets", TARGETS, "-j "), ("matches", MATCHES, "-m ")):
        listed = (host.read_text(prefix + kind) or "").split()
        missing += ["%s %s" % (kind[:-1], name) for name in names if flag + name + " " in buffer and name not in listed]
    if not missing:
        return ""
    return "; the kernel lacks the %s (kernel module xt_<name> or the matching CONFIG_NETFILTER_XT_ option)" % ", ".join(missing)


def count_rule_lines(save_output):
    return sum(1 for line in save_output.splitlines() if line.startswith("-"))


def save_output(host, binary):
    path = host.which(binary)
    if not path:
        return ""
    rc, out, err = host.read([path])
    if rc != 0:
        raise EngineError("%s failed (rc=%d): %s" % (binary, rc, err.strip()))
    return out


def detect_variant(host, nft_in_use=False):
    """The iptables backend this host already uses.

    The backend holding rules wins; a host with rules in both is refused, because
    rules of one backend are invisible to the other and guessing could leave both.
    With no rules anywhere, the `iptables --version` tag decides. nft_in_use: the nft
    backend is known to hold rules (it is not read to count them).
    """
    counts = {}
    for variant in VARIANTS:
        if variant == "nft" and nft_in_use:
            counts[variant] = 1
            continue
        counts[variant] = sum(
            count_rule_lines(save_output(host, "%s-%s-save" % (family, variant))) for family in ("iptables", "ip6tables")
        )
    in_use = [variant for variant in VARIANTS if counts[variant]]
    if len(in_use) == 2:
        raise EngineError(
            "this host has rules in both iptables backends (%d in nf_tables, %d in legacy x_tables); "
            "only one of them takes effect for NAT, so set engine explicitly to the one this host should use"
            % (counts["nft"], counts["legacy"])
        )
    if in_use:
        return in_use[0]
    return _version_tag(host)


def _version_tag(host):
    path = host.which("iptables")
    if not path:
        raise EngineError("iptables is not installed on this host: install the 'iptables' package (1.8 or later)")
    rc, out, err = host.read([path, "--version"])
    text = out + err
    if "(legacy)" in text:
        return "legacy"
    if "(nf_tables)" in text:
        return "nft"
    raise EngineError("cannot tell the iptables backend from %r: set engine to iptables-nft or iptables-legacy" % text.strip())


FAMILY_COMMANDS = {4: "iptables", 6: "ip6tables"}
# The legacy tables of each family that exist: opening one that does not creates it.
LEGACY_TABLE_NAMES = {4: "/proc/net/ip_tables_names", 6: "/proc/net/ip6_tables_names"}


def saved_file(variant, family):
    """The file persistence saves one family's owned rules of one backend in."""
    return "xtables-%s-%d.rules" % (variant, family)


def persist_files(variant):
    """The engine's persist_files: each family's file, restored with --noflush at boot."""
    return [(saved_file(variant, family), ["%s-%s-restore" % (tool, variant), "--noflush"]) for family, tool in FAMILY_COMMANDS.items()]


@dataclass
class RestorePlan:
    """{family: restore input}, and the owned rules before and after, merged."""

    buffers: dict
    current: dict
    desired: dict

    def __bool__(self):
        return bool(self.buffers)


def table_parts(buffer):
    """A restore buffer as {table: its own buffer}."""
    parts, table = {}, None
    for line in buffer.splitlines():
        if line.startswith("*"):
            table = line[1:]
        parts.setdefault(table, []).append(line)
    return {table: "\n".join(lines) + "\n" for table, lines in parts.items()}


class IptablesSnapshot(Snapshot):
    """{family: iptables-save text} parsed once; the owned rules of any objects come from it."""

    def __init__(self, saves, file_names, counters=False):
        self.file_names = file_names
        self.counts = {family: {} if counters else None for family in saves}
        self.tables = {family: rules.parse_save(text, self.counts[family]) for family, text in saves.items()}
        self._claims = {}
        for tables in self.tables.values():
            for key, lines in rules.tagged_jumps(tables).items():
                self._claims.setdefault(key, set()).update(filter(None, map(rules.service_signature, lines)))

    @property
    def claims(self):
        return self._claims

    def owned(self, keys):
        """{(kind, name): owned rules in both families}; a family whose tools are missing holds none."""
        owned = {key: {} for key in keys}
        for family, tables in self.tables.items():
            for key, scopes in rules.owned_rules_of(tables, keys, family).items():
                owned[key].update(scopes)
        return owned

    def holds_only(self, owned):
        """Every chain of the owned shape is one of owned's, and no rule of anyone else's jumps into one."""
        chains = {(scope, chain) for scopes in owned.values() for scope, table_rules in scopes.items() for chain in table_rules.chains}
        if any(table_rules.foreign_jumps for scopes in owned.values() for table_rules in scopes.values()):
            return False
        return all(((family, table), chain) in chains for family, tables in self.tables.items() for table, table_chains in tables.items()
                   for chain in table_chains if is_owned_shape(chain))

    def live(self):
        return rules.live_of(self.tables, {family: counts or {} for family, counts in self.counts.items()})

    def persisted(self):
        return {self.file_names[family]: check_restore_buffer(rules.saved_buffer(tables), "the saved rules")
                for family, tables in self.tables.items()}


# The tables rendered rules go in.
OWNED_TABLES = ("mangle", "nat")
# What changes in iptables-save output while the rules stay: its comment lines, which carry the
# time, and each chain's packet and byte counters.
# Matched after a line break only, so that the search is for two characters, not at every one.
SAVE_NOISE = re.compile(r"\n(?:#[^\n]*|(:[^\n]*) \[\d+:\d+\])(?=\n)")


class IptablesEngine(Engine):
    """Reads and writes the owned part of the IPv4 and IPv6 rulesets through one iptables backend
    (variant nft or legacy, as the tools are named)."""

    variant = None

    def _binary(self, family, tool, required=True):
        binary = "%s-%s-%s" % (FAMILY_COMMANDS[family], self.variant, tool)
        path = self.host.which(binary)
        if not path and required:
            raise EngineError("%s not found: engine %s needs the 'iptables' package (1.8 or later)" % (binary, self.name))
        return path

    def available(self):
        return bool(self._binary(4, "save", required=False))

    def holds_nothing(self):
        """Neither family has a table that rendered rules go in: nf_tables lists its tables,
        legacy x_tables names those it has set up in /proc/net."""
        if self.variant == "nft":
            tables = self.host.ruleset_tables()
            return tables is not None and not any((family, table) in tables for family in ("ip", "ip6") for table in OWNED_TABLES)
        loaded = [self.host.read_text(path) for path in LEGACY_TABLE_NAMES.values()]
        return None not in loaded and not any(table in OWNED_TABLES for names in loaded for table in names.split())

    def recorded_state(self, recorded, rebuild):
        """A restore plan needs only each object's rules before and after."""
        return RecordedState(self, recorded, rebuild)

    def read(self, counters=False):
        return IptablesSnapshot(self.saves(counters), {family: saved_file(self.variant, family) for family in FAMILY_COMMANDS}, counters)

    @staticmethod
    def signatures(owned):
        """The service signatures of an object's rendered rules."""
        return {signature for scope in owned.values() for signature in map(rules.service_signature, scope.jumps) if signature}

    def saves(self, counters=False):
        """{family: iptables-save text} of every table, with [packets:bytes] before each rule when counters."""
        saves = {}
        for family in FAMILY_COMMANDS:
            save = self._binary(family, "save", required=family == 4)
            if not save:
                continue
            rc, out, err = self.host.read([save] + (["-c"] if counters else []))
            if rc != 0:
                raise EngineError("%s failed (rc=%d): %s" % (save, rc, err.strip()))
            saves[family] = out
        return saves

    render = staticmethod(rules.render)
    same = staticmethod(rules.same_rules)
    as_text = staticmethod(rules.as_text)

    def plan(self, snapshot, changes):
        """RestorePlan: one iptables-restore --noflush input per family with changes, each checked
        by the writer guard, and the merged rules before and after (for a rollback)."""
        current, desired = rules.merged(c for c, _d in changes.values()), rules.merged(d for _c, d in changes.values())
        buffers = {}
        for family in FAMILY_COMMANDS:
            buffer = rules.restore_buffer(current, desired, family)
            if buffer:
                buffers[family] = check_restore_buffer(buffer, "the %s-restore input" % FAMILY_COMMANDS[family])
        return RestorePlan(buffers, current, desired)

    def apply(self, plan, check_only=False):
        """One restore per family with changes; --test in check mode verifies without committing.
        When a later family fails, the families already committed are put back as they were."""
        buffers, current, desired = plan.buffers, plan.current, plan.desired
        if check_only:
            for family, buffer in buffers.items():
                self._test(family, buffer)
            return
        committed = []
        for family, buffer in buffers.items():
            rc, err = self._run_restore(family, buffer)
            if rc != 0:
                raise self._failure(family, buffer, rc, err, self._rolled_back(committed, current, desired))
            committed.append(family)

    def generation(self):
        """nf_tables has one (iptables-nft writes nf_tables); legacy x_tables has none."""
        return self.host.ruleset_generation() if self.variant == "nft" else None

    def fingerprint(self):
        """Legacy x_tables: a digest of every table as iptables-save prints it, without its
        comments (a time) and chain counters, from the saves a read parses (run once per run)."""
        if self.variant == "nft":
            return None
        digest = hashlib.sha256()
        for family, text in sorted(self.saves().items()):
            digest.update(b"%d\0" % family)
            digest.update(SAVE_NOISE.sub(r"\n\1", "\n" + text).encode())
        return digest.hexdigest()

    @staticmethod
    def commits(plan):
        """iptables-nft-restore commits each table of its input on its own."""
        return sum(len(table_parts(buffer)) for buffer in plan.buffers.values())

    def _rolled_back(self, committed, current, desired):
        """Puts the committed families back as they were; returns what the error message says of them."""
        if not committed:
            return ""
        names = " and ".join("IPv%d" % family for family in committed)
        try:
            for family in committed:
                buffer = rules.restore_buffer(current=desired, desired=current, family=family)  # back to how it was
                if buffer:
                    self._restore(family, check_restore_buffer(buffer, "the rollback input"))
        except EngineError as error:
            return "; the %s change was committed and could not be rolled back, so it stays applied (%s)" % (names, error)
        return "; the %s change that was committed first has been rolled back" % names

    def _test(self, family, buffer):
        """restore --test. With legacy x_tables a table that does not exist yet is tested in a
        throwaway network namespace, as opening it here would create it."""
        if self.variant != "legacy":
            return self._restore(family, buffer, check_only=True)
        existing = set((self.host.read_text(LEGACY_TABLE_NAMES[family]) or "").split())
        unshare = self.host.which("unshare")
        for table, part in table_parts(buffer).items():
            if table in existing:
                self._restore(family, part, check_only=True)
            elif unshare:
                self._restore(family, part, check_only=True, prefix=[unshare, "--net", "--"])
        return None

    def _run_restore(self, family, buffer, check_only=False, prefix=()):
        argv = list(prefix) + [self._binary(family, "restore"), "--noflush", "--wait=%s" % XTABLES_WAIT] + (["--test"] if check_only else [])
        rc, _out, err = self.host.run(argv, data=buffer)
        return rc, err

    def _restore(self, family, buffer, check_only=False, prefix=()):
        rc, err = self._run_restore(family, buffer, check_only, prefix)
        if rc != 0:
            raise self._failure(family, buffer, rc, err)

    def _failure(self, family, buffer, rc, err, applied=""):
        tool = self._binary(family, "restore").rsplit("/", 1)[-1]
        return EngineError("%s%s%s" % (writer_failure(tool, rc, err, applied), missing_extensions_hint(self.host, family, buffer, err),
                                       failing_line(buffer, err)))

    @staticmethod
    def describe(owned):
        """Chains and rule lines of an owned ruleset, for module results."""
        chains = sorted(chain for table in owned.values() for chain in table.chains)
        lines = [line for line in rules.as_text(owned).splitlines() if line.startswith("-A ")]
        return chains, lines


class IptablesNftEngine(IptablesEngine):
    name = "iptables-nft"
    backend = "xtables-nft"
    variant = "nft"
    persist_files = persist_files("nft")


class IptablesLegacyEngine(IptablesEngine):
    name = "iptables-legacy"
    backend = "xtables-legacy"
    variant = "legacy"
    persist_files = persist_files("legacy")
