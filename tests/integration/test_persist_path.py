"""A persist_path that could break the boot unit, or that another user could replace, fails before
any rule changes; a good one gets directories 0755 and files 0644 whatever the umask."""

import os
import stat
import uuid

import pytest

from tests.integration.netfilter import plant_foreign, rules_of, run_module

UNIT = "netmagic-netfilter-restore.service"
BALANCER = {"name": "web", "vip": "198.18.0.100", "port": 80, "backends": ["198.18.0.21", "198.18.0.22"],
            "engine": "iptables-nft", "persist": True, "persist_service": False}


def world_writable(tmp_path):
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(str(open_dir), 0o777)
    return str(open_dir / "netfilter")


BAD = [
    # (id, persist_path from tmp_path, text the message must hold besides "persist_path")
    ("relative", lambda tmp: "netmagic/netfilter", "not an absolute path"),
    ("newline-and-an-ExecStart-line", lambda tmp: "%s/x\nExecStartPre=/bin/sh -c id" % tmp, "only letters"),
    ("trailing-newline", lambda tmp: "%s/x\n" % tmp, "only letters"),
    ("space", lambda tmp: "%s/net filter" % tmp, "only letters"),
    ("percent", lambda tmp: "%s/%%n" % tmp, "only letters"),
    ("dollar", lambda tmp: "%s/$$x" % tmp, "only letters"),
    ("quote", lambda tmp: '%s/x"y' % tmp, "only letters"),
    ("dot-dot", lambda tmp: "%s/../x" % tmp, '".."'),
    ("root", lambda tmp: "/", "root directory"),
    ("world-writable-directory", world_writable, "world-writable directory"),
    ("sticky-tmp-itself", lambda tmp: "/tmp", "world-writable directory /tmp itself"),
    ("not-yet-there-in-tmp", lambda tmp: "/tmp/netmagic-%s" % uuid.uuid4().hex, "does not exist yet"),
]


@pytest.mark.parametrize("check_mode", [False, True], ids=["apply", "check"])
@pytest.mark.parametrize("make_path, reason", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_a_bad_persist_path_fails_before_any_rule_changes(netns, tmp_path, make_path, reason, check_mode):
    plant_foreign(netns, "iptables-nft")
    before = rules_of(netns)
    path = make_path(tmp_path)
    listing = sorted(os.listdir(str(tmp_path)))
    result = run_module(netns, "dnat_balancer", dict(BALANCER, persist_path=path), check=check_mode)
    assert result.get("failed") and result["rc"] != 0, result
    assert "persist_path" in result["msg"] and reason in result["msg"], result["msg"]
    assert result.get("parameter") == "persist_path"
    assert rules_of(netns) == before
    assert sorted(os.listdir(str(tmp_path))) == listing  # nothing written either


def mode(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


def test_a_good_persist_path_is_written_with_fixed_modes_even_with_umask_000(netns, tmp_path):
    """The control: the same run with a good path changes the rules and writes the files."""
    plant_foreign(netns, "iptables-nft")
    before = rules_of(netns)
    directory = tmp_path / "etc" / "netmagic" / "netfilter"
    previous = os.umask(0)
    try:
        result = run_module(netns, "dnat_balancer", dict(BALANCER, persist_path=str(directory)))
    finally:
        os.umask(previous)
    assert result["rc"] == 0 and not result.get("failed") and result["changed"], result
    assert rules_of(netns) != before
    assert [mode(path) for path in (tmp_path / "etc", tmp_path / "etc" / "netmagic", directory)] == [0o755] * 3
    names = sorted(os.listdir(str(directory)))
    rules = [name for name in names if name.endswith(".rules")]
    assert UNIT in names and "xtables-nft-4.rules" in rules and len(names) == len(rules) + 1, names
    assert [mode(directory / name) for name in names] == [0o644] * len(names)
    execs = [line for line in (directory / UNIT).read_text().splitlines() if line.startswith("ExecStart=")]
    assert len(execs) == len(rules)
    assert execs[0].startswith('ExecStart="/') and execs[0].endswith(' "--noflush" "%s/xtables-nft-4.rules"' % directory), execs


def test_a_file_on_the_way_fails_before_any_rule_changes(netns, tmp_path):
    (tmp_path / "file").write_text("")
    before = rules_of(netns)
    result = run_module(netns, "dnat_balancer", dict(BALANCER, persist_path=str(tmp_path / "file" / "netfilter")))
    assert result.get("failed") and "persist_path" in result["msg"] and "not a directory" in result["msg"], result
    assert rules_of(netns) == before


def test_a_file_that_cannot_be_written_fails_naming_persist_path(netns, tmp_path):
    (tmp_path / "xtables-nft-4.rules").mkdir()  # a directory where the saved rules go
    result = run_module(netns, "dnat_balancer", dict(BALANCER, persist_path=str(tmp_path)))
    assert result.get("failed") and ": persist_path %s: " % tmp_path in result["msg"], result
    assert not (tmp_path / UNIT).exists()
