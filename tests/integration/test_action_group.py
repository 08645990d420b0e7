"""module_defaults through the action groups reach every module of the group: all, every module;
rules, every module of netfilter rules (those that take engine)."""

import json
import os
import subprocess
import sys

import pytest

from tests.integration.netfilter import REPO, collections_path, rules_of

ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
ANSIBLE_DOC = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
# Each module with what a task gives it, and an option the group's defaults give it: a value
# the module refuses naming the option, so its error shows the default reached it.
MODULES = {
    "dnat_balancer": ({"name": "web"}, {"engine": "pf"}),
    "netfilter_apply": ({}, {"engine": "pf"}),
    "netfilter_info": ({}, {"engine": "pf"}),
    "tee_mirror": ({"name": "http"}, {"engine": "pf"}),
    "vxlan_tunnel": ({}, {"vni": 0}),
}


RULES = ("dnat_balancer", "netfilter_apply", "netfilter_info", "tee_mirror")
CASES = [("all", module) for module in MODULES] + [("rules", module) for module in RULES]


def run_play(netns, tmp_path, module, task, defaults, group="all"):
    play = [{"hosts": netns, "gather_facts": False,
             "module_defaults": {"group/netmagic.netfilter." + group: defaults} if defaults else {},
             "tasks": [{"name": "The module", "netmagic.netfilter." + module: task}]}]
    (tmp_path / "play.yml").write_text(json.dumps(play))
    inventory = {"all": {"hosts": {netns: {"ansible_connection": "netmagic.netfilter.netns", "ansible_python_interpreter": sys.executable}}}}
    (tmp_path / "hosts.yml").write_text(json.dumps(inventory))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="json")
    completed = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml")], cwd=REPO,
                               capture_output=True, text=True, timeout=120, check=False, env=env)
    output = json.loads(completed.stdout)
    return output["plays"][0]["tasks"][0]["hosts"][netns]


def test_all_lists_every_module_and_rules_those_that_take_engine():
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path())
    listed = subprocess.run([ANSIBLE_DOC, "-t", "module", "--list", "--json", "netmagic.netfilter"], env=env,
                            capture_output=True, text=True, check=True).stdout
    modules = sorted(name.rsplit(".", 1)[1] for name in json.loads(listed))
    assert sorted(MODULES) == modules
    docs = json.loads(subprocess.run([ANSIBLE_DOC, "-t", "module", "--json"] + ["netmagic.netfilter." + name for name in modules], env=env,
                                     capture_output=True, text=True, check=True).stdout)
    assert sorted(name.rsplit(".", 1)[1] for name, doc in docs.items() if "engine" in doc["doc"]["options"]) == list(RULES)


@pytest.mark.parametrize("group, module", CASES)
def test_module_defaults_of_the_group_reach_the_module(netns, tmp_path, group, module):
    task, defaults = MODULES[module]
    [option] = defaults
    before = rules_of(netns)
    without = run_play(netns, tmp_path, module, task, None)
    reached = run_play(netns, tmp_path, module, task, defaults, group)
    assert reached.get("failed") and option in reached["msg"] and str(defaults[option]) in reached["msg"], reached
    assert without.get("msg") != reached["msg"], without  # the control: the task alone does not fail so
    assert rules_of(netns) == before
