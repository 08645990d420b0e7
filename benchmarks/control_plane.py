"""Apply at scale: the collection's modules per engine, the floors, and the per-rule loop.

For each size every method runs in a fresh namespace of its own, one after the other in
each repeat, through four steps: first apply, a run that changes nothing, a change of one
backend of one service, and removal of everything.
"""

import json
import os
import statistics
import sys
import tempfile

from benchmarks import collection, floors, measure, netns, per_rule
from benchmarks.workload import Workload

STEPS = ("apply", "noop", "change", "remove")
STARTUP_LAUNCHES = 5
# Seconds per module call of ansible.builtin.iptables assumed before any was measured.
FIRST_GUESS_PER_CALL = 0.3

sys.path.insert(0, collection.REPO)
from tests.integration.netfilter import in_netns, run_module  # noqa: E402 - needs the repo on the path


# --- the methods -----------------------------------------------------------------

def _module_call(namespace, module, args, engine, expect_changed):
    result = run_module(namespace, module, dict(args, engine=engine))
    if result.get("rc") or result.get("failed") or result.get("changed") != expect_changed:
        raise RuntimeError("%s %s (%s): expected changed=%s, got %s" % (module, args.get("name", ""), engine, expect_changed, result))


def module_steps(engine):
    """Each step is what a user's playbook does: one module run per mirror and per service."""
    def apply(namespace, workload, expect_changed=True):
        for module, args in workload.module_calls():
            _module_call(namespace, module, args, engine, expect_changed)

    def remove(namespace, workload):
        for module, args in workload.module_calls():
            _module_call(namespace, module, {"name": args["name"], "state": "absent"}, engine, True)

    return {
        "apply": apply,
        "noop": lambda namespace, workload: apply(namespace, workload, expect_changed=False),
        "change": lambda namespace, workload: _module_call(namespace, "dnat_balancer", workload.changed_service_args(), engine, True),
        "remove": remove,
    }


def apply_steps(engine):
    """Each step is one netfilter_apply run with every object listed, as an inventory-driven play does."""
    def step(expect_changed, **listing):
        return lambda namespace, workload: _module_call(namespace, "netfilter_apply", workload.listed_args(**listing), engine, expect_changed)

    return {"apply": step(True), "noop": step(False), "change": step(True, changed=True), "remove": step(True, state="absent")}


def floor_steps(name):
    steps = floors.FLOORS[name]
    return {step: (lambda namespace, workload, fn=fn: fn(netns.runner(namespace), workload)) for step, fn in steps.items()}


def per_rule_steps(timeout):
    return {step: (lambda namespace, workload, step=step: per_rule.run_step(namespace, workload, step, timeout)) for step in STEPS}


def methods(loop_timeout):
    """name -> (kind, steps, floor it is compared with)."""
    table = {"module " + engine: ("module", module_steps(engine), floors.floor_of(engine)) for engine in collection.engines()}
    table.update({"netfilter_apply " + engine: ("apply", apply_steps(engine), floors.floor_of(engine)) for engine in collection.engines()})
    table.update({name: ("floor", floor_steps(name), name) for name in floors.FLOORS})
    table["ansible.builtin.iptables per rule"] = ("per-rule", per_rule_steps(loop_timeout), "iptables-nft-restore")
    return table


# --- one trial ---------------------------------------------------------------------

def normalized_rules(namespace, variant):
    """The ruleset as a sorted list of rule lines: order of jumps in built-in chains aside, what the kernel holds."""
    saved = in_netns(namespace, ["iptables-%s-save" % variant], check=True).stdout
    return sorted(line for line in saved.splitlines() if line.startswith("-A "))


def trial(number, steps, workload, want_rules=None):
    """All steps in a fresh namespace; seconds per step (and the rules after apply, if asked)."""
    seconds, rules = {}, None
    with netns.scratch("m%d" % number) as namespace:
        for step in STEPS:
            seconds[step] = measure.timed(lambda: steps[step](namespace, workload))[0]
            if step == "apply" and want_rules:
                rules = normalized_rules(namespace, want_rules)
    return seconds, rules


NULL_MODULE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "null_module.py")


def startup_trial(workload):
    """Median launch times, in a namespace like a module run: a bare interpreter, a module's
    imports, and netfilter_apply's start-up with each step's arguments (benchmarks/null_module.py:
    Ansible's handling of 10,000 endpoints of arguments is part of starting that module)."""
    imports = "import ansible.module_utils.basic, ansible_collections.netmagic.netfilter.plugins.module_utils._reconcile"
    env = {"PYTHONPATH": collection.COLLECTIONS, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    with netns.scratch("startup") as namespace:
        def launch(argv):
            return statistics.median(measure.timed(lambda: in_netns(namespace, [sys.executable, *argv], env=env, check=True))[0]
                                     for _launch in range(STARTUP_LAUNCHES))

        def with_arguments(listing):
            with tempfile.NamedTemporaryFile("w", suffix=".json") as handle:
                json.dump({"ANSIBLE_MODULE_ARGS": dict(workload.listed_args(**listing), _ansible_check_mode=False)}, handle)
                handle.flush()
                return launch([NULL_MODULE, handle.name])

        listed = with_arguments({})
        arguments = {"apply": listed, "noop": listed, "change": with_arguments({"changed": True}), "remove": with_arguments({"state": "absent"})}
        return {"interpreter": launch(["-c", "pass"]), "module": launch(["-c", imports]), "arguments": arguments}


# --- one size ------------------------------------------------------------------------

def _variant_of_floor(floor):
    return floor.split("-")[1] if floor.startswith("iptables-") else None


def _loop_prediction(workload, per_call):
    return per_rule.calls(workload) * per_call


def measure_size(workload, table, repeats, loop_state, log):
    """Every method, repeats times, side by side. loop_state carries the per-rule rate between sizes."""
    samples = {name: {step: [] for step in STEPS} for name in table}
    startup = {"interpreter": [], "module": [], "arguments": {step: [] for step in STEPS}}
    rules = {}
    loop_name = next(name for name, (kind, _s, _f) in table.items() if kind == "per-rule")
    run_loop = _loop_prediction(workload, loop_state["per_call"]) <= loop_state["cap"]
    for repeat in range(repeats):
        launched = startup_trial(workload)
        for key in ("interpreter", "module"):
            startup[key].append(launched[key])
        for step in STEPS:
            startup["arguments"][step].append(launched["arguments"][step])
        for number, (name, (kind, steps, floor)) in enumerate(table.items()):
            if kind == "per-rule" and (not run_loop or repeat >= loop_state["repeats"]):
                continue
            variant = _variant_of_floor(floor) if repeat == 0 and kind in ("module", "apply", "floor") else None
            seconds, saved = trial(number, steps, workload, want_rules=variant)
            if saved is not None:
                rules[name] = saved
            for step, value in seconds.items():
                samples[name][step].append(value)
            log("  %s %s repeat %d: %s" % (workload.label, name, repeat + 1, " ".join("%s %.2fs" % kv for kv in seconds.items())))
    result = {name: {"kind": kind, "floor": floor, "extrapolated": False,
                     "steps": {step: measure.summary(values) for step, values in samples[name].items()}}
              for name, (kind, _steps, floor) in table.items()}
    if run_loop:
        loop_state["per_call"] = result[loop_name]["steps"]["apply"]["median"] / per_rule.calls(workload)
        loop_state["measured"] = (workload, result[loop_name]["steps"])
    else:
        result[loop_name] = _extrapolated_loop(workload, loop_state, result[loop_name])
    summaries = {key: measure.summary(startup[key]) for key in ("interpreter", "module")}
    summaries["arguments"] = {step: measure.summary(values) for step, values in startup["arguments"].items()}
    return result, summaries, _same_rules(table, rules)


def _extrapolated_loop(workload, loop_state, entry):
    """Per-rule time grows with the number of module calls: scale the largest measured size."""
    measured_workload, measured_steps = loop_state.get("measured", (None, None))
    if measured_workload is None:
        return dict(entry, steps={step: None for step in STEPS}, extrapolated=True)
    factor = per_rule.calls(workload) / per_rule.calls(measured_workload)
    return dict(entry, extrapolated=True, extrapolated_from=measured_workload.label,
                steps={step: measure.scaled(stats, factor) for step, stats in measured_steps.items()})


def _same_rules(table, rules):
    """Did each module engine leave exactly the rules its iptables floor wrote?"""
    return {name: rules[name] == rules[floor] for name, (kind, _s, floor) in table.items()
            if kind in ("module", "apply") and name in rules and floor in rules}


def run(sizes, mirrors, repeats, loop_cap, loop_repeats, log, checkpoint):
    """repeats: {size label: repeats}; checkpoint(partial result) after each size."""
    collection.use_installed_build()
    netns.remove_leftovers()
    table = methods(loop_timeout=max(loop_cap * 3, 600))
    loop_state = {"per_call": FIRST_GUESS_PER_CALL, "cap": loop_cap, "repeats": loop_repeats}
    results = []
    for label in sizes:
        workload = Workload.parse(label, mirrors)
        log("control plane %s: %d endpoints, %d rules, %d module runs per apply"
            % (workload.label, workload.endpoints, workload.rule_count(), len(workload.module_calls())))
        by_method, startup, same = measure_size(workload, table, repeats[label], loop_state, log)
        results.append({
            "label": workload.label, "services": workload.services, "backends": workload.backends,
            "mirrors": workload.mirrors, "endpoints": workload.endpoints, "rules": workload.rule_count(),
            "module_calls": len(workload.module_calls()), "per_rule_calls": per_rule.calls(workload), "repeats": repeats[label],
            "methods": by_method, "startup": startup, "same_rules_as_floor": same,
        })
        checkpoint(_section(results, repeats, loop_cap, loop_repeats))
    return _section(results, repeats, loop_cap, loop_repeats)


def _section(results, repeats, loop_cap, loop_repeats):
    return {"engines": collection.engines(), "steps": list(STEPS), "repeats": max(repeats.values()),
            "loop_cap_seconds": loop_cap, "loop_repeats": loop_repeats, "sizes": results}
