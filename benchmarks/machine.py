"""What the numbers were measured on."""

import os
import platform
import subprocess
import sys


def _first_line(argv):
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "not installed"
    return (completed.stdout or completed.stderr).strip().splitlines()[0] if (completed.stdout or completed.stderr).strip() else "?"


def _cpu_model():
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _os_release():
    with open("/etc/os-release", encoding="utf-8") as release:
        fields = dict(line.rstrip("\n").split("=", 1) for line in release if "=" in line)
    return fields.get("PRETTY_NAME", "?").strip('"')


def _memory_gib():
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        total_kib = int(meminfo.readline().split()[1])
    return round(total_kib / 2**20, 1)


def describe():
    from ansible.release import __version__ as ansible_core  # the venv's, as the benchmarks use it
    return {
        "os": _os_release(),
        "kernel": platform.release(),
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": _memory_gib(),
        "load_average_at_start": os.getloadavg(),
        "python": sys.version.split()[0],
        "ansible_core": ansible_core,
        "iptables": _first_line(["iptables", "--version"]),
        "iptables_legacy": _first_line(["iptables-legacy", "--version"]),
        "nft": _first_line(["nft", "--version"]),
        "iperf3": _first_line(["iperf3", "--version"]),
        "wrk": _first_line(["wrk", "--version"]),
    }
