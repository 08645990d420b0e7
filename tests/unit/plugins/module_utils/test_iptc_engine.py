"""The python-iptables engine without root: translation, refusal, missing library, the lock.

Tests that build iptc objects need the library (and no root); they first mark every table
unavailable to iptc, so that nothing they do can open, and so create, a table on this machine.
iptc loads a target extension of two families (TEE, DNAT, MASQUERADE) for one family per
process, and loading it for the other exits the process: here TEE is built for IPv6 only,
DNAT and MASQUERADE for IPv4 only.
"""

import builtins
import fcntl
import shlex
import sys

import iptc as iptc_library  # python-iptables, from tests/unit/requirements.txt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.netmagic.netfilter.plugins.module_utils import _iptc_engine as engine_module
from ansible_collections.netmagic.netfilter.plugins.module_utils import _engines, _reconcile
from ansible_collections.netmagic.netfilter.plugins.module_utils._host import EngineError, MissingLibraryError, xtables_lock
from ansible_collections.netmagic.netfilter.plugins.module_utils._iptables_rules import render, restore_buffer
from ansible_collections.netmagic.netfilter.plugins.module_utils._iptc_engine import (
    IptcEngine,
    RuleSpec,
    _words,
    build_rule,
    load_iptc,
    rule_spec,
    table_operations,
)
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import build_balancer, build_mirror
from ansible_collections.netmagic.netfilter.plugins.module_utils._naming import chain_name

MIRO, MIRI = chain_name("MIRO", "mirror", "http"), chain_name("MIRI", "mirror", "http")
SEP0, SEP1, SVC = chain_name("SEP", "balancer", "web", 0), chain_name("SEP", "balancer", "web", 1), chain_name("SVC", "balancer", "web")

LEGACY_RULES = """*mangle
:PREROUTING ACCEPT [0:0]
:NM-MIRO-b02397ee-http - [0:0]
-A OUTPUT -m comment --comment "netmagic:mirror:http" -j NM-MIRO-b02397ee-http
-A NM-MIRO-b02397ee-http -p tcp -j TEE --gateway 198.18.0.3
COMMIT
"""
NFT_RULES = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n"


class ScriptedHost:
    """Answers each program with a fixed (rc, out, err); records every call."""

    def __init__(self, outputs):
        self.outputs = outputs
        self.calls = []

    def which(self, name):
        return "/usr/sbin/" + name

    def run(self, argv, data=None):
        self.calls.append(argv[0].rsplit("/", 1)[1])
        return self.outputs.get(argv[0].rsplit("/", 1)[1], (0, "", ""))

    read = run

    def forget_reads(self):
        self.calls.append("forget_reads")


def mirror(**params):
    return build_mirror(dict({"name": "http", "gateway": "198.18.0.3"}, **params))


def balancer(**params):
    return build_balancer(dict({"name": "web", "vip": "198.18.0.100", "port": 80, "backends": ["198.18.0.21", "198.18.0.22"]}, **params))


# --- translation ---------------------------------------------------------------

@pytest.mark.parametrize(
    "words, expected",
    [
        ("-p tcp -m tcp --dport 80 -j TEE --gateway 198.18.0.3",
         RuleSpec((("protocol", "tcp"),), (("tcp", (("dport", "80"),)),), ("TEE", (("gateway", "198.18.0.3"),)))),
        ("-s 198.18.1.0/24 -i eth+ -p udp -m udp --sport 8000:8100 -j TEE --gateway 198.18.0.3",
         RuleSpec((("src", "198.18.1.0/24"), ("in_interface", "eth+"), ("protocol", "udp")),
                  (("udp", (("sport", "8000:8100"),)),), ("TEE", (("gateway", "198.18.0.3"),)))),
        ("-d 2001:2::/48 -o eth0 -p ipv6-icmp -j TEE --gateway 2001:2::3",
         RuleSpec((("dst", "2001:2::/48"), ("out_interface", "eth0"), ("protocol", "58")), (), ("TEE", (("gateway", "2001:2::3"),)))),
        ('-m comment --comment "netmagic:mirror:http" -j NM-MIRO-b02397ee-http',
         RuleSpec((), (("comment", (("comment", "netmagic:mirror:http"),)),), ("NM-MIRO-b02397ee-http", ()))),
        ("-p tcp -m conntrack --ctstate DNAT --ctorigdst 198.18.0.100 --ctorigdstport 80 -j NM-MASQ-7c6509ab-web",
         RuleSpec((("protocol", "tcp"),),
                  (("conntrack", (("ctstate", "DNAT"), ("ctorigdst", "198.18.0.100"), ("ctorigdstport", "80"))),),
                  ("NM-MASQ-7c6509ab-web", ()))),
        ("-m statistic --mode nth --every 3 --packet 0 -j NM-SEP-7c6509ab-0-web",
         RuleSpec((), (("statistic", (("mode", "nth"), ("every", "3"), ("packet", "0"))),), ("NM-SEP-7c6509ab-0-web", ()))),
        ("-p tcp -j DNAT --to-destination [2001:2::21]:80",
         RuleSpec((("protocol", "tcp"),), (), ("DNAT", (("to-destination", "[2001:2::21]:80"),)))),
        ("-j MASQUERADE", RuleSpec((), (), ("MASQUERADE", ()))),
        ("-m recent --rcheck --seconds 10800 --reap --name NM-AFF-7c6509ab-0-web --mask 255.255.255.255 --rsource -j NM-SEP-7c6509ab-0-web",
         RuleSpec((), (("recent", (("rcheck", ""), ("seconds", "10800"), ("reap", ""), ("name", "NM-AFF-7c6509ab-0-web"),
                                   ("mask", "255.255.255.255"), ("rsource", ""))),), ("NM-SEP-7c6509ab-0-web", ()))),
        ("-p udp -m recent --set --name NM-AFF-7c6509ab-0-web --mask 255.255.255.255 --rsource -j DNAT --to-destination 198.18.0.21:53",
         RuleSpec((("protocol", "udp"),), (("recent", (("set", ""), ("name", "NM-AFF-7c6509ab-0-web"), ("mask", "255.255.255.255"),
                                                       ("rsource", ""))),), ("DNAT", (("to-destination", "198.18.0.21:53"),)))),
    ],
)
def test_rendered_rules_translate_into_specs(words, expected):
    assert rule_spec(shlex.split(words)) == expected


@pytest.mark.parametrize(
    "words, why",
    [
        (["!", "-s", "198.18.0.1/32", "-j", "ACCEPT"], "'!'"),
        (["-g", SVC], "'-g'"),
        (["-m", "recent", "!", "--rcheck", "--seconds", "5", "-j", "DROP"], "'!'"),
        (["-p", "tcp", "-m", "tcp", "--dport", "80"], "without a target"),
        (["-p"], "'-p'"),
    ],
)
def test_rules_it_cannot_translate_are_refused(words, why):
    with pytest.raises(EngineError, match=why):
        rule_spec(words)


def steps(buffer):
    return [(table, [(step.action, step.chain) for step in table_steps]) for table, table_steps in table_operations(buffer)]


def test_a_new_object_is_declared_filled_and_hooked():
    desired = render(mirror(ports=["80"]))
    assert steps(restore_buffer({}, desired)) == [("mangle", [
        ("declare", MIRO), ("declare", MIRI),
        # In each chain, the returns of traffic with the collector, then the clone.
        ("append", MIRO), ("append", MIRO), ("append", MIRO), ("append", MIRI), ("append", MIRI), ("append", MIRI),
        ("insert", "OUTPUT"), ("insert", "PREROUTING"),
    ])]


def test_removal_empties_unhooks_and_deletes_the_chains():
    current = render(balancer(masquerade=False, local_clients=False))
    assert steps(restore_buffer(current, {})) == [("nat", [
        ("declare", SEP0), ("declare", SEP1), ("declare", SVC),
        ("delete", "PREROUTING"),
        ("remove", SEP0), ("remove", SEP1), ("remove", SVC),
    ])]


def test_each_step_keeps_its_restore_line_and_inserted_rules_drop_the_position():
    [(_table, table_steps)] = table_operations(restore_buffer({}, render(mirror())))
    insert = [step for step in table_steps if step.action == "insert"][0]
    assert insert.line.startswith("-I OUTPUT 1 -m comment")
    assert insert.rule.target == (MIRO, ())


# --- refusal and reading, against a scripted host ------------------------------

def test_a_host_whose_rules_are_in_nf_tables_is_refused_before_anything_is_read():
    host = ScriptedHost({"ip6tables-nft-save": (0, NFT_RULES, ""), "iptables-legacy-save": (0, LEGACY_RULES, "")})
    with pytest.raises(EngineError, match=r"live rules are in nf_tables \(1 rules .*use engine iptables-nft"):
        IptcEngine(host, library=object()).read()
    assert "iptables-legacy-save" not in host.calls


def test_a_legacy_host_is_read_with_iptables_legacy_save():
    warning = "# Warning: iptables-legacy tables present, use iptables-legacy-save to see them\n"
    host = ScriptedHost({"iptables-nft-save": (0, warning, ""), "iptables-legacy-save": (0, LEGACY_RULES, "")})
    owned = IptcEngine(host, library=object()).read().owned([("mirror", "http")])[("mirror", "http")]
    # A chain named by release 0.1.0 (8-hex token) is still the object's, so an upgrade replaces it.
    assert owned[(4, "mangle")].chains == {"NM-MIRO-b02397ee-http": ["-A NM-MIRO-b02397ee-http -p tcp -j TEE --gateway 198.18.0.3"]}
    assert host.calls[-2:] == ["iptables-legacy-save", "ip6tables-legacy-save"]


def test_it_shares_the_legacy_backend_with_iptables_legacy():
    engine = IptcEngine(ScriptedHost({}), library=object())
    assert (engine.name, engine.backend) == ("python-iptables", "xtables-legacy")


# --- missing library -----------------------------------------------------------

@pytest.fixture
def without_iptc(monkeypatch):
    monkeypatch.setitem(sys.modules, "iptc", None)


def test_a_missing_library_says_what_to_install(without_iptc):
    with pytest.raises(MissingLibraryError) as raised:
        load_iptc()
    assert raised.value.library == "python-iptables"
    assert "pip install python-iptables==1.2.0" in raised.value.reason
    assert "import of iptc halted" in raised.value.traceback


def test_a_library_that_cannot_import_on_this_python_says_why_and_what_to_use_instead(monkeypatch):
    def import_without_distutils(name, *args, **kwargs):
        if name == "iptc":
            raise ModuleNotFoundError("No module named 'distutils'", name="distutils")
        return real_import(name, *args, **kwargs)
    real_import = builtins.__import__
    monkeypatch.delitem(sys.modules, "iptc", raising=False)
    monkeypatch.setattr(builtins, "__import__", import_without_distutils)
    with pytest.raises(EngineError) as raised:
        load_iptc()
    assert not isinstance(raised.value, MissingLibraryError)
    assert "installed but cannot be imported on Python %d.%d: No module named 'distutils'" % sys.version_info[:2] in str(raised.value)
    assert "use engine iptables-legacy" in str(raised.value)


def refuse_to_import():
    raise AssertionError("iptc was imported")


class FailedModule(Exception):
    pass


class FakeModule:
    """What reconcile uses of AnsibleModule; fail_json raises with its arguments."""

    check_mode = False
    _diff = False
    _name = "netmagic.netfilter.tee_mirror"

    def __init__(self, params):
        self.params = params

    def run_command(self, argv, data=None, binary_data=False, check_rc=False, **_options):
        return 0, "", ""

    def get_bin_path(self, name):
        return "/usr/sbin/" + name

    def fail_json(self, **result):
        raise FailedModule(result)


def test_the_module_fails_with_ansibles_missing_library_message(without_iptc, monkeypatch, tmp_path):
    monkeypatch.setattr("ansible_collections.netmagic.netfilter.plugins.module_utils._host.LOCK_PATHS", (str(tmp_path / "lock"),))
    module = FakeModule({"name": "http", "state": "present", "engine": "python-iptables", "gateway": "198.18.0.3", "persist": False})
    with pytest.raises(FailedModule) as failed:
        _reconcile.reconcile(module, "mirror", build_mirror)
    result = failed.value.args[0]
    assert result["msg"].startswith("Failed to import the required Python library (python-iptables)")
    assert "pip install python-iptables==1.2.0" in result["msg"]
    assert "import of iptc halted" in result["exception"]


def test_a_read_needs_the_library_installed_but_not_loaded(monkeypatch):
    monkeypatch.setattr(engine_module, "load_iptc", refuse_to_import)
    assert IptcEngine(ScriptedHost({})).read().owned([("mirror", "http")]) == {("mirror", "http"): {}}


def test_a_read_without_the_library_says_what_to_install(without_iptc):
    with pytest.raises(MissingLibraryError, match="python-iptables"):
        IptcEngine(ScriptedHost({})).read()


def test_other_engines_never_need_the_library(monkeypatch):
    monkeypatch.setattr(engine_module, "load_iptc", refuse_to_import)
    host = ScriptedHost({})
    others = _engines.other_backends(host, _engines.engine_named(host, "iptables-nft"))
    assert [other.name for other in others] == ["iptables-legacy", "nftables"]


# --- iptc objects, no root ------------------------------------------------------

@pytest.fixture
def iptc():
    engine_module.hide_missing_tables(iptc_library, {4: set(), 6: set()})
    return iptc_library


def built(iptc, family, line):
    """The iptc rule of one '-A CHAIN ...' line, and the spec it was built from."""
    [(_table, [step])] = table_operations("*nat\n%s\nCOMMIT\n" % line)
    return build_rule(iptc, family, step.rule), step.rule


@pytest.mark.parametrize(
    "obj",
    [
        mirror(gateway="2001:2::3", ports=["80", "8000:8100"], peer="2001:2::/48", interface="eth+"),
        mirror(gateway="2001:2::3", protocol="icmp"),
        # IPv6 as the others: the library loads a target extension for one family per process.
        mirror(gateway="2001:2:fa::1", gateway_interface="nmvx42", exclude=["2001:2:2::/64"], ports=["80"], sample=2),
        balancer(backends=["198.18.0.21", {"address": "198.18.0.22", "weight": 2}]),
        balancer(mode="random", local_clients=False),
        balancer(affinity="client_ip", affinity_timeout=60),
    ],
    ids=["mirror-ports", "mirror-icmp", "mirror-tunnel", "balancer-weights", "balancer-random", "balancer-affinity"],
)
def test_every_rendered_rule_builds_with_exactly_its_options(iptc, obj):
    for (family, _table), rules in render(obj).items():
        for line in rules.jumps + [line for chain in rules.chains.values() for line in chain]:
            rule, spec = built(iptc, family, line)
            assert [(m.name, m.parameters) for m in rule.matches] == [
                (name, dict(options)) for name, options in spec.matches]
            assert rule.target.name == spec.target[0]


@pytest.mark.parametrize(
    "line",
    [
        "-A X -p tcp -m tcp --dport 80:80 -j MASQUERADE",
        "-A X -p tcp -m tcp --dport http -j MASQUERADE",
        "-A X -m statistic --mode random --probability 0.3 -j MASQUERADE",
        "-A X -m statistic --mode nth --every 3 -j MASQUERADE",
        "-A X -p tcp -m conntrack --ctorigdst 198.18.0.100/32 -j MASQUERADE",
        "-A X -p tcp -j DNAT --to-destination 198.18.0.21:80-80",
    ],
)
def test_a_value_the_library_would_change_is_refused(iptc, line):
    with pytest.raises(ValueError, match="would hold"):
        built(iptc, 4, line)


def refuse_to_open(table):
    raise AssertionError("opened table %s" % table.name)


def test_check_mode_on_a_host_without_the_tables_builds_the_rules_and_opens_nothing(iptc, monkeypatch, tmp_path):
    monkeypatch.setenv("XTABLES_LOCKFILE", str(tmp_path / "xtables.lock"))
    monkeypatch.setattr(engine_module, "live_tables", lambda family: set())
    monkeypatch.setattr(iptc.Table, "refresh", refuse_to_open)
    monkeypatch.setattr(iptc.Table6, "refresh", refuse_to_open)
    built = []
    real_build_rule = engine_module.build_rule
    monkeypatch.setattr(engine_module, "build_rule", lambda *args: built.append(args[1]) or real_build_rule(*args))
    desired = [render(balancer()), render(mirror(gateway="2001:2::3", ports=["80"]))]
    engine = IptcEngine(ScriptedHost({}), library=iptc)
    engine.apply(engine.plan(None, {index: ({}, owned) for index, owned in enumerate(desired)}), check_only=True)
    rule_lines = {family: [line for owned in desired for line in restore_buffer({}, owned, family).splitlines() if line[:3] in ("-A ", "-I ")]
                  for family in (4, 6)}
    assert sorted(built) == [4] * len(rule_lines[4]) + [6] * len(rule_lines[6]) and rule_lines[4] and rule_lines[6]


def test_check_mode_still_refuses_a_rule_the_library_would_change(iptc):
    [(table, table_steps)] = table_operations("*nat\n-A X -p tcp -m tcp --dport 80:80 -j MASQUERADE\nCOMMIT\n")
    with pytest.raises(EngineError, match=r"refused the change, nothing was applied: tcp would hold .*\nin IPv4 table nat: -A X"):
        engine_module.build_rules(iptc, 4, table, table_steps)


# --- the xtables lock -----------------------------------------------------------

def test_the_xtables_lock_waits_a_bounded_time(monkeypatch, tmp_path):
    path = tmp_path / "xtables.lock"
    monkeypatch.setenv("XTABLES_LOCKFILE", str(path))
    with open(path, "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with pytest.raises(EngineError, match="another iptables writer held %s" % path):
            with xtables_lock(timeout=0.2):
                pass
    with xtables_lock(timeout=0.2):
        pass


@given(st.text(alphabet=st.sampled_from(list("-:ANMSEPTCDjmp ./0123456789abcdefgh_\t\"'\\")), max_size=60))
@settings(max_examples=400, deadline=None)
def test_a_restore_line_splits_into_the_words_shlex_gives(line):
    try:
        expected = shlex.split(line)
    except ValueError:
        return  # an unclosed quote: shlex refuses it either way
    assert _words(line) == expected
