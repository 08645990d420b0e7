"""The collection as users get it: built, installed, documented."""

import os
import re
import subprocess
import sys

import pytest
import yaml

from tests.integration.netfilter import REPO

BIN = os.path.dirname(sys.executable)
MODULES = ("tee_mirror", "dnat_balancer")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The collection built into a tarball and installed into an empty collections path."""
    work = tmp_path_factory.mktemp("galaxy")
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(work), REPO],
                   check=True, capture_output=True, text=True)
    [tarball] = [p for p in os.listdir(work) if p.endswith(".tar.gz")]
    target = work / "collections"
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--force", "--no-deps", "-p", str(target),
                    str(work / tarball)], check=True, capture_output=True, text=True)
    return target


def _documentation(path, prefix="DOCUMENTATION = r\"\"\""):
    with open(path) as handle:
        source = handle.read()
    start = source.index(prefix) + len(prefix)
    return yaml.safe_load(source[start:source.index('"""', start)])


def module_options(module):
    """The options a module documents itself, plus those of its doc fragment."""
    own = _documentation(os.path.join(REPO, "plugins", "modules", module + ".py"))
    shared = _documentation(os.path.join(REPO, "plugins", "doc_fragments", "netfilter.py"), '    DOCUMENTATION = r"""')
    return list(own["options"]) + list(shared["options"])


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders_every_option_from_the_installed_build(installed, module):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(installed), ANSIBLE_NOCOLOR="1")
    shown = subprocess.run([os.path.join(BIN, "ansible-doc"), "netmagic.netfilter." + module], env=env,
                           check=True, capture_output=True, text=True).stdout
    assert "EXAMPLES" in shown and "RETURN VALUES" in shown
    for option in module_options(module):
        assert re.search(r"^[-=]? *%s\s" % option, shown, re.M), "option %s missing from ansible-doc" % option


def test_tarball_leaves_out_build_and_virtualenv(installed):
    root = installed / "ansible_collections" / "netmagic" / "netfilter"
    present = set(os.listdir(root))
    assert {"plugins", "meta", "README.md", "MANIFEST.json"} <= present
    assert not present & {".venv", ".build", ".git"}
