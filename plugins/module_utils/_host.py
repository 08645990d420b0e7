# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an engine needs from the managed host: run a program, find a program, a lock."""

from __future__ import annotations

import contextlib
import fcntl
import time

# One read-compare-apply cycle at a time on a host, so two runs never both add a jump.
LOCK_PATHS = ("/run/netmagic-netfilter.lock", "/tmp/netmagic-netfilter.lock")
LOCK_TIMEOUT = 60


class EngineError(Exception):
    """The host cannot do what was asked; the message says why and what to do."""


class AnsibleHost:
    """Runs programs through AnsibleModule: argv lists only, never a shell."""

    def __init__(self, module):
        self.module = module

    def run(self, argv, data=None):
        return self.module.run_command(argv, data=data, binary_data=data is not None, check_rc=False)

    def which(self, name):
        return self.module.get_bin_path(name)


def _open_lock_file():
    for path in LOCK_PATHS:
        try:
            return open(path, "a")
        except OSError:
            continue
    raise EngineError("cannot open a lock file in any of %s" % ", ".join(LOCK_PATHS))


@contextlib.contextmanager
def host_lock(timeout=LOCK_TIMEOUT):
    with _open_lock_file() as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EngineError("another netmagic.netfilter run held %s for %d s" % (handle.name, timeout)) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
