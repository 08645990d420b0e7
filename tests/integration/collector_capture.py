"""The mirror_collector role's capture, run in a lab's collector.

Apart from netfilter.py, which the benchmarks import before the collection is installed.
"""

import signal
import subprocess

from ansible_collections.netmagic.netfilter.plugins.module_utils._capture import capture_argv, capture_statistics
from tests.integration.netfilter import wait_until
from tests.lab.netlab import INTERFACE


def start_collector_capture(lab, directory, bpf_filter):
    """tcpdump in the collector with the arguments the mirror_collector role gives its unit
    (default buffer: no link speed in these facts, so sized for 10 Gbit/s); returns once it
    listens, with the file its standard error goes to."""
    settings = {"interface": INTERFACE, "filter": bpf_filter, "directory": str(directory), "file_size_mb": 100,
                "file_count": 10, "user": "root", "buffer_mb": "auto"}
    log = directory / "tcpdump.log"
    with open(log, "wb") as stderr:
        proc = lab.popen("collector", ["tcpdump", *capture_argv(settings)], stdout=subprocess.DEVNULL, stderr=stderr)
    assert wait_until(lambda: "listening on" in log.read_text(), 10), log.read_text()
    return proc, log


def stop_collector_capture(capture):
    """SIGINT, as the unit stops it, at once: what tcpdump held must reach the file all the same."""
    proc, log = capture
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    return capture_statistics(log.read_text())
