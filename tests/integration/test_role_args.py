"""Bad role variables stop the play before anything changes, with a message naming the variable.

Each case runs one of the collection's playbooks in check mode with the bad variables as extra
vars, from inside a network namespace of its own (so that not even a regression could touch
this machine's rules), and reads from the json callback which tasks ran. The control cases,
with good variables, show that the rule-changing tasks are reached otherwise, so that their
absence in the bad cases means something.
"""

import collections
import json
import os
import subprocess
import sys

import pytest

from tests.integration.netfilter import REPO, collections_path

ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
# Tasks that change rules or settings; none of them may run when a variable is bad.
CHANGING_ACTIONS = {"netmagic.netfilter.netfilter_apply", "ansible.posix.sysctl"}
# The namespace's own link: the collector is on-link there, and not this host itself.
SUBNET_HOST, COLLECTOR = "198.18.99.1", "198.18.99.2"
SUBNET_HOST_V6, COLLECTOR_V6 = "2001:2:0:99::1", "2001:2:0:99::2"
VIP, VIP_V6 = "198.18.99.100", "2001:2:0:99::100"
BACKENDS = {"backend%d" % i: "198.18.99.%d" % (10 + i) for i in (1, 2, 3)}

GOOD_MIRROR = {"mirror_sender_mirrors": [{"name": "http", "ports": ["80"]}]}
GOOD_SERVICE = {"name": "web", "vip": VIP, "port": 80, "backends_from": {"port_var": "backend_port"}}


def services(**changes):
    return {"load_balancer_services": [dict(GOOD_SERVICE, **changes)]}


def capture(**changes):
    """The good mirror with the collector recording, and changed capture variables."""
    return dict(GOOD_MIRROR, mirror_collector_capture_enabled=True, **changes)


# mirror.yml prepares the collectors before it reads the senders' variables: a bad sender
# variable must stop the play before any change on the sender.
BAD = [
    # (playbook, extra vars, text the failure must contain, hosts nothing may change on)
    ("mirror.yml", dict(GOOD_MIRROR, netmagic_collectors_group="no_such_group"),
     'mirror_sender_collector_group: the inventory has no host in group "no_such_group"', ["sender"]),
    ("mirror.yml", {"mirror_sender_mirrors": [{"name": "http", "gateway": "not-an-address"}]},
     "mirror_sender_mirrors[0] (http).gateway: 'not-an-address' is not an IPv4 or IPv6 address", ["sender"]),
    ("mirror.yml", dict(GOOD_MIRROR, mirror_sender_collector_address_var="inventory_hostname"),
     'mirror_sender_collector_address_var: inventory_hostname of collector collector is "collector", not an IP address',
     ["sender"]),
    ("mirror.yml", {"mirror_sender_mirrors": [{"name": "http", "ports": ["80"], "peer": "198.18.99.0/99"}]},
     "mirror_sender_mirrors[0] (http).peer: '198.18.99.0/99' is not an IP address or CIDR network", ["sender"]),
    ("mirror.yml", {"mirror_sender_mirrors": [{"name": "http", "protocol": "sctp"}]},
     "found in mirror_sender_mirrors", ["sender"]),
    ("mirror.yml", dict(GOOD_MIRROR, mirror_collector_capture_enabled=True, mirror_collector_capture_file_count=0),
     "mirror_collector_capture_file_count: 0 is below 1", ["collector", "sender"]),
    # Values that reach the capture unit's ExecStart line: none may end the line or start another.
    ("mirror.yml", capture(mirror_collector_capture_filter="tcp port 80\nExecStartPre=/bin/sh -c id"),
     "mirror_collector_capture_filter: 'tcp port 80\\nExecStartPre=/bin/sh -c id' holds a control character", ["collector", "sender"]),
    ("mirror.yml", capture(mirror_collector_capture_filter="tcp\rport 80"),
     "mirror_collector_capture_filter: 'tcp\\rport 80' holds a control character", ["collector", "sender"]),
    ("mirror.yml", capture(mirror_collector_capture_interface="eth0\n"),
     "mirror_collector_capture_interface: 'eth0\\n' is not an interface name", ["collector", "sender"]),
    ("mirror.yml", capture(mirror_collector_capture_interface="eth0 -w /etc/x"),
     "mirror_collector_capture_interface: 'eth0 -w /etc/x' is not an interface name", ["collector", "sender"]),
    ("mirror.yml", capture(mirror_collector_capture_user="tcpdump\n"),
     "mirror_collector_capture_user: 'tcpdump\\n' is not a user name", ["collector", "sender"]),
    ("mirror.yml", capture(mirror_collector_capture_user="u" * 33),
     "mirror_collector_capture_user: '%s' is not a user name" % ("u" * 33), ["collector", "sender"]),
    ("mirror.yml", capture(mirror_collector_capture_directory="/var/lib/capture\n"),
     "mirror_collector_capture_directory: '/var/lib/capture\\n' is not an absolute path", ["collector", "sender"]),
    ("mirror.yml", capture(mirror_collector_capture_buffer_mb="lots"),
     "mirror_collector_capture_buffer_mb: 'lots' is not a whole number", ["collector", "sender"]),
    ("mirror.yml", capture(mirror_collector_capture_buffer_mb=5000),
     "mirror_collector_capture_buffer_mb: 5000 is above 4096", ["collector", "sender"]),
    ("mirror.yml", capture(mirror_collector_capture_directory="/var/lib/a b"),
     "mirror_collector_capture_directory: '/var/lib/a b' is not an absolute path", ["collector", "sender"]),
    ("balance.yml", {"load_balancer_services": [{"name": "web", "vip": VIP, "port": 80}]},
     "state is present but any of the following are missing: backends, backends_from found in load_balancer_services",
     ["balancer"]),
    ("balance.yml", {"load_balancer_services": [{"name": "web", "vip": VIP, "port": 80, "backends": []}]},
     "load_balancer_services[0] (web).backends: [] must list at least one backend", ["balancer"]),
    ("balance.yml", {"load_balancer_services": [{"name": "web", "vip": VIP, "port": 80, "backends": ["198.18.99.11", "backend-two"]}]},
     "load_balancer_services[0] (web).backends[1]: 'backend-two' is not an IPv4 or IPv6 address", ["balancer"]),
    ("balance.yml", services(vip="vip-address"),
     "load_balancer_services[0] (web).vip: 'vip-address' is not an IPv4 or IPv6 address", ["balancer"]),
    ("balance.yml", services(backends_from={"group": "no_such_group"}),
     'load_balancer_services[0] (web).backends_from.group: the inventory has no host in group "no_such_group"',
     ["balancer"]),
    ("balance.yml", services(backends_from={"address_var": "no_such_var"}),
     "load_balancer_services[0] (web).backends_from[0] (host backend1).address: None is required",
     ["balancer"]),
    ("balance.yml", dict(services(), load_balancer_health_timeout="soon"),
     "load_balancer_health_timeout", ["balancer"]),
    ("balance.yml", services(vip=VIP_V6),
     "load_balancer_services[0] (web).backends_from[0] (host backend1): '198.18.99.11' is IPv4 but vip is IPv6", ["balancer"]),
    ("balance.yml", {"load_balancer_services": [{"name": "web", "vip": VIP_V6, "port": 80, "backends": ["[2001:2:0:99::11]8080"]}]},
     "load_balancer_services[0] (web).backends[0]: '[2001:2:0:99::11]8080' is not an IPv4 or IPv6 address", ["balancer"]),
]

GOOD = [
    # (playbook, extra vars, host, changing actions that must run on it)
    ("mirror.yml", GOOD_MIRROR, "collector", {"ansible.posix.sysctl"}),
    ("mirror.yml", GOOD_MIRROR, "sender", {"netmagic.netfilter.netfilter_apply"}),
    # A BPF filter is free text: quotes, "$" and "%" pass (the unit quotes them).
    ("mirror.yml", capture(mirror_collector_capture_filter='tcp port 80 and not host 198.18.99.1 and "$x" 5%',
                           mirror_collector_capture_interface="nm-args1", mirror_collector_capture_user="u" * 32),
     "collector", {"ansible.posix.sysctl"}),
    ("mirror.yml", dict(GOOD_MIRROR, mirror_sender_collector_address_var="address_v6"),
     "sender", {"netmagic.netfilter.netfilter_apply"}),
    ("balance.yml", services(), "balancer", {"netmagic.netfilter.netfilter_apply", "ansible.posix.sysctl"}),
    ("balance.yml", services(vip=VIP_V6, backends_from={"address_var": "address_v6", "port_var": "backend_port"}),
     "balancer", {"netmagic.netfilter.netfilter_apply", "ansible.posix.sysctl"}),
    ("balance.yml", {"load_balancer_services": [{"name": "web", "vip": VIP_V6, "port": 80,
                                                 "backends": ["[2001:2:0:99::11]:8080", "2001:2:0:99::12"]}]},
     "balancer", {"netmagic.netfilter.netfilter_apply", "ansible.posix.sysctl"}),
]


@pytest.fixture
def lab(netns, tmp_path):
    """The namespace with a link on which the collector and the backends are on-link, and an
    inventory whose hosts all run in that namespace through the local connection."""
    for argv in (["ip", "link", "add", "nm-args0", "type", "veth", "peer", "name", "nm-args1"],
                 ["ip", "addr", "add", SUBNET_HOST + "/24", "dev", "nm-args0"],
                 ["ip", "addr", "add", SUBNET_HOST_V6 + "/64", "dev", "nm-args0", "nodad"],
                 ["ip", "link", "set", "nm-args0", "up"],
                 ["ip", "link", "set", "nm-args1", "up"]):
        subprocess.run(["ip", "netns", "exec", netns] + argv, check=True)
    inventory = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        "children": {
            "collectors": {"hosts": {"collector": {"ansible_host": COLLECTOR, "address_v6": COLLECTOR_V6}}},
            "senders": {"hosts": {"sender": {"ansible_host": SUBNET_HOST}}},
            "balancers": {"hosts": {"balancer": {"ansible_host": SUBNET_HOST}}},
            "backends": {"hosts": {name: {"ansible_host": address, "address_v6": "2001:2:0:99::%d" % (10 + index),
                                          "backend_port": 8080}
                                   for index, (name, address) in enumerate(BACKENDS.items(), 1)}},
        },
    }}
    path = tmp_path / "hosts.yml"
    path.write_text(json.dumps(inventory))  # JSON is YAML
    return netns, path


def run_playbook(lab, playbook, extra_vars):
    """Runs playbooks/PLAYBOOK in check mode in the lab; returns (rc, failure messages, the
    actions that ran on each host)."""
    netns, inventory = lab
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(),
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1")
    completed = subprocess.run(
        ["ip", "netns", "exec", netns, ANSIBLE_PLAYBOOK, "--check", "-i", str(inventory),
         "-e", json.dumps(extra_vars), os.path.join(REPO, "playbooks", playbook)],
        capture_output=True, text=True, timeout=300, check=False, env=env)
    try:
        report = json.loads(completed.stdout)
    except ValueError:
        raise AssertionError("no JSON report: %s %s" % (completed.stdout[-2000:], completed.stderr[-2000:])) from None
    failures, ran = [], collections.defaultdict(set)
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                if result.get("failed"):
                    # A loop's own message only says that items failed; theirs say why.
                    failures += [str(item.get("msg")) for item in [result] + result.get("results", [])
                                 if item.get("failed")]
                if not result.get("skipped"):
                    ran[host].add(result.get("action"))
    return completed.returncode, failures, ran


@pytest.mark.parametrize("playbook, extra_vars, message, untouched", BAD, ids=[case[2][:60] for case in BAD])
def test_bad_variable_stops_the_play_before_any_change(lab, playbook, extra_vars, message, untouched):
    returncode, failures, ran = run_playbook(lab, playbook, extra_vars)
    assert returncode != 0
    assert any(message in failure for failure in failures), failures
    for host in untouched:
        assert not ran[host] & CHANGING_ACTIONS, host


GOOD_IDS = ["%s-%s-%d" % (case[0], case[2], index) for index, case in enumerate(GOOD)]


@pytest.mark.parametrize("playbook, extra_vars, host, changing", GOOD, ids=GOOD_IDS)
def test_good_variables_reach_the_changing_tasks(lab, playbook, extra_vars, host, changing):
    returncode, failures, ran = run_playbook(lab, playbook, extra_vars)
    assert returncode == 0, failures
    assert changing <= ran[host]
