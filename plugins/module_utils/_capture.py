# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collector's capture: tcpdump's command line from the role's variables, its buffer sized
for the link, and the counts tcpdump reports of what it captured and what the kernel dropped;
and the collector's announcements, which keep its MAC known to the segment's switches.

Only canonical values reach the command line: names that fully match their pattern, ints, and
the filter, which is free text without control characters (quoted by the unit's template)."""

from __future__ import annotations

import math
import re

from ansible_collections.netmagic.netfilter.plugins.module_utils._model import ValidationError, unicast_address, family_of

INTERFACE = re.compile(r"[A-Za-z0-9_.:@-]{1,15}")
DIRECTORY = re.compile(r"/[A-Za-z0-9_./-]+")
USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The buffer holds this long at line rate: long enough to ride out a stalled disk write or a
# descheduled tcpdump. tcpdump's own default (2 MiB) holds 1.7 ms at 10 Gbit/s.
BUFFER_SECONDS = 0.25
MIN_BUFFER_MIB, MAX_BUFFER_MIB = 32, 4096
# A link whose speed the kernel does not report (virtual, or down) counts as 10 Gbit/s.
UNKNOWN_SPEED_MBITS = 10000
# One report of tcpdump's counts: on one line after SIGUSR1, a line each at exit; the interface's
# drops only where libpcap has them.
REPORT = re.compile(r"(\d+) packets? captured[,\s]+(\d+) packets? received by filter[,\s]+(\d+) packets? dropped by kernel"
                    r"(?:[,\s]+(\d+) packets? dropped by interface)?")


def _matching(variable, value, pattern, what):
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValidationError(variable, value, "is not %s" % what)
    return value


def _at_least_one(variable, value):
    if isinstance(value, bool) or not (isinstance(value, int) or isinstance(value, str) and value.isascii() and value.isdigit()):
        raise ValidationError(variable, value, "is not a whole number")
    if int(value) < 1:
        raise ValidationError(variable, value, "is below 1")
    return int(value)


def link_speeds(interface, facts):
    """The speeds in Mbit/s of the links tcpdump listens on, from the host's network facts: the
    one interface, or every interface that reports one for `any` (loopback and most virtual
    links do not)."""
    names = (facts or {}).get("interfaces", []) if interface == "any" else [interface]
    speeds = [((facts or {}).get(name.replace("-", "_").replace(".", "_")) or {}).get("speed") for name in names]
    return [speed for speed in speeds if isinstance(speed, int) and speed > 0] or [UNKNOWN_SPEED_MBITS]


def buffer_mib(speeds):
    """BUFFER_SECONDS of the fastest link's line rate, in MiB, within the bounds."""
    needed = max(speeds) * 1e6 / 8 * BUFFER_SECONDS / 2**20
    return min(MAX_BUFFER_MIB, max(MIN_BUFFER_MIB, math.ceil(needed)))


def capture_argv(settings, facts=None):
    """tcpdump's arguments (without the program) from the role's capture settings, each checked;
    ValidationError names the variable of the first one that cannot be used."""
    prefix = "mirror_collector_capture_"
    interface = _matching(prefix + "interface", settings.get("interface"), INTERFACE, 'an interface name or "any"')
    directory = _matching(prefix + "directory", settings.get("directory"), DIRECTORY, 'an absolute path of letters, digits and "_./-"')
    user = _matching(prefix + "user", settings.get("user"), USER, "a user name")
    file_size = _at_least_one(prefix + "file_size_mb", settings.get("file_size_mb"))
    file_count = _at_least_one(prefix + "file_count", settings.get("file_count"))
    buffer = settings.get("buffer_mb", "auto")
    buffer = buffer_mib(link_speeds(interface, facts)) if buffer == "auto" else _at_least_one(prefix + "buffer_mb", buffer)
    if buffer > MAX_BUFFER_MIB:
        raise ValidationError(prefix + "buffer_mb", settings.get("buffer_mb"), "is above %d" % MAX_BUFFER_MIB)
    bpf = settings.get("filter") or ""
    if not isinstance(bpf, str):
        raise ValidationError(prefix + "filter", bpf, "is not a string")
    if CONTROL.search(bpf):
        raise ValidationError(prefix + "filter", bpf, "holds a control character (newline, tab, ...), which would break the capture unit")
    # -U: each packet written as it arrives, so the files can be read while tcpdump runs.
    # --immediate-mode: the kernel hands packets over at once, not a block a second; without it
    # the last block received before a stop was never written (298 of 100,306 packets in the
    # lab). With the buffer sized for the link it drops nothing more.
    argv = ["-n", "-U", "--immediate-mode", "-i", interface, "-s", "0", "-B", str(buffer * 1024), "-Z", user,
            "-C", str(file_size), "-W", str(file_count), "-w", directory.rstrip("/") + "/mirror.pcap"]
    return argv + ([bpf] if bpf else [])


def capture_statistics(text):
    """The counts of tcpdump's last report in its log text, and how many reports the text holds
    (each SIGUSR1 and the exit add one); {"reports": 0} when it holds none."""
    reports = list(REPORT.finditer(text))
    if not reports:
        return {"reports": 0}
    captured, received, kernel, interface = reports[-1].groups()
    return {"reports": len(reports), "captured": int(captured), "received_by_filter": int(received),
            "dropped_by_kernel": int(kernel), "dropped_by_interface": int(interface or 0)}


def _fact_key(device):
    """The key of a device's facts: Ansible writes '-', '.' and ':' in names as '_'."""
    return re.sub(r"[-.:]", "_", device)


def announcement_arguments(facts):
    """arping's arguments for each IPv4 address of each of the collector's active links, loopback
    and tunnel devices (nmvx, which send nothing) aside: one unsolicited ARP each (-U), a
    broadcast from the collector's MAC that every switch of the segment learns.

    A collector never transmits, so without it a switch forgets the collector's MAC after its
    ageing time (300 s by default) and floods every clone to every port."""
    found = []
    for device in (facts or {}).get("interfaces", []):
        link = (facts or {}).get(_fact_key(device)) or {}
        if link.get("type") == "loopback" or device.startswith("nmvx") or link.get("active") is False:
            continue
        name = _matching("ansible_facts.interfaces", device, INTERFACE, "an interface name")
        addresses = [link.get("ipv4") or {}] + list(link.get("ipv4_secondaries") or [])
        for entry in addresses:
            if entry.get("address"):
                address = unicast_address("ansible_facts.%s.ipv4" % _fact_key(device), entry["address"])
                if family_of(address) == 4:
                    found.append(["-U", "-c", "1", "-I", name, address])
    return found
