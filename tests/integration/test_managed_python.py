"""The python-iptables engine on the managed-node Pythons the collection supports beyond the
controller's: 3.12 and 3.13 (pyenv's, as scripts/matrix.sh takes them). Each applies through
ansible-playbook exactly the rules Python 3.11 applies, and a second run changes nothing."""

import glob
import json
import os
import subprocess
import sys

import pytest

from tests.integration.netfilter import REPO, collections_path, lab_namespace, rules_of
from tests.integration.test_core import DEFINITIONS

ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
PYTHONS = ("3.12", "3.13")
PIN = next(line.strip() for line in open(os.path.join(REPO, "requirements", "dev.txt")) if line.startswith("python-iptables=="))


def pyenv_python(version):
    """The newest pyenv interpreter of that version."""
    root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True).stdout.strip()
    found = sorted(glob.glob(os.path.join(root, "versions", version + ".*", "bin", "python" + version)))
    assert found, "no Python %s in pyenv (%s)" % (version, root)
    return found[-1]


def node_python(version):
    """A managed node's Python of that version with python-iptables, in .build (made once)."""
    venv = os.path.join(REPO, ".build", "node-python" + version)
    ready = os.path.join(venv, ".installed-" + PIN)
    if not os.path.exists(ready):
        subprocess.run([pyenv_python(version), "-m", "venv", "--clear", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "--disable-pip-version-check", PIN], check=True, timeout=600)
        open(ready, "w").close()
    return os.path.join(venv, "bin", "python")


def apply(netns, tmp_path, interpreter):
    """The mirror and the balancer of both families, with engine python-iptables; the PLAY RECAP."""
    tasks = [{"name": "%s %d" % (module, family), "netmagic.netfilter." + module: dict(args, name=args["name"] + str(family), engine="python-iptables")}
             for family in (4, 6) for module, args in DEFINITIONS[family].items()]
    (tmp_path / "play.yml").write_text(json.dumps([{"hosts": netns, "gather_facts": False, "tasks": tasks}]))
    inventory = {"all": {"hosts": {netns: {"ansible_connection": "netmagic.netfilter.netns", "ansible_python_interpreter": interpreter}}}}
    (tmp_path / "hosts.yml").write_text(json.dumps(inventory))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_NOCOLOR="1")
    completed = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml")],
                               capture_output=True, text=True, timeout=300, check=False, env=env)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    return completed.stdout.split("PLAY RECAP")[1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The rules Python 3.11 (the controller's venv) applies."""
    with lab_namespace() as netns:
        apply(netns, tmp_path_factory.mktemp("py311"), sys.executable)
        rules = rules_of(netns).replace(netns, "NETNS")
    assert rules.count("-j TEE --gateway") == 8 and rules.count("-j DNAT") == 6, rules
    return rules


@pytest.mark.parametrize("version", PYTHONS)
def test_python_iptables_applies_the_same_rules_on_the_managed_nodes_python(netns, tmp_path, reference, version):
    interpreter = node_python(version)
    assert subprocess.run([interpreter, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True,
                          check=True).stdout.strip() == version
    assert "changed=4" in apply(netns, tmp_path, interpreter)
    assert rules_of(netns).replace(netns, "NETNS") == reference
    assert "changed=0" in apply(netns, tmp_path, interpreter)
