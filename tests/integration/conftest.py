import subprocess
import uuid

import pytest

from tests.integration.netfilter import ENGINES, namespaces_available, plant_foreign, rules_of

UNAVAILABLE = namespaces_available()


def pytest_collection_modifyitems(items):
    if UNAVAILABLE:
        skip = pytest.mark.skip(reason="integration tests skipped: %s" % UNAVAILABLE)
        for item in items:
            if "integration" in item.nodeid:
                item.add_marker(skip)


@pytest.fixture
def netns():
    """A fresh network namespace with loopback and one veth link up, removed afterwards."""
    name = "nm-it-%s" % uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        # A link with addresses of both families, so collectors at .3 / ::3 are on-link.
        for argv in (["ip", "link", "set", "lo", "up"], ["ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1"],
                     ["ip", "link", "set", "d1", "up"], ["ip", "addr", "add", "198.18.0.1/24", "dev", "d0"],
                     ["ip", "-6", "addr", "add", "2001:2::1/64", "dev", "d0", "nodad"], ["ip", "link", "set", "d0", "up"]):
            subprocess.run(["ip", "netns", "exec", name] + argv, check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture(params=ENGINES)
def engine(request):
    """Each engine in turn."""
    return request.param


@pytest.fixture(params=[4, 6], ids=["ipv4", "ipv6"])
def family(request):
    """IPv4, then IPv6."""
    return request.param


@pytest.fixture
def planted(netns, engine):
    """Foreign rules in every table the engine's backend has; returns the whole ruleset."""
    plant_foreign(netns, engine)
    return rules_of(netns)
