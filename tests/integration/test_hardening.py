"""Hardening, one class of defect at a time, in namespaces holding realistic foreign rulesets
(ufw's start-up chains, kube-proxy-like chains, Docker-like chains, a firewalld-like inet table)
and look-alikes of the collection's own names: the foreign ruleset stays byte for byte."""

import os
import stat

import pytest

from tests.integration.netfilter import ENGINES, LEGACY_ENGINES, in_netns, plant_foreign, restore, rules_of, run_module

WEB = {"name": "web", "vip": "198.18.0.100", "port": 80, "backends": ["198.18.0.21", "198.18.0.22"]}
WEB6 = {"name": "web6", "vip": "2001:2::100", "port": 80, "backends": ["2001:2::21", "2001:2::22"]}
HTTP = {"name": "http", "gateway": "198.18.0.3", "ports": ["80"]}

# ufw's own start-up chains (a subset of what `ufw enable` loads) and kube-proxy's iptables layout.
UFW_AND_KUBE = """*filter
:ufw-before-input - [0:0]
:ufw-after-input - [0:0]
:ufw-user-input - [0:0]
:ufw-reject-input - [0:0]
-A INPUT -j ufw-before-input
-A INPUT -j ufw-after-input
-A ufw-before-input -i lo -j ACCEPT
-A ufw-before-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A ufw-before-input -p icmp -m icmp --icmp-type 8 -j ACCEPT
-A ufw-before-input -j ufw-user-input
-A ufw-user-input -p tcp -m tcp --dport 22 -j ACCEPT
-A ufw-after-input -p udp -m udp --dport 137 -j ufw-reject-input
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-NPX46M4PTMTKRN6Y - [0:0]
:KUBE-SEP-ABCDEFGHIJKLMNOP - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MASQUERADE
-A KUBE-SERVICES -d 198.19.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP" -m tcp --dport 443 -j KUBE-SVC-NPX46M4PTMTKRN6Y
-A KUBE-SVC-NPX46M4PTMTKRN6Y -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-ABCDEFGHIJKLMNOP
-A KUBE-SEP-ABCDEFGHIJKLMNOP -p tcp -m tcp -j DNAT --to-destination 198.19.0.10:6443
COMMIT
"""
# Rules and chains that look like the collection's but are not: a comment that begins with or
# contains a tag, two comments, chains named NM-.
LOOKALIKES = """*nat
:NM-FOO - [0:0]
:NM-SVC-deadbeefdeadbeef-web - [0:0]
-A PREROUTING -p tcp -m tcp --dport 81 -m comment --comment "netmagic:balancer:web extra" -j ACCEPT
-A PREROUTING -p tcp -m tcp --dport 82 -m comment --comment "see netmagic:balancer:web" -j ACCEPT
-A OUTPUT -m comment --comment "netmagic:balancer:web" -m comment --comment twice -j ACCEPT
-A NM-FOO -j RETURN
-A NM-SVC-deadbeefdeadbeef-web -j RETURN
COMMIT
*mangle
:NM-MIRO-0123456789abcdef-ht - [0:0]
-A OUTPUT -m comment --comment "netmagic:mirror:http " -j ACCEPT
-A NM-MIRO-0123456789abcdef-ht -j RETURN
COMMIT
"""
FOREIGN_NETMAGIC_TABLE = """table inet netmagic {
  chain NM-SVC-0123456789abcdef-web {
    accept
  }
}
"""


def plant_everything(netns, engine):
    plant_foreign(netns, engine)
    variant = "legacy" if engine in LEGACY_ENGINES else "nft"
    restore(netns, "iptables-%s" % variant, UFW_AND_KUBE + LOOKALIKES)
    in_netns(netns, ["nft", "-f", "-"], input=FOREIGN_NETMAGIC_TABLE, check=True)
    return rules_of(netns)


def ok(result):
    assert result["rc"] == 0 and not result.get("failed"), result
    return result


def failed(result, *words):
    assert result.get("failed"), result
    for word in words:
        assert word in result["msg"], result["msg"]
    return result


@pytest.mark.parametrize("engine", ENGINES)
def test_lookalikes_are_never_owned_changed_reported_or_saved(netns, engine, tmp_path):
    foreign = plant_everything(netns, engine)
    persist = dict(engine=engine, persist=True, persist_path=str(tmp_path), persist_service=False)
    ok(run_module(netns, "dnat_balancer", dict(WEB, **persist)))
    ok(run_module(netns, "tee_mirror", dict(HTTP, force=True, **persist)))
    assert not ok(run_module(netns, "dnat_balancer", dict(WEB, **persist)))["changed"]
    ok(run_module(netns, "dnat_balancer", dict(WEB, backends=["198.18.0.23"], **persist)))
    info = ok(run_module(netns, "netfilter_info", {"engine": engine}))
    # Chains named exactly in the collection's grammar, with a token of no known object, are
    # reported (never touched); NM-FOO and the comment look-alikes are not the collection's at all.
    orphaned = sorted(f["chain"] for f in info["drift"] if f["issue"] == "chain_orphaned")
    assert orphaned == ([] if engine == "nftables" else ["NM-MIRO-0123456789abcdef-ht", "NM-SVC-deadbeefdeadbeef-web"]), info["drift"]
    assert len(info["drift"]) == len(orphaned), info["drift"]
    assert [b["name"] for b in info["balancers"]] == ["web"] and [m["name"] for m in info["mirrors"]] == ["http"]
    saved = "".join(path.read_text() for path in tmp_path.iterdir() if path.is_file())
    for lookalike in ("NM-FOO", "deadbeefdeadbeef", "0123456789abcdef", "web extra", "see netmagic", "twice", "http \"", "kube", "ufw"):
        assert lookalike not in saved
    ok(run_module(netns, "dnat_balancer", dict(name="web", state="absent", **persist)))
    ok(run_module(netns, "tee_mirror", dict(name="http", state="absent", **persist)))
    assert rules_of(netns) == foreign


def test_auto_does_not_follow_a_netmagic_table_of_another_family(netns):
    restore(netns, "iptables-nft", UFW_AND_KUBE)
    in_netns(netns, ["nft", "-f", "-"], input=FOREIGN_NETMAGIC_TABLE, check=True)
    assert ok(run_module(netns, "dnat_balancer", WEB))["engine"] == "iptables-nft"


@pytest.mark.parametrize("engine", ENGINES)
def test_a_service_another_balancer_holds_is_refused_naming_it(netns, engine):
    ok(run_module(netns, "dnat_balancer", dict(WEB, engine=engine)))
    before = rules_of(netns)
    failed(run_module(netns, "dnat_balancer", dict(WEB, name="web-renamed", engine=engine)), "vip", "balanced already by balancer 'web'")
    failed(run_module(netns, "netfilter_apply", {"engine": engine, "balancers": [dict(WEB, name="a"), dict(WEB, name="b")]}),
           "balancers[1].vip", "balancers[0] ('a')")
    assert rules_of(netns) == before
    # Removing the holder in the same run frees the service.
    balancers = [{"name": "web", "state": "absent"}, dict(WEB, name="web-renamed")]
    moved = ok(run_module(netns, "netfilter_apply", {"engine": engine, "balancers": balancers}))
    assert moved["changed"]


def legacy_tables(netns):
    return [in_netns(netns, ["cat", path]).stdout for path in ("/proc/net/ip_tables_names", "/proc/net/ip6_tables_names")]


@pytest.mark.parametrize("engine", ENGINES)
def test_check_mode_on_a_fresh_host_leaves_the_kernel_as_it_was_tables_included(netns, engine):
    before, tables = rules_of(netns), legacy_tables(netns)
    for module, params in (("dnat_balancer", WEB), ("dnat_balancer", WEB6), ("tee_mirror", dict(HTTP, force=True))):
        assert ok(run_module(netns, module, dict(params, engine=engine), check=True))["changed"]
    assert rules_of(netns) == before
    assert legacy_tables(netns) == tables


def fake_tool(directory, name, script):
    """A stand-in for a tool the module runs, first on its PATH."""
    path = os.path.join(str(directory), name)
    with open(path, "w") as handle:
        handle.write("#!/bin/sh\n" + script)
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
    return str(directory)


@pytest.mark.parametrize("engine", ["iptables-nft", "iptables-legacy"])
def test_a_failed_ipv6_commit_rolls_the_ipv4_commit_back_and_says_so(netns, engine, tmp_path):
    foreign = plant_everything(netns, engine)
    prefix = fake_tool(tmp_path, "ip6tables-%s-restore" % engine.split("-")[1], "cat >/dev/null\necho 'ip6tables-restore: line 2 failed' >&2\nexit 1\n")
    result = run_module(netns, "netfilter_apply", {"engine": engine, "balancers": [WEB, WEB6]}, path_prefix=prefix)
    failed(result, "the IPv4 change that was committed first has been rolled back", "line 2 failed")
    assert "nothing was applied" not in result["msg"]
    assert rules_of(netns) == foreign


def test_a_refused_restore_shows_its_line_in_context_in_the_c_locale(netns, tmp_path):
    prefix = fake_tool(tmp_path, "iptables-nft-restore", "cat >/dev/null\necho \"LC_ALL=$LC_ALL\" >&2\n"
                                                         "echo 'iptables-restore: line 9 failed' >&2\nexit 1\n")
    balancers = [dict(WEB, name="svc%d" % i, vip="198.18.0.%d" % (100 + i)) for i in range(30)]
    result = failed(run_module(netns, "netfilter_apply", {"engine": "iptables-nft", "balancers": balancers}, path_prefix=prefix),
                    "LC_ALL=C", "line 9 failed", "nothing was applied")
    numbered = [line for line in result["msg"].splitlines() if line[:1] in (" ", ">") and line[1:7].strip().isdigit()]
    assert [int(line[1:7]) for line in numbered] == list(range(6, 13)) and numbered[3].startswith(">")
    assert len(result["msg"]) < 3000


def test_a_killed_writer_is_reported_as_killed(netns, tmp_path):
    prefix = fake_tool(tmp_path, "iptables-nft-restore", "kill -9 $$\n")
    # Killed before it read its input (a broken pipe for the module), or after (a signal exit status).
    failed(run_module(netns, "dnat_balancer", dict(WEB, engine="iptables-nft"), path_prefix=prefix), "killed", "run again to converge")
    prefix = fake_tool(tmp_path, "iptables-nft-restore", "cat >/dev/null\nkill -9 $$\n")
    failed(run_module(netns, "dnat_balancer", dict(WEB, engine="iptables-nft"), path_prefix=prefix), "was killed", "run again to converge")


@pytest.mark.parametrize("engine", ENGINES)
def test_info_definitions_are_typed_by_the_argument_spec(netns, engine):
    ok(run_module(netns, "dnat_balancer", dict(WEB, masquerade=False, engine=engine)))
    ok(run_module(netns, "tee_mirror", dict(HTTP, ports=["443"], force=True, engine=engine)))
    info = ok(run_module(netns, "netfilter_info", {"engine": engine, "balancers": [dict(WEB, masquerade="no")],
                                                   "mirrors": [dict(HTTP, ports=443)]}))
    assert info["drift"] == [], info["drift"]
    failed(run_module(netns, "netfilter_info", {"engine": engine, "mirrors": [dict(HTTP, colour="red")]}), "colour")
    # Ansible's own conversion refuses it ('dictionary requested'), before the module runs.
    failed(run_module(netns, "netfilter_info", {"engine": engine, "mirrors": ["http"]}), "dictionary requested")
