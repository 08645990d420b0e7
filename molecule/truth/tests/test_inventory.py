"""After the inventory changed (side_effect), exactly what it says remains: counted with real
connections through the VIP and real clones at the collector; converging again changes nothing."""

import os
import re
import shutil
import subprocess
from pathlib import Path

VIP = "198.19.42.160"
BACKEND1 = "198.18.42.71"
SENDERS = {"nm-inv-sender1": "198.18.42.63", "nm-inv-sender2": "198.18.42.64"}
COUNTER = "nm-test-clones-from"


def answers(client, port, count):
    out = client.check_output(f"for i in $(seq {count}); do curl -s -m 2 http://{VIP}:{port}/ || echo refused; done")
    return sorted(out.split())


def test_the_balancer_holds_exactly_the_inventory_s_services(container):
    nat = container("nm-inv-lb").check_output("iptables-nft-save -t nat")
    assert sorted(set(re.findall(r'"netmagic:balancer:([^"]+)"', nat))) == ["www"], nat


def test_connections_spread_over_the_new_backends_and_the_removed_service_is_gone(container):
    client = container("nm-inv-client")
    assert answers(client, 80, 9) == ["nm-inv-backend1"] * 3 + ["nm-inv-backend2"] * 3 + ["nm-inv-backend3"] * 3
    assert answers(client, 8080, 3) == ["refused"] * 3


def test_only_the_sender_still_in_its_group_mirrors(container):
    collector = container("nm-inv-collector")
    for sender, address in SENDERS.items():
        collector.check_output(f"iptables -t raw -I PREROUTING -s {address} -d {BACKEND1} -p tcp --dport 80 "
                               f"--tcp-flags SYN,ACK SYN -m comment --comment {COUNTER}-{sender}")
    for sender in SENDERS:
        container(sender).check_output(f"for i in 1 2 3 4 5; do curl -s -o /dev/null -m 2 http://{BACKEND1}/; done")
    save = collector.check_output("iptables-save -c -t raw")
    clones = {sender: int(re.search(rf"^\[(\d+):\d+\] .*{COUNTER}-{sender}", save, re.M).group(1)) for sender in SENDERS}
    assert clones == {"nm-inv-sender1": 5, "nm-inv-sender2": 0}, save
    assert "NM-" not in container("nm-inv-sender2").check_output("iptables-nft-save -t mangle")


def test_converging_the_changed_inventory_again_changes_nothing():
    playbook = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "side_effect.yml"
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    completed = subprocess.run([shutil.which("ansible-playbook"), "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(playbook)],
                               capture_output=True, text=True, timeout=600, check=False, env=env)
    recap = dict(re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", completed.stdout, re.M))
    assert completed.returncode == 0 and recap and set(recap.values()) == {"0"}, completed.stdout[-3000:]
