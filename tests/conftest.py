"""Makes the working tree importable as ansible_collections.netmagic.netfilter."""

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_ROOT = os.path.join(REPO, ".build", "src")


def _link_collection():
    namespace_dir = os.path.join(SOURCE_ROOT, "ansible_collections", "netmagic")
    link = os.path.join(namespace_dir, "netfilter")
    os.makedirs(namespace_dir, exist_ok=True)
    if not os.path.islink(link):
        os.symlink(REPO, link)


_link_collection()
if SOURCE_ROOT not in sys.path:
    sys.path.insert(0, SOURCE_ROOT)
if REPO not in sys.path:
    sys.path.insert(0, REPO)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    """With NETMAGIC_NO_SKIPS set (make's root test targets), a skipped test fails the run: a
    machine that cannot run the namespace tests must not pass as one that ran them."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if os.environ.get("NETMAGIC_NO_SKIPS") and skipped:
        reporter.write_line("NETMAGIC_NO_SKIPS: %d tests were skipped; failing the run" % len(skipped), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
