# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of the host before any rule changes: set-ups that would apply but not work."""

from __future__ import annotations

import re

from ansible_collections.netmagic.netfilter.plugins.module_utils._host import EngineError
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import ValidationError

FORCE_HINT = "; set force: true to apply anyway"


def _ip(host):
    path = host.which("ip")
    if not path:
        raise EngineError("the gateway check needs the 'ip' command (iproute2)" + FORCE_HINT)
    return path


def is_local(ip_route_get_output):
    """Whether `ip route get` answered with a local route: the address is this host's own
    ('local 198.18.0.11 dev lo src 198.18.0.11 uid 0'), through any interface."""
    return ip_route_get_output.startswith("local ")


def next_hop(ip_route_get_output):
    """The gateway of a route from `ip route get`, or None when the address is on-link."""
    match = re.search(r"\bvia (?:inet6 )?([0-9a-fA-F.:]+)", ip_route_get_output)
    return match.group(1) if match else None


def link_flags(ip_link_output):
    """The flags of a link from `ip -o link show dev IF` ('5: nmvx42: <BROADCAST,UP,LOWER_UP> ...')."""
    match = re.search(r"<([A-Z0-9_,-]*)>", ip_link_output)
    return set(match.group(1).split(",")) if match else set()


def _check_interface(host, ip, interface):
    """A tunnel's device must exist and be up: TEE through a missing or down device sends nothing."""
    rc, out, err = host.read([ip, "-o", "link", "show", "dev", interface])
    if rc != 0:
        raise ValidationError("gateway_interface", interface, "is not an interface of this host (%s)%s" % (err.strip(), FORCE_HINT))
    flags = link_flags(out)
    if not {"UP", "LOWER_UP"} <= flags:
        raise ValidationError("gateway_interface", interface, "is down (flags %s): no clone would leave it%s" % (",".join(sorted(flags)), FORCE_HINT))


def check_gateway(host, mirror):
    """TEE needs a collector that is another host on this host's L2 segment: the gateway, or each
    collector of a pool; through gateway_interface, when given, which must be up."""
    ip = _ip(host)
    if mirror.gateway_interface:
        _check_interface(host, ip, mirror.gateway_interface)
    through = ["oif", mirror.gateway_interface] if mirror.gateway_interface else []
    for index, collector in enumerate(mirror.collectors):
        parameter = "gateways[%d]" % index if mirror.pool else "gateway"
        rc, out, err = host.read([ip, "route", "get", collector] + through)
        if rc != 0:
            raise ValidationError(parameter, collector, "has no route from this host (%s)%s" % (err.strip(), FORCE_HINT))
        if is_local(out):
            raise ValidationError(parameter, collector, "is an address of this host: the clones would never leave it" + FORCE_HINT)
        via = next_hop(out)
        if via:
            raise ValidationError(parameter, collector, "is not on-link: its route goes via %s, and TEE needs the collector "
                                                        "on this host's L2 segment%s" % (via, FORCE_HINT))
