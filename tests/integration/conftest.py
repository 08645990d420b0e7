import pytest

from tests.integration.netfilter import ENGINES, lab_namespace, namespaces_available, plant_foreign, rules_of
from tests.lab.netlab import prune_stale_labs

UNAVAILABLE = namespaces_available()


def pytest_sessionstart(session):  # pylint: disable=unused-argument
    """Labs that killed runs left behind go first: they hold bridges and namespaces for good."""
    if not UNAVAILABLE:
        prune_stale_labs()


def pytest_collection_modifyitems(items):
    if UNAVAILABLE:
        skip = pytest.mark.skip(reason="integration tests skipped: %s" % UNAVAILABLE)
        for item in items:
            if "integration" in item.nodeid:
                item.add_marker(skip)


@pytest.fixture
def netns():
    """A fresh network namespace with loopback and one veth link up, removed afterwards."""
    with lab_namespace() as name:
        yield name


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
