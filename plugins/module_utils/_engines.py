# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry of engines: every class that fills in the _engine contract, by its name.

Adding an engine is its own module and one entry in ENGINE_CLASSES (with its import); the
modules' engine option, auto selection, removal from other backends and persistence all
follow from it.
"""

from __future__ import annotations

from ansible_collections.netmagic.netfilter.plugins.module_utils._iptables_engine import IptablesLegacyEngine, IptablesNftEngine, detect_variant
from ansible_collections.netmagic.netfilter.plugins.module_utils._iptc_engine import IptcEngine
from ansible_collections.netmagic.netfilter.plugins.module_utils._nftables_engine import NftablesEngine

# In order of preference for one backend: iptables-legacy, not python-iptables, for legacy x_tables, as it needs no library.
ENGINE_CLASSES = (IptablesNftEngine, IptablesLegacyEngine, NftablesEngine, IptcEngine)
REGISTRY = {engine.name: engine for engine in ENGINE_CLASSES}
AUTO = "auto"
ENGINE_NAMES = (AUTO,) + tuple(REGISTRY)


def engine_named(host, name):
    return REGISTRY[name](host)


def select_engine(host, requested, holders=frozenset()):
    """The engine asked for; for auto, the one this host already uses: nftables when it holds a
    netmagic table or the host has no iptables, else the iptables backend that holds rules.
    holders: backends a trusted record shows holding owned rules, which need no read to tell."""
    if requested != AUTO:
        return engine_named(host, requested)
    nftables = NftablesEngine(host)
    if nftables.available() and (nftables.backend in holders or nftables.holds_tables() or not host.which("iptables")):
        return nftables
    return engine_named(host, "iptables-%s" % detect_variant(host, nft_in_use=IptablesNftEngine.backend in holders))


def other_backends(host, engine):
    """One available engine for each kernel backend other than engine's, the first listed winning."""
    found = {}
    for engine_class in ENGINE_CLASSES:
        if engine_class.backend != engine.backend and engine_class.backend not in found:
            other = engine_class(host)
            if other.available():
                found[other.backend] = other
    return list(found.values())


def persist_files():
    """(backend, file name, restore argv before the file's path) of every file persistence may write."""
    seen, files = set(), []
    for engine_class in ENGINE_CLASSES:
        if engine_class.backend not in seen:
            seen.add(engine_class.backend)
            files += [(engine_class.backend, name, argv) for name, argv in engine_class.persist_files]
    return files
