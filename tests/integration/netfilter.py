"""Running the collection's modules inside a network namespace, and reading its rules back."""

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

from tests.lab.netlab import forget_records

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENGINES = ("iptables-nft", "iptables-legacy", "nftables", "python-iptables")
LEGACY_ENGINES = ("iptables-legacy", "python-iptables")


def collections_path():
    """The installed build when the Makefile exported it, else the working tree."""
    configured = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(":")[0]
    if configured and os.path.isdir(os.path.join(configured, "ansible_collections", "netmagic", "netfilter")):
        return configured
    return os.path.join(REPO, ".build", "src")


def namespaces_available():
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if not shutil.which("ip") or not shutil.which("iptables"):
        return "needs iproute2 and iptables"
    probe = "nm-probe-%s" % uuid.uuid4().hex[:6]
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True, check=False).returncode != 0:
        return "this kernel or container cannot create network namespaces"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


@contextlib.contextmanager
def lab_namespace():
    """A fresh network namespace with loopback and one veth link up (198.18.0.1/24, 2001:2::1/64), removed afterwards."""
    name = "nm-it-%s" % uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        # A link with addresses of both families, so collectors at .3 / ::3 are on-link.
        for argv in (["ip", "link", "set", "lo", "up"], ["ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1"],
                     ["ip", "link", "set", "d1", "up"], ["ip", "addr", "add", "198.18.0.1/24", "dev", "d0"],
                     ["ip", "-6", "addr", "add", "2001:2::1/64", "dev", "d0", "nodad"], ["ip", "link", "set", "d0", "up"]):
            subprocess.run(["ip", "netns", "exec", name] + argv, check=True)
        yield name
    finally:
        forget_records(name)
        subprocess.run(["ip", "netns", "del", name], check=False)


class NetnsHost:
    """The engines' view of a host, for a namespace: programs run in it, its kernel files read in it."""

    def __init__(self, netns):
        self.netns = netns

    def run(self, argv, data=None):
        completed = in_netns(self.netns, argv, input=data, env=dict(os.environ, LC_ALL="C"))
        return completed.returncode, completed.stdout, completed.stderr

    def read(self, argv):
        """Not cached: tests change the namespace between an engine's calls."""
        return self.run(argv)

    def forget_reads(self):
        """Nothing cached to forget."""

    @staticmethod
    def which(name):
        return shutil.which(name)

    def read_text(self, path):
        completed = in_netns(self.netns, ["cat", path])
        return completed.stdout if completed.returncode == 0 else None


def in_netns(netns, argv, **kwargs):
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 60)
    check = kwargs.pop("check", False)
    return subprocess.run(["ip", "netns", "exec", netns] + list(argv), check=check, **kwargs)


def run_module(netns, module, args, check=False, diff=False, path_prefix=None):
    """Runs plugins/modules/MODULE.py in the namespace, as Ansible would, and returns its JSON result.

    path_prefix: a directory put first on PATH, to stand in for a tool the module runs.
    """
    root = collections_path()
    path = os.path.join(root, "ansible_collections", "netmagic", "netfilter", "plugins", "modules", module + ".py")
    payload = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": payload}, handle)
        handle.flush()
        env = dict(os.environ, PYTHONPATH=root)
        if path_prefix:
            env["PATH"] = "%s:%s" % (path_prefix, env.get("PATH", ""))
        completed = in_netns(netns, [sys.executable, path, handle.name], env=env)
    try:
        result = json.loads(completed.stdout)
    except ValueError:
        raise AssertionError("module %s printed no JSON: %s %s" % (module, completed.stdout, completed.stderr)) from None
    result["rc"] = completed.returncode
    return result


def distrust(netns):
    """Moves the nf_tables generation with a commit of nothing the collection owns: the next run
    reads the rules and compares them with its definitions, as a run does after anyone's change."""
    in_netns(netns, ["nft", "-f", "-"], input="add table inet nm-distrust\ndelete table inet nm-distrust\n", check=True)


def as_written(endpoint, engine):
    """'ADDRESS:PORT' as the engine's rules write it: nftables maps to 'ADDRESS . PORT'."""
    if engine != "nftables":
        return endpoint
    address, port = endpoint.rsplit(":", 1)
    return "%s . %s" % (address.strip("[]"), port)


def iptables_save(netns, engine="iptables-nft", family="iptables"):
    """The namespace's whole ruleset, without the timestamped comment lines."""
    variant = engine.split("-", 1)[1]
    completed = in_netns(netns, ["%s-%s-save" % (family, variant)], check=True)
    return "".join(line + "\n" for line in completed.stdout.splitlines() if not line.startswith("#"))


def without_counters(save_text):
    """Chain lines carry packet counters that traffic moves; rules are what the collection changes."""
    save_text = re.sub(r"^(:\S+ \S+) \[\d+:\d+\]$", r"\1 [0:0]", save_text, flags=re.M)
    return re.sub(r"counter packets \d+ bytes \d+", "counter packets 0 bytes 0", save_text)


def restore(netns, engine, text):
    variant = engine.split("-", 1)[1]
    in_netns(netns, ["iptables-%s-restore" % variant, "--noflush"], input=text, check=True)


def ruleset(netns):
    """Everything netfilter holds in the namespace, all backends and families, without comments."""
    texts = []
    for tool in ("iptables-nft-save", "ip6tables-nft-save", "iptables-legacy-save", "ip6tables-legacy-save"):
        texts.append(in_netns(netns, [tool], check=True).stdout)
    texts.append(in_netns(netns, ["nft", "list", "ruleset"], check=True).stdout)
    return "".join(line + "\n" for text in texts for line in text.splitlines() if not line.strip().startswith("#"))


def rules_of(netns):
    """The whole ruleset, less the packet counters the namespace's own link traffic moves."""
    return without_counters(ruleset(netns))


def plant_foreign(netns, engine, forward_policy="DROP"):
    """Rules of other tools in the backend the engine writes, both families, plus a native nft table."""
    variant = "legacy" if engine in LEGACY_ENGINES else "nft"
    policy = ":FORWARD %s [0:0]" % forward_policy
    in_netns(netns, ["iptables-%s-restore" % variant, "--noflush"], input=FOREIGN_RULES.replace(":FORWARD DROP [0:0]", policy), check=True)
    in_netns(netns, ["ip6tables-%s-restore" % variant, "--noflush"], input=FOREIGN_RULES6.replace(":FORWARD DROP [0:0]", policy), check=True)
    if variant == "nft":
        in_netns(netns, ["nft", "-f", "-"], input=FOREIGN_NFT, check=True)
    return ruleset(netns)


def foreign_part(save_text):
    """The ruleset without anything the collection owns, in order."""
    keep = []
    for line in save_text.splitlines():
        if "NM-" in line or "netmagic:" in line:
            continue
        keep.append(line)
    return "\n".join(keep)


# Rules a host may already have, from other tools; the collection must never disturb them.
FOREIGN_RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER-USER - [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A FORWARD -j DOCKER-USER
-A DOCKER-USER -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 198.19.17.0/24 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A OUTPUT -p udp -m udp --dport 53 -j MARK --set-xmark 0x1/0xffffffff
-A PREROUTING -p tcp -m tcp --sport 80 -j MARK --set-xmark 0x2/0xffffffff
COMMIT
"""

FOREIGN_RULES6 = FOREIGN_RULES.replace("198.19.17.0/24", "2001:2:ff::/64")

# A firewalld-like native table; the nftables engine must leave it alone.
FOREIGN_NFT = """table inet firewall {
  chain input {
    type filter hook input priority 0; policy accept;
    ct state established,related accept
    tcp dport 22 accept
  }
}
"""


def wait_until(condition, seconds=5):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()
