"""A collector beyond a router, reached through the VXLAN tunnel the roles build from the
inventory: every clone arrives and decodes, and production traffic is untouched (no ICMP to a
production host, no lowered path MTU), proven with real downloads and tshark."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from tests.integration.collector_capture import start_collector_capture, stop_collector_capture
from tests.integration.netfilter import REPO, collections_path, in_netns, run_module
from tests.integration.test_persist import UNIT as RULES_UNIT
from tests.integration.test_persist import reboot, unit_commands
from tests.lab.netlab import INTERFACE, Lab

ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
VNI = 4242
INNER = "198.18.250.1"
# Bodies from one packet to many full-size ones, as the collector must see them.
SIZES = (13, 1448, 100000, 1000000)
FETCH = """
import hashlib, json, sys, urllib.request
digests = []
for name in sys.argv[2:]:
    with urllib.request.urlopen("http://%s:8000/%s" % (sys.argv[1], name), timeout=20) as answer:
        digests.append(hashlib.sha256(answer.read()).hexdigest())
print(json.dumps(digests))
"""

SEND_DATAGRAMS = """
import socket, sys
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
    for _ in range(20):
        sender.sendto(b"x", (sys.argv[1], 9999))
"""


@pytest.fixture
def routed_lab(tmp_path):
    """The lab with its collector moved behind lb: the collector's only address is in
    198.19.N.0/24, which lb routes (and sends no redirect for) and the sender reaches via lb."""
    with Lab("vx%d" % (os.getpid() % 1000), backends=1, subnet="198.18.242.0/24") as lab:
        remote_net = "198.19.242.0/24"
        lab.remote_collector = "198.19.242.12"
        lab.run("collector", ["ip", "addr", "flush", "dev", INTERFACE, "scope", "global"], check=True)
        lab.run("collector", ["ip", "addr", "add", lab.remote_collector + "/24", "dev", INTERFACE], check=True)
        lab.run("lb", ["ip", "addr", "add", "198.19.242.1/24", "dev", INTERFACE], check=True)
        for key in ("net.ipv4.conf.all.send_redirects", "net.ipv4.conf.%s.send_redirects" % INTERFACE):
            lab.set_sysctl("lb", key, "0")
        lab.run("sender", ["ip", "route", "add", remote_net, "via", lab.addr("lb")], check=True)
        files = tmp_path / "files"
        files.mkdir()
        lab.files = {}
        for size in SIZES:
            data = os.urandom(size)
            (files / ("%d.bin" % size)).write_bytes(data)
            lab.files["%d.bin" % size] = hashlib.sha256(data).hexdigest()
        lab.popen("web", [sys.executable, "-m", "http.server", "--bind", lab.addr("web"), "--directory", str(files), "8000"],
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        yield lab


def play(lab, tmp_path, vni=VNI, playbook="mirror.yml", *options):
    """A playbook (mirror.yml) with the collector's tunnel in the inventory; returns the completed run."""
    inventory = lab.inventory()
    collector = inventory["all"]["children"]["collectors"]["hosts"]["collector"]
    collector.update(ansible_host=lab.remote_collector, mirror_collector_tunnel={"vni": vni, "address": INNER + "/24"},
                     mirror_collector_sysctl_file=str(lab.state_dir / "collector-sysctl.conf"))
    inventory["all"]["children"]["senders"]["vars"] = {"mirror_sender_mirrors": [{"name": "http", "ports": ["8000"]}]}
    path = tmp_path / "hosts.yml"
    path.write_text(json.dumps(inventory))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_NOCOLOR="1")
    return subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(path), os.path.join(REPO, "playbooks", playbook), *options],
                          capture_output=True, text=True, timeout=300, check=False, env=env)


def fetch(lab):
    out = lab.run("sender", [sys.executable, "-c", FETCH, lab.addr("web"), *lab.files], check=True, timeout=60).stdout
    return dict(zip(lab.files, json.loads(out)))


def decoded_bodies(pcap, directory):
    """{name: sha256} of every HTTP body tshark exports from the collector's capture of the
    tunnel's outer packets (tshark decodes VXLAN on its port, then the clones within)."""
    directory.mkdir()
    subprocess.run(["tshark", "-n", "-r", str(pcap), "-o", "tcp.reassemble_out_of_order:TRUE", "-d", "tcp.port==8000,http",
                    "--export-objects", "http,%s" % directory], capture_output=True, check=True, timeout=120)
    return {name: hashlib.sha256((directory / name).read_bytes()).hexdigest() for name in os.listdir(directory)}


def icmp_out(lab, host):
    """ICMP messages the host has sent, from its kernel's counters."""
    snmp = lab.run(host, ["cat", "/proc/net/snmp"], check=True).stdout.splitlines()
    names, values = [line.split()[1:] for line in snmp if line.startswith("Icmp:")]
    return int(values[names.index("OutMsgs")])


def path_mtu(lab, host, destination):
    """The MTU the host's route cache holds for a destination, or None (none learnt)."""
    words = lab.run(host, ["ip", "route", "get", destination], check=True).stdout.split()
    return int(words[words.index("mtu") + 1]) if "mtu" in words else None


def test_a_collector_behind_a_router_gets_every_clone_through_the_tunnel_and_production_is_untouched(routed_lab, tmp_path):
    lab = routed_lab
    completed = play(lab, tmp_path)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    assert lab.forwarded("collector") == 0
    again = play(lab, tmp_path)
    assert again.returncode == 0 and "changed=0" in again.stdout.split("PLAY RECAP")[1], again.stdout[-3000:]

    icmp_before = {host: icmp_out(lab, host) for host in ("sender", "web")}
    # As the collector role captures, every packet from the sender: the outer packets of
    # full-size clones come in fragments, and only the first fragment has the UDP port.
    capture = start_collector_capture(lab, tmp_path, "ip src %s" % lab.addr("sender"))
    with lab.count("web", "tcp sport 8000 ip length >= 1500") as full_size:
        received = fetch(lab)
    statistics = stop_collector_capture(capture)
    assert received == lab.files, "a download failed or changed"
    assert statistics["dropped_by_kernel"] == 0
    # Full-size or larger (GSO frames, which the tunnel's MTU checks segment by segment).
    assert full_size.count >= 10, "too few full-size packets to prove the MTU"
    [pcap] = tmp_path.glob("mirror.pcap*")
    assert decoded_bodies(pcap, tmp_path / "decoded") == lab.files
    # No clone was dropped for its size, so nobody was told to send smaller packets.
    assert {host: icmp_out(lab, host) for host in ("sender", "web")} == icmp_before
    assert path_mtu(lab, "web", lab.addr("sender")) is None


def test_a_tunnel_below_the_production_mtu_would_shrink_the_peers_packets_and_the_role_repairs_it(routed_lab, tmp_path):
    """What the tunnel's MTU prevents, shown: at VXLAN's usual 1450 the sender drops the clones
    of full-size responses and tells the web server to send smaller packets."""
    lab = routed_lab
    assert play(lab, tmp_path).returncode == 0
    lab.run("sender", ["ip", "link", "set", "dev", "nmvx%d" % VNI, "mtu", "1450"], check=True)
    before = icmp_out(lab, "sender")
    fetch(lab)
    assert icmp_out(lab, "sender") > before
    assert path_mtu(lab, "web", lab.addr("sender")) == 1450
    repaired = play(lab, tmp_path)
    assert repaired.returncode == 0
    assert lab.run("sender", ["ip", "-j", "link", "show", "dev", "nmvx%d" % VNI], check=True).stdout.count('"mtu":1500') == 1


def vxlan_devices(lab, host):
    return sorted(link["ifname"] for link in json.loads(lab.run(host, ["ip", "-j", "link", "show", "type", "vxlan"], check=True).stdout))


def test_the_senders_end_of_a_tunnel_no_mirror_goes_through_any_more_is_removed_and_no_other(routed_lab, tmp_path):
    """The collector moves to another tunnel: the sender's old end goes, a VXLAN device that is
    not the collection's stays, and the clones go through the new tunnel."""
    lab = routed_lab
    lab.run("sender", ["ip", "link", "add", "vxlan9", "type", "vxlan", "id", "9", "dstport", "4790"], check=True)
    assert play(lab, tmp_path).returncode == 0
    assert vxlan_devices(lab, "sender") == ["nmvx%d" % VNI, "vxlan9"]
    lab.run("collector", ["ip", "link", "del", "dev", "nmvx%d" % VNI], check=True)
    moved = play(lab, tmp_path, vni=VNI + 1)
    assert moved.returncode == 0, moved.stdout[-3000:]
    assert vxlan_devices(lab, "sender") == ["nmvx%d" % (VNI + 1), "vxlan9"]
    with lab.count("collector", 'iifname "nmvx%d" tcp sport 8000' % (VNI + 1)) as cloned:
        assert fetch(lab) == lab.files
    assert cloned.count > 0
    again = play(lab, tmp_path, vni=VNI + 1)
    assert again.returncode == 0 and "changed=0" in again.stdout.split("PLAY RECAP")[1], again.stdout[-3000:]


def test_the_remove_playbook_takes_the_senders_tunnel_and_leaves_the_collectors_end(routed_lab, tmp_path):
    lab = routed_lab
    assert play(lab, tmp_path).returncode == 0
    removed = play(lab, tmp_path, VNI, "remove.yml", "--limit", "sender,collector")
    assert removed.returncode == 0, removed.stdout[-3000:]
    assert vxlan_devices(lab, "sender") == [] and "NM-" not in lab.run("sender", ["iptables-save"], check=True).stdout
    assert vxlan_devices(lab, "collector") == ["nmvx%d" % VNI]


def test_every_engine_sends_every_clone_through_the_tunnel_and_never_clones_the_tunnel(routed_lab, tmp_path, engine):
    """The modules alone, on each engine. The mirror matches every packet, so only its exclusion
    keeps what the sender sends to the collector's own address (here 20 datagrams) from reaching
    the collector twice, once as a clone through the tunnel."""
    lab = routed_lab
    for host, params in (("collector", {"address": INNER + "/24"}), ("sender", {"peers": [{"address": INNER, "remote": lab.remote_collector}]})):
        assert run_module(lab.ns(host), "vxlan_tunnel", dict(params, vni=VNI))["changed"]
    lab.set_sysctl("collector", "net.ipv4.ip_forward", "0")
    mirror = {"name": "all", "gateway": INNER, "gateway_interface": "nmvx%d" % VNI, "exclude": [lab.remote_collector],
              "protocol": "all", "engine": engine}
    assert run_module(lab.ns("sender"), "tee_mirror", mirror)["changed"]
    capture = start_collector_capture(lab, tmp_path, "ip src %s" % lab.addr("sender"))
    with lab.count("collector", 'iifname "nmvx%d" udp dport 9999' % VNI) as cloned, lab.count("collector", "udp dport 9999") as sent:
        received = fetch(lab)
        lab.run("sender", [sys.executable, "-c", SEND_DATAGRAMS, lab.remote_collector], check=True)
    statistics = stop_collector_capture(capture)
    assert received == lab.files and statistics["dropped_by_kernel"] == 0
    [pcap] = tmp_path.glob("mirror.pcap*")
    assert decoded_bodies(pcap, tmp_path / "decoded") == lab.files
    assert (sent.count, cloned.count) == (20, 0)
    assert not run_module(lab.ns("sender"), "tee_mirror", mirror)["changed"]


def test_a_persisted_mirror_through_the_tunnel_comes_back_at_boot_with_its_tunnel(routed_lab, tmp_path, engine):
    """A reboot of the sender, simulated: its tunnel and every rule gone, then the commands of
    the tunnel's unit and of the rules' unit, in the order systemd runs them. Every clone
    reaches the collector again, and the modules find nothing to change."""
    lab = routed_lab
    persist = {"persist": True, "persist_path": str(tmp_path / "persist"), "persist_service": False}
    tunnel = {"vni": VNI, "peers": [{"address": INNER, "remote": lab.remote_collector}]}
    mirror = {"name": "http", "gateway": INNER, "gateway_interface": "nmvx%d" % VNI, "ports": ["8000"], "engine": engine}
    assert run_module(lab.ns("collector"), "vxlan_tunnel", {"vni": VNI, "address": INNER + "/24"})["changed"]
    lab.set_sysctl("collector", "net.ipv4.ip_forward", "0")
    persisted = run_module(lab.ns("sender"), "vxlan_tunnel", dict(tunnel, **persist))
    assert persisted["persisted"] == {"unit": os.path.join(persist["persist_path"], "netmagic-vxlan-%d.service" % VNI)}
    assert run_module(lab.ns("sender"), "tee_mirror", dict(mirror, **persist))["changed"]

    lab.run("sender", ["ip", "link", "del", "dev", "nmvx%d" % VNI], check=True)
    reboot(lab.ns("sender"), engine)
    tunnel_boot = unit_commands(persist["persist_path"], "netmagic-vxlan-%d.service" % VNI)
    rules_boot = unit_commands(persist["persist_path"])
    if engine == "nftables":
        # What the order prevents: nft refuses the whole ruleset while the device is missing.
        assert in_netns(lab.ns("sender"), rules_boot[0]).returncode != 0
    for argv in tunnel_boot + rules_boot:
        in_netns(lab.ns("sender"), argv, check=True)

    capture = start_collector_capture(lab, tmp_path, "ip src %s" % lab.addr("sender"))
    received = fetch(lab)
    stop_collector_capture(capture)
    assert received == lab.files
    [pcap] = tmp_path.glob("mirror.pcap*")
    assert decoded_bodies(pcap, tmp_path / "decoded") == lab.files
    assert not run_module(lab.ns("sender"), "vxlan_tunnel", dict(tunnel, **persist))["changed"]
    assert not run_module(lab.ns("sender"), "tee_mirror", dict(mirror, **persist))["changed"]
    assert RULES_UNIT in os.listdir(persist["persist_path"])


def test_a_tunnel_made_again_carries_the_clones_again_after_the_next_run(routed_lab, tmp_path, engine):
    """nftables holds the device of `dup to … device` by its index: once the tunnel's device is
    made again (a new index), the old rule sends nothing. The next run of the mirror, although
    no rule changed, must see it and write the rule again; TEE's --oif follows the name."""
    lab = routed_lab
    sender_end = {"vni": VNI, "peers": [{"address": INNER, "remote": lab.remote_collector}]}
    assert run_module(lab.ns("collector"), "vxlan_tunnel", {"vni": VNI, "address": INNER + "/24"})["changed"]
    lab.set_sysctl("collector", "net.ipv4.ip_forward", "0")
    assert run_module(lab.ns("sender"), "vxlan_tunnel", sender_end)["changed"]
    mirror = {"name": "http", "gateway": INNER, "gateway_interface": "nmvx%d" % VNI, "ports": ["8000"], "engine": engine}
    assert run_module(lab.ns("sender"), "tee_mirror", mirror)["changed"]
    assert not run_module(lab.ns("sender"), "tee_mirror", mirror)["changed"]  # the record is trusted from here on

    lab.run("sender", ["ip", "link", "del", "dev", "nmvx%d" % VNI], check=True)
    assert run_module(lab.ns("sender"), "vxlan_tunnel", sender_end)["changed"]
    again = run_module(lab.ns("sender"), "tee_mirror", mirror)
    assert again["rc"] == 0 and again["changed"] is (engine == "nftables"), again
    with lab.count("collector", 'iifname "nmvx%d" tcp sport 8000' % VNI) as cloned:
        assert fetch(lab) == lab.files
    assert cloned.count > 0
    assert not run_module(lab.ns("sender"), "tee_mirror", mirror)["changed"]
