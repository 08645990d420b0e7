# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an engine needs from the managed host: run a program, find a program, a lock."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time

# One read-compare-apply cycle at a time on a host, so two runs never both add a jump.
LOCK_PATHS = ("/run/netmagic-netfilter.lock", "/tmp/netmagic-netfilter.lock")
LOCK_TIMEOUT = 60
# Where iptables-legacy takes its lock unless XTABLES_LOCKFILE names another file.
XTABLES_LOCK = "/run/xtables.lock"


class EngineError(Exception):
    """The host cannot do what was asked; the message says why and what to do."""


def writer_failure(tool, rc, error):
    """How a failed writer is reported: a killed one may have committed, a refusing one did not."""
    if rc < 0 or rc >= 128:
        return ("%s was killed (rc=%d) before it reported: the kernel took the change whole or not at all; "
                "run again to converge" % (tool, rc))
    return "%s refused the change, nothing was applied (rc=%d): %s" % (tool, rc, error)


class MissingLibraryError(EngineError):
    """A Python library an engine needs is not importable on the managed host."""

    def __init__(self, library, reason, traceback):
        self.library = library
        self.reason = reason
        self.traceback = traceback
        super().__init__("the Python library %s is missing: it is required %s" % (library, reason))


class AnsibleHost:
    """Runs programs through AnsibleModule: argv lists only, never a shell."""

    def __init__(self, module):
        self.module = module

    def run(self, argv, data=None):
        return self.module.run_command(argv, data=data, binary_data=data is not None, check_rc=False)

    def which(self, name):
        return self.module.get_bin_path(name)

    @staticmethod
    def read_text(path):
        """A small kernel or configuration file, or None where it does not exist."""
        try:
            with open(path) as handle:
                return handle.read()
        except OSError:
            return None


def _open_lock_file():
    for path in LOCK_PATHS:
        try:
            return open(path, "a")
        except OSError:
            continue
    raise EngineError("cannot open a lock file in any of %s" % ", ".join(LOCK_PATHS))


def _flock_within(handle, timeout, holder):
    """Takes an exclusive flock on handle, waiting at most timeout seconds; holder says who else might hold it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise EngineError("%s for %d s" % (holder, timeout)) from None
            time.sleep(0.05)


@contextlib.contextmanager
def host_lock(timeout=LOCK_TIMEOUT):
    with _open_lock_file() as handle:
        _flock_within(handle, timeout, "another netmagic.netfilter run held %s" % handle.name)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def xtables_lock(timeout):
    """The lock every iptables-legacy writer takes (as `iptables -w` waits for it); iptc does not take it."""
    path = os.environ.get("XTABLES_LOCKFILE") or XTABLES_LOCK
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_RDONLY, 0o600)
    except OSError as error:
        raise EngineError("cannot open the xtables lock %s: %s" % (path, error)) from None
    with os.fdopen(descriptor) as handle:
        _flock_within(handle, timeout, "another iptables writer held %s" % path)
        yield
