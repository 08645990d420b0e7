"""The engine contract: every registered engine fills in all of it (as kube-proxy asserts its
interfaces at compile time), and nothing outside the engines knows an engine by name."""

import inspect
import pathlib
import re

import pytest

from ansible_collections.netmagic.netfilter.plugins.module_utils import _engine, _engines

MODULE_UTILS = pathlib.Path(_engine.__file__).parent
ENGINE_MODULES = {"_engines.py", "_engine.py", "_iptables_engine.py", "_iptables_rules.py", "_iptc_engine.py", "_nftables_engine.py"}


def abstract_names(contract):
    return {name for name, member in inspect.getmembers(contract) if getattr(member, "__isabstractmethod__", False)}


@pytest.mark.parametrize("engine_class", _engines.ENGINE_CLASSES, ids=lambda engine_class: engine_class.name)
def test_every_registered_engine_implements_every_method(engine_class):
    engine = engine_class(host=None)  # raises TypeError while any abstract method is left
    assert isinstance(engine, _engine.Engine)
    assert abstract_names(engine_class) == set()
    assert engine.name in _engines.REGISTRY and engine.backend and engine.persist_files


class EmptyHost:
    """A host with every tool, whose rulesets are empty."""

    @staticmethod
    def which(name):
        return "/usr/sbin/" + name

    @staticmethod
    def read(argv):
        if argv[0].endswith("/nft"):
            return 1, "", "Error: No such file or directory\n"  # as nft answers for a table that is not there
        return 0, "", ""

    run = read


@pytest.mark.parametrize("engine_class", _engines.ENGINE_CLASSES, ids=lambda engine_class: engine_class.name)
def test_every_engine_reads_a_complete_snapshot(engine_class):
    snapshot = engine_class(EmptyHost()).read()
    assert isinstance(snapshot, _engine.Snapshot) and abstract_names(type(snapshot)) == set()
    assert snapshot.claims == {} and snapshot.owned([("mirror", "http")]) == {("mirror", "http"): {}}
    assert snapshot.live().rules == []


def test_an_incomplete_engine_cannot_be_made():
    class Incomplete(_engine.Engine):
        name = "incomplete"

        def available(self):
            return True

    with pytest.raises(TypeError, match="abstract"):
        Incomplete(host=None)  # pylint: disable=abstract-class-instantiated


def test_names_are_unique_and_auto_is_not_one():
    names = [engine_class.name for engine_class in _engines.ENGINE_CLASSES]
    assert len(set(names)) == len(names) and _engines.AUTO not in names
    assert _engines.ENGINE_NAMES == (_engines.AUTO,) + tuple(names)


@pytest.mark.parametrize("path", sorted(p for p in MODULE_UTILS.glob("_*.py") if p.name not in ENGINE_MODULES), ids=lambda p: p.name)
def test_no_code_outside_the_engines_branches_on_an_engine(path):
    source = path.read_text()
    names = "|".join(re.escape(name) for name in list(_engines.REGISTRY) + ["xtables-nft", "xtables-legacy"])
    assert not re.findall(r"""(?:==|!=|\bin)\s*\(?\s*["'](?:%s)["']""" % names, source)
    assert not re.findall(r"""\.(?:backend|name)\s*(?:==|!=)""", source)


class TablesHost:
    """A host whose nf_tables tables and legacy x_tables table names are given (None: it cannot tell)."""

    def __init__(self, tables, legacy_names):
        self.tables, self.legacy_names = tables, legacy_names

    def ruleset_tables(self):
        return self.tables

    def read_text(self, path):
        return self.legacy_names if path.endswith("_tables_names") else None


# (nf_tables tables, legacy names): {engine: whether it holds nothing}
HOLDS_NOTHING = [
    pytest.param(set(), "", {"iptables-nft": True, "iptables-legacy": True, "nftables": True, "python-iptables": True}, id="no table anywhere"),
    pytest.param({("ip", "nat")}, "filter\n", {"iptables-nft": False, "iptables-legacy": True, "nftables": True, "python-iptables": True},
                 id="an iptables-nft nat table, a legacy filter table"),
    pytest.param({("ip6", "netmagic"), ("inet", "nat")}, "mangle\n", {"iptables-nft": True, "iptables-legacy": False, "nftables": False,
                                                                      "python-iptables": False}, id="the netmagic table, a legacy mangle table"),
    pytest.param(None, None, {"iptables-nft": False, "iptables-legacy": False, "nftables": False, "python-iptables": False}, id="cannot tell"),
]


@pytest.mark.parametrize("tables, legacy_names, expected", HOLDS_NOTHING)
def test_an_engine_holds_nothing_only_without_a_table_it_writes(tables, legacy_names, expected):
    host = TablesHost(tables, legacy_names)
    assert {name: engine_class(host).holds_nothing() for name, engine_class in _engines.REGISTRY.items()} == expected
