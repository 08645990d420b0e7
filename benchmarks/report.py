"""A report with plots from a results JSON written by benchmarks.run: docs/performance.md for
the full run (results/full.json), results/NAME.md and results/NAME/ for any other.

    .venv/bin/python -m benchmarks.report benchmarks/results/full.json
"""

import json
import os
import sys

from benchmarks import collection

DOCS = os.path.join(collection.REPO, "docs")
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
# The full run's report is the documented one; any other run's stays beside its results.
FULL_RUN = "full"
GOAL_FLOOR_FACTOR = 2
GOAL_LOOP_FACTOR = 100
GOAL_LARGE_ENDPOINTS = 10000
GOAL_LOOP_ENDPOINTS = 1000
# The goal names 1000 rules: 10x10 has about 250 (loop measured), 25x40 about 2100 (loop extrapolated).
GOAL_LOOP_SIZES = (100, GOAL_LOOP_ENDPOINTS)


# --- numbers as text -----------------------------------------------------------------

def seconds(stats):
    if not stats:
        return "–"
    return "%s (%s–%s)" % (_s(stats["median"]), _s(stats["min"]), _s(stats["max"]))


def _s(value):
    if value >= 100:
        return "%.0f s" % value
    if value >= 1:
        return "%.1f s" % value
    return "%.0f ms" % (value * 1000) if value >= 0.01 else "%.1f ms" % (value * 1000)


def times(stats, digits=1):
    if not stats:
        return "–"
    return "%s× (%s–%s)" % (_x(stats["median"], digits), _x(stats["min"], digits), _x(stats["max"], digits))


def _x(value, digits):
    return ("%.0f" % value) if value >= 100 else ("%%.%df" % digits) % value


def plain(stats, fmt="%.2f"):
    if not stats:
        return "–"
    return "%s (%s–%s)" % (fmt % stats["median"], fmt % stats["min"], fmt % stats["max"])


def ratios(numerator, denominator):
    """Per-repeat ratios of two summaries (paired by repeat; the shorter list decides)."""
    if not numerator or not denominator:
        return None
    values = [a / b for a, b in zip(numerator["samples"], denominator["samples"]) if b]
    if not values:
        return None
    values.sort()
    middle = len(values) // 2
    median = values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
    return {"min": values[0], "median": median, "max": values[-1], "samples": values}


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# --- control plane -----------------------------------------------------------------------

def _method_label(name, entry):
    if entry.get("extrapolated"):
        return "%s (extrapolated from %s)" % (name, entry.get("extrapolated_from", "?"))
    return name


def control_size_table(size, steps):
    rows = []
    for name, entry in size["methods"].items():
        floor = size["methods"].get(entry["floor"])
        cells = [_method_label(name, entry)]
        for step in steps:
            stats = entry["steps"].get(step)
            cell = seconds(stats)
            if entry["kind"] != "floor" and floor:
                cell += "<br>" + times(ratios(stats, floor["steps"].get(step)), 0) + " floor"
            cells.append(cell)
        rows.append(cells)
    return table(["method"] + ["%s" % step for step in steps], rows)


# Methods that run the collection's modules: one run per object, or one netfilter_apply run for all.
MODULE_KINDS = ("module", "apply")


def _module_calls(size, kind, step):
    return 1 if step == "change" or kind == "apply" else size["module_calls"]


def _startup_of(size, kind, step):
    """The start-up one module process of this kind and step pays: netfilter_apply's with the
    step's arguments where the run measured it (benchmarks/null_module.py), else the imports'."""
    startup = size["startup"]
    if kind == "apply" and "arguments" in startup:
        return startup["arguments"][step]
    return startup["module"]


def _over_budget(module, floor, calls, startup_samples):
    """Module time over 2 x floor + calls start-ups, per repeat."""
    budget = [GOAL_FLOOR_FACTOR * f + calls * s for f, s in zip(floor["samples"], startup_samples)]
    return ratios(module, {"samples": budget})


def floor_goal_rows(size, steps):
    """Module time over (2 x floor + start-up of every module process), per engine and step; and,
    the stricter reading, over a budget with the imports' start-up alone."""
    rows = []
    bare = size["startup"]["module"]
    for name, entry in size["methods"].items():
        if entry["kind"] not in MODULE_KINDS:
            continue
        floor = size["methods"][entry["floor"]]["steps"]
        for step in steps:
            module, base = entry["steps"][step], floor[step]
            calls = _module_calls(size, entry["kind"], step)
            startup = _startup_of(size, entry["kind"], step)
            versus_budget = _over_budget(module, base, calls, startup["samples"])
            beyond = {"samples": [m - calls * s for m, s in zip(module["samples"], startup["samples"])]}
            met = versus_budget["median"] <= 1
            rows.append([name, step, calls, seconds(module), seconds(base), _s(startup["median"]) + " × %d" % calls,
                         plain(versus_budget), times(ratios(beyond, base), 1), "met" if met else "missed by %.1f×" % versus_budget["median"],
                         plain(_over_budget(module, base, calls, bare["samples"]))])
    return rows


def _loop_speedup(loop, module):
    """Loop ÷ module per repeat; a loop that ran fewer times than the module is set against every module repeat."""
    if not loop or not module:
        return None
    if len(loop["samples"]) >= len(module["samples"]):
        return ratios(loop, module)
    return ratios({"samples": [loop["median"]] * len(module["samples"])}, module)


def loop_goal_rows(size):
    loop_name, loop = next((n, e) for n, e in size["methods"].items() if e["kind"] == "per-rule")
    rows = []
    for name, entry in size["methods"].items():
        if entry["kind"] not in MODULE_KINDS:
            continue
        for step in ("apply", "noop"):
            speedup = _loop_speedup(loop["steps"][step], entry["steps"][step])
            if not speedup:
                continue
            met = speedup["median"] >= GOAL_LOOP_FACTOR
            rows.append([name, step, seconds(loop["steps"][step]) + (" (extrapolated)" if loop.get("extrapolated") else ""),
                         seconds(entry["steps"][step]), times(speedup, 0),
                         "met" if met else "missed by %.2f×" % (GOAL_LOOP_FACTOR / speedup["median"])])
    return rows


def _size_with(sizes, endpoints):
    exact = [size for size in sizes if size["endpoints"] == endpoints]
    return exact[0] if exact else None


def _pyplot():
    """matplotlib, imported when a plot is drawn: benchmarks.run installs it first."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot  # pylint: disable=import-outside-toplevel
    return matplotlib.pyplot


def plot_control(control, path):
    plt = _pyplot()
    steps = control["steps"]
    figure, axes = plt.subplots(1, len(steps), figsize=(4.2 * len(steps), 5.2), sharey=True)
    names = list(control["sizes"][0]["methods"])
    # More methods than one colour cycle: the strong tab20 colours first, then their light pairs.
    palette = plt.get_cmap("tab20").colors
    colours = dict(zip(names, palette[0::2] + palette[1::2]))
    for axis, step in zip(axes, steps):
        for name in names:
            points = [(size["endpoints"], size["methods"][name]["steps"][step], size["methods"][name].get("extrapolated"))
                      for size in control["sizes"] if size["methods"][name]["steps"].get(step)]
            measured = [(x, s) for x, s, extra in points if not extra]
            style = "--" if "floor" == control["sizes"][0]["methods"][name]["kind"] else "-"
            line = None
            if measured:
                sizes = [x for x, _stats in measured]
                line = axis.plot(sizes, [s["median"] for _x, s in measured], style, marker="o", label=name, color=colours[name])[0]
                axis.fill_between(sizes, [s["min"] for _x, s in measured], [s["max"] for _x, s in measured],
                                  alpha=0.15, color=line.get_color())
            extrapolated = [(x, s) for x, s, extra in points if extra]
            if extrapolated:
                joined = measured[-1:] + extrapolated
                axis.plot([x for x, _stats in joined], [s["median"] for _x, s in joined], ":", marker="x",
                          color=colours[name], label=None if line else name + " (extrapolated)")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_title(step)
        axis.set_xlabel("endpoints (S×B)")
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("seconds (median, band = min–max)")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    figure.suptitle("Control plane: time per step vs size (dashed: floors; dotted: per-rule loop extrapolated)")
    figure.tight_layout(rect=(0, 0.12, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _measured_apart(section):
    """What a section written into the results of another run (`--into`) says of its own run."""
    if "command" not in section:
        return ""
    return " Measured on its own, from %s, in %.0f min: `%s`." % (section["started"], section["seconds"] / 60, " ".join(section["command"]))


def control_section(control, plot_name):
    steps = control["steps"]
    parts = ["## 1. Apply at scale", "",
             "Each method runs in a fresh network namespace of its own, one after the other in every repeat "
             "(repeats per size in its heading; the per-rule loop %d), through four steps: first **apply**, a **noop** run that must change "
             "nothing, a **change** of one backend of one service, and **remove** of everything. A **module** step runs the "
             "one-object modules once per object (each mirror and each service), as a playbook loop does; a **netfilter_apply** "
             "step runs that module once with every object listed (for change, the whole list with one backend changed, as an "
             "inventory-driven play does). Both with `run_module` (the module "
             "file run by the venv's Python inside the namespace, as Ansible runs it, without Ansible's per-task overhead). "
             "Cells: median (min–max) seconds, and below it the ratio to the floor of the same kernel tables, computed per "
             "repeat (both ran side by side) and summarised the same way.%s"
             % (control["loop_repeats"], _measured_apart(control)), "",
             "Engines measured (from the registry, `_engines.ENGINE_NAMES`): %s." % ", ".join("`%s`" % e for e in control["engines"]), ""]
    for size in control["sizes"]:
        startup = size["startup"]
        parts += ["### %s: %d services × %d backends + %d mirrors = %d endpoints, %d rules (%d repeats)" % (
            size["label"], size["services"], size["backends"], size["mirrors"], size["endpoints"], size["rules"], size.get("repeats", control["repeats"])), "",
            "%d runs of the one-object modules per apply or noop (netfilter_apply: 1); "
            "%d `ansible.builtin.iptables` calls per run of the loop. Python start-up "
            "inside the namespace: bare interpreter %s, module imports (interpreter + `ansible.module_utils.basic` + the "
            "collection's module_utils) %s. Module and floor left identical rulesets: %s." % (
                size["module_calls"], size["per_rule_calls"], seconds(startup["interpreter"]), seconds(startup["module"]),
                ", ".join("%s %s" % (name, "yes" if same else "**no**") for name, same in size["same_rules_as_floor"].items()) or "not compared"),
            "", control_size_table(size, steps), ""]
    parts += ["![time per step vs size, log-log](%s)" % plot_name, ""]
    parts += goals_section(control, steps)
    return parts


def goals_section(control, steps):
    parts = ["### Goals", ""]
    large = _size_with(control["sizes"], GOAL_LARGE_ENDPOINTS)
    if large:
        parts += ["**Module within %d× the floor plus Python start-up at %d endpoints** (%s), for both ways of running the modules: module time ÷ "
                  "(%d × floor + module processes × measured start-up of one module process), per repeat; ≤ 1 meets the goal. "
                  "A one-object module's start-up is its imports; netfilter_apply's is that of a module with its imports and argument "
                  "spec given the step's arguments, which returns at once (`benchmarks/null_module.py`): Ansible loads, validates and "
                  "echoes 10000 endpoints of arguments before and after any module's own work. The last column is the stricter "
                  "reading, with the imports' start-up alone. "
                  "\"beyond start-up\" is (module − start-ups) ÷ floor." % (GOAL_FLOOR_FACTOR, GOAL_LARGE_ENDPOINTS, large["label"], GOAL_FLOOR_FACTOR), "",
                  table(["engine", "step", "processes", "module", "floor", "start-up", "module ÷ budget", "beyond start-up ÷ floor", "goal",
                         "÷ budget, imports' start-up"],
                        floor_goal_rows(large, steps)), ""]
    else:
        parts += ["The %d-endpoint size was not part of this run (`--large`); the start-up goal is not evaluated." % GOAL_LARGE_ENDPOINTS, ""]
    for endpoints in GOAL_LOOP_SIZES:
        loop_size = _size_with(control["sizes"], endpoints)
        if not loop_size:
            continue
        facts = (GOAL_LOOP_FACTOR, loop_size["label"], loop_size["endpoints"], loop_size["rules"], loop_size["per_rule_calls"])
        intro = ("**At least %d× faster than the per-rule loop** at %s (%d endpoints, %d rules, %d `ansible.builtin.iptables` "
                 "calls): loop time ÷ module time; the loop ran once per size, so its time is set against each of the "
                 "module's repeats." % facts)
        parts += [intro, "",
                  table(["engine", "step", "per-rule loop", "module", "speed-up", "goal"], loop_goal_rows(loop_size)), ""]
    return parts


# --- fleet ----------------------------------------------------------------------------------

def fleet_section(fleet):
    rows = []
    for forks, runs in fleet["forks"].items():
        per_host = {name: {k: (v / fleet["hosts"] if k != "samples" else [x / fleet["hosts"] for x in v]) for k, v in runs[name].items()}
                    for name in ("first", "second")}
        ratios = ["%.1f×" % runs[name]["median"] if runs.get(name) else "-" for name in ("first_to_ping", "second_to_ping")]
        rows.append([forks, seconds(runs["first"]), seconds(per_host["first"]), seconds(runs["second"]), seconds(per_host["second"]),
                     seconds(runs["ping"]) if runs.get("ping") else "-"] + ratios)
    groups = ", ".join("%d %s" % (count, group) for group, count in fleet["groups"].items())
    return ["## 2. Fleet: playbooks/site.yml on %d lab hosts" % fleet["hosts"], "",
            "`ansible-playbook -f FORKS playbooks/site.yml` through the `netmagic.netfilter.netns` connection (pipelining on) "
            "against one lab of %d namespaces (%s; each balancer one service of three backends, each sender one HTTP mirror). "
            "Every fork count starts from a fresh lab: the first run applies everything, the second must change nothing. "
            "%d repeat(s); wall time, wall time ÷ hosts, and each run as a ratio to `ansible all -m ping` on the same "
            "hosts with the same forks, measured in the same repeat (goal for the no-change run: at most 3×)."
            % (fleet["hosts"], groups, fleet["repeats"]), "",
            table(["forks", "first run", "per host", "second run", "per host", "ping", "first ÷ ping", "second ÷ ping"], rows), ""] + (
                ["`playbooks/balance.yml` on one host with 50 services against the same host with 1 service, in the same run: "
                 "first run %.2f×, no-change run %.2f× (goal: at most 1.5×)."
                 % (fleet["services"]["first"]["median"], fleet["services"]["second"]["median"]), ""]
                if fleet.get("services") else [])


# --- data plane -------------------------------------------------------------------------------

def plot_data(mirror, path):
    plt = _pyplot()
    modes = mirror["modes"]
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    panels = [("gbps", "iperf3 TCP throughput (Gbit/s)"), ("http_p50_ms", "HTTP latency p50 (ms)"), ("http_p99_ms", "HTTP latency p99 (ms)")]
    for axis, (key, title) in zip(axes, panels):
        stats = [runs[key] for runs in modes.values()]
        medians = [s["median"] for s in stats]
        errors = [[m - s["min"] for m, s in zip(medians, stats)], [s["max"] - m for m, s in zip(medians, stats)]]
        axis.bar(list(modes), medians, yerr=errors, capsize=6, color=["#8da0cb", "#fc8d62", "#66c2a5", "#e78ac3"][:len(modes)])
        axis.set_title(title)
        axis.grid(True, axis="y", alpha=0.3)
    figure.suptitle("Data plane: sender to web, TEE mirror off, full, sampled and pooled (bars: median, whiskers: min–max)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _compare_row(label, first, second, fmt="%.2f", flip=False):
    """label, both values, and second ÷ first (first ÷ second with flip), paired by repeat."""
    ratio = ratios(first, second) if flip else ratios(second, first)
    return [label, plain(first, fmt), plain(second, fmt), times(ratio, 2)]


def data_section(data, plot_name):
    mirror, balancer, reconfiguration = data["mirror"], data["balancer"], data["reconfiguration"]
    split = ", ".join("%s %s" % (backend, plain(stats, "%.3f")) for backend, stats in balancer["split"].items())
    balancer_rows = [
        _compare_row("new connections/s", balancer["vip_per_second"], balancer["straight_per_second"], "%.0f", flip=True),
        _compare_row("latency p50, ms", balancer["vip_p50_ms"], balancer["straight_p50_ms"], flip=True),
    ]
    reconfiguration_rows = [[event, plain(values["failed"], "%.0f"), plain(values["requests"], "%.0f")]
                            for event, values in reconfiguration.items()]
    introduction = ["## 3. Data plane in the lab", "",
                    "Loads run %d s each (changes under load: %d s), %d repeats, the ways of mirroring interleaved. wrk uses one thread and "
                    "%d connections against a small asyncio server (`benchmarks/fast_httpd.py`) that answers and closes, so every "
                    "request is a new connection. Packet counts are exact kernel counters (`lab.count`)."
                    % (data["duration_seconds"], max(data["duration_seconds"] * 2, 4), data["repeats"], data["wrk_connections"]), ""]
    return introduction + mirror_section(mirror, plot_name) + [
        "### Balancer (dnat_balancer on lb, engine %s, %d backends)" % (balancer["engine"], len(balancer["backends"])), "",
        table(["", "through the VIP", "straight to %s" % balancer["backends"][0], "VIP ÷ straight"], balancer_rows), "",
        "Per-backend share of the new connections through the VIP (SYNs counted at each backend): %s. Failed requests: %s."
        % (split, plain(balancer["failed"], "%.0f")), "",
        "### Reconfiguration under load", "",
        "wrk through the VIP; halfway through, the service (3 backends) is changed with `dnat_balancer`: one backend "
        "added, one removed, or every backend replaced (order and port) in one run.", "",
        table(["change halfway", "failed requests", "requests"], reconfiguration_rows), ""] + scale_section(data.get("scale")) + \
        modes_section(data.get("modes"))


MIRROR_LABELS = {"off": "off", "full": "full", "sampled": "sampled 1 in 10", "pooled": "pooled"}


def mirror_section(mirror, plot_name):
    """The sender's traffic with each way of mirroring, and what reached the collectors."""
    modes = mirror["modes"]
    traffic = [[MIRROR_LABELS[mode], plain(runs["gbps"]), times(runs["throughput_vs_off"], 2),
                plain(runs["http_per_second"], "%.0f"), times(runs["requests_vs_off"], 2),
                plain(runs["http_p50_ms"]), times(runs["latency_p50_vs_off"], 2), plain(runs["http_p99_ms"]),
                plain(runs["http_failed"], "%.0f")] for mode, runs in modes.items()]
    clones = [[MIRROR_LABELS[mode], plain(runs["mirrored_share_iperf"], "%.4f"), plain(runs["mirrored_share_http"], "%.4f"),
               plain(runs["delivered_iperf"], "%.4f"), plain(runs["delivered_http"], "%.4f")]
              for mode, runs in modes.items() if mode != "off"]
    spread = ", ".join("%s %s" % (host, plain(stats, "%.3f")) for host, stats in modes["pooled"]["spread_http"].items())
    return ["### Mirror (tee_mirror on sender, engine %s, ports 5201 and 8080)" % mirror["engine"], "",
            "The same mirror with every connection (full), with `sample: 10` (sampled 1 in 10), and with `gateways` "
            "(pooled over %s), against no mirror, all in every repeat; iperf3 runs %d streams. The sender's own packets "
            "and the clones it sent are told apart by conntrack (clones are untracked); each collector counts what it "
            "received. Goal: at least 0.999 of the clones sent are received, in every way of mirroring.%s"
            % (", ".join(mirror["pool"]), mirror["iperf_streams"],
               " Measured on its own, from %s, with the same loads." % mirror["started"] if mirror.get("started") else ""), "",
            table(["mirror", "TCP Gbit/s", "÷ off", "HTTP requests/s", "÷ off", "HTTP p50, ms", "÷ off", "HTTP p99, ms",
                   "failed requests"], traffic), "",
            table(["mirror", "clones sent ÷ sender's packets, iperf3", "same, HTTP", "**clones received ÷ sent**, iperf3",
                   "**same, HTTP**"], clones), "",
            "Share of the HTTP clones each collector of the pool received: %s." % spread, "",
            "![throughput and latency by way of mirroring](%s)" % plot_name, ""]


def scale_section(scale):
    """Connections through one VIP with 1 and with many services on the host, per engine."""
    if not scale:
        return []
    rows = [[engine, plain(runs["one"], "%.0f"), plain(runs["many"], "%.0f"), plain(runs["many_vs_one"], "%.2f")]
            for engine, runs in scale["engines"].items()]
    return ["### Many services on the host", "",
            "New connections per second through the VIP (3 backends) with that one service on lb, and with %d services on "
            "the VIP's other ports (the same backends), applied in one `netfilter_apply` run; both loads in every repeat. "
            "nftables dispatches a new connection with one verdict-map lookup, so the number of services should not matter "
            "(goal: at least 0.9); the iptables engines match the connection against the services' jumps in nat PREROUTING "
            "one after the other, as kube-proxy's iptables mode does." % scale["services"], "",
            table(["engine", "1 service, conn/s", "%d services, conn/s" % scale["services"], "%d ÷ 1" % scale["services"]], rows), ""]


def modes_section(modes):
    """Connections through one VIP balanced in round robin and with session affinity, per engine."""
    if not modes:
        return []
    rows = [[engine, plain(runs["round robin"], "%.0f"), plain(runs["affinity"], "%.0f"), plain(runs["affinity_vs_round_robin"], "%.2f"),
             plain(runs.get("source hash"), "%.0f"), plain(runs.get("source_hash_vs_round_robin"), "%.2f")]
            for engine, runs in modes["engines"].items()]
    return ["### Session affinity and source hash", "",
            "New connections per second through the VIP (3 backends) in round robin, with `affinity: client_ip` and with "
            "`mode: source_hash`, all loads in every repeat. wrk's connections all come from one address, so with affinity "
            "every new connection finds its client in a backend's list (iptables: an `xt_recent` list; nftables: a set with "
            "timeouts) and renews it, and by source hash every one is hashed into the lookup table (nftables: `jhash` into a "
            "map; iptables: `-m bpf` programs in blocks). Either way all of them go to one backend, where round robin "
            "spreads them over three, so the rates compare the whole path through lb and the backends, not the lookups "
            "alone; a ratio at or above 1 says the lookup costs no connection rate.", "",
            table(["engine", "round robin, conn/s", "affinity, conn/s", "affinity ÷ round robin", "source hash, conn/s",
                   "source hash ÷ round robin"], rows), ""]


# --- the document ------------------------------------------------------------------------------

def _median(stats):
    return stats["median"] if stats else float("nan")


def control_headline(control):
    largest = control["sizes"][-1]
    parts = []
    for kind in MODULE_KINDS:
        for name, entry in largest["methods"].items():
            if entry["kind"] != kind:
                continue
            floor = largest["methods"][entry["floor"]]["steps"]
            parts.append("%s %s×" % (name, _x(_median(ratios(entry["steps"]["apply"], floor["apply"])), 1)))
    lines = ["- First apply at %s (%d endpoints; %d runs of the one-object modules, or one netfilter_apply run), as a "
             "multiple of the hand-written floor of the same engine: %s." % (largest["label"], largest["endpoints"], largest["module_calls"], "; ".join(parts))]
    loop_size = _size_with(control["sizes"], GOAL_LOOP_ENDPOINTS)
    if loop_size:
        loop = next(e for e in loop_size["methods"].values() if e["kind"] == "per-rule")
        module = loop_size["methods"].get("module iptables-nft")
        if module and loop["steps"]["apply"]:
            lines.append("- At %d endpoints the `ansible.builtin.iptables` loop takes %s× as long as module iptables-nft to apply%s."
                         % (loop_size["endpoints"], _x(_median(_loop_speedup(loop["steps"]["apply"], module["steps"]["apply"])), 0),
                            " (loop time extrapolated from %s)" % loop.get("extrapolated_from") if loop.get("extrapolated") else ""))
    return lines


def data_headline(data):
    mirror, balancer = data["mirror"], data["balancer"]
    modes = mirror["modes"]
    # A mode whose runs sent no clone has no delivered ratio.
    delivered = [runs[key]["min"] for mode, runs in modes.items() if mode != "off" for key in ("delivered_iperf", "delivered_http") if runs[key]]
    failures = sum(values["failed"]["max"] for values in data["reconfiguration"].values())
    return [
        "- Mirror ÷ no mirror, TCP throughput: %s; clones received ÷ clones sent: %s (lowest of any run)."
        % ("; ".join("%s %s×" % (MIRROR_LABELS[mode], _x(_median(runs["throughput_vs_off"]), 2)) for mode, runs in modes.items() if mode != "off"),
           "%.4f" % min(delivered) if delivered else "none sent"),
        "- New connections per second through the VIP ÷ straight to one backend: %s×; split over the backends: %s."
        % (_x(_median(balancer["vip_vs_straight"]), 2), " / ".join("%.3f" % _median(stats) for stats in balancer["split"].values())),
        "- Requests failed while backends were added, removed or all replaced under load: %d at most in any run." % failures,
    ]


def headline(results):
    lines = []
    if "control_plane" in results:
        lines += control_headline(results["control_plane"])
    if "fleet" in results:
        fleet = results["fleet"]
        best = min(fleet["forks"].items(), key=lambda item: _median(item[1]["first"]))
        lines.append("- %d hosts with site.yml: fastest with %s forks, %s per host on the first run."
                     % (fleet["hosts"], best[0], _s(_median(best[1]["first"]) / fleet["hosts"])))
    if "data_plane" in results:
        lines += data_headline(results["data_plane"])
    return ["## Headline (medians; details and spreads below)", ""] + lines + [""]


def machine_section(results):
    info = results["machine"]
    rows = [[key, value if not isinstance(value, list) else ", ".join("%.2f" % v for v in value)] for key, value in info.items()]
    minutes = results["total_seconds"] / 60
    return ["## Machine and run", "", table(["", ""], rows), "",
            "Command: `%s`, started %s, took %.0f min (%s)." % (
                " ".join(results["command"]), results["started"], minutes,
                ", ".join("%s %.0f min" % (name, value / 60) for name, value in results["section_seconds"].items())), "",
            "The machine is shared: other work ran beside this run, which is why every figure is a ratio of methods "
            "measured side by side in the same repeat, with its spread.", ""]


def destination(results_path):
    """(report path, plot directory, plot directory as the report links it) of a results file."""
    name = os.path.splitext(os.path.basename(results_path))[0]
    if name == FULL_RUN:
        return os.path.join(DOCS, "performance.md"), os.path.join(DOCS, "performance"), "performance"
    return os.path.join(RESULTS, name + ".md"), os.path.join(RESULTS, name), name


def write(results_path):
    with open(results_path, encoding="utf-8") as handle:
        results = json.load(handle)
    report, plots, link = destination(results_path)
    os.makedirs(plots, exist_ok=True)
    parts = ["# Performance", "",
             "Written by `benchmarks/report.py` from `%s`; regenerate with `.venv/bin/python -m benchmarks.report %s`, "
             "or measure again with `.venv/bin/python -m benchmarks.run --full` (as root)." % (
                 os.path.relpath(results_path, collection.REPO), os.path.relpath(results_path, collection.REPO)), ""]
    parts += headline(results)
    parts += machine_section(results)
    if "control_plane" in results:
        plot_control(results["control_plane"], os.path.join(plots, "control-plane.png"))
        parts += control_section(results["control_plane"], link + "/control-plane.png")
    if "fleet" in results:
        parts += fleet_section(results["fleet"])
    if "data_plane" in results:
        plot_data(results["data_plane"]["mirror"], os.path.join(plots, "mirror.png"))
        parts += data_section(results["data_plane"], link + "/mirror.png")
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notes.md")
    with open(notes, encoding="utf-8") as handle:
        parts += [handle.read()]
    with open(report, "w", encoding="utf-8") as handle:
        handle.write("\n".join(parts).rstrip() + "\n")
    return report


if __name__ == "__main__":
    print(write(sys.argv[1] if len(sys.argv) > 1 else os.path.join(RESULTS, "latest.json")))
