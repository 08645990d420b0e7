"""netfilter_apply as cases of test_netfilter_apply.yaml: the module's arguments (checked by
its own argument spec), the programs it runs on a simulated host, and its result."""

import os

import pytest
import yaml

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.netmagic.netfilter.plugins.module_utils import _host, _record, _reconcile
from ansible_collections.netmagic.netfilter.tests.unit.plugins.module_utils.kernel import SimulatedHost

with open(os.path.join(os.path.dirname(__file__), "test_netfilter_apply.yaml")) as handle:
    CASES = yaml.safe_load(handle)


class Failed(Exception):
    pass


class ScriptedModule:
    """What the pipeline uses of AnsibleModule, its programs run on a SimulatedHost."""

    _name = "netmagic.netfilter.netfilter_apply"

    def __init__(self, args, host, check_mode=False, diff=False):
        validated = ArgumentSpecValidator(_reconcile.objects_argument_spec()).validate(args)
        assert not validated.error_messages, validated.error_messages
        self.params = validated.validated_parameters
        self.host = host
        self.check_mode = check_mode
        self._diff = diff
        self.warnings = []

    def run_command(self, argv, data=None, **_options):
        return self.host.run(argv, data)

    def get_bin_path(self, name):
        return self.host.which(name)

    def warn(self, warning):
        self.warnings.append(warning)

    def fail_json(self, **result):
        raise Failed(result)


@pytest.fixture(autouse=True)
def private_paths(tmp_path, monkeypatch):
    monkeypatch.setattr(_host, "LOCK_PATHS", (str(tmp_path / "lock"),))
    monkeypatch.setattr(_record, "RECORD_DIR", str(tmp_path / "record"))
    # What the host would read from the kernel itself comes from the simulated host, not this machine.
    for name in ("read_text", "ruleset_tables", "ruleset_generation"):
        monkeypatch.setattr(_host.AnsibleHost, name, lambda self, *args, name=name: getattr(self.module.host, name)(*args))


def run(host, args, check_mode=False, diff=False):
    module = ScriptedModule(args, host, check_mode, diff)
    try:
        return _reconcile.reconcile_objects(module)
    except Failed as failed:
        return dict(failed.args[0], failed=True)


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_netfilter_apply(case):
    host = SimulatedHost()
    host.routed.update(case.get("routed", {}))
    host.links.update(case.get("links", {}))
    for earlier in case.get("before", []):
        assert not run(host, earlier).get("failed")
    host.ran.clear()
    result = run(host, case["input"], case.get("check_mode", False), case.get("diff", False))
    assert host.ran == case["run"]
    for key, value in case["output"].items():
        if key == "diff_headers":
            assert {header: result["diff"][header] for header in value} == value
        else:
            assert result.get(key) == value, key
    for side in ("before", "after"):
        if "diff_" + side in case:
            assert result["diff"][side] == "".join(line + "\n" for line in case["diff_" + side])


def counting_builds(monkeypatch):
    """The balancers built (validated) by a run, by name."""
    built = []

    def build(params):
        built.append(params["name"])
        return original(params)
    original = _reconcile.build_balancer
    monkeypatch.setattr(_reconcile, "build_balancer", build)
    return built


WEB = {"name": "web", "vip": "198.18.0.100", "port": 80, "backends": ["198.18.0.21", "198.18.0.22"]}
API = {"name": "api", "vip": "198.18.0.100", "port": 443, "backends": ["198.18.0.23"]}


def test_a_definition_given_as_recorded_is_recalled_and_not_validated_again(monkeypatch):
    host, built = SimulatedHost(), counting_builds(monkeypatch)
    assert run(host, {"balancers": [WEB, API]})["changed"] and built == ["web", "api"]
    built.clear()
    assert not run(host, {"balancers": [WEB, API]})["changed"] and built == [], "an unchanged definition was validated again"
    changed = run(host, {"balancers": [WEB, dict(API, backends=["198.18.0.24"])]})
    assert changed["changed"] and built == ["api"] and any("198.18.0.24" in line for line in host.rules())
    built.clear()
    assert run(host, {"balancers": [WEB, dict(API, backends=["nope"])]}).get("parameter") == "balancers[1].backends[0]"
    assert built == ["api"], "a definition no record holds was not validated"


def test_a_record_made_by_other_code_recalls_nothing(monkeypatch):
    host, built = SimulatedHost(), counting_builds(monkeypatch)
    run(host, {"balancers": [WEB]})
    built.clear()
    monkeypatch.setattr(_record, "code_digest", lambda: "other code")
    assert not run(host, {"balancers": [WEB]})["changed"] and built == ["web"]
