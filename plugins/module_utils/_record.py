# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The record of what was last applied, kept on the host, so netfilter_info can report drift
without being given the definitions, and a run that changes nothing need not read the rules.

One JSON file per engine backend and network namespace under RECORD_DIR: {"KIND:NAME":
{"digest": ..., "definition": {...}, "signatures": [...], "input": ...}}, the object's validated
definition (whose rendering is its rules) and that definition's digest, the services it claims,
the digest of the input it was built from, and under "trust" the nf_tables generation, or for legacy
x_tables a fingerprint of the ruleset (with the boot and the code that rendered it), at which
every owned object on the host held exactly its recorded rules. The network namespace is named by its cookie, which is the same
for a host's own namespace at every boot and different for each container or test namespace
sharing the file system.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import os
import re
import socket
import sys
from dataclasses import dataclass, field

from ansible_collections.netmagic.netfilter.plugins.module_utils._model import Recalled
from ansible_collections.netmagic.netfilter.plugins.module_utils._persist import write_if_changed
from ansible_collections.netmagic.netfilter.plugins.module_utils._tunnel import device_vni

RECORD_DIR = "/var/lib/netmagic/netfilter"
TRUST = "trust"
CODE = "code"
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
BOOT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DIGEST = re.compile(r"[0-9a-f]{64}")
PACKAGE = "ansible_collections.netmagic.netfilter.plugins.module_utils."
# The code that turns a definition into rules: a record made by other code is not trusted.
RENDERING_MODULES = ("_model", "_naming", "_iptables_rules", "_iptables_engine", "_nftables_engine", "_iptc_engine", "_engine",
                     "_reconcile", "_record")


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


@functools.lru_cache(maxsize=1)
def code_digest():
    """A digest of the source of the modules that render, plan and record (once per run); None
    where a loader cannot give the source."""
    digest = hashlib.sha256()
    for name in RENDERING_MODULES:
        module = sys.modules.get(PACKAGE + name)
        loader = getattr(module, "__loader__", None)
        try:
            source = loader.get_source(PACKAGE + name)
        except (AttributeError, ImportError, OSError):
            source = None
        if source is None:
            return None
        digest.update(("%s\0%s\0" % (name, source)).encode())
    return digest.hexdigest()


def tunnel_devices(interfaces=socket.if_nameindex):
    """["NAME:INDEX"] of the collection's tunnel devices in this network namespace. An nftables
    mirror through one holds the device's index, not its name: once the device is made again,
    under a new index, no clone leaves, and only a run that reads the rules sees it."""
    try:
        found = interfaces()
    except OSError:
        return None
    return sorted("%s:%d" % (name, index) for index, name in found if device_vni(name) is not None)


def trust_now(host, engine, fingerprint=True):
    """What a record made now would be trusted at: the engine's ruleset generation (or, for a
    backend without one, its fingerprint, unless not asked for), this boot, this code and the
    collection's tunnel devices, where there are any; None where there is neither."""
    generation = engine.generation()
    if generation is not None:
        mark = {"generation": int(generation)}
    else:
        found = engine.fingerprint() if fingerprint else None
        mark = {"fingerprint": found} if found and DIGEST.fullmatch(found) else None
    boot = (host.read_text(BOOT_ID_PATH) or "").strip()
    code = code_digest()
    devices = tunnel_devices()
    if mark is None or not BOOT_ID.fullmatch(boot) or code is None or devices is None:
        return None
    return dict(mark, boot=boot, code=code, **({"devices": devices} if devices else {}))


@dataclass
class Record:
    """objects: {(kind, name): {"digest", "definition", "signatures", "input"}}; code:
    the code_digest of the code that described them; trust: {"generation", "boot", "code"} or None."""

    objects: dict = field(default_factory=dict)
    code: str = None
    trust: dict = None
    texts: dict = field(default_factory=dict, compare=False, repr=False)  # {(kind, name): the entry's JSON text as written}

    def trusted_at(self, trust):
        """Whether every owned object held its recorded rules at trust (the same generation, boot and code)."""
        return trust is not None and self.trust == trust

    def digest(self, key):
        return self.objects.get(key, {}).get("digest")

    def input(self, key):
        return self.objects.get(key, {}).get("input")


def read(backend, directory=None):
    """The Record of the backend here; an empty one when there is none (or it cannot be read)."""
    return _read_path(record_path(backend, directory))


# path -> (the file's identity and size and time of change, its Record): a run reads each record once.
_READ = {}


def _read_path(path):
    try:
        status = os.stat(path)
    except OSError:
        return Record()
    identity = (status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)
    if path in _READ and _READ[path][0] == identity:
        return _READ[path][1]
    try:
        with open(path) as handle:
            data, texts = _parsed(handle.read())
    except (OSError, ValueError):
        return Record()
    if not isinstance(data, dict):
        return Record()
    objects = {tuple(key.split(":", 1)): value for key, value in data.items() if isinstance(value, dict) and ":" in key}
    trust = data.get(TRUST)
    texts = {tuple(key.split(":", 1)): text for key, text in texts.items() if tuple(key.split(":", 1)) in objects}
    found = Record(objects, data.get(CODE), trust if isinstance(trust, dict) else None, texts)
    _READ[path] = (identity, found)
    return found


def _parsed(text):
    """(the record's data, {name: its value's JSON text}) of a record as update writes it, one
    entry per line, so that a later update writes the entries it does not change as they were;
    any other JSON object gives its data and no texts."""
    if text.startswith("{\n") and text.endswith("\n}\n"):
        data, texts = {}, {}
        try:
            # json.dumps escapes every line break, so only the separators break lines.
            for line in text[2:-3].split(",\n"):
                name, separator, value = line.partition(": ")
                name = json.loads(name)
                if not separator or not isinstance(name, str):
                    raise ValueError(line)
                data[name], texts[name] = json.loads(value), value
            return data, texts
        except ValueError:
            pass
    return json.loads(text), {}


def namespace_records(directory=None):
    """The record files of this network namespace, one per backend that wrote one."""
    return sorted(glob.glob(os.path.join(glob.escape(directory or RECORD_DIR), "applied-*-%s.json" % namespace_id())))


def recalled_definitions(directory=None):
    """{(kind, name, input digest): Recalled} of the definitions that any record here, made by
    this code, holds with the digest of the input they were built from: a run given the same
    input again need not validate it again (its object would be the same)."""
    code = code_digest()
    recalled = {}
    for path in namespace_records(directory):
        found = _read_path(path)
        if code is None or found.code != code:
            continue
        for (kind, name), entry in found.objects.items():
            canonical = entry.get("definition")
            if isinstance(canonical, dict) and canonical.get("name") == name and entry.get("input") and entry.get("digest"):
                try:
                    recalled[(kind, name, entry["input"])] = Recalled(kind, canonical, entry["digest"])
                except KeyError:
                    continue
    return recalled


def load(backend, directory=None):
    """{(kind, name): {"digest", "definition", ...}} last recorded for the backend here; {} when none."""
    return read(backend, directory).objects


def update(backend, entries, directory=None, trust=None, record=None):
    """Records, for each (kind, name) in entries, its entry ({"digest", "definition",
    "signatures", "input"}) or, for None, that it is gone; trust is the state the whole
    record now holds at, or None. Only canonical values are written: the engine's
    signatures, hex digests, validated definitions, an int and the kernel's boot id
    as its pattern allows. A record left with no object is removed, so namespaces and hosts that
    no longer hold any leave no file. record: the Record read earlier in the same run."""
    record = record or read(backend, directory)
    objects = dict(record.objects)
    texts = {key: text for key, text in record.texts.items() if key not in entries}
    for key, entry in entries.items():
        if entry is None:
            objects.pop(key, None)
        else:
            objects[key] = entry
    path = record_path(backend, directory)
    _READ.pop(path, None)
    if not objects:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True
    data = {"%s:%s" % key: objects[key] for key in objects}
    written = {"%s:%s" % key: text for key, text in texts.items()}
    code = code_digest()
    if code is not None:
        data[CODE] = code
    if trust is not None:
        data[TRUST] = trust
    # One entry per line: json's C encoder, which an indent would replace with its Python one. An
    # entry this update does not change is written as it was read.
    lines = ("%s: %s" % (json.dumps(name), written.get(name) or json.dumps(data[name], sort_keys=True)) for name in sorted(data))
    return write_if_changed(path, "{\n%s\n}\n" % ",\n".join(lines), check_only=False)
