"""Run the benchmarks and write benchmarks/results/NAME.json and its report with plots.

As root, from the repository root:

    .venv/bin/python -m benchmarks.run            # up to 100 endpoints, 10-host fleet, 2 repeats: a few minutes;
                                                  # report in benchmarks/results/latest.md
    .venv/bin/python -m benchmarks.run --full     # up to 10000 endpoints, 50-host fleet, 3 repeats (about an hour);
                                                  # results/full.json and the documented docs/performance.md

Installs what it needs first: iperf3 and wrk (apt), matplotlib (benchmarks/requirements.txt,
into this venv) and the collection build (make collection). Namespaces and labs it creates are
removed by name at the end, also after a failure.
"""

import argparse
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time

from benchmarks import collection, control_plane, data_plane, fleet, machine, report

HERE = os.path.dirname(os.path.abspath(__file__))
APT_TOOLS = {"iperf3": "iperf3", "wrk": "wrk"}
# Shortest first: a failure late in the long control-plane section keeps the others.
SECTIONS = ("data", "fleet", "control")
LARGE_SIZE = "100x100"
# What a run measures unless told otherwise: small by default, the report's run with --full.
DEFAULTS = {"sizes": "2x5,10x10", "repeats": 2, "fleet_hosts": 10, "forks": "5,10", "duration": 2}
FULL = {"sizes": "2x5,10x10,25x40", "repeats": 3, "fleet_hosts": 50, "forks": "5,10,25", "duration": 5}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true",
                        help="the report's run: sizes %s plus %s, 3 repeats, loop cap 300 s, 50-host fleet, 5 s loads" % (FULL["sizes"], LARGE_SIZE))
    parser.add_argument("--sizes", help="SxB list: S services of B backends (default %s)" % DEFAULTS["sizes"])
    parser.add_argument("--large", action="store_true", help="add %s (10000 endpoints)" % LARGE_SIZE)
    parser.add_argument("--mirrors", type=int, default=2, help="M mirrors applied with the services")
    parser.add_argument("--repeats", type=int, help="default %d" % DEFAULTS["repeats"])
    parser.add_argument("--large-repeats", type=int, default=2, help="repeats at %s, where one repeat takes minutes" % LARGE_SIZE)
    parser.add_argument("--loop-max-seconds", type=float, default=40,
                        help="run the per-rule loop at a size only if one step is predicted to take at most this long")
    parser.add_argument("--loop-repeats", type=int, default=1, help="repeats of the per-rule loop (slow)")
    parser.add_argument("--fleet-hosts", type=int, help="lab hosts for the fleet run (8..54, default %d)" % DEFAULTS["fleet_hosts"])
    parser.add_argument("--forks", help="fork counts of the fleet run (default %s)" % DEFAULTS["forks"])
    parser.add_argument("--fleet-repeats", type=int, default=1)
    parser.add_argument("--duration", type=int, help="seconds of each data-plane load (default %d)" % DEFAULTS["duration"])
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections to run: %s" % ",".join(SECTIONS))
    parser.add_argument("--name", help="results file benchmarks/results/NAME.json (default latest, with --full full)")
    parser.add_argument("--no-install", action="store_true", help="skip installing tools, matplotlib and the collection")
    parser.add_argument("--into", action="store_true",
                        help="write the sections run into the results file NAME already holds, each marked with when and how "
                             "it was measured, and keep its other sections: one section of the documented run measured again")
    args = parser.parse_args(argv)
    args.name = args.name or ("full" if args.full else "latest")
    for option, value in (FULL if args.full else DEFAULTS).items():
        if getattr(args, option) is None:
            setattr(args, option, value)
    if args.full:
        args.large, args.loop_max_seconds = True, 300
    if not 8 <= args.fleet_hosts <= 54:
        parser.error("--fleet-hosts must be 8..54 (a lab has at most 49 backends plus 5 named hosts)")
    args.sizes = args.sizes.split(",") + ([LARGE_SIZE] if args.large and LARGE_SIZE not in args.sizes else [])
    args.forks = [int(forks) for forks in args.forks.split(",")]
    args.only = [section for section in args.only.split(",") if section]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        parser.error("unknown sections: %s" % ", ".join(sorted(unknown)))
    return args


# --- what the run needs ------------------------------------------------------------

def install_tools():
    missing = [package for tool, package in APT_TOOLS.items() if not shutil.which(tool)]
    if not missing:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(["apt-get", "install", "-y", "-q", *missing], env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], env=env, check=True)


def _pinned(path):
    with open(path, encoding="utf-8") as handle:
        return dict(line.strip().split("==") for line in handle if "==" in line and not line.startswith("#"))


def install_python_packages():
    requirements = os.path.join(HERE, "requirements.txt")
    try:
        satisfied = all(importlib.metadata.version(name) == version for name, version in _pinned(requirements).items())
    except importlib.metadata.PackageNotFoundError:
        satisfied = False
    if not satisfied:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", requirements], check=True)


def install_collection():
    subprocess.run(["make", "-s", "collection"], cwd=collection.REPO, check=True)


def preflight():
    if os.geteuid() != 0:
        raise SystemExit("benchmarks: run as root (network namespaces, netfilter)")
    for tool in ("ip", "iptables", "iptables-legacy", "nft", "iperf3", "wrk"):
        if not shutil.which(tool):
            raise SystemExit("benchmarks: %s is missing" % tool)


# --- the run -------------------------------------------------------------------------

def log(message):
    print(message, flush=True)


def sections(args, checkpoint):
    """(results key, what to run) for every section asked for, in order."""
    repeats = {label: (args.large_repeats if label == LARGE_SIZE else args.repeats) for label in args.sizes}
    table = {
        "control": ("control_plane", lambda: control_plane.run(args.sizes, args.mirrors, repeats, args.loop_max_seconds,
                                                               args.loop_repeats, log, lambda part: checkpoint("control_plane", part))),
        "fleet": ("fleet", lambda: fleet.run(args.fleet_hosts, args.forks, args.fleet_repeats, 1800, log)),
        "data": ("data_plane", lambda: data_plane.run(args.repeats, args.duration, log)),
    }
    return [table[name] for name in SECTIONS if name in args.only]


def save(results, path):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1)


def _with_sections_measured_apart(path):
    """The results already in path, to which this run's sections are added (each with when and
    how it was measured): the machine and the run that made the file stay as they were."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise SystemExit("benchmarks: --into needs %s from an earlier run" % path) from None


def main(argv=None):
    args = parse_args(argv)
    if not args.no_install:
        install_tools()
        install_python_packages()
        install_collection()
    preflight()
    collection.snapshot_installed_build()
    started = time.monotonic()
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", args.name + ".json")
    command = ["python", "-m", "benchmarks.run", *(argv or sys.argv[1:])]
    results = {"machine": machine.describe(), "command": command, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "section_seconds": {}}
    if args.into:
        results = _with_sections_measured_apart(path)

    # Written into another file, a section's partial results never replace the ones kept.
    partial_path = path[:-len(".json")] + "-partial.json" if args.into else path

    def checkpoint(key, partial):
        save(dict(results, **{key: partial}), partial_path)

    for key, action in sections(args, checkpoint):
        section_started = time.monotonic()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        results[key] = action()
        if args.into:
            results[key] = dict(results[key], started=stamp, command=command, seconds=time.monotonic() - section_started)
        else:
            results["section_seconds"][key] = time.monotonic() - section_started
            results["total_seconds"] = time.monotonic() - started
        save(results, path)  # a later section's failure keeps what was measured
    log("results: %s (%.0f s)" % (path, time.monotonic() - started))
    log("report: %s" % report.write(path))


if __name__ == "__main__":
    main()
