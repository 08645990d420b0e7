"""The namespace lab itself, and Ansible reaching its hosts through the netns connection.

Needs root, iproute2 with `ip netns`, curl, tcpdump and iptables. Traffic stays on lab
bridges in 198.18.0.0/15; every lab made here is torn down by name.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab.netlab import FORWARDING_HOSTS, Lab

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SUBNET = "198.18.250.0/24"
# Ids from the pid keep parallel or leftover runs apart: "nm-<id>-" is what down() deletes.
LAB_ID = f"lt{os.getpid() % 10000}"


def _missing_prerequisite():
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    missing = [tool for tool in ("ip", "curl", "tcpdump", "iptables") if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)}"
    if subprocess.run(["ip", "netns", "list"], capture_output=True, check=False).returncode != 0:
        return "`ip netns` is not available"
    return None


pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(_missing_prerequisite() is not None, reason=str(_missing_prerequisite())),
]


@pytest.fixture(scope="module")
def lab():
    with Lab(LAB_ID, backends=3, subnet=SUBNET) as running:
        yield running


def ip_json(*args, netns=None):
    prefix = ["ip", "-n", netns] if netns else ["ip"]
    return json.loads(subprocess.run([*prefix, "-j", *args], capture_output=True, text=True, check=True).stdout or "[]")


def lab_namespaces(lab):
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout.split()
    return sorted(name for name in listed if name.startswith(lab.ns_prefix))


def lab_root_links(lab):
    """Root-namespace links that belong to the lab: its bridge, veths by name or alias."""
    veths = {lab.veth(host) for host in lab.hosts}
    return sorted(link["ifname"] for link in ip_json("link", "show")
                  if link["ifname"] == lab.bridge or link["ifname"] in veths
                  or link.get("ifalias", "").startswith(lab.ns_prefix))


def ipv4_addresses(lab, host):
    return sorted(entry["local"] for link in ip_json("addr", "show", "dev", "eth0", netns=lab.ns(host))
                  for entry in link["addr_info"] if entry["family"] == "inet")


def running(pid):
    """A process that exists and is not a zombie waiting for init to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def curl(lab, host, url):
    return lab.run(host, ["curl", "-s", "--max-time", "5", url], check=True).stdout


# --- set-up ------------------------------------------------------------------

def test_up_twice_changes_nothing(lab):
    before = (lab_namespaces(lab), lab_root_links(lab), {h: ipv4_addresses(lab, h) for h in lab.hosts})
    lab.up()
    after = (lab_namespaces(lab), lab_root_links(lab), {h: ipv4_addresses(lab, h) for h in lab.hosts})
    assert after == before
    assert len(before[0]) == len(lab.hosts) == 8
    assert len(before[1]) == len(lab.hosts) + 1


def test_addresses_follow_the_plan(lab):
    addresses = {host: ipv4_addresses(lab, host) for host in lab.hosts}
    assert addresses == {
        "client": ["198.18.250.10"], "sender": ["198.18.250.11"], "collector": ["198.18.250.12"],
        "web": ["198.18.250.13"], "lb": ["198.18.250.100", "198.18.250.20"],
        "be1": ["198.18.250.51"], "be2": ["198.18.250.52"], "be3": ["198.18.250.53"],
    }


def test_forwarding_is_on_only_for_lb_and_collector(lab):
    forwarding = {host: lab.sysctl(host, "net.ipv4.ip_forward") for host in lab.hosts}
    assert forwarding == {host: "1" if host in FORWARDING_HOSTS else "0" for host in lab.hosts}
    assert forwarding["collector"] == "1"


# --- reachability --------------------------------------------------------------

def test_every_host_reaches_web_over_the_bridge(lab):
    lab.start_http("web")
    others = [host for host in lab.hosts if host != "web"]
    before = lab.http_requests("web")
    answers = {host: curl(lab, host, f"http://{lab.addr('web')}/") for host in others}
    assert answers == {host: "web\n" for host in others}
    assert lab.http_requests("web") - before == len(others)


def test_backends_answer_with_their_names(lab):
    for backend in lab.backend_hosts:
        lab.start_http(backend)
    before = {backend: lab.http_requests(backend) for backend in lab.backend_hosts}
    answers = {backend: curl(lab, "client", f"http://{lab.addr(backend)}/") for backend in lab.backend_hosts}
    assert answers == {"be1": "be1\n", "be2": "be2\n", "be3": "be3\n"}
    assert {b: lab.http_requests(b) - before[b] for b in lab.backend_hosts} == {"be1": 1, "be2": 1, "be3": 1}


def test_vip_is_an_address_of_lb(lab):
    lab.start_http("lb", port=8080)
    assert curl(lab, "client", f"http://{lab.vip}:8080/") == "lb\n"


def test_no_route_between_the_machine_and_the_lab(lab):
    bridge = ip_json("addr", "show", "dev", lab.bridge)
    assert bridge[0]["addr_info"] == []
    assert ip_json("-4", "route", "show", "table", "all", "dev", lab.bridge) == []
    assert ip_json("route", "get", lab.addr("web"))[0].get("dev") != lab.bridge
    for host in lab.hosts:
        assert ip_json("route", "show", "default", netns=lab.ns(host)) == []
    outside = lab.run("client", ["ip", "route", "get", "198.51.100.1"])
    assert outside.returncode != 0
    assert "unreachable" in outside.stderr


# --- counters: TEE clones leak through a forwarding collector ------------------

def test_collector_forwards_tee_clones_until_forwarding_is_off(lab):
    """Clones of sender->web traffic go to the collector; what it does with them shows
    in its ForwDatagrams counter and in a capture on its interface."""
    web, collector = lab.addr("web"), lab.addr("collector")
    lab.start_http("web")
    tee_rule = ["POSTROUTING", "-o", "eth0", "-d", web, "-p", "tcp", "--dport", "80",
                "-j", "TEE", "--gateway", collector]
    mangle = ["iptables", "-w", "5", "-t", "mangle"]
    lab.run("sender", [*mangle, "-I", *tee_rule], check=True)
    try:
        leaked = _clones_seen_by_collector(lab)
        lab.set_sysctl("collector", "net.ipv4.ip_forward", "0")
        kept = _clones_seen_by_collector(lab)
    finally:
        lab.run("sender", [*mangle, "-D", *tee_rule], check=True)
        lab.set_sysctl("collector", "net.ipv4.ip_forward", "1")
    assert leaked["clones"] >= 4  # SYN, ACK, request, FIN at least
    assert leaked["forwarded"] == leaked["clones"]
    assert kept["clones"] >= 4
    assert kept["forwarded"] == 0
    assert leaked["web_requests"] == kept["web_requests"] == 1


def _clones_seen_by_collector(lab):
    forwarded_before = lab.forwarded("collector")
    requests_before = lab.http_requests("web")
    flow = f"tcp dst port 80 and dst host {lab.addr('web')}"
    with lab.capture("collector", flow, direction="in", timeout=20) as capture:
        assert curl(lab, "sender", f"http://{lab.addr('web')}/") == "web\n"
    assert not capture.timed_out
    return {
        "clones": capture.count,
        "forwarded": lab.forwarded("collector") - forwarded_before,
        "web_requests": lab.http_requests("web") - requests_before,
    }


# --- teardown ------------------------------------------------------------------

def test_down_removes_everything_even_unknown_hosts(tmp_path):
    throwaway = Lab(f"ld{os.getpid() % 10000}", backends=2, subnet="198.18.251.0/24")
    throwaway.up()
    server = throwaway.start_http("be1")
    # A namespace of this id that the object does not know, as a run with more backends leaves.
    subprocess.run(["ip", "netns", "add", throwaway.ns_prefix + "be7"], check=True)
    throwaway.down()
    assert lab_namespaces(throwaway) == []
    assert lab_root_links(throwaway) == []
    assert server.poll() is not None
    assert not throwaway.state_dir.exists()
    throwaway.down()  # nothing left: still fine


ORPHAN = "import sys; from tests.lab.netlab import Lab; Lab(sys.argv[1], backends=1, subnet=sys.argv[2]).up()"


def test_prune_takes_down_only_the_labs_of_processes_that_have_exited():
    suffix = os.getpid() % 10000
    orphan, kept, live = (Lab(f"{prefix}{suffix}", backends=1, subnet=f"198.18.{third}.0/24")
                          for prefix, third in (("lo", 253), ("lk", 254), ("ll", 255)))
    cli = [sys.executable, "-m", "tests.lab.netlab"]
    try:
        # A run killed before its teardown: the process that owned the lab is gone.
        subprocess.run([sys.executable, "-c", ORPHAN, orphan.lab_id, str(orphan.subnet)], cwd=REPO, check=True, timeout=60)
        # A lab made from the command line is kept until taken down.
        subprocess.run([*cli, "up", "--id", kept.lab_id, "--backends", "1", "--subnet", str(kept.subnet)], cwd=REPO, check=True,
                       capture_output=True, timeout=60)
        live.up()
        assert len(lab_namespaces(orphan)) == len(orphan.hosts)
        pruned = subprocess.run([*cli, "prune"], cwd=REPO, check=True, capture_output=True, text=True, timeout=120).stdout
        assert orphan.lab_id in pruned.split(":", 1)[1].strip().split(", ")
        assert lab_namespaces(orphan) == [] and lab_root_links(orphan) == [] and not orphan.state_dir.exists()
        for lab in (kept, live):
            assert len(lab_namespaces(lab)) == len(lab.hosts), lab.lab_id
    finally:
        for lab in (orphan, kept, live):
            lab.down()


def test_cli_down_works_after_the_creating_process_is_gone():
    lab_id = f"lc{os.getpid() % 10000}"
    shape = ["--id", lab_id, "--backends", "2", "--subnet", "198.18.252.0/24"]
    cli = [sys.executable, "-m", "tests.lab.netlab"]
    try:
        subprocess.run([*cli, "up", "--http", *shape], cwd=REPO, check=True, capture_output=True, timeout=60)
        described = Lab(lab_id, backends=2, subnet="198.18.252.0/24")
        assert curl(described, "client", f"http://{described.addr('be2')}/") == "be2\n"
        server_pids = subprocess.run(["ip", "netns", "pids", described.ns("be2")], capture_output=True,
                                     text=True, check=True).stdout.split()
        assert server_pids
        status = subprocess.run([*cli, "status", *shape], cwd=REPO, capture_output=True, text=True, timeout=60,
                                check=False)
        assert status.returncode == 0, status.stdout
    finally:
        subprocess.run([*cli, "down", *shape], cwd=REPO, check=True, capture_output=True, timeout=60)
    assert lab_namespaces(described) == []
    assert lab_root_links(described) == []
    assert [pid for pid in server_pids if running(pid)] == []
    gone = subprocess.run([*cli, "status", *shape], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert gone.returncode == 1


# --- Ansible through the netns connection --------------------------------------

@pytest.fixture(scope="module")
def collections_path():
    """The collection as `make collection` builds and installs it (make keeps it current)."""
    subprocess.run(["make", "-s", "collection"], cwd=REPO, check=True, capture_output=True, timeout=600)
    path = REPO / ".build" / "collections"
    assert (path / "ansible_collections" / "netmagic" / "netfilter" / "plugins" / "connection" / "netns.py").exists()
    return path


def run_ansible(program, args, tmp_path, collections_path, **env):
    """Run an Ansible CLI with JSON output, insist it succeeds, return the parsed output."""
    environment = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(collections_path),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "local-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(tmp_path / "remote-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        **env,
    }
    proc = subprocess.run([str(BIN / program), *args], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout)


PLAYBOOK = """
- name: Look at every lab host from inside its namespace
  hosts: all
  gather_facts: false
  tasks:
    - name: List IPv4 addresses
      ansible.builtin.command: ip -o -4 addr show dev eth0
      register: addresses
      changed_when: false

    - name: Gather network facts
      ansible.builtin.setup:
        gather_subset: ["!all", "network"]

    - name: Write a file on the host
      ansible.builtin.copy:
        content: "{{ inventory_hostname }} {{ lab_address }}\\n"
        dest: "{{ out_dir }}/{{ inventory_hostname }}.txt"
        mode: "0600"

    - name: Fetch it back
      ansible.builtin.fetch:
        src: "{{ out_dir }}/{{ inventory_hostname }}.txt"
        dest: "{{ out_dir }}/fetched/"
"""


def task_results(output, task_name):
    [task] = [t for play in output["plays"] for t in play["tasks"] if t["task"]["name"] == task_name]
    return task["hosts"]


def test_playbook_sees_each_host_from_inside_its_namespace(lab, tmp_path, collections_path):
    inventory = lab.write_inventory(tmp_path / "inventory.yml")
    (tmp_path / "site.yml").write_text(PLAYBOOK)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    args = ["-i", str(inventory), "-f", "4", "-e", f"out_dir={out_dir}", "site.yml"]
    output = run_ansible("ansible-playbook", args, tmp_path, collections_path)

    assert sorted(output["stats"]) == sorted(lab.hosts)
    assert all(stats["failures"] == 0 and stats["unreachable"] == 0 for stats in output["stats"].values())
    listed = task_results(output, "List IPv4 addresses")
    facts = task_results(output, "Gather network facts")
    for host in lab.hosts:
        expected = sorted([lab.addr(host), lab.vip] if host == "lb" else [lab.addr(host)])
        assert sorted(line.split()[3].split("/")[0] for line in listed[host]["stdout_lines"]) == expected
        host_facts = facts[host]["ansible_facts"]
        assert sorted(host_facts["ansible_all_ipv4_addresses"]) == expected
        assert sorted(host_facts["ansible_interfaces"]) == ["eth0", "lo"]
        assert host_facts["ansible_default_ipv4"] == {}
        fetched = out_dir / "fetched" / host / str(out_dir).lstrip("/") / f"{host}.txt"
        assert fetched.read_text() == f"{host} {lab.addr(host)}\n"


def test_adhoc_ping_and_command_with_forks_and_pipelining(lab, tmp_path, collections_path):
    inventory = lab.write_inventory(tmp_path / "inventory.yml")
    ping = ["all", "-i", str(inventory), "-f", "5", "-m", "ansible.builtin.ping"]
    pinged = run_ansible("ansible", ping, tmp_path, collections_path)
    pongs = pinged["plays"][0]["tasks"][0]["hosts"]
    assert {host: result["ping"] for host, result in pongs.items()} == {host: "pong" for host in lab.hosts}

    command = ["backends:balancers", "-i", str(inventory), "-f", "4",
               "-m", "ansible.builtin.command", "-a", "cat /proc/sys/net/ipv4/ip_forward"]
    commanded = run_ansible("ansible", command, tmp_path, collections_path, ANSIBLE_PIPELINING="1")
    results = commanded["plays"][0]["tasks"][0]["hosts"]
    assert {host: result["stdout"] for host, result in results.items()} == {
        "lb": "1", "be1": "0", "be2": "0", "be3": "0",
    }
