"""Backend detection and restore invocation, against a scripted host."""

import pytest

from ansible_collections.netmagic.netfilter.plugins.module_utils._host import EngineError
from ansible_collections.netmagic.netfilter.plugins.module_utils._iptables_engine import IptablesLegacyEngine, IptablesNftEngine, detect_variant
from ansible_collections.netmagic.netfilter.plugins.module_utils._iptables_rules import render
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import build_mirror

RULES = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n"


class ScriptedHost:
    """Answers each program with a fixed (rc, out, err); records every call."""

    def __init__(self, outputs, missing=()):
        self.outputs = outputs
        self.missing = set(missing)
        self.calls = []

    def which(self, name):
        return None if name in self.missing else "/usr/sbin/" + name

    def read_text(self, path):
        return self.outputs.get(path)

    def run(self, argv, data=None):
        self.calls.append((argv, data))
        return self.outputs.get(argv[0].rsplit("/", 1)[1], (0, "", ""))

    read = run


@pytest.mark.parametrize(
    "outputs, variant",
    [
        ({"iptables-legacy-save": (0, RULES, "")}, "legacy"),
        ({"ip6tables-legacy-save": (0, RULES, "")}, "legacy"),
        ({"iptables-nft-save": (0, RULES, "")}, "nft"),
        ({"iptables": (0, "iptables v1.8.9 (legacy)\n", "")}, "legacy"),
        ({"iptables": (0, "iptables v1.8.9 (nf_tables)\n", "")}, "nft"),
        ({"iptables-nft-save": (0, "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n", ""), "iptables": (0, "iptables v1.8.7 (legacy)", "")}, "legacy"),
    ],
)
def test_detect_variant(outputs, variant):
    assert detect_variant(ScriptedHost(outputs)) == variant


def test_rules_in_both_backends_are_refused():
    host = ScriptedHost({"iptables-legacy-save": (0, RULES, ""), "iptables-nft-save": (0, RULES + RULES, "")})
    with pytest.raises(EngineError, match=r"both iptables backends \(2 in nf_tables, 1 in legacy"):
        detect_variant(host)


def test_missing_iptables_says_what_to_install():
    host = ScriptedHost({}, missing={"iptables"})
    with pytest.raises(EngineError, match="install the 'iptables' package"):
        detect_variant(host)


def apply_mirror(engine, check_only=False):
    """Applies one new mirror; the iptables engines plan without the snapshot."""
    engine.apply(engine.plan(None, {("mirror", "m"): ({}, render(build_mirror({"name": "m", "gateway": "198.18.0.3"})))}), check_only=check_only)


def test_apply_is_one_restore_with_noflush_and_the_lock():
    host = ScriptedHost({})
    engine = IptablesLegacyEngine(host)
    desired = render(build_mirror({"name": "m", "gateway": "198.18.0.3"}))
    engine.apply(engine.plan(engine.read(), {("mirror", "m"): ({}, desired)}))
    host.calls = [call for call in host.calls if not call[0][0].endswith("-save")]
    [(argv, data)] = host.calls
    assert argv == ["/usr/sbin/iptables-legacy-restore", "--noflush", "--wait=10"]
    assert data.startswith("*mangle\n") and data.endswith("COMMIT\n")


def test_check_mode_only_tests_the_buffer():
    host = ScriptedHost({})
    apply_mirror(IptablesNftEngine(host), check_only=True)
    assert host.calls[0][0][-1] == "--test"


def test_refused_restore_reports_iptables_error():
    host = ScriptedHost({"iptables-nft-restore": (2, "", "iptables-restore: line 3 failed")})
    with pytest.raises(EngineError, match="line 3 failed"):
        apply_mirror(IptablesNftEngine(host))


@pytest.mark.parametrize(
    "listed_targets, listed_matches, named",
    [
        ("DNAT\nMASQUERADE\n", "statistic\ncomment\nconntrack\n", ["target TEE"]),
        ("TEE\nDNAT\nMASQUERADE\n", "comment\nconntrack\n", []),
    ],
)
def test_a_refusal_for_a_missing_extension_names_it(listed_targets, listed_matches, named):
    host = ScriptedHost({
        "iptables-nft-restore": (1, "", "iptables-restore: line 4 failed: No chain/target/match by that name."),
        "/proc/net/ip_tables_targets": listed_targets,
        "/proc/net/ip_tables_matches": listed_matches,
    })
    with pytest.raises(EngineError) as raised:
        apply_mirror(IptablesNftEngine(host))
    message = str(raised.value)
    for name in named:
        assert "the kernel lacks the %s" % name in message
    if not named:
        assert "the kernel lacks" not in message
