"""The record of what was applied, and the drift netfilter_info finds against it."""

import json

from ansible_collections.netmagic.netfilter.plugins.module_utils import _record as record
from ansible_collections.netmagic.netfilter.plugins.module_utils._info import recorded_drift
from ansible_collections.netmagic.netfilter.plugins.module_utils._iptables_engine import IptablesNftEngine
from ansible_collections.netmagic.netfilter.plugins.module_utils._iptables_rules import render
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import build_balancer, definition, digest, input_digest, rebuild

WEB = ("balancer", "web")
ENGINE = IptablesNftEngine(host=None)
BALANCER = build_balancer({"name": "web", "vip": "198.18.0.100", "port": 80, "backends": ["198.18.0.21", "198.18.0.22"]})


def entry():
    return {"digest": digest(BALANCER), "definition": definition(BALANCER), "signatures": []}


TRUST = {"generation": 7, "boot": "0b6a2ef4-2f1c-4c55-9d43-6a1f3c8e2d10", "code": "0" * 64}


def test_what_is_recorded_reads_back_and_removal_forgets_it(tmp_path):
    assert record.update(ENGINE.backend, {WEB: entry()}, str(tmp_path), trust=TRUST)
    assert not record.update(ENGINE.backend, {WEB: entry()}, str(tmp_path), trust=TRUST), "an unchanged record is not rewritten"
    read = record.read(ENGINE.backend, str(tmp_path))
    assert read.objects == {WEB: entry()} and read.trusted_at(TRUST) and not read.trusted_at(dict(TRUST, generation=8))
    assert rebuild("balancer", read.objects[WEB]["definition"]) == BALANCER
    record.update(ENGINE.backend, {WEB: None}, str(tmp_path))
    assert record.load(ENGINE.backend, str(tmp_path)) == {}
    assert list(tmp_path.iterdir()) == [], "a record with no object is left behind"
    assert not record.update(ENGINE.backend, {WEB: None}, str(tmp_path)), "removing what is not recorded changes nothing"


def test_a_record_written_without_trust_is_not_trusted(tmp_path):
    record.update(ENGINE.backend, {WEB: entry()}, str(tmp_path), trust=TRUST)
    record.update(ENGINE.backend, {WEB: entry()}, str(tmp_path))
    assert not record.read(ENGINE.backend, str(tmp_path)).trusted_at(TRUST)
    assert not record.Record().trusted_at(None), "no generation, no trust"


def test_a_record_that_cannot_be_read_is_no_record(tmp_path):
    (tmp_path / record.record_path(ENGINE.backend, str(tmp_path)).rsplit("/", 1)[1]).write_text("{not json")
    assert record.load(ENGINE.backend, str(tmp_path)) == {} and record.read(ENGINE.backend, str(tmp_path)).trust is None


def drift(live, recorded, kinds=()):
    found = recorded_drift(ENGINE, {WEB: recorded}, {WEB: []} if live else {}, lambda keys: {WEB: live}, kinds)
    return [(f["issue"], f["object"]) for f in found]


def test_live_rules_are_compared_with_the_rendering_of_the_recorded_definition():
    rendered = render(BALANCER)
    assert drift(rendered, entry()) == []
    fewer = render(build_balancer({"name": "web", "vip": "198.18.0.100", "port": 80, "backends": ["198.18.0.21"]}))
    assert ("chain_missing", "balancer:web") in drift(fewer, entry())
    assert drift({}, entry()) == [("object_missing", "balancer:web")]
    assert drift({}, entry(), kinds=("balancer",)) == [], "a kind given by definitions is compared with them instead"
    for spoilt in ({"name": "web", "vip": "198.18.0.100;reboot"}, ["web"], None):
        assert drift({}, dict(entry(), definition=spoilt)) == [], "a definition that does not validate was rendered"


def test_a_definition_recorded_with_its_input_is_recalled_as_the_same_object(tmp_path, monkeypatch):
    monkeypatch.setattr(record, "code_digest", lambda: "1" * 64)
    given = {"name": "web", "vip": "198.18.0.100", "port": 80, "backends": ["198.18.0.21", "198.18.0.22"]}
    record.update(ENGINE.backend, {WEB: dict(entry(), input=input_digest(given)), ("balancer", "api"): entry() | {"definition": dict(
        definition(BALANCER), name="api")}}, str(tmp_path))
    recalled = record.recalled_definitions(str(tmp_path))
    assert list(recalled) == [("balancer", "web", input_digest(given))], "an entry without its input was recalled"
    web = recalled[("balancer", "web", input_digest(given))]
    assert (web.name, web.vip, web.port, web.protocol) == ("web", "198.18.0.100", 80, "tcp") and "model" not in vars(web)
    assert digest(web) == digest(BALANCER) and render(web) == render(BALANCER) and web.backends == BALANCER.backends
    assert input_digest(dict(given, port=81)) != input_digest(given) and input_digest({"x": object()}) is None


def test_a_record_made_by_other_code_recalls_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(record, "code_digest", lambda: "1" * 64)
    record.update(ENGINE.backend, {WEB: dict(entry(), input="1" * 64)}, str(tmp_path))
    assert record.recalled_definitions(str(tmp_path))
    monkeypatch.setattr(record, "code_digest", lambda: "2" * 64)
    assert record.recalled_definitions(str(tmp_path)) == {}


def test_an_update_writes_the_entries_it_does_not_change_as_they_were(tmp_path):
    api = ("balancer", "api")
    record.update(ENGINE.backend, {WEB: entry(), api: entry()}, str(tmp_path))
    path = record.record_path(ENGINE.backend, str(tmp_path))
    with open(path) as handle:
        text = handle.read()
    untouched = next(line for line in text.splitlines() if line.startswith('"balancer:api"'))
    # The same entry with its keys in another order: what json would write differs, what it reads does not.
    reordered = '"balancer:api": ' + json.dumps(entry(), sort_keys=False) + ("," if untouched.endswith(",") else "")
    with open(path, "w") as handle:
        handle.write(text.replace(untouched, reordered))
    record._READ.clear()  # a file rewritten within one tick of the clock keeps its size and times
    record.update(ENGINE.backend, {WEB: dict(entry(), digest="f" * 64)}, str(tmp_path))
    with open(path) as handle:
        assert reordered in handle.read().splitlines()
    assert record.read(ENGINE.backend, str(tmp_path)).objects == {WEB: dict(entry(), digest="f" * 64), api: entry()}


def test_a_record_in_any_json_layout_reads(tmp_path):
    path = record.record_path(ENGINE.backend, str(tmp_path))
    with open(path, "w") as handle:
        json.dump({"balancer:web": entry(), "trust": TRUST}, handle, indent=2)
    read = record.read(ENGINE.backend, str(tmp_path))
    assert read.objects == {WEB: entry()} and read.trusted_at(TRUST)


class GenerationEngine:
    @staticmethod
    def generation():
        return 7


class BootHost:
    @staticmethod
    def read_text(_path):
        return TRUST["boot"] + "\n"


def test_tunnel_devices_are_the_collections_devices_by_name_and_index():
    links = [(1, "lo"), (2, "eth0"), (7, "nmvx4242"), (8, "nmvx07"), (9, "vxlan0"), (3, "nmvx1")]
    assert record.tunnel_devices(lambda: links) == ["nmvx1:3", "nmvx4242:7"]

    def unreadable():
        raise OSError("no netlink")
    assert record.tunnel_devices(unreadable) is None


def test_a_tunnel_device_made_again_moves_the_trust(monkeypatch):
    monkeypatch.setattr(record, "code_digest", lambda: TRUST["code"])
    monkeypatch.setattr(record, "tunnel_devices", lambda: [])
    assert record.trust_now(BootHost(), GenerationEngine()) == TRUST  # no tunnel: the trust as before
    monkeypatch.setattr(record, "tunnel_devices", lambda: ["nmvx4242:7"])
    first = record.trust_now(BootHost(), GenerationEngine())
    monkeypatch.setattr(record, "tunnel_devices", lambda: ["nmvx4242:12"])
    again = record.trust_now(BootHost(), GenerationEngine())
    assert first == dict(TRUST, devices=["nmvx4242:7"]) and again != first
    monkeypatch.setattr(record, "tunnel_devices", lambda: None)
    assert record.trust_now(BootHost(), GenerationEngine()) is None
