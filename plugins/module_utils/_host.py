# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an engine needs from the managed host: run a program, find a program, a lock."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import stat
import time

from ansible_collections.netmagic.netfilter.plugins.module_utils._generation import ruleset_generation as nf_tables_generation
from ansible_collections.netmagic.netfilter.plugins.module_utils._generation import ruleset_tables as nf_tables_tables

# One read-compare-apply cycle at a time on a host, so two runs never both add a jump.
LOCK_PATHS = ("/run/netmagic-netfilter.lock", "/tmp/netmagic-netfilter.lock")
LOCK_TIMEOUT = 60
# Where iptables-legacy takes its lock unless XTABLES_LOCKFILE names another file.
XTABLES_LOCK = "/run/xtables.lock"


C_LOCALE = {"LC_ALL": "C", "LANG": "C", "LANGUAGE": "C"}


class EngineError(Exception):
    """The host cannot do what was asked; the message says why and what to do."""


# Lines shown either side of the line a tool or a guard refused.
CONTEXT_LINES = 3
LINE_NUMBER = re.compile(r"\bline:? (\d+)")


def excerpt(lines, index, context=CONTEXT_LINES):
    """The line at index with context lines either side, numbered, the line itself marked: never the whole buffer."""
    first, last = max(index - context, 0), min(index + context + 1, len(lines))
    shown = []
    for number in range(first, last):
        line = lines[number] if lines[number].isprintable() else repr(lines[number])
        shown.append("%s %5d  %s" % (">" if number == index else " ", number + 1, line[:300]))
    return "\n".join(shown)


def failing_line(buffer, error):
    """Where a restore tool's error names a line of its input ('line 7 failed'), that line in context."""
    match = LINE_NUMBER.search(error)
    lines = buffer.splitlines()
    if not match or not 1 <= int(match.group(1)) <= len(lines):
        return ""
    return "\n" + excerpt(lines, int(match.group(1)) - 1)


def writer_failure(tool, rc, error, applied=""):
    """How a failed writer is reported: a killed one may have committed, a refusing one did not.

    applied: what earlier steps of this run committed already, when any did."""
    error = error.strip()[:2000]
    if rc < 0 or rc >= 128:
        return ("%s was killed (rc=%d) before it reported: the kernel took its change whole or not at all%s; "
                "run again to converge" % (tool, rc, applied))
    nothing = "its change was not applied%s" % applied if applied else "nothing was applied"
    return "%s refused the change, %s (rc=%d): %s" % (tool, nothing, rc, error)


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
        self._reads = {}

    def read(self, argv):
        """(rc, stdout, stderr) of a program that only reads the host's state: run once, and the
        same answer again until a program run through run() (a write) may have changed it."""
        key = tuple(argv)
        if key not in self._reads:
            self._reads[key] = self._execute(argv)
        return self._reads[key]

    def run(self, argv, data=None):
        """(rc, stdout, stderr) of argv, which may change the host: every earlier read is forgotten."""
        self.forget_reads()
        return self._execute(argv, data)

    def forget_reads(self):
        """After a change made other than through run() (python-iptables)."""
        self._reads.clear()

    def _execute(self, argv, data=None):
        """(rc, stdout, stderr) of argv, in the C locale (its output is parsed), with no expansion of
        '~' or '$' in the arguments; a program that cannot be started or fed is an EngineError."""
        try:
            return self.module.run_command(argv, data=data, binary_data=data is not None, check_rc=False, environ_update=C_LOCALE,
                                           expand_user_and_vars=False, handle_exceptions=False)
        except (OSError, ValueError) as error:
            raise EngineError("%s could not be started or stopped before it took its input (%s): it may have been killed; "
                              "a restore tool commits whole or not at all, so run again to converge" % (os.path.basename(argv[0]), error)) from None

    def which(self, name):
        return self.module.get_bin_path(name)

    @staticmethod
    def ruleset_generation():
        return nf_tables_generation()

    @staticmethod
    def ruleset_tables():
        return nf_tables_tables()

    @staticmethod
    def read_text(path):
        """A small kernel or configuration file, or None where it does not exist."""
        try:
            with open(path) as handle:
                return handle.read()
        except OSError:
            return None


# A planted symbolic link is not followed (O_NOFOLLOW) and a FIFO does not block the open (O_NONBLOCK).
LOCK_OPEN_FLAGS = os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def _open_regular(path, flags):
    """A descriptor of the regular file path, created 0600 when missing; never through a link."""
    descriptor = os.open(path, flags | LOCK_OPEN_FLAGS, 0o600)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise EngineError("the lock file %s is not a regular file; remove it" % path)
    return descriptor


def _why(error):
    """An open's error in words; O_NOFOLLOW answers ELOOP for a link."""
    if isinstance(error, OSError) and error.errno == errno.ELOOP:
        return "a symbolic link, not followed"
    return error.strerror if isinstance(error, OSError) and error.strerror else str(error)


def _open_lock_file():
    errors = []
    for path in LOCK_PATHS:
        try:
            return open(path, "a", opener=lambda name, _flags: _open_regular(name, os.O_WRONLY))
        except (OSError, EngineError) as error:
            errors.append(str(error) if isinstance(error, EngineError) else "%s: %s" % (path, _why(error)))
    raise EngineError("cannot open a lock file: %s" % "; ".join(errors))


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
        descriptor = _open_regular(path, os.O_RDONLY)
    except OSError as error:
        raise EngineError("cannot open the xtables lock %s: %s" % (path, _why(error))) from None
    with os.fdopen(descriptor) as handle:
        _flock_within(handle, timeout, "another iptables writer held %s" % path)
        yield
