"""End-to-end checks of round-robin DNAT, run from the host against the scenario's containers.

The last tests converge again with a changed copy of Molecule's inventory (a backend removed
from the group, backends that refuse connections); the original is converged once they are done.
"""

import subprocess
import uuid

import pytest

CLIENT = "nm-lb-client"
BALANCER = "nm-lb"
BALANCER_ADDRESS = "198.18.42.20"
BACKENDS = ["nm-lb-backend1", "nm-lb-backend2", "nm-lb-backend3"]
VIP = "198.19.42.100"
CONNECTIONS = 30


@pytest.fixture
def connect(container):
    """Opens connections to the VIP one after another; returns who answered each."""
    def run(port, token, count=CONNECTIONS):
        output = container(CLIENT).check_output(
            f"for i in $(seq {count}); do curl -s -m 3 'http://{VIP}:{port}/?probe={token}-'$i; done")
        return output.split()
    return run


@pytest.fixture(scope="module")
def restore_at_end(molecule_inventory, converge):
    """Converges Molecule's own inventory again once the tests that change it are done."""
    yield
    restored = converge(molecule_inventory)
    assert restored.returncode == 0, restored.output


def assert_rotates(names, backends):
    """Every backend answers once per cycle, in the same order each cycle."""
    cycle = names[:len(backends)]
    assert sorted(cycle) == sorted(backends), names
    assert names == cycle * (len(names) // len(backends)), names


def clients_seen_by(backend, token):
    """Source addresses of the probe requests in the backend's access log."""
    log = subprocess.run(["podman", "logs", backend], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in (log.stdout + log.stderr).splitlines()
            if f"probe={token}-" in line]


def test_balancer_forwarding_sysctl_is_on(container):
    assert container(BALANCER).file("/proc/sys/net/ipv4/ip_forward").content_string.strip() == "1"


@pytest.mark.parametrize("port", [80, 8080], ids=["backends-by-variables", "backends-by-query"])
def test_connections_rotate_over_the_three_backends(connect, port):
    names = connect(port, uuid.uuid4().hex)
    assert_rotates(names, BACKENDS)
    for backend in BACKENDS:
        assert names.count(backend) == CONNECTIONS // len(BACKENDS)


def test_backends_see_the_balancer_as_the_client(connect):
    token = uuid.uuid4().hex
    connect(80, token)
    for backend in BACKENDS:
        # Masquerade: without it the backends would answer the client directly, past the NAT.
        assert clients_seen_by(backend, token) == [BALANCER_ADDRESS] * (CONNECTIONS // len(BACKENDS))


def test_a_backend_removed_from_the_group_gets_no_more_connections(
        restore_at_end, inventory_copy, edit_yaml, converge, connect):
    edit_yaml(inventory_copy / "ansible_inventory.yml",
              lambda inventory: inventory["backends"]["hosts"].pop(BACKENDS[2]))
    result = converge(inventory_copy)
    assert result.returncode == 0, result.output

    names = connect(80, uuid.uuid4().hex)
    assert_rotates(names, BACKENDS[:2])
    assert names.count(BACKENDS[0]) == CONNECTIONS // 2


def test_health_check_leaves_out_a_backend_that_refuses(
        restore_at_end, inventory_copy, edit_yaml, converge, connect):
    # Nothing listens on port 81: the health check must leave the backend out, with a warning.
    edit_yaml(inventory_copy / "host_vars" / BACKENDS[2],
              lambda host: host.update(netmagic_test_http_port=81))
    result = converge(inventory_copy)
    assert result.returncode == 0, result.output
    assert "WARNING: backend 198.18.42.33:81 did not accept a TCP connection" in result.output
    assert "is left out of web, web-query" in result.output

    assert_rotates(connect(80, uuid.uuid4().hex), BACKENDS[:2])


def test_health_check_stops_the_play_when_no_backend_is_left(
        restore_at_end, inventory_copy, edit_yaml, converge, container):
    for backend in BACKENDS:
        edit_yaml(inventory_copy / "host_vars" / backend,
                  lambda host: host.update(netmagic_test_http_port=81))
    balancer = container(BALANCER)
    rules_before = balancer.check_output("iptables-nft-save -t nat | grep '^[-:]'")
    result = converge(inventory_copy)
    assert result.returncode != 0
    assert "load_balancer_services: no backend of web, web-query accepts TCP connections" in result.output
    assert balancer.check_output("iptables-nft-save -t nat | grep '^[-:]'") == rules_before
