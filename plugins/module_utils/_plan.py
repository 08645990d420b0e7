# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the roles do before any change, in Python: inventory definitions turned into the items
of one netfilter_apply call, checked with the model's own validators (so a role and a module
refuse the same input with the same message), and every problem named by the variable it
comes from. Runs on the controller; pure data in, data out (name resolution aside).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import socket
from collections.abc import Mapping

from ansible_collections.netmagic.netfilter.plugins.module_utils._model import (
    BALANCER,
    MIRROR,
    ValidationError,
    bounded,
    build_balancer,
    build_listed,
    build_mirror,
    family_of,
    mirror_collectors,
)
from ansible_collections.netmagic.netfilter.plugins.module_utils._tunnel import MAX_VNI, build_tunnel, device_vni

FORWARDING_KEYS = {4: "net.ipv4.ip_forward", 6: "net.ipv6.conf.all.forwarding"}
BALANCER_ITEM_KEYS = ("name", "state", "vip", "port", "protocol", "backends", "mode", "masquerade", "local_clients", "source_ranges",
                      "affinity", "affinity_timeout")
MIRROR_ITEM_KEYS = ("name", "state", "gateway", "gateways", "protocol", "ports", "service", "direction", "peer", "interface", "force",
                    "sample", "connmark_bit", "max_new_connections", "gateway_interface", "exclude")


class PlanError(ValueError):
    """Every problem found, each naming the variable it comes from."""

    def __init__(self, problems):
        self.problems = problems
        super().__init__("; ".join(problems))


def host_variable(hostvars, path):
    """A host variable, or a dotted path into one (ansible_default_ipv4.address); None where absent."""
    value = hostvars
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def resolve(name, family, resolver=socket.getaddrinfo):
    """An address of the family for an inventory name: the name itself when it is an address, else
    the first address the controller's resolver gives, in sorted order so every run agrees."""
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    try:
        answers = resolver(name, None, socket.AF_INET6 if family == 6 else socket.AF_INET, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    addresses = sorted({answer[4][0] for answer in answers}, key=lambda text: ipaddress.ip_address(text).packed)
    return addresses[0] if addresses else None


def host_address(host, hostvars, address_var, family, resolver=socket.getaddrinfo):
    """A host's address: its address_var when set, else its inventory name, resolved on the controller."""
    value = host_variable(hostvars, address_var)
    if value in (None, ""):
        value = resolve(host, family, resolver)
    return value


def _query(where, expression, data):
    try:
        import jmespath  # needed on the controller for backends_from.query only
    except ImportError:
        raise PlanError(["%s.backends_from.query: needs the jmespath Python library on the controller "
                         "(pip install jmespath)" % where]) from None
    try:
        return jmespath.search(expression, data)
    except jmespath.exceptions.JMESPathError as error:
        raise PlanError(["%s.backends_from.query: %s is not a JMESPath expression (%s)" % (where, _quoted(expression), error)]) from None


def _where(index, service, variable):
    return "%s[%d] (%s)" % (variable, index, service.get("name"))


def _vip_family(service):
    try:
        return family_of(str(ipaddress.ip_address(str(service.get("vip")).strip())))
    except ValueError:
        return 4


def _backends_from(where, source, service, groups, hostvars, default_group, resolver):
    """The backends drawn from an inventory group, or raises PlanError."""
    group = source.get("group") or default_group
    hosts = groups.get(group) or []
    if not hosts:
        raise PlanError(["%s.backends_from.group: the inventory has no host in group %s" % (where, _quoted(group))])
    records = [dict(hostvars.get(host, {}), inventory_hostname=host) for host in hosts]
    if source.get("query"):
        found = _query(where, source["query"], records)
        if not isinstance(found, list):
            raise PlanError(["%s.backends_from.query: gives %s, not a list of backends" % (where, _quoted(found)[:200])])
        return found, "backends_from.query", [None] * len(found)
    family = _vip_family(service)
    backends, hosts_of = [], []
    for host, record in zip(hosts, records):
        backend = {"address": host_address(host, record, source.get("address_var") or "ansible_host", family, resolver)}
        for field in ("port", "weight", "drain"):
            name = source.get(field + "_var")
            value = host_variable(record, name) if name else None
            if value is not None:
                backend[field] = value
        backends.append(backend)
        hosts_of.append(host)
    return backends, "backends_from", hosts_of


def _quoted(value):
    return json.dumps(value, default=str)


def _renamed(error, where, origin, hosts):
    """The model's message, its parameter put in terms of the role variable (and the host it came from)."""
    parameter = error.parameter
    if parameter.startswith("backends[") and origin != "backends":
        index, _bracket, rest = parameter[len("backends["):].partition("]")
        host = hosts[int(index)] if index.isdigit() and int(index) < len(hosts) and hosts[int(index)] else None
        parameter = "%s[%s]%s%s" % (origin, index, " (host %s)" % host if host else "", rest)
    return "%s.%s: %r %s" % (where, parameter, error.value, error.reason)


def _refuse_listed(problems, variable, kind, build, items):
    """Raises PlanError with the problems found so far, or with what the list as a whole breaks
    (a name twice, two balancers on one service), checked as netfilter_apply checks it."""
    if problems:
        raise PlanError(problems)
    try:
        build_listed(variable, kind, build, items)
    except ValidationError as error:
        raise PlanError(["%s: %r %s" % (error.parameter, error.value, error.reason)]) from None


def one_engine(definitions, default, variable):
    """The one engine of a host's definitions: a host writes to one backend, in one netfilter_apply call."""
    engines = sorted({definition.get("engine") or default for definition in definitions} or {default})
    if len(engines) > 1:
        raise PlanError(["%s: the items ask for engines %s; one host uses one engine (set it once, for all of them)"
                         % (variable, ", ".join(engines))])
    return engines[0]


def balancer_plan(services, groups, hostvars, variable="load_balancer_services", default_group="backends",
                  resolver=socket.getaddrinfo, engine="auto"):
    """{"balancers": netfilter_apply items, "forwarding": sysctl keys to turn on, "engine"} for the
    services, or PlanError with every problem."""
    engine = one_engine(services, engine, variable)
    items, problems = [], []
    for index, service in enumerate(services):
        where = _where(index, service, variable)
        item = {key: service[key] for key in BALANCER_ITEM_KEYS if service.get(key) is not None}
        item.setdefault("state", "present")
        if item["state"] == "present":
            origin, hosts = "backends", []
            try:
                if service.get("backends_from") is not None:
                    item["backends"], origin, hosts = _backends_from(where, service["backends_from"], service, groups, hostvars,
                                                                     default_group, resolver)
                balancer = build_balancer(item)
            except PlanError as error:
                problems += error.problems
                continue
            except ValidationError as error:
                problems.append(_renamed(error, where, origin, hosts))
                continue
            item["backends"] = [backend.as_dict() for backend in balancer.backends]
            item.update(vip=balancer.vip, port=balancer.port, protocol=balancer.protocol)
        items.append(item)
    _refuse_listed(problems, variable, BALANCER, build_balancer, items)
    families = sorted({family_of(item["vip"]) for item in items if item["state"] == "present"})
    udp = any(item["state"] == "present" and item["protocol"] == "udp" for item in items)
    return {"balancers": items, "forwarding": [FORWARDING_KEYS[family] for family in families], "engine": engine,
            "tcp_endpoints": tcp_endpoints(items), "conntrack": udp}


def tcp_endpoints(balancers):
    """Each {address, port} of the backends of the present TCP services once, with the names of the
    services it serves: what a health check tries, and what its warning names."""
    endpoints = {}
    for item in balancers:
        if item["state"] == "present" and item["protocol"] == "tcp":
            for backend in item["backends"]:
                endpoints.setdefault((backend["address"], backend["port"]), []).append(item["name"])
    return [{"address": address, "port": port, "services": names} for (address, port), names in sorted(endpoints.items())]


def mirror_plan(mirrors, groups, hostvars, this_host, collector_group="collectors", address_var="ansible_host",
                variable="mirror_sender_mirrors", resolver=socket.getaddrinfo, engine="auto", forwarding_read=()):
    """{"mirrors": netfilter_apply items, "forwarding": [{collector, key, value}], "tunnels":
    vxlan_tunnel definitions, "engine"} for the mirrors: each present mirror gets a collector's
    address as gateway (the first collector's by default), or PlanError with every problem, a
    collector that forwards among them.

    A collector with a tunnel (its mirror_collector_tunnel) is reached through it: the mirror's
    gateway becomes the collector's inner address, its gateway_interface the tunnel's device, and
    the collector's own address joins exclude, so the tunnel's packets are never cloned.

    A value is what the collector published (its mirror_collector_forwarding fact), else what
    forwarding_read (slurp results of /proc/sys on the collector) says, else None: not known yet."""
    engine = one_engine(mirrors, engine, variable)
    present = [mirror for mirror in mirrors if (mirror.get("state") or "present") == "present"]
    collectors, problems = {}, []
    if present:
        collectors, problems = _collectors(groups, hostvars, collector_group, address_var, resolver)
    if problems:
        raise PlanError(problems)
    default_gateway = next(iter(collectors), None)
    items, checks, tunnels = [], [], {}
    for index, mirror in enumerate(mirrors):
        where = _where(index, mirror, variable)
        item = {key: mirror[key] for key in MIRROR_ITEM_KEYS if mirror.get(key) is not None}
        item.setdefault("state", "present")
        if item["state"] == "present":
            if not item.get("gateways"):
                item.setdefault("gateway", default_gateway)
            try:
                addresses = mirror_collectors(item)
                hosts = _mirror_collectors(item, addresses, collectors, collector_group, this_host, where, problems)
                if hosts is None or not _through_tunnel(item, addresses, hosts, hostvars, tunnels, where, problems):
                    continue
                built = build_mirror(item)
            except ValidationError as error:
                problems.append("%s.%s: %r %s" % (where, error.parameter, error.value, error.reason))
                continue
            for host, address in zip(hosts, built.collectors):
                key = FORWARDING_KEYS[built.family]
                value = (hostvars.get(host, {}).get("mirror_collector_forwarding") or {}).get(key)
                if value is None:
                    value = _read_setting(forwarding_read, host, key)
                check = {"collector": host, "gateway": address, "key": key, "value": value}
                if check not in checks:
                    checks.append(check)
            if built.pool:
                item["gateways"] = list(built.pool)
            else:
                item["gateway"] = built.gateway
        items.append(item)
    problems += [_forwarding_on(check) for check in checks if check["value"] not in (None, 0)]
    _refuse_listed(problems, variable, MIRROR, build_mirror, items)
    return {"mirrors": items, "forwarding": checks, "engine": engine,
            "tunnels": [dict(tunnel, peers=list(tunnel["peers"].values())) for _vni, tunnel in sorted(tunnels.items())]}


def _collectors(groups, hostvars, collector_group, address_var, resolver):
    """({address: collector host}, problems) of the collector group."""
    hosts = groups.get(collector_group) or []
    if not hosts:
        raise PlanError(["mirror_sender_collector_group: the inventory has no host in group %s, and present mirrors need "
                         "a collector" % _quoted(collector_group)])
    collectors, problems = {}, []
    for host in hosts:
        address = host_address(host, hostvars.get(host, {}), address_var, 4, resolver)
        try:
            collectors[str(ipaddress.ip_address(str(address)))] = host
        except ValueError:
            problems.append("mirror_sender_collector_address_var: %s of collector %s is %s, not an IP address"
                            % (address_var, host, _quoted(address)))
    return collectors, problems


def _mirror_collectors(item, addresses, collectors, collector_group, this_host, where, problems):
    """The collector hosts of a mirror item (its collectors' addresses validated), in its order;
    None, with the problems, when one is not a collector of the group or is this host."""
    hosts = []
    for number, address in enumerate(addresses):
        parameter = "gateways[%d]" % number if item.get("gateways") else "gateway"
        host = collectors.get(address)
        if host is None:
            problems.append("%s.%s: %s is not the address of a host in group %s (mirror_sender_collector_group), so its "
                            "forwarding cannot be checked" % (where, parameter, address, _quoted(collector_group)))
            return None
        if host == this_host:
            problems.append("%s: the collector %s (%s) is this host itself; a host cannot mirror to itself" % (where, host, address))
            return None
        hosts.append(host)
    return hosts


def collector_tunnel(host, hostvars):
    """The collector's tunnel (its mirror_collector_tunnel, validated), or None."""
    settings = hostvars.get(host, {}).get("mirror_collector_tunnel") or {}
    if not settings or settings.get("state", "present") == "absent":
        return None
    try:
        return build_tunnel(settings)
    except ValidationError as error:
        raise ValidationError("mirror_collector_tunnel of collector %s: %s" % (host, error.parameter), error.value, error.reason) from None


def stale_tunnels(links, tunnels, this_host, hostvars):
    """The VNIs, in order, of the host's tunnel devices (links: the parsed output of
    `ip -j link show type vxlan`) that no planned tunnel uses and that are not the host's own
    collector end (its mirror_collector_tunnel): the ends of tunnels no mirror goes through any
    more. Other VXLAN devices are not the collection's and are left alone."""
    keep = {tunnel["vni"] for tunnel in tunnels}
    own = (hostvars.get(this_host, {}).get("mirror_collector_tunnel") or {}).get("vni")
    if own is not None:
        keep.add(bounded("mirror_collector_tunnel.vni", own, None, 1, MAX_VNI))
    return sorted({device_vni(link.get("ifname", "")) for link in links} - {None} - keep)


def _through_tunnel(item, addresses, hosts, hostvars, tunnels, where, problems):
    """Whether the mirror item can go: rewritten to its collectors' tunnel when they have one
    (the tunnel recorded for this sender), as it is when they have none; False, with the
    problem, when that cannot be."""
    try:
        found = [collector_tunnel(host, hostvars) for host in hosts]
    except ValidationError as error:
        problems.append("%s: %r %s" % (error.parameter, error.value, error.reason))
        return False
    if not any(found):
        return True
    if not all(found) or len({tunnel.vni for tunnel in found}) > 1 or len({tunnel.port for tunnel in found}) > 1:
        problems.append("%s: its collectors %s must all be reached through one tunnel (one vni and port in their "
                        "mirror_collector_tunnel), or all on-link" % (where, ", ".join(hosts)))
        return False
    inner = [tunnel.address.split("/")[0] for tunnel in found]
    item.pop("gateway", None)
    item.pop("gateways", None)
    item.update({"gateways": inner} if len(inner) > 1 else {"gateway": inner[0]})
    item["gateway_interface"] = found[0].name
    item["exclude"] = list(item.get("exclude") or []) + [address for address in addresses if family_of(address) == family_of(inner[0])]
    tunnel = tunnels.setdefault(found[0].vni, {"vni": found[0].vni, "port": found[0].port, "peers": {}})
    for address, underlay in zip(inner, addresses):
        tunnel["peers"][address] = {"address": address, "remote": underlay}
    return True


def _read_setting(reads, collector, key):
    """The value a slurp of the key's /proc/sys file on the collector read, or None."""
    for read in reads:
        if read.get("item", {}).get("collector") == collector and read.get("item", {}).get("key") == key and "content" in read:
            return int(base64.b64decode(read["content"]).decode("ascii").strip())
    return None


def _forwarding_on(check):
    return ("collector %s forwards (%s is %s) and would pass every mirrored packet on to its real destination, where "
            "TCP sees it twice; apply the netmagic.netfilter.mirror_collector role to it first"
            % (check["collector"], check["key"], check["value"]))


def forwarding_conflicts(host, services, collector_hosts, variable="load_balancer_services"):
    """Why this host cannot be both a collector (forwarding off) and a balancer (forwarding on), or []."""
    present = [service for service in services or [] if (service.get("state") or "present") == "present"]
    if host not in (collector_hosts or []) or not present:
        return []
    names = ", ".join(str(service.get("name")) for service in present)
    return ["%s is a collector, which keeps forwarding off so that it never passes mirrored packets on, and a balancer "
            "(%s lists %s), which needs forwarding on: give the two roles different hosts" % (host, variable, names)]


def without_backends(balancers, down):
    """The items with the backends in down ({address, port}) left out; a service left with none is an error."""
    down = [(d["address"], int(d["port"])) for d in down]
    kept, empty = [], []
    for item in balancers:
        if item.get("backends") and item.get("protocol") == "tcp":
            backends = [b for b in item["backends"] if (b["address"], int(b["port"])) not in down]
            if not backends:
                empty.append(item["name"])
            item = dict(item, backends=backends)
        kept.append(item)
    if empty:
        raise PlanError(["load_balancer_services: no backend of %s accepts TCP connections; nothing was changed" % ", ".join(empty)])
    return kept
