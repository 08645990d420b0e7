"""Concurrent runs and writes that die half-way, on every engine."""

import os
import stat
import threading

import pytest

from tests.integration.netfilter import ENGINES, plant_foreign, ruleset, run_module, without_counters

RUNS = 8


def balancer(index, engine):
    return {"name": "svc%d" % index, "vip": "198.18.0.%d" % (100 + index), "port": 80, "engine": engine,
            "backends": ["198.18.0.%d" % (20 + index), "198.18.0.%d" % (40 + index)]}


def run_all_at_once(netns, module, params_list):
    results = [None] * len(params_list)

    def run(index, params):
        results[index] = run_module(netns, module, params)

    threads = [threading.Thread(target=run, args=item) for item in enumerate(params_list)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def tagged_lines(netns, tag):
    return [line for line in ruleset(netns).splitlines() if '"%s"' % tag in line]


def jump_lines(netns, engine, tag):
    """Tagged jumps as the engine's own listing shows them (nft lists iptables-nft rules too): with
    nftables, the elements of the service maps."""
    lines = tagged_lines(netns, tag)
    if engine == "nftables":
        return [line for line in lines if " jump NM-" in line and not line.lstrip().startswith("-A")]
    return [line for line in lines if line.startswith("-A")]


def jumps_of_a_balancer(engine):
    """PREROUTING, OUTPUT and the masquerade's POSTROUTING; nftables: the elements of services and
    local-services (the masquerading set's elements are shared, untagged)."""
    return 2 if engine == "nftables" else 3


@pytest.mark.parametrize("engine", ENGINES)
def test_eight_runs_at_once_with_different_objects(netns, engine):
    plant_foreign(netns, engine)
    results = run_all_at_once(netns, "dnat_balancer", [balancer(i, engine) for i in range(RUNS)])
    assert all(r["rc"] == 0 and r["changed"] for r in results), results
    for index in range(RUNS):
        assert len(jump_lines(netns, engine, "netmagic:balancer:svc%d" % index)) == jumps_of_a_balancer(engine)
        assert not run_module(netns, "dnat_balancer", balancer(index, engine), check=True)["changed"]


@pytest.mark.parametrize("engine", ENGINES)
def test_eight_runs_at_once_with_the_same_object(netns, engine):
    results = run_all_at_once(netns, "dnat_balancer", [balancer(0, engine)] * RUNS)
    assert all(r["rc"] == 0 for r in results), results
    assert sum(r["changed"] for r in results) == 1, "more than one run applied the same object"
    assert len(jump_lines(netns, engine, "netmagic:balancer:svc0")) == jumps_of_a_balancer(engine)
    assert not run_module(netns, "dnat_balancer", balancer(0, engine), check=True)["changed"]


# Stand-ins for the writer that die half-way: they pass on only the first bytes of the
# change, as a writer killed mid-stream would, or kill the real writer right away.
TRUNCATING = """#!/bin/sh
case " $* " in
  *" -f "*) for last; do :; done; head -c 150 "$last" > "$last.cut"; mv "$last.cut" "$last"; exec {real} "$@" ;;
  *" --noflush "*) head -c 150 | exec {real} "$@" ;;
  *) exec {real} "$@" ;;
esac
"""
KILLING = """#!/bin/sh
case " $* " in
  *" -f "*|*" --noflush "*) {real} "$@" & pid=$!; kill -9 $pid; wait $pid; exit 137 ;;
  *) exec {real} "$@" ;;
esac
"""
WRITERS = {"iptables-nft": "iptables-nft-restore", "iptables-legacy": "iptables-legacy-restore", "nftables": "nft"}


def stand_in(directory, tool, script):
    path = os.path.join(str(directory), tool)
    with open(path, "w") as handle:
        handle.write(script.format(real="/usr/sbin/" + tool))
    os.chmod(path, stat.S_IRWXU)
    return str(directory)


@pytest.mark.parametrize("engine", list(WRITERS))
@pytest.mark.parametrize("script", [TRUNCATING, KILLING], ids=["truncated", "killed"])
def test_a_write_that_dies_half_way_leaves_all_or_nothing(netns, engine, script, tmp_path):
    plant_foreign(netns, engine)
    assert run_module(netns, "dnat_balancer", balancer(0, engine))["changed"]
    before = without_counters(ruleset(netns))
    changed = dict(balancer(0, engine), backends=["198.18.0.61", "198.18.0.62", "198.18.0.63"])
    prefix = stand_in(tmp_path, WRITERS[engine], script)
    result = run_module(netns, "dnat_balancer", changed, path_prefix=prefix)
    after = without_counters(ruleset(netns))
    complete = not run_module(netns, "dnat_balancer", changed, check=True)["changed"]
    if script is TRUNCATING:
        assert result.get("failed") and "nothing was applied" in result["msg"], result
        assert after == before, "a cut write left part of the change"
    else:
        # Killed (the stand-in exits 137): it may have committed before the signal, but only whole.
        assert result.get("failed") and "whole or not at all" in result["msg"], result
        assert after == before or complete, "a killed write left part of the change"
