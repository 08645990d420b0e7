"""The netns connection plugin without root: name validation, argv building, option
resolution, connect checks and local file copies (subprocess replaced by a recorder)."""

import inspect
import subprocess
from pathlib import Path

import pytest
from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import connection_loader

PLUGIN_DIR = Path(__file__).resolve().parents[4] / "plugins" / "connection"


@pytest.fixture
def conn():
    """The plugin loaded the way Ansible loads it, so its documented options apply."""
    connection_loader.add_directory(str(PLUGIN_DIR))
    connection = connection_loader.get("netns", PlayContext())
    connection.set_options(var_options={"inventory_hostname": "nm-lab-web"})
    return connection


@pytest.fixture
def netns(conn):
    """The plugin's module, to reach its helpers and patch what it calls."""
    return inspect.getmodule(conn)


@pytest.mark.parametrize("name", ["nm-t1-be1", "a", "ns_1.test", "9lives", "x" * 255])
def test_valid_names_pass(netns, name):
    assert netns.validate_netns_name(name) == name


@pytest.mark.parametrize("name", [
    "", "-n", "--all", ".", "..", "../etc", "a/b", "a b", "a;b", "$(id)", "`id`", "a\nb", "x" * 256, None, 7,
])
def test_unsafe_names_are_rejected(netns, name):
    with pytest.raises(AnsibleError, match="invalid network namespace name"):
        netns.validate_netns_name(name)


def test_argv_keeps_the_command_one_argument(netns):
    cmd = "echo 'a b' ; rm -rf /tmp/x $(id)"
    argv = netns.netns_exec_argv("/usr/sbin/ip", "nm-t1-be1", "/bin/sh", cmd)
    assert argv == ["/usr/sbin/ip", "netns", "exec", "nm-t1-be1", "/bin/sh", "-c", cmd]


def test_argv_refuses_an_unsafe_name(netns):
    with pytest.raises(AnsibleError):
        netns.netns_exec_argv("/usr/sbin/ip", "-all", "/bin/sh", "true")


def test_namespace_defaults_to_inventory_hostname(conn):
    assert conn.netns == "nm-lab-web"


def test_netns_name_wins_over_host_address(conn):
    conn.set_options(var_options={"inventory_hostname": "web", "ansible_host": "198.18.0.13",
                                  "ansible_netns_name": "nm-lab-web"})
    assert conn.netns == "nm-lab-web"


def test_connect_refuses_a_host_address_as_namespace(conn, netns, monkeypatch):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    conn.set_options(var_options={"inventory_hostname": "web", "ansible_host": "198.18.0.13/24"})
    with pytest.raises(AnsibleError, match="invalid network namespace name: '198.18.0.13/24'"):
        conn._connect()


def test_connect_needs_root(conn, netns, monkeypatch):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    with pytest.raises(AnsibleConnectionFailure, match="needs root"):
        conn._connect()


def test_connect_needs_the_namespace(conn, netns, monkeypatch, tmp_path):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns, "NETNS_RUN_DIR", str(tmp_path))
    with pytest.raises(AnsibleConnectionFailure, match="'nm-lab-web' does not exist"):
        conn._connect()
    (tmp_path / "nm-lab-web").touch()
    assert conn._connect().connected


class RecordingPopen:
    """Stands in for subprocess.Popen: records argv and stdin, answers like a shell."""

    calls = []

    def __init__(self, argv, **kwargs):
        self.argv = argv
        self.kwargs = kwargs
        self.returncode = 3
        RecordingPopen.calls.append(self)

    def communicate(self, in_data=None):
        self.in_data = in_data
        return b"out", b"err"


@pytest.fixture
def connected(conn, netns, monkeypatch, tmp_path):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns, "NETNS_RUN_DIR", str(tmp_path))
    monkeypatch.setattr(netns.shutil, "which", lambda name: f"/usr/sbin/{name}")
    (tmp_path / "nm-lab-web").touch()
    RecordingPopen.calls = []
    monkeypatch.setattr(netns.subprocess, "Popen", RecordingPopen)
    return conn


def test_exec_command_runs_the_shell_inside_the_namespace(connected):
    rc, stdout, stderr = connected.exec_command("echo $HOME; ip -o addr", in_data=b"module source")
    (call,) = RecordingPopen.calls
    assert call.argv == [b"/usr/sbin/ip", b"netns", b"exec", b"nm-lab-web", b"/bin/sh", b"-c",
                         b"echo $HOME; ip -o addr"]
    assert "shell" not in call.kwargs
    assert call.kwargs["stdin"] is subprocess.PIPE
    assert call.in_data == b"module source"
    assert (rc, stdout, stderr) == (3, b"out", b"err")


def test_exec_command_uses_the_configured_shell(connected):
    connected.set_options(var_options={"inventory_hostname": "nm-lab-web", "ansible_executable": "/bin/bash"})
    connected.exec_command("true")
    assert RecordingPopen.calls[0].argv[4] == b"/bin/bash"


def test_put_and_fetch_are_local_copies(connected, tmp_path):
    source = tmp_path / "source.txt"
    source.write_text("payload")
    connected.put_file(str(source), str(tmp_path / "put.txt"))
    connected.fetch_file(str(tmp_path / "put.txt"), str(tmp_path / "fetched.txt"))
    assert (tmp_path / "fetched.txt").read_text() == "payload"
    assert RecordingPopen.calls == []


def test_put_of_a_missing_file_fails(connected, tmp_path):
    with pytest.raises(AnsibleFileNotFound):
        connected.put_file(str(tmp_path / "missing"), str(tmp_path / "out"))
