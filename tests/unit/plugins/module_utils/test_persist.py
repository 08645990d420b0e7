"""persist_path validation, the unit's quoting and guard, file modes, and the lock files' refusal of links."""

import os
import re
import stat
import uuid

import pytest

from ansible_collections.netmagic.netfilter.plugins.module_utils import _host
from ansible_collections.netmagic.netfilter.plugins.module_utils import _persist
from ansible_collections.netmagic.netfilter.plugins.module_utils._host import EngineError, host_lock, xtables_lock
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import ValidationError
from ansible_collections.netmagic.netfilter.plugins.module_utils._persist import (
    UNIT_NAME,
    check_unit,
    persist,
    systemd_quote,
    unit_text,
    validate_persist_path,
    write_if_changed,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give files to another user")
OTHER_UID = 65534  # nobody


def systemd_words(line):
    """The argv systemd makes of an ExecStart value: specifiers and variables first ("%%", "$$"),
    then words unquoted with C escapes (systemd.syntax(7), "Quoting"). Only what the quoting
    writes is understood; anything else fails the test."""
    assert "%" not in line.replace("%%", "") and "$" not in line.replace("$$", ""), line
    line = line.replace("%%", "%").replace("$$", "$")
    words, position = [], 0
    escapes = {"\\": "\\", '"': '"'}
    while position < len(line):
        assert line[position] == '"', (line, position)
        position += 1
        word = []
        while line[position] != '"':
            if line[position] == "\\":
                if line[position + 1] == "x":
                    word.append(chr(int(line[position + 2:position + 4], 16)))
                    position += 4
                else:
                    word.append(escapes[line[position + 1]])
                    position += 2
            else:
                word.append(line[position])
                position += 1
        words.append("".join(word))
        position += 1
        assert position == len(line) or line[position] == " ", (line, position)
        position += 1 if position < len(line) else 0
    return words


# --- validate_persist_path ---------------------------------------------------------------

BAD_PATHS = [
    # (value, text the reason must hold)
    ("etc/netmagic", "not an absolute path"),
    ("./netmagic", "not an absolute path"),
    ("/etc/../tmp/x", '".."'),
    ("/etc/netmagic/..", '".."'),
    ("/etc/net magic", 'only letters, digits and "_./-"'),
    ("/etc/x\nExecStartPre=/bin/sh", 'only letters, digits and "_./-"'),
    ("/etc/x\n", 'only letters, digits and "_./-"'),
    ("/etc/x\r", 'only letters, digits and "_./-"'),
    ("/etc/x\tz", 'only letters, digits and "_./-"'),
    ("/etc/x\x00", 'only letters, digits and "_./-"'),
    ("/etc/%n", 'only letters, digits and "_./-"'),
    ("/etc/$HOME", 'only letters, digits and "_./-"'),
    ('/etc/"x', 'only letters, digits and "_./-"'),
    ("/etc/'x", 'only letters, digits and "_./-"'),
    ("/etc/x\\y", 'only letters, digits and "_./-"'),
    ("/etc/x;y", 'only letters, digits and "_./-"'),
    ("/etc/n\u00e9t", 'only letters, digits and "_./-"'),
    ("", 'only letters, digits and "_./-"'),
    ("/", "root directory"),
    ("//", "root directory"),
    (5, "not a string"),
    (None, "not a string"),
    (["/etc"], "not a string"),
]


@pytest.mark.parametrize("value, reason", BAD_PATHS, ids=[repr(case[0]) for case in BAD_PATHS])
def test_a_bad_persist_path_is_refused_naming_it(value, reason):
    with pytest.raises(ValidationError) as caught:
        validate_persist_path(value)
    assert caught.value.parameter == "persist_path"
    assert reason in caught.value.reason
    assert "persist_path" in str(caught.value)


def directory(path, mode, uid=None):
    path.mkdir()
    os.chmod(str(path), mode)
    if uid is not None:
        os.chown(str(path), uid, -1)
    return path


def test_the_default_and_pytests_own_directory_are_accepted(tmp_path):
    validate_persist_path(_persist.DEFAULT_PATH)
    # pytest's tmp_path is a root-owned 0700 directory below the sticky /tmp: every test here builds on it.
    validate_persist_path(str(tmp_path))
    validate_persist_path(str(tmp_path / "not" / "yet" / "there"))
    validate_persist_path(str(tmp_path) + "/")


def test_sticky_tmp_itself_and_a_child_not_yet_there_are_refused():
    with pytest.raises(ValidationError, match=r"world-writable directory /tmp itself"):
        validate_persist_path("/tmp")
    with pytest.raises(ValidationError, match=r"does not exist yet: another user could create it first"):
        validate_persist_path("/tmp/netmagic-not-yet-there-%s" % uuid.uuid4().hex)


def test_a_world_writable_directory_on_the_way_is_refused(tmp_path):
    open_dir = directory(tmp_path / "open", 0o777)
    directory(open_dir / "inside", 0o755)
    for path in (open_dir, open_dir / "inside", open_dir / "inside" / "missing"):
        with pytest.raises(ValidationError) as caught:
            validate_persist_path(str(path))
        assert "world-writable directory %s" % open_dir in caught.value.reason


def test_a_sticky_world_writable_directory_needs_an_existing_child_of_root(tmp_path):
    sticky = directory(tmp_path / "sticky", 0o1777)
    owned = directory(sticky / "owned", 0o755)
    validate_persist_path(str(owned))
    validate_persist_path(str(owned / "deeper"))
    with pytest.raises(ValidationError, match=r"world-writable directory .*sticky itself"):
        validate_persist_path(str(sticky))
    with pytest.raises(ValidationError, match=r"sticky/missing does not exist yet"):
        validate_persist_path(str(sticky / "missing" / "below"))


@needs_root
def test_a_child_of_another_user_in_a_sticky_directory_is_refused(tmp_path):
    sticky = directory(tmp_path / "sticky", 0o1777)
    directory(sticky / "theirs", 0o755, uid=OTHER_UID)
    with pytest.raises(ValidationError, match=r"theirs belongs to user id %d" % OTHER_UID):
        validate_persist_path(str(sticky / "theirs" / "netfilter"))


@needs_root
def test_a_link_of_another_user_in_a_sticky_directory_is_refused(tmp_path):
    sticky = directory(tmp_path / "sticky", 0o1777)
    target = directory(tmp_path / "target", 0o755)
    link = sticky / "link"
    link.symlink_to(target)
    os.lchown(str(link), OTHER_UID, -1)
    with pytest.raises(ValidationError, match=r"link belongs to user id %d" % OTHER_UID):
        validate_persist_path(str(link / "netfilter"))


def test_a_link_into_a_world_writable_directory_is_refused(tmp_path):
    open_dir = directory(tmp_path / "open", 0o777)
    (tmp_path / "link").symlink_to(open_dir)
    with pytest.raises(ValidationError, match=r"world-writable directory %s" % re.escape(str(open_dir))):
        validate_persist_path(str(tmp_path / "link" / "netfilter"))


def test_a_file_on_the_way_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    for path in (tmp_path / "file", tmp_path / "file" / "below"):
        with pytest.raises(ValidationError, match=r"goes through %s, which is not a directory" % re.escape(str(tmp_path / "file"))):
            validate_persist_path(str(path))


def test_a_link_to_nothing_is_refused(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    with pytest.raises(ValidationError, match=r"a symbolic link to nothing"):
        validate_persist_path(str(tmp_path / "dangling" / "netfilter"))
    validate_persist_path(str(tmp_path / "missing" / "netfilter"))  # the control: the same place without the link


# --- systemd_quote and the unit ----------------------------------------------------------

QUOTED = [
    ("/usr/sbin/iptables-nft-restore", '"/usr/sbin/iptables-nft-restore"'),
    ("", '""'),
    ("a b", '"a b"'),
    ('a"b', '"a\\"b"'),
    ("a\\b", '"a\\\\b"'),
    ("50%n", '"50%%n"'),
    ("$HOME ${PATH}", '"$$HOME $${PATH}"'),
    ("a\nb", '"a\\x0ab"'),
    ("\r\t\x00\x7f\x9b", '"\\x0d\\x09\\x00\\x7f\\x9b"'),
    ("'single'", "\"'single'\""),
    ("caf\u00e9", '"caf\u00e9"'),
]


@pytest.mark.parametrize("argument, quoted", QUOTED, ids=[repr(case[0]) for case in QUOTED])
def test_systemd_quote_writes_one_argument_systemd_reads_back(argument, quoted):
    assert systemd_quote(argument) == quoted
    assert systemd_words(quoted) == [argument]
    assert "\n" not in quoted and "\r" not in quoted


def exec_lines(unit):
    return [line[len("ExecStart="):] for line in unit.splitlines() if line.startswith("ExecStart=")]


def test_the_unit_runs_each_argv_as_given():
    commands = [["/usr/sbin/iptables-nft-restore", "--noflush", "/etc/netmagic/netfilter/xtables-nft-4.rules"],
                ["/usr/sbin/nft", "-j", "-f", "/etc/netmagic/netfilter/nftables.json"]]
    unit = unit_text(commands)
    check_unit(unit, "/etc/netmagic/netfilter/" + UNIT_NAME)
    assert [systemd_words(line) for line in exec_lines(unit)] == commands


def test_an_argv_with_a_newline_adds_no_line_to_the_unit():
    """Defence in depth: even if a path with a newline got past validation, the unit keeps its lines."""
    clean = unit_text([["/usr/sbin/nft", "-j", "-f", "/etc/netmagic/netfilter/nftables.json"]])
    argv = ["/usr/sbin/nft", "-j", "-f", "/etc/x\nExecStartPre=/bin/sh -c id\n[Service]\nUser=nobody"]
    unit = unit_text([argv])
    check_unit(unit, "/etc/x/" + UNIT_NAME)
    assert len(unit.splitlines()) == len(clean.splitlines())
    assert not [line for line in unit.splitlines() if line.startswith(("ExecStartPre", "User="))]
    assert unit.splitlines().count("[Service]") == 1
    assert [systemd_words(line) for line in exec_lines(unit)] == [argv]


GOOD_UNIT = unit_text([["/usr/sbin/nft", "-j", "-f", "/etc/netmagic/netfilter/nftables.json"]])
BAD_UNITS = [
    # (unit text, what makes it bad)
    (GOOD_UNIT.replace("RemainAfterExit=yes\n", "RemainAfterExit=yes\nExecStartPre=/bin/sh -c id\n"), "unknown key"),
    (GOOD_UNIT.replace("RemainAfterExit=yes\n", "RemainAfterExit=yes\nUser=nobody\n"), "unknown key"),
    (GOOD_UNIT.replace("[Install]", "[X-Other]"), "unknown section"),
    (GOOD_UNIT.replace('"/usr/sbin/nft"', "/usr/sbin/nft"), "unquoted argument"),
    (GOOD_UNIT.replace('"/usr/sbin/nft"', '"-/usr/sbin/nft"'), "a prefix, not an absolute path"),
    (GOOD_UNIT.replace('"-f"', '"%n"'), "a specifier"),
    (GOOD_UNIT.replace('"-f"', '"$HOME"'), "a variable"),
    (GOOD_UNIT.replace('"-f"', '"a"b"'), "a stray quote"),
    (GOOD_UNIT.replace('"-f"', '"\\q"'), "an unknown escape"),
    (GOOD_UNIT.replace('"-f"', '"-f\r"'), "a carriage return"),
    (GOOD_UNIT.replace("Type=oneshot", "Type=oneshot\x0b"), "a vertical tab"),
    (GOOD_UNIT.replace("# Written", "#\x00Written"), "a NUL in a comment"),
    (GOOD_UNIT.replace("Type=oneshot", "Type=oneshot;x"), "a character no value holds"),
]


@pytest.mark.parametrize("text, why", BAD_UNITS, ids=[case[1] for case in BAD_UNITS])
def test_the_unit_guard_refuses_a_line_the_renderer_does_not_write(text, why):
    check_unit(GOOD_UNIT, "/x/" + UNIT_NAME)  # the control: the same unit before the change passes
    with pytest.raises(EngineError) as caught:
        check_unit(text, "/x/" + UNIT_NAME)
    assert str(caught.value).startswith("internal error: the unit /x/%s " % UNIT_NAME)


class FakeHost:
    def __init__(self):
        self.ran = []

    @staticmethod
    def which(name):
        return "/usr/sbin/" + name

    def run(self, argv):
        self.ran.append(argv)
        return 0, "", ""


class FakeEngine:
    """An engine whose owned rules save as one empty nftables batch."""

    backend = "nftables"

    def read(self):
        return self

    @staticmethod
    def persisted():
        return {"nftables.json": "{}\n"}


def test_persist_writes_nothing_when_the_guard_refuses(tmp_path, monkeypatch):
    """With the quoting broken on purpose, a newline in an argument reaches the unit's text: the
    guard refuses it and neither the rules nor the unit are written."""
    directory_ = tmp_path / "persist"
    # The control: with the real quoting the same directory is written.
    assert persist(FakeHost(), [FakeEngine()], str(directory_), False, False)[0] is True
    assert (directory_ / UNIT_NAME).exists()
    broken = tmp_path / "x\nExecStartPre=" / "persist"
    monkeypatch.setattr(_persist, "systemd_quote", lambda argument: argument)
    with pytest.raises(EngineError, match=r"internal error: the unit .*%s" % re.escape(UNIT_NAME)):
        persist(FakeHost(), [FakeEngine()], str(broken), False, False)
    assert not broken.parent.exists()


def test_an_os_error_while_persisting_names_persist_path(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    with pytest.raises(EngineError, match=r"^persist_path %s/file/persist: " % re.escape(str(tmp_path))):
        persist(FakeHost(), [FakeEngine()], str(tmp_path / "file" / "persist"), False, False)


# --- modes -------------------------------------------------------------------------------

def mode(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


@pytest.mark.parametrize("umask", [0o000, 0o077, 0o022], ids=["umask-000", "umask-077", "umask-022"])
def test_directories_and_files_get_fixed_modes_whatever_the_umask(tmp_path, umask, monkeypatch):
    directory_ = tmp_path / "etc" / "netmagic" / "netfilter"
    before = mode(tmp_path)
    previous = os.umask(umask)
    try:
        assert persist(FakeHost(), [FakeEngine()], str(directory_), False, False)[0] is True
        write_if_changed(str(tmp_path / "other" / "file"), "text\n", False)
    finally:
        os.umask(previous)
    assert [mode(path) for path in (tmp_path / "etc", tmp_path / "etc" / "netmagic", directory_, tmp_path / "other")] == [0o755] * 4
    assert mode(directory_ / "nftables.json") == mode(directory_ / UNIT_NAME) == mode(tmp_path / "other" / "file") == 0o644
    assert mode(tmp_path) == before  # a directory that was there is left as it was
    assert not [name for name in os.listdir(str(directory_)) if name.startswith(".netmagic-")]


def test_check_mode_writes_nothing(tmp_path, monkeypatch):
    changed, result = persist(FakeHost(), [FakeEngine()], str(tmp_path / "persist"), False, True)
    assert changed is True and result["unit"] == str(tmp_path / "persist" / UNIT_NAME)
    assert not (tmp_path / "persist").exists()


# --- lock files --------------------------------------------------------------------------

@pytest.fixture
def target(tmp_path):
    """A file a planted link points at: it must stay as it was."""
    path = tmp_path / "target"
    path.write_text("precious\n")
    os.chmod(str(path), 0o644)
    return path


def unchanged(path):
    return path.read_text() == "precious\n" and mode(path) == 0o644


def test_a_lock_path_that_is_a_link_is_not_followed(tmp_path, target, monkeypatch):
    link, fallback = tmp_path / "netmagic-netfilter.lock", tmp_path / "fallback.lock"
    link.symlink_to(target)
    monkeypatch.setattr(_host, "LOCK_PATHS", (str(link), str(fallback)))
    with host_lock(timeout=1):
        assert fallback.is_file() and mode(fallback) == 0o600
    assert unchanged(target) and link.is_symlink()


def test_a_link_to_a_missing_file_creates_nothing(tmp_path, monkeypatch):
    link, missing = tmp_path / "netmagic-netfilter.lock", tmp_path / "created-by-the-link"
    link.symlink_to(missing)
    monkeypatch.setattr(_host, "LOCK_PATHS", (str(link),))
    with pytest.raises(EngineError, match=r"cannot open a lock file: %s: a symbolic link, not followed" % re.escape(str(link))):
        with host_lock(timeout=1):
            pass
    assert not missing.exists()


def test_only_links_and_other_files_fail_naming_every_path(tmp_path, target, monkeypatch):
    link, fifo = tmp_path / "a.lock", tmp_path / "b.lock"
    link.symlink_to(target)
    os.mkfifo(str(fifo))
    monkeypatch.setattr(_host, "LOCK_PATHS", (str(link), str(fifo), "/dev/null"))
    with pytest.raises(EngineError) as caught:
        with host_lock(timeout=1):
            pass
    message = str(caught.value)
    assert "%s: a symbolic link, not followed" % link in message
    assert str(fifo) in message  # a FIFO without a reader is refused at once, not waited on
    assert "the lock file /dev/null is not a regular file" in message
    assert unchanged(target)


def test_the_xtables_lock_refuses_a_link_and_a_fifo(tmp_path, target, monkeypatch):
    link, fifo, regular = tmp_path / "xtables.lock", tmp_path / "fifo.lock", tmp_path / "regular.lock"
    link.symlink_to(target)
    os.mkfifo(str(fifo))
    monkeypatch.setenv("XTABLES_LOCKFILE", str(link))
    with pytest.raises(EngineError, match=r"cannot open the xtables lock %s: a symbolic link" % re.escape(str(link))):
        with xtables_lock(timeout=1):
            pass
    assert unchanged(target)
    monkeypatch.setenv("XTABLES_LOCKFILE", str(fifo))
    with pytest.raises(EngineError, match=r"the lock file %s is not a regular file" % re.escape(str(fifo))):
        with xtables_lock(timeout=1):
            pass
    monkeypatch.setenv("XTABLES_LOCKFILE", str(regular))
    with xtables_lock(timeout=1):
        assert regular.is_file() and mode(regular) == 0o600
