"""Micro-benchmark of the engines' Python, without root: render, parse, read the owned rules and
plan, at S services of B backends, for each engine, from the working tree.

Every figure is also given as a ratio to the cheapest thing the same step could do with the same
data in the same repeat (splitting the save text into lines; json.loads of the nft listing), so
a shared, noisy machine still says where the time goes:

    .venv/bin/python -m benchmarks.micro [--services 100] [--backends 100] [--repeats 5]
"""

import argparse
import dataclasses
import json
import os
import sys

from benchmarks import measure

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(REPO, ".build", "src")


def _collection():
    """The working tree as ansible_collections.netmagic.netfilter (the link the unit tests use)."""
    link = os.path.join(SOURCE, "ansible_collections", "netmagic", "netfilter")
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(REPO, link)
    sys.path.insert(0, SOURCE)
    from ansible_collections.netmagic.netfilter.plugins.module_utils import _iptables_engine, _model, _nftables_engine
    return _model, _iptables_engine, _nftables_engine


def balancers(model, services, backends):
    return {("balancer", "svc%d" % index): model.build_balancer({
        "name": "svc%d" % index, "vip": "198.18.%d.%d" % (index // 250, 1 + index % 250), "port": 80,
        "backends": ["198.19.%d.%d:8080" % (b // 250, 1 + b % 250) for b in range(backends)]}) for index in range(services)}


def iptables_steps(engine_module, objects):
    engine = engine_module.IptablesNftEngine(host=None)
    desired = {key: engine.render(obj) for key, obj in objects.items()}
    merged = engine_module.rules.merged(desired.values())
    save = {4: engine_module.rules.as_text(merged)}
    keys = list(objects)
    first = keys[0]
    changed = dict(desired)
    changed[first] = engine.render(dataclasses.replace(objects[first], port=81))

    def noop():
        snapshot = engine_module.IptablesSnapshot(save, {})
        current = snapshot.owned(keys)
        return [key for key in keys if not engine.same(current[key], desired[key])]

    def change_one():
        snapshot = engine_module.IptablesSnapshot(save, {})
        current = snapshot.owned(keys)
        return engine.plan(snapshot, {key: (current[key], changed[key]) for key in keys})

    return {
        "render": lambda: [engine.render(obj) for obj in objects.values()],
        "floor": save[4].splitlines,
        "read + compare (no-op)": noop,
        "read + plan one change": change_one,
    }


def nftables_steps(engine_module, objects):
    engine = engine_module.NftablesEngine(host=None)
    desired = {key: engine.render(obj) for key, obj in objects.items()}
    items, handle = [{"table": {"family": "ip", "name": "netmagic", "handle": 1}}], 1
    for owned in desired.values():
        rules = owned[4]
        for chain, expr in rules.jumps:
            handle += 1
            items.append({"rule": {"family": "ip", "table": "netmagic", "chain": chain, "handle": handle, "comment": rules.tag,
                                   "expr": json.loads(expr)}})
        for chain, exprs in rules.chains.items():
            items.append({"chain": {"family": "ip", "table": "netmagic", "name": chain, "handle": 0}})
            for expr in exprs:
                handle += 1
                items.append({"rule": {"family": "ip", "table": "netmagic", "chain": chain, "handle": handle, "expr": json.loads(expr)}})
    listing = json.dumps({"nftables": items})
    keys = list(objects)

    def noop():
        snapshot = engine_module.NftablesSnapshot({4: listing})
        current = snapshot.owned(keys)
        return [key for key in keys if not engine.same(current[key], desired[key])]

    return {
        "render": lambda: [engine.render(obj) for obj in objects.values()],
        "floor": lambda: json.loads(listing),
        "read + compare (no-op)": noop,
    }


def run(services, backends, repeats):
    model, iptables, nftables = _collection()
    objects = balancers(model, services, backends)
    found = {}
    for name, steps in (("iptables", iptables_steps(iptables, objects)), ("nftables", nftables_steps(nftables, objects))):
        samples = {step: [] for step in steps}
        for _repeat in range(repeats):
            for step, action in steps.items():
                samples[step].append(measure.timed(action)[0])
        found[name] = {step: {"seconds": measure.summary(values), "to_floor": measure.paired_ratios(values, samples["floor"])}
                       for step, values in samples.items()}
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--backends", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    found = run(args.services, args.backends, args.repeats)
    print("%d services x %d backends = %d endpoints, %d repeats; median seconds, and median ratio to the floor of the same repeat"
          % (args.services, args.backends, args.services * args.backends, args.repeats))
    for engine, steps in found.items():
        print("%s (floor: %s)" % (engine, "splitting the save text into lines" if engine == "iptables" else "json.loads of the listing"))
        for step, figures in steps.items():
            print("  %-24s %8.1f ms  %6.1fx" % (step, figures["seconds"]["median"] * 1000, figures["to_floor"]["median"]))


if __name__ == "__main__":
    main()
