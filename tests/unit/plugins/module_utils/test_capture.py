"""The collector's capture: tcpdump's arguments from the role's settings, the buffer for the
link, and the counts of tcpdump's reports as this machine's tcpdump 4.99 prints them."""

import pytest

from ansible_collections.netmagic.netfilter.plugins.module_utils._capture import (
    announcement_arguments,
    buffer_mib,
    capture_argv,
    capture_statistics,
    link_speeds,
)
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import ValidationError

SETTINGS = {"interface": "eth1", "filter": "tcp port 80", "directory": "/srv/capture/", "file_size_mb": 100, "file_count": 10,
            "user": "tcpdump", "buffer_mb": 64}

ARGUMENTS = [
    # (changed settings, facts, tcpdump's arguments)
    ({}, None, ["-n", "-U", "--immediate-mode", "-i", "eth1", "-s", "0", "-B", "65536", "-Z", "tcpdump", "-C", "100", "-W", "10",
                "-w", "/srv/capture/mirror.pcap", "tcp port 80"]),
    ({"filter": "", "file_size_mb": "5", "file_count": "3"}, None,
     ["-n", "-U", "--immediate-mode", "-i", "eth1", "-s", "0", "-B", "65536", "-Z", "tcpdump", "-C", "5", "-W", "3", "-w", "/srv/capture/mirror.pcap"]),
    ({"buffer_mb": "auto"}, {"eth1": {"speed": 25000}}, ["-B", str(746 * 1024)]),
]


@pytest.mark.parametrize("changes, facts, expected", ARGUMENTS)
def test_the_arguments_hold_each_checked_value(changes, facts, expected):
    argv = capture_argv(dict(SETTINGS, **changes), facts)
    if len(expected) == 2:
        assert argv[argv.index("-B"):argv.index("-B") + 2] == expected
    else:
        assert argv == expected


BAD = [
    ({"interface": "eth0 -w /etc/x"}, "mirror_collector_capture_interface", "is not an interface name"),
    ({"interface": "eth0\n"}, "mirror_collector_capture_interface", "is not an interface name"),
    ({"interface": None}, "mirror_collector_capture_interface", "is not an interface name"),
    ({"directory": "relative/dir"}, "mirror_collector_capture_directory", "is not an absolute path"),
    ({"user": "Root"}, "mirror_collector_capture_user", "is not a user name"),
    ({"file_size_mb": 0}, "mirror_collector_capture_file_size_mb", "is below 1"),
    ({"file_count": True}, "mirror_collector_capture_file_count", "is not a whole number"),
    ({"file_count": "٣"}, "mirror_collector_capture_file_count", "is not a whole number"),
    ({"buffer_mb": "big"}, "mirror_collector_capture_buffer_mb", "is not a whole number"),
    ({"buffer_mb": 4097}, "mirror_collector_capture_buffer_mb", "is above 4096"),
    ({"filter": "tcp\tport 80"}, "mirror_collector_capture_filter", "holds a control character"),
    ({"filter": ["tcp"]}, "mirror_collector_capture_filter", "is not a string"),
]


@pytest.mark.parametrize("changes, variable, reason", BAD, ids=[repr(case[0]) for case in BAD])
def test_a_bad_setting_is_refused_naming_its_variable(changes, variable, reason):
    with pytest.raises(ValidationError) as refused:
        capture_argv(dict(SETTINGS, **changes))
    assert refused.value.parameter == variable
    assert refused.value.reason.startswith(reason)


SPEEDS = [
    # (interface, facts, speeds in Mbit/s)
    ("eth1", {"eth1": {"speed": 1000}}, [1000]),
    ("br-lan", {"br_lan": {"speed": 2500}}, [2500]),
    ("eth1", {"eth1": {"speed": -1}}, [10000]),  # down, or virtual
    ("eth1", None, [10000]),
    ("any", {"interfaces": ["lo", "eth0", "eth1"], "lo": {}, "eth0": {"speed": 1000}, "eth1": {"speed": 25000}}, [1000, 25000]),
    ("any", {"interfaces": ["lo"], "lo": {}}, [10000]),
]


@pytest.mark.parametrize("interface, facts, speeds", SPEEDS)
def test_the_links_speeds_come_from_the_facts(interface, facts, speeds):
    assert link_speeds(interface, facts) == speeds


@pytest.mark.parametrize("speeds, mib", [([100], 32), ([1000], 32), ([10000], 299), ([1000, 40000], 1193), ([400000], 4096)])
def test_the_buffer_holds_a_quarter_second_of_the_fastest_link(speeds, mib):
    assert buffer_mib(speeds) == mib


REPORTS = [
    # tcpdump's standard error, as it prints it on SIGUSR1 and at exit.
    ("tcpdump: listening on lo, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n", {"reports": 0}),
    ("tcpdump: listening on any, link-type LINUX_SLL2 (Linux cooked v2), snapshot length 262144 bytes\n"
     "tcpdump: 120 packets captured, 130 packets received by filter, 10 packets dropped by kernel\n"
     "1200 packets captured\n1210 packets received by filter\n11 packets dropped by kernel\n",
     {"reports": 2, "captured": 1200, "received_by_filter": 1210, "dropped_by_kernel": 11, "dropped_by_interface": 0}),
    ("tcpdump: 1 packet captured, 1 packet received by filter, 0 packets dropped by kernel, 3 packets dropped by interface\n",
     {"reports": 1, "captured": 1, "received_by_filter": 1, "dropped_by_kernel": 0, "dropped_by_interface": 3}),
]


@pytest.mark.parametrize("text, counts", REPORTS)
def test_the_counts_are_those_of_the_last_report(text, counts):
    assert capture_statistics(text) == counts


FACTS = {
    "interfaces": ["lo", "eth0", "bond-0.10", "nmvx4242", "eth9"],
    "lo": {"device": "lo", "type": "loopback", "active": True, "ipv4": {"address": "127.0.0.1"}},
    "eth0": {"device": "eth0", "type": "ether", "active": True, "ipv4": {"address": "198.18.0.12"},
             "ipv4_secondaries": [{"address": "198.18.1.12"}], "ipv6": [{"address": "2001:2::12"}]},
    "bond_0_10": {"device": "bond-0.10", "type": "ether", "active": True, "ipv4": {"address": "198.18.2.12"}},
    "nmvx4242": {"device": "nmvx4242", "type": "ether", "active": True, "ipv4": {"address": "198.18.250.1"}},
    "eth9": {"device": "eth9", "type": "ether", "active": False, "ipv4": {"address": "198.18.3.12"}},
}


@pytest.mark.parametrize("facts, expected", [
    (FACTS, [["-U", "-c", "1", "-I", "eth0", "198.18.0.12"], ["-U", "-c", "1", "-I", "eth0", "198.18.1.12"],
             ["-U", "-c", "1", "-I", "bond-0.10", "198.18.2.12"]]),
    ({"interfaces": ["eth0"], "eth0": {"device": "eth0", "ipv6": [{"address": "2001:2::12"}]}}, []),
    ({}, []),
])
def test_a_collector_announces_each_ipv4_address_of_each_active_link_but_loopback_and_tunnels(facts, expected):
    assert announcement_arguments(facts) == expected


@pytest.mark.parametrize("facts, variable", [
    ({"interfaces": ["eth0;x"], "eth0;x": {"ipv4": {"address": "198.18.0.12"}}}, "ansible_facts.interfaces"),
    ({"interfaces": ["eth0"], "eth0": {"ipv4": {"address": "198.18.0.12\n"}}}, "ansible_facts.eth0.ipv4"),
])
def test_a_fact_that_cannot_reach_a_unit_is_refused_naming_it(facts, variable):
    with pytest.raises(ValidationError) as error:
        announcement_arguments(facts)
    assert error.value.parameter == variable
