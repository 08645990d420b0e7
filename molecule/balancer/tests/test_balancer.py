"""End-to-end checks of round-robin DNAT, run from the host against the scenario's containers.

The last tests converge again with a changed copy of Molecule's inventory (a backend removed
from the group, backends that refuse connections); the original is converged once they are done.
"""

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import testinfra
import yaml

CLIENT = "nm-lb-client"
BALANCER = "nm-lb"
BALANCER_ADDRESS = "198.18.42.20"
BACKENDS = ["nm-lb-backend1", "nm-lb-backend2", "nm-lb-backend3"]
VIP = "198.19.42.100"
CONNECTIONS = 30


def container(name):
    # The podman backend runs `podman exec` directly: much faster than the ansible backend.
    return testinfra.get_host(f"podman://{name}")


def connect(port, token, count=CONNECTIONS):
    """Opens `count` connections to the VIP one after another; returns who answered each."""
    output = container(CLIENT).check_output(
        f"for i in $(seq {count}); do curl -s -m 3 'http://{VIP}:{port}/?probe={token}-'$i; done")
    return output.split()


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


def nat_rules():
    return container(BALANCER).check_output("iptables-nft-save -t nat | grep '^[-:]'")


def converge(inventory):
    """Runs the scenario's converge playbook against `inventory`."""
    playbook = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "converge.yml"
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    result = subprocess.run([shutil.which("ansible-playbook"), "-i", str(inventory), str(playbook)],
                            capture_output=True, text=True, timeout=600, check=False, env=env)
    # ansible-core 2.19 prints the failure messages on stderr.
    result.output = result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def original_inventory():
    """Molecule's inventory, converged again after the tests that converge a changed copy."""
    original = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    yield original
    restored = converge(original)
    assert restored.returncode == 0, restored.output


@pytest.fixture
def inventory_copy(original_inventory, tmp_path):
    """A copy of Molecule's inventory for a test to change."""
    copy = tmp_path / "inventory"
    shutil.copytree(original_inventory, copy)
    return copy


def edit_yaml(path, change):
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


def test_balancer_forwards():
    assert container(BALANCER).file("/proc/sys/net/ipv4/ip_forward").content_string.strip() == "1"


@pytest.mark.parametrize("port", [80, 8080], ids=["backends-by-variables", "backends-by-query"])
def test_connections_rotate_over_the_three_backends(port):
    token = uuid.uuid4().hex
    names = connect(port, token)
    assert_rotates(names, BACKENDS)
    for backend in BACKENDS:
        assert names.count(backend) == CONNECTIONS // len(BACKENDS)


def test_backends_see_the_balancer_as_the_client():
    token = uuid.uuid4().hex
    connect(80, token)
    for backend in BACKENDS:
        # Masquerade: without it the backends would answer the client directly, past the NAT.
        assert clients_seen_by(backend, token) == [BALANCER_ADDRESS] * (CONNECTIONS // len(BACKENDS))


def test_a_backend_removed_from_the_group_gets_no_more_connections(inventory_copy):
    edit_yaml(inventory_copy / "ansible_inventory.yml",
              lambda inventory: inventory["backends"]["hosts"].pop(BACKENDS[2]))
    result = converge(inventory_copy)
    assert result.returncode == 0, result.output

    names = connect(80, uuid.uuid4().hex)
    assert_rotates(names, BACKENDS[:2])
    assert names.count(BACKENDS[0]) == CONNECTIONS // 2


def test_health_check_leaves_out_a_backend_that_refuses(inventory_copy):
    # Nothing listens on port 81: the health check must leave the backend out, with a warning.
    edit_yaml(inventory_copy / "host_vars" / BACKENDS[2],
              lambda host: host.update(netmagic_test_http_port=81))
    result = converge(inventory_copy)
    assert result.returncode == 0, result.output
    assert "WARNING: backend 198.18.42.33:81 of service web did not accept" in result.output

    assert_rotates(connect(80, uuid.uuid4().hex), BACKENDS[:2])


def test_health_check_stops_the_play_when_no_backend_is_left(inventory_copy):
    for backend in BACKENDS:
        edit_yaml(inventory_copy / "host_vars" / backend,
                  lambda host: host.update(netmagic_test_http_port=81))
    rules_before = nat_rules()
    result = converge(inventory_copy)
    assert result.returncode != 0
    assert "load_balancer_services: no backend of web, web-query accepts TCP connections" in result.output
    assert nat_rules() == rules_before
