"""The collector's capture service, checked from the host against a container running systemd."""

import json
import os
import shutil
import subprocess
import time

import pytest

COLLECTOR = "nm-capture-collector"
UNIT = "netmagic-mirror-capture.service"
FIRST_FILE = "/var/lib/netmagic/mirror-capture/mirror.pcap0"
PINGS = 3


@pytest.fixture
def collector(container):
    return container(COLLECTOR)


def test_capture_service_runs_tcpdump_as_its_user(collector):
    assert collector.service(UNIT).is_running
    assert collector.service(UNIT).is_enabled
    assert collector.process.get(comm="tcpdump").user == "tcpdump"


def test_capture_records_the_filtered_packets(collector):
    def recorded_icmp():
        return recorded(collector)

    before = recorded_icmp()
    # Loopback traffic: an echo request and its reply per ping, both seen on interface any.
    collector.check_output(f"ping -c {PINGS} -i 0.2 -W 1 127.0.0.1")
    deadline = time.monotonic() + 5
    while recorded_icmp() < before + 2 * PINGS and time.monotonic() < deadline:
        time.sleep(0.2)
    assert recorded_icmp() >= before + 2 * PINGS


STATISTICS_PLAY = """
- name: Report the capture's counts
  hosts: collectors
  gather_facts: false
  tasks:
    - name: Ask the role
      ansible.builtin.include_role:
        name: netmagic.netfilter.mirror_collector
        tasks_from: statistics
"""


def recorded(collector, bpf="icmp"):
    return len(collector.check_output(f"tcpdump -n -r {FIRST_FILE} {bpf} 2>/dev/null").splitlines())


def capture_statistics(molecule_inventory, tmp_path):
    """The role's statistics entry point, run on the collector; the fact it publishes."""
    playbook = tmp_path / "statistics.yml"
    playbook.write_text(STATISTICS_PLAY)
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1")
    completed = subprocess.run([shutil.which("ansible-playbook"), "-i", str(molecule_inventory), str(playbook)],
                               capture_output=True, text=True, timeout=300, check=False, env=env)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    (published,) = [result["ansible_facts"]["mirror_collector_capture_statistics"]
                    for play in json.loads(completed.stdout)["plays"] for task in play["tasks"]
                    for result in task["hosts"].values() if "mirror_collector_capture_statistics" in result.get("ansible_facts", {})]
    return published


def test_the_capture_reports_what_it_captured_and_dropped(collector, molecule_inventory, tmp_path):
    collector.check_output(f"ping -c {PINGS} -i 0.2 -W 1 127.0.0.1")
    first = capture_statistics(molecule_inventory, tmp_path)
    second = capture_statistics(molecule_inventory, tmp_path)
    assert second["reports"] == first["reports"] + 1, "each run asks for a report of its own"
    assert first["dropped_by_kernel"] == 0
    assert first["captured"] >= 2 * PINGS
    # Only the pings match the filter: every packet tcpdump counts is in the file.
    assert second["captured"] == recorded(collector)


def test_the_capture_unit_stops_tcpdump_with_sigint_and_waits(collector):
    unit = collector.file(f"/etc/systemd/system/{UNIT}").content_string
    assert "\nKillSignal=SIGINT\n" in unit
    assert "--immediate-mode" in unit


def test_turning_capture_off_removes_the_service(collector, molecule_inventory, converge):
    off = converge(molecule_inventory, "-e", "mirror_collector_capture_enabled=false")
    try:
        assert off.returncode == 0, off.output
        assert not collector.service(UNIT).is_running
        assert not collector.file(f"/etc/systemd/system/{UNIT}").exists
        assert collector.file(FIRST_FILE).exists  # the recordings stay
        # Stopped with SIGINT, tcpdump wrote all it held and made its last report.
        log = collector.check_output(f"journalctl --unit {UNIT} --output cat --no-pager")
        assert log.count("packets dropped by kernel") >= 1, log[-2000:]
        final = [line for line in log.splitlines() if line.endswith("packets captured")][-1]
        assert int(final.split()[0]) == recorded(collector), log[-2000:]
    finally:
        on = converge(molecule_inventory)
    assert on.returncode == 0, on.output
    assert collector.service(UNIT).is_running
