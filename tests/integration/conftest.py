import subprocess
import uuid

import pytest

from tests.integration.netfilter import namespaces_available

UNAVAILABLE = namespaces_available()


def pytest_collection_modifyitems(items):
    if UNAVAILABLE:
        skip = pytest.mark.skip(reason="integration tests skipped: %s" % UNAVAILABLE)
        for item in items:
            if "integration" in item.nodeid:
                item.add_marker(skip)


@pytest.fixture
def netns():
    """A fresh network namespace with loopback up, removed afterwards."""
    name = "nm-it-%s" % uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
