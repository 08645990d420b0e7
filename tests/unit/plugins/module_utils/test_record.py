"""The record of what was applied, and the drift netfilter_info finds against it."""

from ansible_collections.netmagic.netfilter.plugins.module_utils import _record as record
from ansible_collections.netmagic.netfilter.plugins.module_utils._info import recorded_drift
from ansible_collections.netmagic.netfilter.plugins.module_utils._iptables_engine import IptablesNftEngine
from ansible_collections.netmagic.netfilter.plugins.module_utils._iptables_rules import render
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import build_balancer

WEB = ("balancer", "web")
ENGINE = IptablesNftEngine(host=None)
BALANCER = build_balancer({"name": "web", "vip": "198.18.0.100", "port": 80, "backends": ["198.18.0.21", "198.18.0.22"]})


def test_what_is_recorded_reads_back_and_removal_forgets_it(tmp_path):
    rendered = render(BALANCER)
    assert record.update(ENGINE, {WEB: ENGINE.describe(rendered)}, str(tmp_path))
    assert not record.update(ENGINE, {WEB: ENGINE.describe(rendered)}, str(tmp_path)), "an unchanged record is not rewritten"
    chains, rules = ENGINE.describe(rendered)
    assert record.load(ENGINE.backend, str(tmp_path)) == {WEB: {"chains": chains, "rules": rules}}
    record.update(ENGINE, {WEB: None}, str(tmp_path))
    assert record.load(ENGINE.backend, str(tmp_path)) == {}
    assert list(tmp_path.iterdir()) == [], "a record with no object is left behind"
    assert not record.update(ENGINE, {WEB: None}, str(tmp_path)), "removing what is not recorded changes nothing"


def test_a_record_that_cannot_be_read_is_no_record(tmp_path):
    (tmp_path / record.record_path(ENGINE.backend, str(tmp_path)).rsplit("/", 1)[1]).write_text("{not json")
    assert record.load(ENGINE.backend, str(tmp_path)) == {}


def drift(live, recorded, kinds=()):
    chains, rules = ENGINE.describe(recorded)
    found = recorded_drift(ENGINE, {WEB: {"chains": chains, "rules": rules}}, {WEB: []} if live else {}, lambda keys: {WEB: live}, kinds)
    return [(f["issue"], f["object"]) for f in found]


def test_live_rules_are_compared_with_the_record():
    rendered = render(BALANCER)
    assert drift(rendered, rendered) == []
    fewer = render(build_balancer({"name": "web", "vip": "198.18.0.100", "port": 80, "backends": ["198.18.0.21"]}))
    assert ("chain_missing", "balancer:web") in drift(fewer, rendered)
    assert drift({}, rendered) == [("object_missing", "balancer:web")]
    assert drift({}, rendered, kinds=("balancer",)) == [], "a kind given by definitions is compared with them instead"
