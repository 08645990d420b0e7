"""Scratch network namespaces for control-plane runs: loopback only, removed by name."""

import contextlib
import json
import subprocess

from tests.lab.netlab import forget_records

PREFIX = "nm-bcp-"
# The mirrors' collector must be on-link (tee_mirror checks the route): a veth pair inside the
# namespace holds its network (this kernel has no dummy links). Nothing is ever sent there.
COLLECTOR_NETWORK_ADDRESS = "198.18.253.1/24"


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


@contextlib.contextmanager
def scratch(suffix):
    """A fresh namespace nm-bcp-SUFFIX with lo up and the collector's network on a link;
    deleted on leaving, also after a failure."""
    name = PREFIX + suffix
    _ip("netns", "del", name, check=False)
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "link", "add", "nmc0", "type", "veth", "peer", "name", "nmc1")
        _ip("-n", name, "addr", "add", COLLECTOR_NETWORK_ADDRESS, "dev", "nmc0")
        for link in ("nmc0", "nmc1"):
            _ip("-n", name, "link", "set", link, "up")
        yield name
    finally:
        forget_records(name)
        _ip("netns", "del", name, check=False)


def remove_leftovers():
    """Namespaces a killed run left behind (only this module's prefix)."""
    listing = json.loads(_ip("-j", "netns", "list").stdout or "[]")
    for entry in listing:
        if entry["name"].startswith(PREFIX):
            _ip("netns", "del", entry["name"], check=False)


def runner(netns, timeout=600):
    """run(argv, input_text) inside netns; raises with the tool's message when it fails."""
    def run(argv, input_text):
        completed = subprocess.run(["ip", "netns", "exec", netns, *argv], input=input_text, capture_output=True,
                                   text=True, timeout=timeout, check=False)
        if completed.returncode != 0:
            raise RuntimeError("%s failed in %s: %s" % (" ".join(argv[:2]), netns, completed.stderr.strip()[:2000]))
        return completed
    return run
