"""The systemd_argument filter, and the mirror_collector capture unit it quotes with the
arguments capture_command checked."""

from pathlib import Path

import jinja2
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.netmagic.netfilter.plugins.filter.announcement_commands import announcement_commands
from ansible_collections.netmagic.netfilter.plugins.filter.capture_command import capture_command
from ansible_collections.netmagic.netfilter.plugins.filter.systemd_argument import FilterModule, systemd_argument

TEMPLATE = Path(__file__).resolve().parents[4] / "roles" / "mirror_collector" / "templates" / "netmagic-mirror-capture.service.j2"
# The role's defaults, as tasks/main.yml hands them to capture_command.
ROLE_DEFAULTS = {"interface": "any", "filter": "", "directory": "/var/lib/netmagic/mirror-capture", "file_size_mb": 100,
                 "file_count": 10, "user": "tcpdump", "buffer_mb": "auto"}
# A host whose one link reports 1 Gbit/s: auto gives the 32 MiB floor.
FACTS = {"interfaces": ["lo", "eth0"], "eth0": {"speed": 1000}, "lo": {}}


def systemd_words(line):
    """The argv systemd makes of an ExecStart value: "%%" and "$$" first, then words split on
    spaces, double-quoted ones unquoted with their backslash escapes (systemd.syntax(7))."""
    assert "%" not in line.replace("%%", "") and "$" not in line.replace("$$", ""), line
    line = line.replace("%%", "%").replace("$$", "$")
    words, position = [], 0
    while position < len(line):
        word = []
        if line[position] == '"':
            position += 1
            while line[position] != '"':
                if line[position] == "\\":
                    assert line[position + 1] in '\\"', line
                    position += 1
                word.append(line[position])
                position += 1
            position += 1
        else:
            while position < len(line) and line[position] != " ":
                assert line[position] not in '"\\', line
                word.append(line[position])
                position += 1
        words.append("".join(word))
        assert position == len(line) or line[position] == " ", (line, position)
        position += 1
    return words


QUOTED = [
    ("any", '"any"'),
    ("tcp port 80 and host 198.18.0.3", '"tcp port 80 and host 198.18.0.3"'),
    ('ether[0] & 1 != 0 and "x"', '"ether[0] & 1 != 0 and \\"x\\""'),
    ("a\\b", '"a\\\\b"'),
    ("50% of $HOME ${X}", '"50%% of $$HOME $${X}"'),
    ("", '""'),
    (100, '"100"'),
]


@pytest.mark.parametrize("value, quoted", QUOTED, ids=[repr(case[0]) for case in QUOTED])
def test_a_value_becomes_one_argument_systemd_reads_back(value, quoted):
    assert systemd_argument(value, "v") == quoted
    assert systemd_words(quoted) == [str(value)]


CONTROL = ["tcp\nExecStartPre=/bin/sh -c id", "eth0\n", "tcp\r", "a\tb", "a\x00", "a\x1b[31m", "a\x7f", "a\x85"]


@pytest.mark.parametrize("value", CONTROL, ids=[repr(value) for value in CONTROL])
def test_a_control_character_fails_naming_the_variable(value):
    with pytest.raises(AnsibleFilterError, match=r"^mirror_collector_capture_filter: .* holds the control character"):
        systemd_argument(value, "mirror_collector_capture_filter")


@pytest.mark.parametrize("value", [None, True, ["eth0"], {"a": 1}, 1.5])
def test_a_value_that_is_not_a_string_fails(value):
    with pytest.raises(AnsibleFilterError, match=r"^v: .* is not a string"):
        systemd_argument(value, "v")


def test_a_pattern_must_match_the_whole_value():
    pattern = "[A-Za-z0-9_.:@-]{1,15}"
    assert systemd_argument("eth0.100", "i", pattern) == '"eth0.100"'
    for value in ("eth0 x", "eth0;", "x" * 16, "eth0$"):
        with pytest.raises(AnsibleFilterError, match=r"^i: .* does not match"):
            systemd_argument(value, "i", pattern)


def test_the_plugin_exports_the_filter():
    assert FilterModule().filters() == {"systemd_argument": systemd_argument}


def render(**changes):
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    environment.filters["netmagic.netfilter.systemd_argument"] = systemd_argument
    arguments = capture_command(dict(ROLE_DEFAULTS, **changes), FACTS)
    return environment.from_string(TEMPLATE.read_text()).render(ansible_managed="Ansible managed", mirror_collector_capture_arguments=arguments)


def exec_start(unit):
    (line,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    return systemd_words(line[len("ExecStart="):])


def test_the_capture_unit_runs_tcpdump_with_each_value_as_one_argument():
    bpf = 'tcp port 80 and not host 198.18.0.3 and ether[0] & 1 = 0 or "x" $HOME 5%'
    unit = render(filter=bpf, interface="eth0.100")  # no speed in the facts: 10 Gbit/s, 299 MiB
    assert exec_start(unit) == ["tcpdump", "-n", "-U", "--immediate-mode", "-i", "eth0.100", "-s", "0", "-B", str(299 * 1024), "-Z", "tcpdump",
                                "-C", "100", "-W", "10", "-w", "/var/lib/netmagic/mirror-capture/mirror.pcap", bpf]
    assert exec_start(render())[-1] == "/var/lib/netmagic/mirror-capture/mirror.pcap"  # no filter, no argument


def test_the_capture_unit_stops_tcpdump_so_that_it_writes_and_reports_all_it_holds():
    unit = render()
    assert "\nKillSignal=SIGINT\n" in unit
    assert "\nExecReload=/bin/kill -USR1 $MAINPID\n" in unit


@pytest.mark.parametrize("variable", ["filter", "interface", "user", "directory"])
def test_the_capture_unit_is_not_rendered_with_a_newline(variable):
    with pytest.raises(AnsibleFilterError, match=r"^mirror_collector_capture_%s: " % variable):
        render(**{variable: "x\nExecStartPre=/bin/sh -c id"})


def render_announcements(facts, interval=60):
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True)
    environment.filters["netmagic.netfilter.systemd_argument"] = systemd_argument
    templates = TEMPLATE.parent
    values = dict(ansible_managed="Ansible managed", mirror_collector_announcements=announcement_commands(facts),
                  mirror_collector_announce_interval_s=interval)
    return [environment.from_string((templates / name).read_text()).render(**values)
            for name in ("netmagic-mirror-announce.service.j2", "netmagic-mirror-announce.timer.j2")]


def test_the_announcement_unit_sends_one_arp_from_each_address_every_interval():
    facts = {"interfaces": ["lo", "eth0"], "lo": {"type": "loopback", "ipv4": {"address": "127.0.0.1"}},
             "eth0": {"ipv4": {"address": "198.18.0.12"}, "ipv4_secondaries": [{"address": "198.18.1.12"}]}}
    service, timer = render_announcements(facts, interval=45)
    commands = [systemd_words(line[len("ExecStart="):]) for line in service.splitlines() if line.startswith("ExecStart=")]
    assert commands == [["arping", "-U", "-c", "1", "-I", "eth0", "198.18.0.12"], ["arping", "-U", "-c", "1", "-I", "eth0", "198.18.1.12"]]
    assert "\nType=oneshot\n" in service
    assert "\nOnUnitActiveSec=45s\n" in timer and "\nWantedBy=timers.target\n" in timer


def test_the_announcement_unit_is_not_rendered_from_a_device_name_with_a_newline():
    with pytest.raises(AnsibleFilterError, match=r"^ansible_facts.interfaces: "):
        render_announcements({"interfaces": ["eth0\nExecStart=/bin/sh"], "eth0\nExecStart=/bin/sh": {"ipv4": {"address": "198.18.0.12"}}})
