"""converge, the pipeline every module runs, against simulated iptables tools: each case is the
run's definitions and options, the programs it ran, and what the host holds afterwards."""

import pytest

from ansible_collections.netmagic.netfilter.plugins.module_utils import _host, _record, _reconcile
from ansible_collections.netmagic.netfilter.plugins.module_utils._host import EngineError
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import ValidationError, build_balancer, build_mirror, digest
from ansible_collections.netmagic.netfilter.tests.unit.plugins.module_utils.kernel import SimulatedHost

WEB = ("balancer", "web")
HTTP = ("mirror", "http")


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
    described = {key: again.engine.describe(again.desired[key]) for key in (WEB, HTTP)}
    assert _record.load("xtables-nft") == {key: {"chains": chains, "rules": lines, "digest": digest(obj)}
                                           for (key, (chains, lines)), obj in zip(described.items(), (web(), http()))}


def test_a_run_that_finds_everything_as_recorded_reads_no_rules():
    host = SimulatedHost()
    converge(host, {WEB: web(), HTTP: http()}, engine="iptables-nft")
    host.ran.clear()
    outcome = converge(host, {WEB: web(), HTTP: http()}, engine="iptables-nft")
    recorded = _record.load("xtables-nft")[WEB]
    assert not outcome.changed and list(outcome.engine.describe(outcome.desired[WEB])) == [recorded["chains"], recorded["rules"]]
    assert [argv[0] for argv in host.reads()] == ["iptables-legacy-save", "ip6tables-legacy-save"], \
        "only the other backend, which has no generation, is read"
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


@pytest.mark.parametrize("change", [
    pytest.param(dict(objects={WEB: web(port=81)}), id="a changed definition"),
    pytest.param(dict(objects={HTTP: http()}, exclusive=["balancers"]), id="an exclusive kind with an unlisted object"),
    pytest.param(dict(objects={WEB: web()}, engine="iptables-legacy"), id="a backend without a generation"),
])
def test_what_the_record_cannot_answer_is_read(change):
    host = SimulatedHost()
    engine = change.get("engine", "iptables-nft")
    converge(host, {WEB: web()}, engine=engine)
    host.ran.clear()
    converge(host, change["objects"], **dict({k: v for k, v in change.items() if k != "objects"}, engine=engine))
    assert ["%s-save" % engine] in host.reads()


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
