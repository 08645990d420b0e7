"""Fixtures shared by the scenarios' testinfra tests, which run on the host during `verify`."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import testinfra
import yaml


@pytest.fixture(scope="session")
def container():
    """Gives the testinfra host of a scenario container by name."""
    def get(name):
        # The podman backend runs `podman exec` directly: much faster than the ansible backend.
        return testinfra.get_host(f"podman://{name}")
    return get


@pytest.fixture(scope="session")
def molecule_inventory():
    """The directory of the inventory Molecule wrote for this scenario."""
    return Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent


@pytest.fixture(scope="session")
def converge():
    """Runs the scenario's converge playbook against an inventory; returns the completed process
    with `output` holding stdout and stderr (ansible-core 2.19 prints failures on stderr)."""
    playbook = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "converge.yml"

    def run(inventory, *options):
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
        result = subprocess.run(
            [shutil.which("ansible-playbook"), "-i", str(inventory), *options, str(playbook)],
            capture_output=True, text=True, timeout=600, check=False, env=env)
        result.output = result.stdout + result.stderr
        return result
    return run


@pytest.fixture
def inventory_copy(molecule_inventory, tmp_path):
    """A copy of Molecule's inventory directory for a test to change."""
    copy = tmp_path / "inventory"
    shutil.copytree(molecule_inventory, copy)
    return copy


@pytest.fixture(scope="session")
def edit_yaml():
    """Changes a YAML file in place with a function of its data."""
    def edit(path, change):
        data = yaml.safe_load(path.read_text())
        change(data)
        path.write_text(yaml.safe_dump(data))
    return edit
