"""The release tarball as a user gets it: built with ansible-galaxy, installed into an empty
collections path, and the collection's own playbook run from there against lab hosts over the
collection's netns connection, with real connections through the balanced VIP afterwards."""

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.integration.netfilter import namespaces_available
from tests.lab.netlab import Lab

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CLIENT = REPO / "tests" / "lab" / "client.py"
VERSION = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
# Build and test output that must never ship.
LEFT_OUT = (".venv/", ".build/", ".git/", "build/", "docs/build/", "tests/output/", ".pytest_cache/", ".ruff_cache/",
            ".ansible/", "changelogs/.plugin-cache.yaml", "requirements/")
SHIPPED = ("MANIFEST.json", "FILES.json", "README.md", "CHANGELOG.rst", "changelogs/changelog.yaml", "meta/runtime.yml",
           "meta/execution-environment.yml", "meta/ee-requirements.txt",
           "plugins/modules/tee_mirror.py", "plugins/modules/dnat_balancer.py", "plugins/connection/netns.py",
           "playbooks/balance.yml", "roles/load_balancer/meta/argument_specs.yml", "docs/quickstart.md")

pytestmark = pytest.mark.skipif(bool(namespaces_available()), reason=str(namespaces_available()))


def _run(argv, **kwargs):
    completed = subprocess.run([str(arg) for arg in argv], capture_output=True, text=True, check=False, **kwargs)
    assert completed.returncode == 0, "%s failed:\n%s\n%s" % (argv[0], completed.stdout[-4000:], completed.stderr[-4000:])
    return completed


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    output = tmp_path_factory.mktemp("dist")
    _run([BIN / "ansible-galaxy", "collection", "build", "--output-path", output, REPO])
    path = output / ("netmagic-netfilter-%s.tar.gz" % VERSION)
    assert path.is_file()
    return path


def _only(collections):
    """An environment whose Ansible sees no collections path but this one (make exports .build's)."""
    return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_NOCOLOR="1")


@pytest.fixture(scope="module")
def collections(tarball, tmp_path_factory):
    """An empty collections path with only the tarball installed (Galaxy is not asked: --no-deps)."""
    path = tmp_path_factory.mktemp("collections")
    # With another install of the collection in sight, ansible-galaxy would skip this one.
    _run([BIN / "ansible-galaxy", "collection", "install", "--no-deps", "-p", path, tarball], env=_only(path))
    return path


def test_tarball_ships_the_collection_and_leaves_out_build_output(tarball):
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    for name in SHIPPED:
        assert name in names, "%s missing from the tarball" % name
    for name in names:
        assert not name.startswith(LEFT_OUT) and "__pycache__" not in name, "%s shipped in the tarball" % name
    manifest = json.loads(tarfile.open(tarball).extractfile("MANIFEST.json").read())
    assert manifest["collection_info"]["version"] == VERSION


@pytest.fixture
def lab():
    with Lab("rel%d" % (os.getpid() % 1000), backends=2, subnet="198.18.240.0/24") as running:
        for backend in running.backend_hosts:
            running.start_http(backend)
        yield running


def test_installed_balance_playbook_rotates_connections_over_the_backends(collections, lab, tmp_path):
    env = _only(collections)
    installed = _run([BIN / "ansible-galaxy", "collection", "list", "netmagic.netfilter"], env=env).stdout
    assert str(collections) in installed and VERSION in installed, installed

    inventory = lab.write_inventory(tmp_path / "hosts.yml")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "balancers.yml").write_text(json.dumps({
        # Lab hosts share the machine's /etc: the persisted sysctl stays in the lab's folder.
        "load_balancer_sysctl_file": str(lab.state_dir / "balancer-sysctl.conf"),
        "load_balancer_services": [{"name": "web", "vip": lab.vip, "port": 80,
                                    "backends_from": {"group": "backends", "port_var": "backend_port"}}],
    }))
    # The playbook by its collection name: it is read from the installed tarball, not the checkout.
    playbook = collections / "ansible_collections" / "netmagic" / "netfilter" / "playbooks" / "balance.yml"
    tasks = _run([BIN / "ansible-playbook", "-i", inventory, "netmagic.netfilter.balance", "--list-tasks"], env=env).stdout
    assert "playbook: %s" % playbook in tasks, tasks
    played = _run([BIN / "ansible-playbook", "-i", inventory, "netmagic.netfilter.balance"], env=env, timeout=300).stdout
    recap = re.search(r"^lb\s+: ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", played, re.M)
    assert recap and int(recap.group(1)) > 0, played[-3000:]

    rules = lab.run("lb", ["iptables-save", "-t", "nat"], check=True).stdout
    assert '"netmagic:balancer:web"' in rules, rules

    answers = json.loads(lab.run("client", [sys.executable, str(CLIENT), lab.vip, "--count", "10", "--max-seconds", "30"],
                                 check=True, timeout=60).stdout)["answers"]
    assert sorted(answers) == ["be1"] * 5 + ["be2"] * 5, answers
    assert all(first != second for first, second in zip(answers, answers[1:])), "not in rotation: %s" % answers


def _pins(*names):
    """The versions requirements/dev.txt pins for these packages, so the fresh controller is reproducible."""
    pins = dict(line.split("==", 1) for line in (REPO / "requirements" / "dev.txt").read_text().splitlines() if "==" in line)
    return ["%s==%s" % (name, pins[name]) for name in names]


def _site_group_vars(directory, lab, backends_from):
    """Group variables for the site playbook on the lab: one mirror of port 80, one balanced
    service at the VIP with its backends from `backends_from`; sysctl files in the lab's folder."""
    directory.mkdir()
    state = lab.state_dir
    for group, variables in {
        "collectors": {"mirror_collector_sysctl_file": str(state / "collector-sysctl.conf")},
        "senders": {"mirror_sender_mirrors": [{"name": "http", "ports": ["80"]}]},
        "balancers": {"load_balancer_sysctl_file": str(state / "balancer-sysctl.conf"),
                      "load_balancer_services": [{"name": "web", "vip": lab.vip, "port": 80, "backends_from": backends_from}]},
    }.items():
        (directory / ("%s.yml" % group)).write_text(json.dumps(variables))


def test_a_fresh_controller_set_up_as_readme_says_runs_site_yml(tarball, lab, tmp_path):
    """README's install section on an empty virtual environment: `pip install ansible jmespath`, then
    the tarball with ansible-galaxy (its dependency ansible.posix found in the ansible package), then
    the collection's site playbook on lab hosts, proven with real connections and the mirror's rules."""
    venv = tmp_path / "controller"
    _run([sys.executable, "-m", "venv", venv])
    _run([venv / "bin" / "pip", "install", "-q", "--disable-pip-version-check", *_pins("ansible", "jmespath")], timeout=600)
    collections = tmp_path / "collections"
    installed = _run([venv / "bin" / "ansible-galaxy", "collection", "install", "-p", collections, tarball], env=_only(collections))
    assert "ansible.posix" in installed.stdout, installed.stdout
    inventory = lab.write_inventory(tmp_path / "hosts.yml")
    _site_group_vars(tmp_path / "group_vars", lab, {"query": "[].{address: ansible_host, port: backend_port}"})
    played = _run([venv / "bin" / "ansible-playbook", "-i", inventory, "netmagic.netfilter.site"], env=_only(collections), timeout=600)
    assert re.search(r"^lb\s+: ok=\d+\s+changed=[1-9]", played.stdout, re.M), played.stdout[-3000:]
    assert "-j TEE --gateway %s" % lab.addr("collector") in lab.run("sender", ["iptables-save", "-t", "mangle"], check=True).stdout
    answers = json.loads(lab.run("client", [sys.executable, str(CLIENT), lab.vip, "--count", "4", "--max-seconds", "30"],
                                 check=True, timeout=60).stdout)["answers"]
    assert sorted(answers) == ["be1", "be1", "be2", "be2"], answers


EXECUTION_ENVIRONMENT = REPO / "docs" / "execution-environment.yml"


@pytest.fixture(scope="module")
def ee_context(tarball, tmp_path_factory):
    """docs/execution-environment.yml as a user runs it, offline: ansible-builder create, with the
    tarball beside the file (its name holds galaxy.yml's version, so the example must too)."""
    work = tmp_path_factory.mktemp("ee")
    (work / "execution-environment.yml").write_text(EXECUTION_ENVIRONMENT.read_text())
    (work / tarball.name).write_bytes(tarball.read_bytes())
    _run([BIN / "ansible-builder", "create", "-f", work / "execution-environment.yml", "-c", work / "context"], cwd=work)
    return work / "context"


def test_the_example_execution_environment_builds_a_context_that_installs_the_tarball(tarball, ee_context):
    build = ee_context / "_build"
    assert yaml.safe_load((build / "requirements.yml").read_text()) == {
        "collections": [{"name": "collections/" + tarball.name, "type": "file"}]}
    assert (build / "collections" / tarball.name).read_bytes() == tarball.read_bytes()


def test_an_execution_environment_asks_for_exactly_what_the_controller_side_needs(tarball, collections, ee_context, tmp_path):
    """The introspection the image build runs (the context's own introspect.py) over the installed
    tarball: jmespath, and no development pin, test tool or system package."""
    pip, bindep = tmp_path / "requirements.txt", tmp_path / "bindep.txt"
    _run([sys.executable, ee_context / "_build" / "scripts" / "introspect.py", "introspect", collections,
          "--write-pip", pip, "--write-bindep", bindep])
    assert pip.read_text().splitlines() == ["jmespath>=1.0.0  # from collection netmagic.netfilter"]
    assert not bindep.exists()
    with tarfile.open(tarball) as archive:
        shipped = set(archive.getnames())
    assert not shipped & {"requirements.txt", "bindep.txt"} and not any(name.startswith("requirements/") for name in shipped)


def _runner_data_directory(path, collections, lab):
    """A private data directory as AWX gives ansible-runner one: the inventory with its group
    variables, the environment (the collections of the tarball only), and a project whose
    playbook imports the collection's site playbook."""
    (path / "inventory").mkdir(parents=True)
    lab.write_inventory(path / "inventory" / "hosts.yml")
    _site_group_vars(path / "inventory" / "group_vars", lab, {"group": "backends", "port_var": "backend_port"})
    (path / "env").mkdir()
    (path / "env" / "envvars").write_text(json.dumps({"ANSIBLE_COLLECTIONS_PATH": str(collections), "ANSIBLE_NOCOLOR": "1"}))
    (path / "project").mkdir()
    (path / "project" / "site.yml").write_text(json.dumps([{"ansible.builtin.import_playbook": "netmagic.netfilter.site"}]))


def test_ansible_runner_runs_the_site_playbook_from_a_private_data_directory(collections, lab, tmp_path, monkeypatch):
    """The engine AWX runs jobs with: the site playbook through ansible-runner, twice; the second
    run changes nothing, and real connections rotate through the VIP."""
    import ansible_runner  # the development venv's, as an execution environment holds it

    data = tmp_path / "runner"
    _runner_data_directory(data, collections, lab)
    monkeypatch.setenv("PATH", "%s:%s" % (BIN, os.environ["PATH"]))  # ansible-playbook, as in an execution environment
    for run, changed in ((1, True), (2, False)):
        result = ansible_runner.run(private_data_dir=str(data), playbook="site.yml", ident="run%d" % run, quiet=True, timeout=600)
        output = (data / "artifacts" / ("run%d" % run) / "stdout").read_text()
        assert (result.status, result.rc) == ("successful", 0), output[-3000:]
        assert not result.stats["failures"] and not result.stats["dark"], result.stats
        assert bool(result.stats["changed"]) is changed, output[-3000:]
    assert "-j TEE --gateway %s" % lab.addr("collector") in lab.run("sender", ["iptables-save", "-t", "mangle"], check=True).stdout
    answers = json.loads(lab.run("client", [sys.executable, str(CLIENT), lab.vip, "--count", "4", "--max-seconds", "30"],
                                 check=True, timeout=60).stdout)["answers"]
    assert sorted(answers) == ["be1", "be1", "be2", "be2"], answers
