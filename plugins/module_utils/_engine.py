# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The contract every engine fills in, and the data it hands to the engine-independent code.

An engine owns one way of writing netfilter rules (a restore tool, nft, a library). The pipeline
(_reconcile), the report (_info) and persistence (_persist) use engines only through this
contract, so none of them knows any engine's format; _engines lists the engines.

Owned rules of one object are the engine's own value ({scope: rules}), compared with same(),
shown with as_text() and describe(). One read gives a Snapshot; from it come the owned rules of
any objects, the services already claimed on the host, what netfilter_info reports and what
persistence saves. Where a record is trusted at the ruleset's current generation (or, without
one, its fingerprint), a RecordedState stands in for the read. A plan is the engine's checked input for one atomic write.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LiveRule:
    """One rule in an owned chain, or one tagged jump; scope is (family, table)."""

    scope: tuple
    chain: str
    text: str
    packets: int = None
    bytes: int = None
    owner: tuple = None  # (kind, name) of a tagged jump
    targets: tuple = ()  # owned chains it jumps to
    foreign: bool = False  # a rule of someone else's that jumps into an owned chain
    returns: bool = False  # its verdict is return: it leaves the chain (a mirror's exclusion)


def live_rule(scope, chain, text, counts, owner, targets, owned_chain, returns=False):
    """The LiveRule of a rule in an owned chain or a tagged jump; a jump of someone else's into an
    owned chain as foreign; None for any other rule. counts: (packets, bytes), None where unknown."""
    packets, octets = counts
    if not owner and not owned_chain:
        return LiveRule(scope, chain, text, packets, octets, targets=targets, foreign=True) if targets else None
    return LiveRule(scope, chain, text, packets, octets, owner, targets, returns=returns)


@dataclass
class Live:
    """The owned part of a host's ruleset: owned chain names per scope, their rules and the tagged jumps.

    counters: whether the rules' packet and byte counts are known."""

    chains: dict = field(default_factory=dict)
    rules: list = field(default_factory=list)
    counters: bool = True


class RuleState(abc.ABC):
    """What the pipeline needs to know of the owned rules on a host before it plans a change."""

    @property
    @abc.abstractmethod
    def claims(self):
        """{(kind, name): set of service signatures} of every object with a tagged jump on the host."""

    @abc.abstractmethod
    def owned(self, keys):
        """{(kind, name): owned rules} of each key; empty owned rules for an object the host lacks."""


class Snapshot(RuleState):
    """One read of the host's rules of one engine, parsed once."""

    @abc.abstractmethod
    def holds_only(self, owned):
        """Whether owned ({key: owned rules}, as owned() gave them) is all that the engine's owned
        tables and chains hold, with no rule of anyone else's among them or jumping into them:
        then a record of these objects tells the whole state."""

    @abc.abstractmethod
    def live(self):
        """Live: every owned chain and rule, with counters when the read asked for them."""

    @abc.abstractmethod
    def persisted(self):
        """{file name: text} of the owned rules, for the engine's restore tool at boot."""


class RecordedState(RuleState):
    """The owned rules as a trusted record says the host holds them: nothing is read. recorded:
    {(kind, name): {"definition", "signatures"}}; rebuild(kind, definition) validates a
    definition again (it comes from a file), only for the objects a change needs."""

    def __init__(self, engine, recorded, rebuild):
        self.engine = engine
        self.recorded = recorded
        self.rebuild = rebuild
        self._rendered = {}

    @property
    def claims(self):
        return {key: set(entry["signatures"]) for key, entry in self.recorded.items()}

    def owned(self, keys):
        return {key: self._render(key) for key in keys}

    def can_plan(self, changes):
        """Whether the engine's plan of changes ({key: (current, desired)}) needs nothing a read
        alone gives; when not, the run reads the rules after all. The base's engines plan from
        the rules before and after alone."""
        return True

    def clearing_plan(self):
        """The plan that removes every recorded object at once, without their rules, or None
        where the engine removes object by object (the base's engines: their chains sit among
        everyone's in shared tables)."""
        return None

    def _render(self, key):
        if key not in self._rendered:
            entry = self.recorded.get(key)
            self._rendered[key] = self.engine.render(self.rebuild(key[0], entry["definition"])) if entry else {}
        return self._rendered[key]


class Engine(abc.ABC):
    """One engine. name is the engine option's value; backend names the kernel tables it writes
    (engines with one backend see the same rules); persist_files lists, per file persistence may
    write, (file name, the restore command's argv before the file's path)."""

    name = None
    backend = None
    persist_files = ()

    def __init__(self, host):
        self.host = host

    @abc.abstractmethod
    def available(self):
        """Whether the host has what the engine needs to run."""

    @abc.abstractmethod
    def holds_nothing(self):
        """Whether a look that lists no rules shows the host without any table this engine writes
        rules in, so it holds no owned rules; False where it may hold some or cannot tell."""

    @abc.abstractmethod
    def read(self, counters=False):
        """Snapshot of the host's rules (with packet counters when asked)."""

    @abc.abstractmethod
    def recorded_state(self, recorded, rebuild):
        """The RecordedState a plan of this engine can be made from, for a record trusted at the
        current generation (see RecordedState)."""

    @staticmethod
    @abc.abstractmethod
    def render(obj):
        """The owned rules a validated model object should have."""

    @staticmethod
    @abc.abstractmethod
    def same(current, desired):
        """Whether two owned rules are the same rules."""

    @staticmethod
    @abc.abstractmethod
    def signatures(owned):
        """The service signatures of owned rules: two balancers sharing one claim the same service."""

    @abc.abstractmethod
    def plan(self, snapshot, changes):
        """The checked input of one write turning each object of changes ({key: (current,
        desired)}) into its desired rules, leaving every other object of the snapshot as it is;
        falsy when there is nothing to write."""

    @abc.abstractmethod
    def apply(self, plan, check_only=False):
        """Writes the plan in one atomic change, or only tests it (check_only)."""

    @abc.abstractmethod
    def generation(self):
        """The kernel's generation of the ruleset this engine writes (it advances at every change
        of that ruleset by anyone), or None where the backend has none."""

    @abc.abstractmethod
    def fingerprint(self):
        """For a backend without a generation, a digest of the whole ruleset this engine writes
        (equal digests, equal rules; packet counters aside), from the read a run makes anyway;
        None where the backend has a generation."""

    @staticmethod
    @abc.abstractmethod
    def commits(plan):
        """By how much apply(plan) advances the generation."""

    @staticmethod
    @abc.abstractmethod
    def as_text(owned):
        """Owned rules as text, for diffs."""

    @staticmethod
    @abc.abstractmethod
    def describe(owned):
        """(chain names, rule lines) of owned rules, for results, drift and the record."""
