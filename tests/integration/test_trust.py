"""The record trusted at the nf_tables generation, with the kernel's own counter: which programs a
run starts, and that anyone's change is read and repaired."""

import os
import stat
import sys

import pytest

from tests.integration.netfilter import in_netns, rules_of, run_module

NF_TABLES_ENGINES = ("nftables", "iptables-nft")
WEB = {"name": "web", "vip": "198.18.0.100", "port": 80, "backends": ["198.18.0.21", "198.18.0.22"]}
GENERATION = ("import sys; sys.path.insert(0, %r); "
              "from ansible_collections.netmagic.netfilter.plugins.module_utils._generation import ruleset_generation; "
              "print(ruleset_generation())")


def generation(netns):
    from tests.integration.netfilter import collections_path
    return int(in_netns(netns, [sys.executable, "-c", GENERATION % collections_path()], check=True).stdout)


def logging_tools(directory, names):
    """Stand-ins that log their arguments, then run the real tool."""
    log = os.path.join(str(directory), "ran.log")
    for name in names:
        path = os.path.join(str(directory), name)
        with open(path, "w") as handle:
            handle.write('#!/bin/sh\necho "%s $*" >> %s\nexec /usr/sbin/%s "$@"\n' % (name, log, name))
        os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
    return str(directory), log


def lines_of(netns):
    """The ruleset's lines, sorted: a chain made again is listed in another place."""
    return sorted(rules_of(netns).splitlines())


def ran(log):
    """The logged tools' runs since the last call (none: no log)."""
    try:
        with open(log) as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return []
    os.unlink(log)
    return lines


def test_the_generation_counts_commits_and_not_reads(netns):
    first = generation(netns)
    in_netns(netns, ["nft", "-f", "-"], input="add table ip counted\nadd chain ip counted c\n", check=True)
    assert generation(netns) == first + 1, "one nft transaction"
    in_netns(netns, ["iptables-nft-restore", "--noflush"], input="*nat\n:COUNTED - [0:0]\nCOMMIT\n*mangle\n:COUNTED - [0:0]\nCOMMIT\n", check=True)
    assert generation(netns) == first + 3, "iptables-nft-restore commits each table"
    in_netns(netns, ["nft", "list", "ruleset"], check=True)
    in_netns(netns, ["iptables-nft-save"], check=True)
    assert generation(netns) == first + 3, "a read moved the generation"


@pytest.mark.parametrize("engine", NF_TABLES_ENGINES)
def test_a_run_finding_the_record_trusted_reads_no_rules_and_a_change_by_hand_is_read_and_repaired(netns, engine, tmp_path):
    reader = "nft" if engine == "nftables" else "iptables-nft-save"
    prefix, log = logging_tools(tmp_path, ["nft", "iptables-nft-save", "ip6tables-nft-save"])
    assert run_module(netns, "netfilter_apply", {"engine": engine, "balancers": [WEB]}, path_prefix=prefix)["changed"]
    applied = rules_of(netns)
    ran(log)
    again = run_module(netns, "netfilter_apply", {"engine": engine, "balancers": [WEB]}, path_prefix=prefix)
    assert not again["changed"] and not [line for line in ran(log) if line.startswith(reader) and "-f" not in line.split()], \
        "a run with a trusted record read the rules"
    changed = run_module(netns, "netfilter_apply", {"engine": engine, "balancers": [dict(WEB, backends=["198.18.0.23"])]}, path_prefix=prefix)
    assert changed["changed"] and "198.18.0.23" in rules_of(netns)
    assert not [line for line in ran(log) if line.startswith(reader) and "-f" not in line.split()], "a change planned from the record read the rules"
    run_module(netns, "netfilter_apply", {"engine": engine, "balancers": [WEB]})
    assert lines_of(netns) == sorted(applied.splitlines())
    if engine == "nftables":
        in_netns(netns, ["nft", "flush", "chain", "ip", "netmagic", next(c for c in applied.split() if c.startswith("NM-SVC-"))], check=True)
    else:
        in_netns(netns, ["iptables-nft", "-t", "nat", "-F", next(c for c in applied.split() if c.startswith("NM-SEP-"))], check=True)
    repaired = run_module(netns, "netfilter_apply", {"engine": engine, "balancers": [WEB]}, path_prefix=prefix)
    assert repaired["changed"] and lines_of(netns) == sorted(applied.splitlines()), "the hand-made change was not repaired"
    assert [line for line in ran(log) if line.startswith(reader)], "after a change by hand the rules were not read"
    run_module(netns, "netfilter_apply", {"engine": engine, "balancers": [dict(WEB, state="absent")]})


def test_a_backend_without_a_table_of_its_own_is_not_listed_for_owned_rules(netns, tmp_path):
    prefix, log = logging_tools(tmp_path, ["iptables-nft-save", "ip6tables-nft-save", "iptables-legacy-save", "ip6tables-legacy-save"])
    assert run_module(netns, "netfilter_apply", {"engine": "nftables", "balancers": [WEB]}, path_prefix=prefix)["changed"]
    assert ran(log) == [], "the iptables backends, with no nat or mangle table, were listed"
    in_netns(netns, ["iptables-legacy", "-t", "nat", "-A", "PREROUTING", "-p", "udp", "--dport", "53", "-j", "ACCEPT"], check=True)
    assert not run_module(netns, "netfilter_apply", {"engine": "nftables", "balancers": [WEB]}, path_prefix=prefix)["changed"]
    assert sorted(line.split()[0] for line in ran(log)) == ["ip6tables-legacy-save", "iptables-legacy-save"], \
        "a legacy nat table was not listed, or the nf_tables one without iptables tables was"
    run_module(netns, "netfilter_apply", {"engine": "nftables", "balancers": [dict(WEB, state="absent")]})


@pytest.mark.parametrize("engine", ["iptables-legacy", "python-iptables"])
def test_legacy_runs_take_no_change_by_hand_for_the_fingerprinted_record(netns, engine):
    assert run_module(netns, "netfilter_apply", {"engine": engine, "balancers": [WEB]})["changed"]
    applied = lines_of(netns)
    for _run in range(2):
        assert not run_module(netns, "netfilter_apply", {"engine": engine, "balancers": [WEB]})["changed"]
    in_netns(netns, ["iptables-legacy", "-t", "nat", "-F", next(c for c in " ".join(applied).split() if c.startswith("NM-SEP-"))], check=True)
    repaired = run_module(netns, "netfilter_apply", {"engine": engine, "balancers": [WEB]})
    assert repaired["changed"] and lines_of(netns) == applied, "the hand-made change was not repaired"
    in_netns(netns, ["iptables-legacy", "-t", "nat", "-I", "PREROUTING", "-p", "udp", "--dport", "53", "-j", "ACCEPT"], check=True)
    assert not run_module(netns, "netfilter_apply", {"engine": engine, "balancers": [WEB]})["changed"]
    run_module(netns, "netfilter_apply", {"engine": engine, "balancers": [dict(WEB, state="absent")]})
