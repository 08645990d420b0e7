"""End-to-end checks of TEE mirroring, run from the host against the scenario's containers."""

import re
import subprocess
import time
import uuid

import testinfra

SENDER = "nm-mirror-sender"
COLLECTOR = "nm-mirror-collector"
WEB = "nm-mirror-web"
COLLECTOR_ADDRESS = "198.18.42.12"
WEB_ADDRESS = "198.18.42.13"
REQUESTS = 20
COUNTER_COMMENT = "nm-test-clone-counter"


def container(name):
    # The podman backend runs `podman exec` directly: much faster than the ansible backend.
    return testinfra.get_host(f"podman://{name}")


def ip_counters(host):
    """The Ip: counters of /proc/net/snmp (per network namespace), by name."""
    lines = [line.split()[1:] for line in host.file("/proc/net/snmp").content_string.splitlines()
             if line.startswith("Ip:")]
    names, values = lines
    return dict(zip(names, map(int, values)))


def clone_syns(collector):
    save = collector.check_output("iptables-save -c -t raw")
    match = re.search(rf'^\[(\d+):\d+\] -A PREROUTING .*{COUNTER_COMMENT}', save, re.M)
    assert match, save
    return int(match.group(1))


def test_collector_forwarding_is_off_now_and_after_reboot():
    collector = container(COLLECTOR)
    assert collector.file("/proc/sys/net/ipv4/ip_forward").content_string.strip() == "0"
    persisted = collector.file("/etc/sysctl.d/60-netmagic-mirror-collector.conf").content_string
    assert re.search(r"^net\.ipv4\.ip_forward\s*=\s*0$", persisted, re.M), persisted


def test_sender_owns_the_mirror_chains():
    save = container(SENDER).check_output("iptables-nft-save -t mangle")
    chains = re.findall(r"^:(NM-\S+)", save, re.M)
    assert any(chain.startswith("NM-MIRO-") for chain in chains), save
    assert any(chain.startswith("NM-MIRI-") for chain in chains), save
    assert f"-j TEE --gateway {COLLECTOR_ADDRESS}" in save


def test_each_request_is_cloned_once_to_the_collector_and_served_once():
    sender, collector = container(SENDER), container(COLLECTOR)
    # Counts the clones of the requests' SYNs: one per request, whatever the packet count.
    rule = (f"PREROUTING -p tcp -d {WEB_ADDRESS} --dport 80 --tcp-flags SYN,ACK SYN "
            f"-m comment --comment {COUNTER_COMMENT}")
    collector.check_output(f"iptables -t raw -I {rule}")
    try:
        ip_before = ip_counters(collector)
        token = uuid.uuid4().hex
        codes = sender.check_output(
            f"for i in $(seq {REQUESTS}); do "
            f"curl -s -o /dev/null -m 5 -w '%{{http_code}}\\n' 'http://{WEB_ADDRESS}/?probe={token}-'$i; "
            "done").split()
        assert codes == ["200"] * REQUESTS

        deadline = time.monotonic() + 5
        while clone_syns(collector) < REQUESTS and time.monotonic() < deadline:
            time.sleep(0.2)
        assert clone_syns(collector) == REQUESTS

        ip_after = ip_counters(collector)
        assert ip_after["ForwDatagrams"] == ip_before["ForwDatagrams"]
        # The clones were dropped at routing: they are addressed to the web server, not to the
        # collector, and it does not forward.
        assert ip_after["InAddrErrors"] - ip_before["InAddrErrors"] >= REQUESTS
    finally:
        collector.run(f"iptables -t raw -D {rule}")

    log = subprocess.run(["podman", "logs", WEB], capture_output=True, text=True, check=True)
    access_log = log.stdout + log.stderr
    seen = [access_log.count(f"probe={token}-{i} ") for i in range(1, REQUESTS + 1)]
    assert seen == [1] * REQUESTS
