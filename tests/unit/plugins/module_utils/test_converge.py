"""converge, the pipeline every module runs, against simulated iptables tools: each case is the
run's definitions and options, the programs it ran, and what the host holds afterwards."""

import pytest

from ansible_collections.netmagic.netfilter.plugins.module_utils import _host, _record, _reconcile
from ansible_collections.netmagic.netfilter.plugins.module_utils._host import EngineError
from ansible_collections.netmagic.netfilter.plugins.module_utils._iptables_engine import IptablesLegacyEngine, IptablesNftEngine
from ansible_collections.netmagic.netfilter.plugins.module_utils._iptables_rules import render
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import (
    ValidationError,
    build_balancer,
    build_mirror,
    definition,
    digest,
    rebuild,
)
from ansible_collections.netmagic.netfilter.tests.unit.plugins.module_utils.kernel import SimulatedHost

WEB = ("balancer", "web")
HTTP = ("mirror", "http")
API = ("balancer", "api")


def web(**changes):
    return build_balancer(dict({"name": "web", "vip": "198.18.0.100", "port": 80, "backends": ["198.18.0.21", "198.18.0.22"]}, **changes))


def http():
    return build_mirror({"name": "http", "gateway": "198.18.0.3", "ports": ["80"]})


@pytest.fixture(autouse=True)
def private_paths(tmp_path, monkeypatch):
    """The lock and the record of what was applied under the test's own directory."""
    monkeypatch.setattr(_host, "LOCK_PATHS", (str(tmp_path / "lock"),))
    monkeypatch.setattr(_record, "RECORD_DIR", str(tmp_path / "record"))


def converge(host, objects, check_only=False, **options):
    params = dict({"engine": "auto", "persist": False, "persist_path": "/etc/netmagic/netfilter", "persist_service": False,
                   "exclusive": []}, **options)
    return _reconcile.converge(host, params, objects, check_only)


def test_a_new_object_is_one_restore_and_the_second_run_writes_nothing():
    host = SimulatedHost()
    outcome = converge(host, {WEB: web(), HTTP: http()})
    assert outcome.changed and sorted(outcome.changed_keys) == [WEB, HTTP]
    assert [argv[0] for argv in host.writes()] == ["iptables-nft-restore"]
    rules = host.rules()
    assert any("-j DNAT --to-destination 198.18.0.21:80" in line for line in rules) and any("-j TEE" in line for line in rules)
    host.ran.clear()
    again = converge(host, {WEB: web(), HTTP: http()})
    assert not again.changed and host.writes() == []
    recorded = _record.load("xtables-nft")
    assert {key: (entry["definition"], entry["digest"]) for key, entry in recorded.items()} == {
        key: (definition(obj), digest(obj)) for key, obj in ((WEB, web()), (HTTP, http()))}


def test_a_run_that_finds_everything_as_recorded_reads_no_rules():
    host = SimulatedHost()
    converge(host, {WEB: web(), HTTP: http()}, engine="iptables-nft")
    host.ran.clear()
    outcome = converge(host, {WEB: web(), HTTP: http()}, engine="iptables-nft")
    recorded = _record.load("xtables-nft")[WEB]
    assert not outcome.changed and outcome.engine.render(rebuild("balancer", recorded["definition"])) == outcome.desired[WEB]
    assert host.reads() == [], "the other backend, which has no table set up, was read"
    host.plant("legacy", 4, "nat", "PREROUTING", "-A PREROUTING -p udp -m udp --dport 53 -j ACCEPT")
    host.ran.clear()
    assert not converge(host, {WEB: web(), HTTP: http()}, engine="iptables-nft").changed
    assert [argv[0] for argv in host.reads()] == ["iptables-legacy-save", "ip6tables-legacy-save"], \
        "the other backend, which has no generation, was not read once it had a table"
    host.ran.clear()
    assert not converge(host, {WEB: web(), ("balancer", "api"): None}, engine="iptables-nft").changed
    assert ["iptables-nft-save"] not in host.reads(), "an absent object the record does not hold needs no read"


@pytest.mark.parametrize("someone_else", [
    pytest.param(lambda host: host.kernel[("nft", 4)]["nat"][next(c for c in host.kernel[("nft", 4)]["nat"] if c.startswith("NM-SEP"))].clear()
                 or setattr(host, "generation", host.generation + 1), id="emptied an owned chain"),
    pytest.param(lambda host: host.plant("nft", 4, "nat", "PREROUTING", "-A PREROUTING -p udp -m udp --dport 53 -j ACCEPT"), id="added a rule of their own"),
])
def test_after_a_change_by_anyone_else_the_rules_are_read_again(someone_else):
    host = SimulatedHost()
    converge(host, {WEB: web()}, engine="iptables-nft")
    expected = host.rules()
    someone_else(host)
    host.ran.clear()
    converge(host, {WEB: web()}, engine="iptables-nft")
    assert ["iptables-nft-save"] in host.reads()
    assert [line for line in host.rules() if "dport 53" not in line] == expected, "the owned rules were not repaired"
    host.ran.clear()
    assert not converge(host, {WEB: web()}, engine="iptables-nft").changed and ["iptables-nft-save"] not in host.reads(), "trust did not come back"


def test_a_commit_by_someone_else_during_the_run_leaves_the_record_untrusted(monkeypatch):
    host = SimulatedHost()
    restore = host.run

    def racing(argv, data=None):
        answer = restore(argv, data)
        if argv[0].endswith("iptables-nft-restore"):
            host.generation += 1
        return answer
    monkeypatch.setattr(host, "run", racing)
    converge(host, {WEB: web()}, engine="iptables-nft")
    host.ran.clear()
    converge(host, {WEB: web()}, engine="iptables-nft")
    assert ["iptables-nft-save"] in host.reads()


def test_auto_knows_the_backend_in_use_from_a_trusted_record():
    host = SimulatedHost()
    converge(host, {WEB: web()})
    host.ran.clear()
    outcome = converge(host, {WEB: web()})
    assert outcome.engine.name == "iptables-nft" and not outcome.changed
    assert ["iptables-nft-save"] not in host.reads() and ["iptables-legacy-save"] in host.reads(), \
        "the legacy backend, which has no generation, is still counted"


@pytest.mark.parametrize("exclusive", [[], ["balancers"]])
def test_a_recorded_object_the_host_lost_keeps_the_record_untrusted_unless_its_kind_is_exclusive(exclusive):
    host = SimulatedHost()
    converge(host, {WEB: web(), API: web(name="api", port=443)}, engine="iptables-nft")
    chains = IptablesNftEngine.describe(render(web(name="api", port=443)))[0]
    for table in host.kernel[("nft", 4)].values():  # someone deletes api by hand
        for chain in [c for c in table if c in chains]:
            del table[chain]
        for chain, lines in table.items():
            lines[:] = [line for line in lines if "balancer:api" not in line]
    host.generation += 1
    converge(host, {WEB: web()}, engine="iptables-nft", exclusive=exclusive)
    host.ran.clear()
    converge(host, {WEB: web()}, engine="iptables-nft", exclusive=exclusive)
    assert (["iptables-nft-save"] in host.reads()) is not bool(exclusive)
    assert (API in _record.load("xtables-nft")) is not bool(exclusive), "an exclusive run forgets what the host does not hold"


def test_a_backend_without_a_generation_is_read_every_time():
    host = SimulatedHost()
    converge(host, {WEB: web()}, engine="iptables-legacy")
    host.ran.clear()
    converge(host, {WEB: web()}, engine="iptables-legacy")
    assert ["iptables-legacy-save"] in host.reads()


RUNS = [
    ({WEB: web(), API: web(name="api", port=443), HTTP: http()}, {}),
    ({WEB: web(backends=["198.18.0.21", "198.18.0.23"]), API: web(name="api", port=443), HTTP: http()}, {}),
    ({WEB: web(backends=["198.18.0.21", "198.18.0.23"]), API: web(name="api", port=8443)}, {}),
    ({HTTP: None, ("balancer", "new"): web(name="new", port=25)}, {}),
    ({WEB: web(backends=["198.18.0.23"])}, {"exclusive": ["balancers"]}),
    ({WEB: None}, {}),
]


def test_runs_planned_from_the_record_do_what_runs_that_read_do():
    """The same runs on a host whose record is trusted and on one without a generation (read every time)."""
    trusting, reading = SimulatedHost(), SimulatedHost()
    reading.ruleset_generation = lambda: None
    for number, (objects, options) in enumerate(RUNS):
        trusting.ran.clear()
        trusted = converge(trusting, objects, engine="iptables-nft", **options)
        assert number == 0 or ["iptables-nft-save"] not in trusting.reads(), "run %d read the rules" % number
        _record.RECORD_DIR += "-reading"
        try:
            read = converge(reading, objects, engine="iptables-nft", **options)
        finally:
            _record.RECORD_DIR = _record.RECORD_DIR[:-len("-reading")]
        assert sorted(trusted.changed_keys) == sorted(read.changed_keys) and trusted.unlisted == read.unlisted, "run %d" % number
        for family in (4, 6):
            assert trusting.rules("nft", family) == reading.rules("nft", family), "run %d, IPv%d" % (number, family)
    assert trusting.rules() == [] and _record.load("xtables-nft") == {}


def test_a_record_made_by_other_code_is_not_trusted(monkeypatch):
    host = SimulatedHost()
    converge(host, {WEB: web()}, engine="iptables-nft")
    monkeypatch.setattr(_record, "code_digest", lambda: "0" * 64)
    host.ran.clear()
    converge(host, {WEB: web()}, engine="iptables-nft")
    assert ["iptables-nft-save"] in host.reads()


def test_check_mode_tests_the_change_and_leaves_the_host_as_it_was():
    host = SimulatedHost()
    outcome = converge(host, {WEB: web()}, check_only=True)
    assert outcome.changed and host.rules() == []
    assert [argv[-1] for argv in host.writes()] == ["--test"]
    assert _record.load("xtables-nft") == {}


def test_one_changed_backend_rewrites_only_that_service():
    host = SimulatedHost()
    converge(host, {WEB: web(), ("balancer", "api"): web(name="api", port=443)})
    host.ran.clear()
    outcome = converge(host, {WEB: web(backends=["198.18.0.21", "198.18.0.23"]), ("balancer", "api"): web(name="api", port=443)})
    assert outcome.changed_keys == [WEB]
    assert len(host.writes()) == 1
    assert any("--to-destination 198.18.0.23:80" in line for line in host.rules())


def test_an_object_held_by_the_other_backend_moves_in_the_same_run():
    host = SimulatedHost()
    converge(host, {WEB: web()}, engine="iptables-legacy")
    assert host.rules("legacy") and host.rules("nft") == []
    outcome = converge(host, {WEB: web()}, engine="iptables-nft")
    assert [engine.name for engine in outcome.removed_from] == ["iptables-legacy"]
    assert host.rules("legacy") == [] and host.rules("nft")
    assert WEB in _record.load("xtables-nft") and _record.load("xtables-legacy") == {}, "the record of the backend it left still holds it"


def test_a_record_of_the_backend_left_that_cannot_be_written_is_a_warning(monkeypatch):
    host = SimulatedHost()
    converge(host, {WEB: web()}, engine="iptables-legacy")
    written = _record.update

    def refused(backend, entries, *args, **kwargs):
        if backend == "xtables-legacy":
            raise PermissionError("Permission denied")
        return written(backend, entries, *args, **kwargs)

    monkeypatch.setattr(_record, "update", refused)
    outcome = converge(host, {WEB: web()}, engine="iptables-nft")
    assert host.rules("legacy") == [] and host.rules("nft")
    assert [warning for warning in outcome.warnings if "iptables-legacy" in warning and "Permission denied" in warning], outcome.warnings


def test_exclusive_removes_the_unlisted_objects_of_its_kinds_only():
    host = SimulatedHost()
    converge(host, {WEB: web(), ("balancer", "old"): web(name="old", port=8080), HTTP: http()})
    outcome = converge(host, {WEB: web()}, exclusive=["balancers"])
    assert outcome.unlisted == [("balancer", "old")]
    rules = host.rules()
    assert not any("8080" in line for line in rules), "the unlisted balancer is still there"
    assert any("-j TEE" in line for line in rules), "exclusive balancers removed a mirror"


def test_a_foreign_rule_is_kept_where_it_was():
    host = SimulatedHost()
    host.plant("nft", 4, "nat", "PREROUTING", "-A PREROUTING -p udp -m udp --dport 53 -j ACCEPT")
    converge(host, {WEB: web()})
    converge(host, {WEB: None})
    assert host.rules() == ["-A PREROUTING -p udp -m udp --dport 53 -j ACCEPT"]


def test_a_second_balancer_on_a_service_on_the_host_is_refused_before_any_write():
    host = SimulatedHost()
    converge(host, {WEB: web()})
    host.ran.clear()
    with pytest.raises(ValidationError, match="is balanced already by balancer 'web'"):
        converge(host, {("balancer", "web2"): web(name="web2")})
    assert host.writes() == []


def test_source_ranges_jump_once_per_network_and_still_claim_the_service():
    host = SimulatedHost()
    converge(host, {WEB: web(source_ranges=["198.18.1.0/24", "198.18.2.0/24"])})
    jumps = [line for line in host.rules() if line.startswith("-A PREROUTING")]
    assert sorted(line.split()[3] for line in jumps) == ["198.18.1.0/24", "198.18.2.0/24"], jumps
    assert not converge(host, {WEB: web(source_ranges=["198.18.2.0/24", "198.18.1.0/24"])}).changed
    with pytest.raises(ValidationError, match="is balanced already by balancer 'web'"):
        converge(host, {("balancer", "web2"): web(name="web2", source_ranges=["198.18.3.0/24"])})
    converge(host, {WEB: web()})
    assert [line.split()[2:4] for line in host.rules() if line.startswith("-A PREROUTING")] == [["-d", "198.18.0.100/32"]]


def test_a_drained_backend_loses_its_endpoint_chain_and_its_turns_only():
    host = SimulatedHost()
    converge(host, {WEB: web(backends=["198.18.0.21", "198.18.0.22", "198.18.0.23"])})
    converge(host, {WEB: web(backends=["198.18.0.21", {"address": "198.18.0.22", "drain": True}, "198.18.0.23"])})
    dnat = sorted(line.split()[1][-5:] + " " + line.split()[-1] for line in host.rules() if "-j DNAT" in line)
    assert dnat == ["-0-we 198.18.0.21:80", "-2-we 198.18.0.23:80"], "the other endpoint chains kept their index"
    cascade = [line for line in host.rules() if line.startswith("-A NM-SVC-")]
    assert len(cascade) == 2 and "--every 2" in cascade[0] and not any("-1-we" in line for line in cascade), cascade


def test_a_chain_a_foreign_rule_jumps_to_is_not_removed():
    host = SimulatedHost()
    converge(host, {WEB: web()})
    service_chain = next(line.split()[-1] for line in host.rules() if line.startswith("-A PREROUTING"))
    host.plant("nft", 4, "nat", "OUTPUT", "-A OUTPUT -p tcp -j %s" % service_chain)
    before = host.rules()
    with pytest.raises(EngineError, match="cannot be removed while a rule this collection does not own jumps to it"):
        converge(host, {WEB: None})
    assert host.rules() == before


def test_persistence_saves_the_owned_rules_and_the_unit_runs_their_restore(tmp_path):
    host = SimulatedHost()
    outcome = converge(host, {WEB: web()}, persist=True, persist_path=str(tmp_path / "persist"))
    saved = (tmp_path / "persist" / "xtables-nft-4.rules").read_text()
    assert outcome.persisted["path"] == str(tmp_path / "persist")
    assert saved.startswith("*nat\n") and "--to-destination 198.18.0.22:80" in saved
    unit = (tmp_path / "persist" / "netmagic-netfilter-restore.service").read_text()
    assert 'ExecStart="/usr/sbin/iptables-nft-restore" "--noflush" "%s/xtables-nft-4.rules"' % (tmp_path / "persist") in unit
    assert not converge(host, {WEB: web()}, persist=True, persist_path=str(tmp_path / "persist")).changed


def test_a_refused_restore_leaves_the_host_unchanged_and_says_so():
    host = SimulatedHost()
    converge(host, {WEB: web()})
    before = host.rules()
    host.refused.add(("nft", 4))
    with pytest.raises(EngineError, match="iptables-nft-restore refused the change, nothing was applied"):
        converge(host, {WEB: web(port=81)})
    assert host.rules() == before


def test_when_ipv6_is_refused_the_ipv4_change_is_rolled_back():
    host = SimulatedHost()
    host.refused.add(("nft", 6))
    with pytest.raises(EngineError, match="the IPv4 change that was committed first has been rolled back"):
        converge(host, {WEB: web(), ("balancer", "web6"): web(name="web6", vip="2001:2::100", backends=["2001:2::21"])})
    assert host.rules("nft", 4) == [] and host.rules("nft", 6) == []


def test_legacy_runs_trust_a_record_at_the_fingerprint_of_the_rules_they_read(monkeypatch):
    host = SimulatedHost(version="legacy")
    converge(host, {WEB: web()}, engine="iptables-legacy")
    assert _record.read("xtables-legacy").trust is None, "a fingerprint was taken of rules the run had not read"
    converge(host, {WEB: web()}, engine="iptables-legacy")
    assert set(_record.read("xtables-legacy").trust) == {"fingerprint", "boot", "code"}, "a run that read everything took no fingerprint"

    def refuse(_engine, counters=False):
        raise AssertionError("a run with a trusted record parsed the rules")
    with monkeypatch.context() as trusting:
        trusting.setattr(IptablesLegacyEngine, "read", refuse)
        assert not converge(host, {WEB: web()}, engine="iptables-legacy").changed
        changed = converge(host, {WEB: web(backends=["198.18.0.23"])}, engine="iptables-legacy")
    assert changed.changed and any("198.18.0.23:80" in line for line in host.rules("legacy"))
    assert _record.read("xtables-legacy").trust is None, "the rules after the run's own write were fingerprinted unread"
    converge(host, {WEB: web(backends=["198.18.0.23"])}, engine="iptables-legacy")
    expected = host.rules("legacy")
    chain = next(c for c in host.kernel[("legacy", 4)]["nat"] if c.startswith("NM-SEP"))
    host.kernel[("legacy", 4)]["nat"][chain].clear()
    repaired = converge(host, {WEB: web(backends=["198.18.0.23"])}, engine="iptables-legacy")
    assert repaired.changed and host.rules("legacy") == expected, "a change by someone else was taken for the recorded rules"
