# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The record of what was last applied, kept on the host, so netfilter_info can report drift
without being given the definitions.

One JSON file per engine backend and network namespace under RECORD_DIR: {"KIND:NAME":
{"chains": [...], "rules": [...]}}, the object's rules as the engine describes them. The network
namespace is named by its cookie, which is the same for a host's own namespace at every boot and
different for each container or test namespace sharing the file system.
"""

from __future__ import annotations

import json
import os
import socket
import sys

from ansible_collections.netmagic.netfilter.plugins.module_utils._persist import write_if_changed

RECORD_DIR = "/var/lib/netmagic/netfilter"


# getsockopt(SO_NETNS_COOKIE), Linux 5.14 and later: a network namespace's 64-bit id, never reused.
SO_NETNS_COOKIE = 71


def namespace_id():
    """The network namespace's cookie (a host's own namespace gets the same one at every boot),
    or the inode of /proc/self/ns/net on older kernels."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            return "c%d" % int.from_bytes(probe.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8), sys.byteorder)
    except OSError:
        try:
            return "i%d" % os.stat("/proc/self/ns/net").st_ino
        except OSError:
            return "i0"


def record_path(backend, directory=None):
    return os.path.join(directory or RECORD_DIR, "applied-%s-%s.json" % (backend, namespace_id()))


def load(backend, directory=None):
    """{(kind, name): {"chains", "rules"}} last recorded for the backend here; {} when none (or unreadable)."""
    try:
        with open(record_path(backend, directory)) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return {tuple(key.split(":", 1)): value for key, value in data.items() if isinstance(value, dict) and ":" in key}


def update(engine, described, directory=None):
    """Records, for each (kind, name) in described, its rules (engine.describe output) or, for None,
    that it is gone. Only the canonical output of the engine's describe is written. A record left
    with no object is removed, so namespaces and hosts that no longer hold any leave no file."""
    record = load(engine.backend, directory)
    for key, value in described.items():
        if value is None:
            record.pop(key, None)
        else:
            chains, rules = value
            record[key] = {"chains": list(chains), "rules": list(rules)}
    path = record_path(engine.backend, directory)
    if not record:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True
    text = json.dumps({"%s:%s" % key: record[key] for key in sorted(record)}, indent=1, sort_keys=True) + "\n"
    return write_if_changed(path, text, check_only=False)
