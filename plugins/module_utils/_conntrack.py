# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stale UDP flows of balanced services, deleted through the conntrack program (netlink).

The DNAT of a flow is chosen by its first packet, and conntrack keeps it while packets keep
coming. A UDP client that keeps its source port (a resolver, statsd, QUIC) never ends its
flow, so rules alone cannot move it off a removed or drained backend, nor off the VIP itself
when it sent while the service did not exist (kubernetes #59368, #48370). After a change,
every flow of a UDP service whose replies come from anything but a serving backend is
deleted, and its next datagram is balanced afresh.
"""

from __future__ import annotations

import ipaddress
from xml.etree import ElementTree

from ansible_collections.netmagic.netfilter.plugins.module_utils._model import BALANCER, ValidationError, rebuild

FAMILIES = {4: "ipv4", 6: "ipv6"}
# What conntrack -D says, with exit code 1, when the flow ended between the listing and the deletion.
NOTHING_DELETED = "0 flow entries have been deleted"


def services_to_clear(changes):
    """{(family, vip, port): serving (address, port) set} of the UDP services a change may leave
    flows of; changes: [(the definition recorded before or None, the balancer now or None)] of
    the changed balancers. A service no balancer has any more has no serving backend."""
    services = {}
    for previous, _balancer in changes:
        before = _rebuilt(previous)
        if before is not None and before.protocol == "udp":
            services[(before.family, before.vip, before.port)] = frozenset()
    for _previous, balancer in changes:
        if balancer is not None and balancer.protocol == "udp":
            services[(balancer.family, balancer.vip, balancer.port)] = frozenset((b.address, b.port) for b in balancer.serving)
    return services


def _rebuilt(definition):
    """The recorded UDP balancer, validated again (it comes from a file), or None; a TCP one is not
    built at all."""
    if not isinstance(definition, dict) or definition.get("protocol") != "udp":
        return None
    try:
        return rebuild(BALANCER, definition)
    except (ValidationError, TypeError, AttributeError):
        return None


def service_selection(family, vip, port):
    """conntrack's options that select the flows of one UDP service, by their original destination."""
    return ["-f", FAMILIES[family], "-p", "udp", "--orig-dst", vip, "--orig-port-dst", str(port)]


def reply_sources(listing):
    """{(address, port)} the replies of the flows of `conntrack -L -o xml` come from: a backend,
    or the VIP for a flow that was not translated; addresses as the model writes them."""
    if not listing.strip():
        return set()
    sources = set()
    for flow in ElementTree.fromstring(listing).iter("flow"):
        reply = flow.find("meta[@direction='reply']")
        sources.add((str(ipaddress.ip_address(reply.findtext("layer3/src"))), int(reply.findtext("layer4/sport"))))
    return sources


def _service_text(service):
    family, vip, port = service
    return "%s port %d/udp" % ("[%s]" % vip if family == 6 else vip, port)


def clear_stale_flows(host, services):
    """Deletes each service's flows whose replies do not come from one of its serving backends;
    returns warnings (the rules are applied by then, so a failure here does not fail the run)."""
    if not services:
        return []
    conntrack = host.which("conntrack")
    if not conntrack:
        return ["conntrack not found: UDP flows of %s keep going where they went before this change until their conntrack entries "
                "expire; install the conntrack package to have them balanced afresh" % ", ".join(map(_service_text, sorted(services)))]
    warnings = []
    for service, serving in sorted(services.items()):
        selection = service_selection(*service)
        rc, out, err = host.run([conntrack, "-L"] + selection + ["-o", "xml"])
        if rc != 0:
            warnings.append("conntrack -L failed for %s (rc=%d): %s" % (_service_text(service), rc, err.strip()))
            continue
        try:
            sources = reply_sources(out)
        except (ElementTree.ParseError, ValueError, TypeError, AttributeError) as error:
            warnings.append("conntrack -L gave a listing of %s that cannot be read (%s)" % (_service_text(service), error))
            continue
        for address, port in sorted(sources - serving):
            rc, _out, err = host.run([conntrack, "-D"] + selection + ["--reply-src", address, "--reply-port-src", str(port)])
            if rc != 0 and NOTHING_DELETED not in err:
                warnings.append("conntrack -D failed for the flows of %s from %s (rc=%d): %s" % (_service_text(service), address, rc, err.strip()))
    return warnings
