"""A lab of network-namespace hosts on one Linux bridge, for netfilter tests.

Every host is a network namespace ``nm-<id>-<host>`` with one interface, ``eth0``,
the peer of a veth whose other end is a port of the bridge ``nmb-<id>`` in the root
namespace. The bridge has no address (IPv4 or IPv6) and the hosts have no default
route, so nothing routes between the machine and the lab.

Address plan, last octet in the lab's /24 (default 198.18.0.0/24):

    client .10   sender .11   collector .12   web .13   lb .20
    VIP    .100 (a /32 on lb's eth0)
    be<i>  .50+i (be1 .51, be2 .52, ... at most 49 backends)

net.ipv4.ip_forward is 1 on lb (it routes DNATed traffic) and on collector (a fresh
host's default, which the collection's roles must turn off), 0 elsewhere.

Usable as a library (``Lab``) and from the command line::

    python3 -m tests.lab.netlab up|down|status|inventory --id ID [--backends N] [--subnet CIDR]
    python3 -m tests.lab.netlab prune    # the labs of runs that were killed
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import ipaddress
import itertools
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

LAB_RANGE = ipaddress.ip_network("198.18.0.0/15")
# IPv6 twin of each lab /24: the benchmarking range 2001:2::/48 (RFC 5180), one /64 per lab.
LAB_RANGE6 = ipaddress.ip_network("2001:2::/48")
DEFAULT_SUBNET = "198.18.0.0/24"
DEFAULT_CONNECTION = "netmagic.netfilter.netns"
INTERFACE = "eth0"
HOST_OCTETS = {"client": 10, "sender": 11, "collector": 12, "web": 13, "lb": 20}
VIP_OCTET = 100
BACKEND_BASE_OCTET = 50
MAX_BACKENDS = 49
FORWARDING_HOSTS = frozenset({"lb", "collector"})
# Private to root, and on tmpfs: nothing survives a reboot to confuse the next lab.
STATE_ROOT = Path("/run/netmagic-lab")
HTTPD = Path(__file__).with_name("httpd.py")
UDP = Path(__file__).with_name("udp.py")
# The pid of the process a lab belongs to; a lab without it is kept until taken down.
OWNER_FILE = "owner"
STOP_GRACE_SECONDS = 2.0
REPO = Path(__file__).resolve().parents[2]
# Run in a namespace about to be deleted: its cookie is never used again, so the records of
# what was applied there would stay on the file system for good.
FORGET_RECORDS = ("import os, sys; sys.path.insert(0, sys.argv[1]); "
                  "from ansible_collections.netmagic.netfilter.plugins.module_utils._record import namespace_records; "
                  "[os.unlink(path) for path in namespace_records()]")
_LAB_ID = re.compile(r"[A-Za-z0-9]{1,6}")


class LabError(RuntimeError):
    """The lab could not be set up or a lab command failed."""


def _ip(*args, check=True):
    """Run `ip ARGS` in the root namespace; raise LabError with ip's message on failure."""
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def collection_root():
    """Where the collection is importable from: the installed build, else the working tree."""
    configured = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(":")[0]
    for root in (configured, REPO / ".build" / "collections", REPO / ".build" / "src"):
        if root and (Path(root) / "ansible_collections" / "netmagic" / "netfilter").is_dir():
            return str(root)
    raise LabError("the collection is neither installed (make collection) nor linked under .build/src")


def forget_records(ns):
    """Removes the records of what was applied in a namespace about to be deleted."""
    subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", FORGET_RECORDS, collection_root()],
                   check=True, capture_output=True, timeout=60)


def _netns_names():
    return [entry["name"] for entry in json.loads(_ip("-j", "netns", "list").stdout or "[]")]


def _root_links():
    """Links of the root namespace as `ip -j link` reports them."""
    return json.loads(_ip("-j", "link", "show").stdout or "[]")


def _argv(argv):
    """Commands are argv lists, never shell strings."""
    if isinstance(argv, (str, bytes)) or not all(isinstance(arg, str) for arg in argv):
        raise TypeError(f"argv must be a list of strings, not {argv!r}")
    return list(argv)


def pcap_packet_count(path):
    """Number of complete packet records in a classic pcap file."""
    data = Path(path).read_bytes()
    if len(data) < 24:
        return 0
    little_endian = data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
    record_length = struct.Struct("<I" if little_endian else ">I")
    count, offset = 0, 24
    while offset + 16 <= len(data):
        offset += 16 + record_length.unpack_from(data, offset + 8)[0]
        if offset > len(data):
            break
        count += 1
    return count


def _snmp_counter(snmp_text, protocol, field):
    """A counter from /proc/net/snmp, where a header line names the next line's values."""
    header, values = [line.split()[1:] for line in snmp_text.splitlines() if line.startswith(protocol + ":")]
    return int(dict(zip(header, values, strict=True))[field])


def _yaml_lines(mapping, indent=0):
    """Block YAML for nested dicts of scalars; scalars as JSON, which YAML reads as-is."""
    lines = []
    for key, value in mapping.items():
        if isinstance(value, dict):
            lines.append(f"{' ' * indent}{key}:" + (" {}" if not value else ""))
            lines.extend(_yaml_lines(value, indent + 2))
        else:
            lines.append(f"{' ' * indent}{key}: {json.dumps(value)}")
    return lines


def _signal_group(proc, signum):
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signum)


def _stop_process(proc, signum=signal.SIGTERM):
    """Signal a process group started by Lab.popen, then kill it if it lingers."""
    if proc.poll() is None:
        _signal_group(proc, signum)
        try:
            proc.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(STOP_GRACE_SECONDS)


class Capture:
    """tcpdump on a lab host's interface, bounded in packets and time.

    Entering starts tcpdump and waits until it listens; leaving stops it and sets
    .count (packets in the pcap at .path) and .timed_out (the time limit ended it).
    """

    def __init__(self, lab, host, bpf_filter, path, *, max_packets, timeout, direction, settle):
        self.path = path
        self.count = None
        self.timed_out = None
        self._lab = lab
        self._host = host
        self._settle = settle
        # `timeout` ends tcpdump even if this process dies without leaving the block.
        self._argv = ["timeout", str(timeout), "tcpdump", "-i", INTERFACE, "-n", "-U", "--immediate-mode",
                      "-c", str(max_packets), "-w", str(path)]
        if direction:
            self._argv += ["-Q", direction]
        self._argv.append(bpf_filter)
        self._proc = None

    def __enter__(self):
        self._proc = self._lab.popen(self._host, self._argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_until_listening(deadline=time.monotonic() + 10)
        return self

    def _wait_until_listening(self, deadline):
        seen = b""
        stderr = self._proc.stderr
        while b"listening on" not in seen:
            remaining = deadline - time.monotonic()
            readable = select.select([stderr], [], [], max(remaining, 0))[0] if remaining > 0 else []
            chunk = os.read(stderr.fileno(), 4096) if readable else b""
            if not chunk:
                _stop_process(self._proc, signal.SIGKILL)
                raise LabError(f"tcpdump on {self._host} did not start: {seen.decode(errors='replace').strip()}")
            seen += chunk

    def __exit__(self, *exc_info):
        time.sleep(self._settle)  # let packets already on the wire reach the capture
        self._proc.send_signal(signal.SIGINT)  # `timeout` passes it on; tcpdump flushes and exits
        try:
            self._proc.communicate(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _stop_process(self._proc, signal.SIGKILL)
        self.timed_out = self._proc.returncode == 124
        self.count = pcap_packet_count(self.path)
        return False


class PacketCount:
    """Exact kernel counters: packets a host receives or sends that match nft expressions.

    Entering adds a table `inet labcountN` to the host with one counter rule per expression
    in prerouting and in output; leaving reads the counters (.count, their sum) and
    deletes the table. Unlike a capture, nothing can be missed under load.
    """

    _serials = itertools.count(1)

    def __init__(self, lab, host, expressions, settle):
        self.count = None
        self.table = f"labcount{next(self._serials)}"  # several counts may run on one host
        self._lab = lab
        self._host = host
        self._expressions = expressions
        self._settle = settle

    def _script(self):
        rules = "".join(f"    {expression} counter\n" for expression in self._expressions)
        chains = "".join(
            f"  chain {name} {{\n    type filter hook {hook} priority -300; policy accept;\n{rules}  }}\n"
            for name, hook in (("pre", "prerouting"), ("out", "output"))
        )
        return f"table inet {self.table} {{\n{chains}}}\n"

    def __enter__(self):
        self._lab.run(self._host, ["nft", "-f", "-"], input=self._script(), check=True)
        return self

    def __exit__(self, *exc_info):
        time.sleep(self._settle)  # let packets already on the wire be counted
        listing = self._lab.run(self._host, ["nft", "-j", "list", "table", "inet", self.table], check=True).stdout
        self._lab.run(self._host, ["nft", "delete", "table", "inet", self.table], check=True)
        self.count = sum(
            expression["counter"]["packets"]
            for item in json.loads(listing)["nftables"] if "rule" in item
            for expression in item["rule"]["expr"] if "counter" in expression
        )
        return False


class Lab:
    """Network-namespace hosts on one bridge; see the module docstring for the plan."""

    def __init__(self, lab_id, backends=3, subnet=DEFAULT_SUBNET, python=sys.executable):
        if not _LAB_ID.fullmatch(str(lab_id)):
            raise ValueError(f"lab id must be 1-6 letters or digits, not {lab_id!r}")
        if not 1 <= backends <= MAX_BACKENDS:
            raise ValueError(f"backends must be 1..{MAX_BACKENDS}, not {backends}")
        self.subnet = ipaddress.ip_network(subnet)
        second, third = self.subnet.network_address.packed[1:3]
        self.subnet6 = ipaddress.ip_network(f"2001:2:0:{(second - 18) * 256 + third:x}::/64")
        if self.subnet.prefixlen != 24 or not self.subnet.subnet_of(LAB_RANGE):
            raise ValueError(f"subnet must be a /24 inside {LAB_RANGE}, not {subnet}")
        self.lab_id = lab_id
        self.python = python
        self.backend_hosts = [f"be{i}" for i in range(1, backends + 1)]
        self.hosts = [*HOST_OCTETS, *self.backend_hosts]
        self.bridge = f"nmb-{lab_id}"
        self.state_dir = STATE_ROOT / lab_id
        self._processes = []
        self._servers = {}
        self._capture_ids = itertools.count(1)

    # --- names and addresses -------------------------------------------------

    @property
    def ns_prefix(self):
        return f"nm-{self.lab_id}-"

    def ns(self, host):
        """Namespace name of a lab host."""
        self._check_host(host)
        return self.ns_prefix + host

    def veth(self, host):
        """Root-side veth of a host: a short hash keeps it within IFNAMSIZ (15)."""
        digest = hashlib.sha1(f"{self.lab_id}/{host}".encode()).hexdigest()
        return f"nmv{digest[:10]}"

    def addr(self, host):
        self._check_host(host)
        if host in HOST_OCTETS:
            return self._address(HOST_OCTETS[host])
        return self._address(BACKEND_BASE_OCTET + int(host[2:]))

    def addr6(self, host):
        """The host's IPv6 address: same last octet as its IPv4 address, in the lab's /64."""
        return str(self.subnet6.network_address + int(ipaddress.ip_address(self.addr(host)).packed[3]))

    @property
    def vip6(self):
        return str(self.subnet6.network_address + VIP_OCTET)

    @property
    def vip(self):
        return self._address(VIP_OCTET)

    def _address(self, octet):
        return str(self.subnet.network_address + octet)

    def _check_host(self, host):
        if host not in self.hosts:
            raise LabError(f"no host {host!r} in lab {self.lab_id} (hosts: {', '.join(self.hosts)})")

    # --- set-up and teardown -------------------------------------------------

    def __enter__(self):
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(self, *exc_info):
        self.down()
        return False

    def up(self, owned=True):
        """Create or converge the lab to its documented initial state; safe to repeat.

        owned: the lab belongs to this process, and once it has exited (killed, say) the lab
        is stale and prune_stale_labs removes it; otherwise it stays until taken down."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if owned:
            (self.state_dir / OWNER_FILE).write_text(f"{os.getpid()}\n", encoding="ascii")
        else:
            self.keep()
        self._ensure_bridge()
        existing_namespaces = set(_netns_names())
        for host in self.hosts:
            if self.ns(host) not in existing_namespaces:
                _ip("netns", "add", self.ns(host))
            self._ensure_veth(host)
            self._configure_host(host)
        return self

    def keep(self):
        """The lab outlives this process: prune_stale_labs leaves it alone."""
        (self.state_dir / OWNER_FILE).unlink(missing_ok=True)

    def _ensure_bridge(self):
        if _ip("link", "show", "dev", self.bridge, check=False).returncode != 0:
            _ip("link", "add", "name", self.bridge, "type", "bridge")
        # No IPv6 link-local either: the bridge must hold no address at all.
        _ip("link", "set", "dev", self.bridge, "addrgenmode", "none")
        _ip("link", "set", "dev", self.bridge, "up")

    def _ensure_veth(self, host):
        ns, veth = self.ns(host), self.veth(host)
        if _ip("-n", ns, "link", "show", "dev", INTERFACE, check=False).returncode != 0:
            # A veth left from a namespace that no longer exists would block the name.
            _ip("link", "del", "dev", veth, check=False)
            _ip("link", "add", veth, "type", "veth", "peer", "name", INTERFACE, "netns", ns)
        _ip("link", "set", "dev", veth, "alias", ns, "addrgenmode", "none", "master", self.bridge, "up")

    def _configure_host(self, host):
        ns = self.ns(host)
        _ip("-n", ns, "link", "set", "dev", "lo", "up")
        _ip("-n", ns, "link", "set", "dev", INTERFACE, "address", self.mac(host), "addrgenmode", "none", "up")
        _ip("-n", ns, "addr", "replace", f"{self.addr(host)}/{self.subnet.prefixlen}", "dev", INTERFACE)
        # nodad: usable at once, no duplicate address detection delay. A link-local address
        # as every real host has: neighbour solicitations for packets that are not the
        # host's own (a TEE clone of received traffic) take their source from it.
        _ip("-n", ns, "-6", "addr", "replace", f"{self.addr6(host)}/64", "dev", INTERFACE, "nodad")
        link_local = ipaddress.ip_address("fe80::") + int(ipaddress.ip_address(self.addr(host)).packed[3])
        _ip("-n", ns, "-6", "addr", "replace", f"{link_local}/64", "dev", INTERFACE, "nodad")
        if host == "lb":
            _ip("-n", ns, "addr", "replace", f"{self.vip}/32", "dev", INTERFACE)
            _ip("-n", ns, "-6", "addr", "replace", f"{self.vip6}/128", "dev", INTERFACE, "nodad")
        forwarding = "1" if host in FORWARDING_HOSTS else "0"
        self.set_sysctl(host, "net.ipv4.ip_forward", forwarding)
        self.set_sysctl(host, "net.ipv6.conf.all.forwarding", forwarding)

    def mac(self, host):
        """Locally administered MAC from the address: recreated hosts keep their MAC, so peers' ARP stays right."""
        return "02:00:" + ":".join(f"{octet:02x}" for octet in ipaddress.ip_address(self.addr(host)).packed)

    def down(self):
        """Remove everything of this lab id, found by name; tolerates partial states."""
        for proc in self._processes:
            _stop_process(proc)
        self._processes.clear()
        self._servers.clear()
        namespaces = [name for name in _netns_names() if name.startswith(self.ns_prefix)]
        for ns in namespaces:
            self._kill_namespace_processes(ns)
            forget_records(ns)
        for link in self._lab_links(namespaces):
            _ip("link", "del", "dev", link, check=False)
        for ns in namespaces:
            _ip("netns", "del", ns, check=False)
        _ip("link", "del", "dev", self.bridge, check=False)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def _lab_links(self, namespaces):
        """Root-side veths of this lab: by computed name (hosts configured or found) or by alias."""
        hosts = set(self.hosts) | {ns[len(self.ns_prefix):] for ns in namespaces}
        expected = {self.veth(host) for host in hosts}
        return [link["ifname"] for link in _root_links()
                if link["ifname"] in expected or link.get("ifalias", "").startswith(self.ns_prefix)]

    @staticmethod
    def _kill_namespace_processes(ns):
        """Processes still in a namespace keep it (and its veth) alive after `ip netns del`."""
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        signum = signal.SIGTERM
        while pids := [int(pid) for pid in _ip("netns", "pids", ns, check=False).stdout.split()]:
            if time.monotonic() > deadline:
                signum = signal.SIGKILL
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)
            time.sleep(0.05)
            if time.monotonic() > deadline + STOP_GRACE_SECONDS:
                raise LabError(f"processes {pids} in {ns} survived SIGKILL")

    # --- running things in hosts ---------------------------------------------

    def _exec_argv(self, host, argv):
        return ["ip", "netns", "exec", self.ns(host), *_argv(argv)]

    def run(self, host, argv, check=False, timeout=30, input=None):  # noqa: A002 - subprocess's name
        """Run argv inside a host and wait; returns subprocess.CompletedProcess with text output."""
        return subprocess.run(self._exec_argv(host, argv), capture_output=True, text=True,
                              check=check, timeout=timeout, input=input)

    def popen(self, host, argv, **kwargs):
        """Start argv inside a host in its own process group; down() stops it."""
        proc = subprocess.Popen(self._exec_argv(host, argv), **{**kwargs, "start_new_session": True})
        self._processes.append(proc)
        return proc

    def sysctl(self, host, key):
        return self.run(host, ["sysctl", "-n", key], check=True).stdout.strip()

    def set_sysctl(self, host, key, value):
        self.run(host, ["sysctl", "-q", "-w", f"{key}={value}"], check=True)

    def forwarded(self, host):
        """IPv4 packets this host has forwarded (Ip ForwDatagrams of its namespace)."""
        snmp = self.run(host, ["cat", "/proc/net/snmp"], check=True).stdout
        return _snmp_counter(snmp, "Ip", "ForwDatagrams")

    def start_http(self, host, port=80, timeout=5.0):
        """Serve GET with the host's name on port; returns once the server listens."""
        return self._start_server("http", [str(HTTPD)], host, port, self._http_log(host), timeout)

    def start_udp(self, host, port, timeout=5.0):
        """Answer every datagram on UDP port with the host's name, logging it; returns once bound."""
        return self._start_server("udp", [str(UDP), "serve"], host, port, self.udp_log(host), timeout)

    def _start_server(self, kind, command, host, port, log, timeout):
        running = self._servers.get((kind, host, port))
        if running is not None and running.poll() is None:
            return running
        ready = self.state_dir / f"{kind}-{host}-{port}.ready"
        errors = self.state_dir / f"{kind}-{host}-{port}.err"
        ready.unlink(missing_ok=True)
        with open(errors, "w", encoding="utf-8") as error_file:
            proc = self.popen(host, [self.python, *command, "--name", host, "--port", str(port), "--log", str(log), "--ready", str(ready)],
                              stdout=subprocess.DEVNULL, stderr=error_file)
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop_process(proc)
                raise LabError(f"{kind} server on {host}:{port} did not start: {errors.read_text().strip()}")
            time.sleep(0.02)
        self._servers[(kind, host, port)] = proc
        return proc

    def udp_log(self, host):
        """The file the host's UDP servers log each datagram to, as 'SOURCE PAYLOAD'."""
        return self.state_dir / f"udp-{host}.log"

    def udp_datagrams(self, host):
        """The payloads the host's UDP servers got, in order."""
        try:
            with open(self.udp_log(host), encoding="utf-8") as log:
                return [line.split()[1] for line in log if len(line.split()) == 2]
        except FileNotFoundError:
            return []

    def _http_log(self, host):
        return self.state_dir / f"http-{host}.log"

    def http_requests(self, host):
        """GET requests the host's HTTP servers have handled since the lab came up."""
        try:
            with open(self._http_log(host), encoding="utf-8") as log:
                return len(log.readlines())
        except FileNotFoundError:
            return 0

    def http_clients(self, host):
        """Source address of every GET the host's HTTP servers handled, in order."""
        try:
            with open(self._http_log(host), encoding="utf-8") as log:
                return [line.split(" ", 1)[0] for line in log]
        except FileNotFoundError:
            return []

    def count(self, host, *expressions, settle=0.2):
        """Kernel packet counters on a host as a context manager; see PacketCount."""
        self._check_host(host)
        return PacketCount(self, host, expressions, settle)

    def capture(self, host, bpf_filter, max_packets=10000, timeout=60, direction=None, settle=0.2):
        """tcpdump on the host's eth0 as a context manager; .count after the block.

        direction: None (both), "in" or "out" (tcpdump -Q). settle: seconds to wait
        before stopping, so packets still in flight are counted.
        """
        self._check_host(host)
        path = self.state_dir / f"capture-{host}-{next(self._capture_ids)}.pcap"
        return Capture(self, host, bpf_filter, path, max_packets=max_packets, timeout=timeout,
                       direction=direction, settle=settle)

    # --- inventory and status ------------------------------------------------

    def groups(self):
        """Inventory groups: the collection's roles target these names."""
        return {
            "clients": ["client"],
            "senders": ["sender"],
            "collectors": ["collector"],
            "web": ["web"],
            "balancers": ["lb"],
            "backends": list(self.backend_hosts),
        }

    def inventory(self, connection=DEFAULT_CONNECTION, python=None, backend_port=80):
        """The lab as an Ansible YAML inventory, as a dict."""
        children = {
            group: {"hosts": {host: self._host_vars(host, backend_port) for host in members}}
            for group, members in self.groups().items()
        }
        shared_vars = {
            "ansible_connection": connection,
            "ansible_python_interpreter": python or self.python,
            "lab_id": self.lab_id,
            "lab_vip": self.vip,
        }
        return {"all": {"vars": shared_vars, "children": children}}

    def _host_vars(self, host, backend_port):
        host_vars = {
            "ansible_netns_name": self.ns(host),
            "ansible_host": self.addr(host),
            "lab_address": self.addr(host),
            "lab_interface": INTERFACE,
        }
        if host == "lb":
            host_vars["vip"] = self.vip
        if host in self.backend_hosts:
            host_vars["backend_port"] = backend_port
        return host_vars

    def write_inventory(self, path, connection=DEFAULT_CONNECTION, python=None, backend_port=80):
        path = Path(path)
        lines = [f"# Lab {self.lab_id} ({self.subnet}), written by tests/lab/netlab.py", "---"]
        lines += _yaml_lines(self.inventory(connection, python, backend_port))
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def status(self):
        """What exists of the lab now: bridge, and per host namespace and settings."""
        namespaces = set(_netns_names())
        hosts = {}
        for host in self.hosts:
            present = self.ns(host) in namespaces
            hosts[host] = {
                "namespace": self.ns(host),
                "present": present,
                "address": self.addr(host),
                "ip_forward": self.sysctl(host, "net.ipv4.ip_forward") if present else None,
                "http_requests": self.http_requests(host),
            }
        bridge_present = _ip("link", "show", "dev", self.bridge, check=False).returncode == 0
        return {"bridge": self.bridge, "bridge_present": bridge_present, "vip": self.vip, "hosts": hosts}


def stale_lab_ids():
    """Ids of the labs whose owning process no longer runs (see Lab.up)."""
    owners = sorted(STATE_ROOT.glob(f"*/{OWNER_FILE}")) if STATE_ROOT.is_dir() else []
    return [path.parent.name for path in owners
            if _LAB_ID.fullmatch(path.parent.name) and not Path(f"/proc/{path.read_text(encoding='ascii').strip()}").exists()]


def prune_stale_labs():
    """Takes down every stale lab, as a killed run leaves them; returns their ids."""
    stale = stale_lab_ids()
    for lab_id in stale:
        Lab(lab_id).down()
    return stale


# --- command line ------------------------------------------------------------

def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python3 -m tests.lab.netlab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down", "status", "inventory", "prune"],
                        help="prune: take down the labs of processes that have exited (no --id)")
    parser.add_argument("--id", dest="lab_id", help="lab id, 1-6 letters or digits")
    parser.add_argument("--backends", type=int, default=3)
    parser.add_argument("--subnet", default=DEFAULT_SUBNET, help="a /24 inside 198.18.0.0/15")
    parser.add_argument("--inventory", type=Path, help="write an Ansible inventory here (up, inventory)")
    parser.add_argument("--python", help="ansible_python_interpreter in the inventory (default: this Python)")
    parser.add_argument("--http", action="store_true", help="up: start HTTP servers on web and the backends")
    parser.add_argument("--http-port", type=int, default=80)
    args = parser.parse_args(argv)
    if (args.action == "prune") == bool(args.lab_id):
        parser.error("--id is required, except with prune" if args.lab_id is None else "prune takes no --id")
    return args


def _print_status(status):
    print(f"bridge {status['bridge']}: {'present' if status['bridge_present'] else 'absent'}; vip {status['vip']}")
    for host, info in status["hosts"].items():
        state = "present" if info["present"] else "absent"
        print(f"{host:<10} {info['namespace']:<20} {info['address']:<15} {state:<8} "
              f"ip_forward={info['ip_forward']} http_requests={info['http_requests']}")


def main(argv=None):
    args = _parse_args(argv)
    if args.action == "prune":
        print("taken down: %s" % (", ".join(prune_stale_labs()) or "none"))
        return 0
    lab = Lab(args.lab_id, backends=args.backends, subnet=args.subnet)
    if args.action == "down":
        lab.down()
        return 0
    if args.action == "status":
        status = lab.status()
        _print_status(status)
        return 0 if status["bridge_present"] and all(h["present"] for h in status["hosts"].values()) else 1
    if args.action == "up":
        lab.up(owned=False)
        if args.http:
            for host in ["web", *lab.backend_hosts]:
                lab.start_http(host, port=args.http_port)
    if args.inventory:
        print(f"inventory written to {lab.write_inventory(args.inventory, python=args.python)}")
    elif args.action == "inventory":
        print("\n".join(_yaml_lines(lab.inventory(python=args.python))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
