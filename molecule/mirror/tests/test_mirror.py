"""End-to-end checks of TEE mirroring, run from the host against the scenario's containers."""

import re
import subprocess
import time
import uuid

SENDER = "nm-mirror-sender"
COLLECTOR = "nm-mirror-collector"
WEB = "nm-mirror-web"
COLLECTOR_ADDRESS = "198.18.42.12"
WEB_ADDRESS = "198.18.42.13"
REQUESTS = 20
COUNTER_COMMENT = "nm-test-clone-counter"
MANGLE_RULES = "iptables-nft-save -t mangle | grep '^[-:]'"


def ip_counters(host):
    """The Ip: counters of /proc/net/snmp (per network namespace), by name."""
    names, values = [line.split()[1:] for line in host.file("/proc/net/snmp").content_string.splitlines()
                     if line.startswith("Ip:")]
    return dict(zip(names, map(int, values)))


def clone_syns(collector):
    save = collector.check_output("iptables-save -c -t raw")
    match = re.search(rf"^\[(\d+):\d+\] -A PREROUTING .*{COUNTER_COMMENT}", save, re.M)
    assert match, save
    return int(match.group(1))


def test_collector_forwarding_is_off_now_and_after_reboot(container):
    collector = container(COLLECTOR)
    assert collector.file("/proc/sys/net/ipv4/ip_forward").content_string.strip() == "0"
    # What systemd-sysctl would apply at boot: files in lexical order, the last value wins over
    # prepare's 10-molecule-forwarding.conf.
    at_boot = collector.check_output("cat /etc/sysctl.d/*.conf")
    assert re.findall(r"^net\.ipv4\.ip_forward\s*=\s*(\d)$", at_boot, re.M) == ["1", "0"], at_boot


def test_sender_owns_the_mirror_chains(container):
    save = container(SENDER).check_output("iptables-nft-save -t mangle")
    chains = re.findall(r"^:(NM-\S+)", save, re.M)
    assert any(chain.startswith("NM-MIRO-") for chain in chains), save
    assert any(chain.startswith("NM-MIRI-") for chain in chains), save
    assert f"-j TEE --gateway {COLLECTOR_ADDRESS}" in save


def test_each_request_is_cloned_once_to_the_collector_and_served_once(container):
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
        # The clones are addressed to the web server, not to the collector, which does not
        # forward: routing drops them.
        assert ip_after["InAddrErrors"] - ip_before["InAddrErrors"] >= REQUESTS
    finally:
        collector.run(f"iptables -t raw -D {rule}")

    log = subprocess.run(["podman", "logs", WEB], capture_output=True, text=True, check=True)
    access_log = log.stdout + log.stderr
    assert [access_log.count(f"probe={token}-{i} ") for i in range(1, REQUESTS + 1)] == [1] * REQUESTS


def test_sender_refuses_a_collector_that_forwards(container, molecule_inventory, converge):
    sender, collector = container(SENDER), container(COLLECTOR)
    rules_before = sender.check_output(MANGLE_RULES)
    collector.check_output("sysctl -qw net.ipv4.ip_forward=1")
    try:
        # Without the collectors' play nobody reports the setting: the sender reads it on the collector.
        result = converge(molecule_inventory, "--limit", "senders")
    finally:
        collector.check_output("sysctl -qw net.ipv4.ip_forward=0")
    assert result.returncode != 0
    assert f"collector {COLLECTOR} forwards (net.ipv4.ip_forward is 1) and would pass every" in result.output
    assert sender.check_output(MANGLE_RULES) == rules_before


def test_sender_refuses_a_collector_behind_a_router(container, inventory_copy, edit_yaml, converge):
    sender = container(SENDER)
    routed_address = "198.19.43.12"
    edit_yaml(inventory_copy / "host_vars" / COLLECTOR,
              lambda host: host.update(netmagic_test_address=routed_address))
    rules_before = sender.check_output(MANGLE_RULES)
    # The web container stands in for a router: TEE cannot reach a collector through one.
    sender.check_output(f"ip route add {routed_address}/32 via {WEB_ADDRESS}")
    try:
        result = converge(inventory_copy, "--limit", "senders")
    finally:
        sender.check_output(f"ip route del {routed_address}/32")
    assert result.returncode != 0
    # Refused by netfilter_apply's gateway check, before any change.
    assert f"'{routed_address}' is not on-link: its route goes via {WEB_ADDRESS}" in result.output
    assert '"parameter": "mirrors[0].gateway"' in result.output
    assert sender.check_output(MANGLE_RULES) == rules_before
