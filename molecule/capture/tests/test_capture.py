"""The collector's capture service, checked from the host against a container running systemd."""

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
        return len(collector.check_output(f"tcpdump -n -r {FIRST_FILE} icmp 2>/dev/null").splitlines())

    before = recorded_icmp()
    # Loopback traffic: an echo request and its reply per ping, both seen on interface any.
    collector.check_output(f"ping -c {PINGS} -i 0.2 -W 1 127.0.0.1")
    deadline = time.monotonic() + 5
    while recorded_icmp() < before + 2 * PINGS and time.monotonic() < deadline:
        time.sleep(0.2)
    assert recorded_icmp() >= before + 2 * PINGS


def test_turning_capture_off_removes_the_service(collector, molecule_inventory, converge):
    off = converge(molecule_inventory, "-e", "mirror_collector_capture_enabled=false")
    try:
        assert off.returncode == 0, off.output
        assert not collector.service(UNIT).is_running
        assert not collector.file(f"/etc/systemd/system/{UNIT}").exists
        assert collector.file(FIRST_FILE).exists  # the recordings stay
    finally:
        on = converge(molecule_inventory)
    assert on.returncode == 0, on.output
    assert collector.service(UNIT).is_running
