# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The iptables engine: one iptables-save to read, one iptables-restore --noflush to apply.

Works with either backend of iptables 1.8 (nf_tables or legacy x_tables); which one a
host uses is detected the way kube-proxy's iptables-wrapper does it.
"""

from __future__ import annotations

from ansible_collections.netmagic.netfilter.plugins.module_utils import _iptables_rules as rules
from ansible_collections.netmagic.netfilter.plugins.module_utils._host import EngineError, writer_failure

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


def _save_output(host, binary):
    path = host.which(binary)
    if not path:
        return ""
    rc, out, err = host.run([path])
    if rc != 0:
        raise EngineError("%s failed (rc=%d): %s" % (binary, rc, err.strip()))
    return out


def detect_variant(host):
    """The iptables backend this host already uses.

    The backend holding rules wins; a host with rules in both is refused, because
    rules of one backend are invisible to the other and guessing could leave both.
    With no rules anywhere, the `iptables --version` tag decides.
    """
    counts = {}
    for variant in VARIANTS:
        counts[variant] = sum(
            count_rule_lines(_save_output(host, "%s-%s-save" % (family, variant))) for family in ("iptables", "ip6tables")
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
    rc, out, err = host.run([path, "--version"])
    text = out + err
    if "(legacy)" in text:
        return "legacy"
    if "(nf_tables)" in text:
        return "nft"
    raise EngineError("cannot tell the iptables backend from %r: set engine to iptables-nft or iptables-legacy" % text.strip())


FAMILY_COMMANDS = {4: "iptables", 6: "ip6tables"}


class IptablesEngine:
    """Reads and writes the owned part of the IPv4 and IPv6 rulesets through one iptables backend."""

    backend_of = {"nft": "xtables-nft", "legacy": "xtables-legacy"}

    def __init__(self, host, variant):
        self.host = host
        self.variant = variant
        self.name = "iptables-%s" % variant
        self.backend = self.backend_of[variant]

    def _binary(self, family, tool, required=True):
        binary = "%s-%s-%s" % (FAMILY_COMMANDS[family], self.variant, tool)
        path = self.host.which(binary)
        if not path and required:
            raise EngineError("%s not found: engine %s needs the 'iptables' package (1.8 or later)" % (binary, self.name))
        return path

    def available(self):
        return bool(self._binary(4, "save", required=False))

    def read(self, keys):
        """{(kind, name): owned rules in both families} for each key, from one save per family;
        a family whose tools are missing holds none."""
        return rules.owned_rules_of_saves(self.snapshot(), keys)

    def snapshot(self, counters=False):
        """{family: iptables-save text} of every table, with [packets:bytes] before each rule when counters."""
        saves = {}
        for family in FAMILY_COMMANDS:
            save = self._binary(family, "save", required=family == 4)
            if not save:
                continue
            rc, out, err = self.host.run([save] + (["-c"] if counters else []))
            if rc != 0:
                raise EngineError("%s failed (rc=%d): %s" % (save, rc, err.strip()))
            saves[family] = out
        return saves

    render = staticmethod(rules.render)
    same = staticmethod(rules.same_rules)
    as_text = staticmethod(rules.as_text)

    def apply(self, changes, check_only=False):
        """changes: (current, desired) of each object. One restore per family with changes;
        --test in check mode verifies without committing."""
        current, desired = rules.merged(c for c, _d in changes), rules.merged(d for _c, d in changes)
        for family in FAMILY_COMMANDS:
            buffer = rules.restore_buffer(current, desired, family)
            if buffer:
                self._restore(family, buffer, check_only)

    def _restore(self, family, buffer, check_only):
        restore = self._binary(family, "restore")
        argv = [restore, "--noflush", "--wait=%s" % XTABLES_WAIT] + (["--test"] if check_only else [])
        rc, _out, err = self.host.run(argv, data=buffer)
        if rc != 0:
            tool = restore.rsplit("/", 1)[-1]
            raise EngineError("%s%s\n%s" % (writer_failure(tool, rc, err.strip()), missing_extensions_hint(self.host, family, buffer, err), buffer))

    @staticmethod
    def describe(owned):
        """Chains and rule lines of an owned ruleset, for module results."""
        chains = sorted(chain for table in owned.values() for chain in table.chains)
        lines = [line for line in rules.as_text(owned).splitlines() if line.startswith("-A ")]
        return chains, lines
