"""The installed build of the collection: where it is, its engines, its chain names.

Everything is read from the build that `make collection` installed, so the engines measured
are exactly the ones the modules under test offer (new engines show up by themselves).
"""

import importlib
import os
import shutil
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTALLED = os.path.join(REPO, ".build", "collections")
# A private copy of the installed build: others rebuild .build/collections while a run goes on,
# and one run must measure one version of the code.
COLLECTIONS = os.path.join(REPO, ".build", "benchmarks", "collections")
COLLECTION_DIR = os.path.join("ansible_collections", "netmagic", "netfilter")
# Not engines but a way to pick one.
NOT_ENGINES = ("auto",)


def snapshot_installed_build():
    """Copy the build `make collection` installed to the run's private path."""
    shutil.rmtree(COLLECTIONS, ignore_errors=True)
    shutil.copytree(os.path.join(INSTALLED, COLLECTION_DIR), os.path.join(COLLECTIONS, COLLECTION_DIR),
                    ignore=shutil.ignore_patterns("__pycache__", ".git"))


def use_installed_build():
    """Point Ansible and this process at the run's copy of the build (run_module reads the variable)."""
    os.environ["ANSIBLE_COLLECTIONS_PATH"] = COLLECTIONS
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)


def module_utils(name):
    use_installed_build()
    return importlib.import_module("ansible_collections.netmagic.netfilter.plugins.module_utils." + name)


def engines():
    """Every engine the modules accept, from the registry (_engines.ENGINE_NAMES)."""
    return [engine for engine in module_utils("_engines").ENGINE_NAMES if engine not in NOT_ENGINES]


def chain_name(role, kind, name, index=None):
    return module_utils("_naming").chain_name(role, kind, name, index)


def tag(kind, name):
    return module_utils("_naming").tag(kind, name)
