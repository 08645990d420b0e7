"""The floor: the same rules written by hand and applied with one call of the kernel's own tool.

iptables floors use one `iptables-<variant>-restore --noflush` per step, exactly as the
collection lays its rules out (docs/rule-layout.md), so after the first apply the ruleset is
the same as the module's. The nft floor writes the nftables engine's layout by hand (a verdict map
of the services, a set of the connections to masquerade, one numgen map to the backends per
service; the mirrors' dup rules in two base chains instead of a chain each) with one `nft -f`
of nft's own syntax.

Each step function takes (netns, workload) and returns the completed process.
"""

from benchmarks import collection
from benchmarks.workload import COLLECTOR, VIP

NFT_TABLE = "nmbench"


def _chains(workload, number):
    name = workload.service_name(number)
    return {
        "svc": collection.chain_name("SVC", "balancer", name),
        "masq": collection.chain_name("MASQ", "balancer", name),
        "sep": [collection.chain_name("SEP", "balancer", name, i) for i in range(workload.backends)],
        "tag": collection.tag("balancer", name),
    }


def _mirror_chains(workload, number):
    name = workload.mirror_name(number)
    return {"out": collection.chain_name("MIRO", "mirror", name), "in": collection.chain_name("MIRI", "mirror", name),
            "tag": collection.tag("mirror", name)}


# --- iptables-restore --------------------------------------------------------

def _mirror_jumps(workload, number):
    chains = _mirror_chains(workload, number)
    comment = '-m comment --comment "%s"' % chains["tag"]
    return ["PREROUTING %s -j %s" % (comment, chains["in"]), "OUTPUT %s -j %s" % (comment, chains["out"])]


def _mirror_rules(workload, number):
    chains, port = _mirror_chains(workload, number), workload.mirror_port(number)
    return ["-A %s -p tcp -m tcp --sport %d -j TEE --gateway %s" % (chains["in"], port, COLLECTOR),
            "-A %s -p tcp -m tcp --dport %d -j TEE --gateway %s" % (chains["out"], port, COLLECTOR)]


def _service_jumps(workload, number):
    chains, port = _chains(workload, number), workload.service_port(number)
    comment = '-m comment --comment "%s"' % chains["tag"]
    match = "-d %s/32 -p tcp -m tcp --dport %d %s" % (VIP, port, comment)
    return ["PREROUTING %s -j %s" % (match, chains["svc"]), "OUTPUT %s -j %s" % (match, chains["svc"]),
            "POSTROUTING -p tcp -m conntrack --ctstate DNAT --ctorigdst %s --ctorigdstport %d %s -j %s"
            % (VIP, port, comment, chains["masq"])]


def _dnat_rule(chain, endpoint):
    return "-A %s -p tcp -j DNAT --to-destination %s" % (chain, endpoint)


def _service_rules(workload, number):
    chains, endpoints = _chains(workload, number), workload.endpoint_list(number)
    count = len(endpoints)
    lines = ["-A %s -j MASQUERADE" % chains["masq"]]
    lines += [_dnat_rule(chain, endpoint) for chain, endpoint in zip(chains["sep"], endpoints)]
    lines += ["-A %s -m statistic --mode nth --every %d --packet 0 -j %s" % (chains["svc"], count - i, chains["sep"][i])
              for i in range(count - 1)]
    lines.append("-A %s -j %s" % (chains["svc"], chains["sep"][-1]))
    return lines


def _all_chains(workload):
    mangle = [c for m in range(workload.mirrors) for c in (_mirror_chains(workload, m)["in"], _mirror_chains(workload, m)["out"])]
    nat = []
    for s in range(workload.services):
        chains = _chains(workload, s)
        nat += [chains["svc"], chains["masq"], *chains["sep"]]
    return {"mangle": mangle, "nat": nat}


def _table(name, lines):
    return ["*" + name, *lines, "COMMIT"] if lines else []


def iptables_apply_buffer(workload):
    chains = _all_chains(workload)
    mangle = [":%s - [0:0]" % c for c in chains["mangle"]]
    for m in range(workload.mirrors):
        mangle += ["-A " + jump for jump in _mirror_jumps(workload, m)] + _mirror_rules(workload, m)
    nat = [":%s - [0:0]" % c for c in chains["nat"]]
    for s in range(workload.services):
        nat += ["-A " + jump for jump in _service_jumps(workload, s)] + _service_rules(workload, s)
    return "\n".join(_table("mangle", mangle) + _table("nat", nat)) + "\n"


def iptables_change_buffer(workload):
    """Rewrite the one endpoint chain whose backend changed, as the module does."""
    chain = _chains(workload, 0)["sep"][0]
    return "*nat\n:%s - [0:0]\n%s\nCOMMIT\n" % (chain, _dnat_rule(chain, workload.replacement_endpoint()))


def iptables_remove_buffer(workload):
    """Empty every owned chain, delete the jumps, then the chains."""
    chains = _all_chains(workload)
    jumps = {"mangle": [j for m in range(workload.mirrors) for j in _mirror_jumps(workload, m)],
             "nat": [j for s in range(workload.services) for j in _service_jumps(workload, s)]}
    out = []
    for table in ("mangle", "nat"):
        lines = [":%s - [0:0]" % c for c in chains[table]] + ["-D " + j for j in jumps[table]]
        out += _table(table, lines + ["-X %s" % c for c in chains[table]])
    return "\n".join(out) + "\n"


# --- nft -f ------------------------------------------------------------------

def _nft_service_map(workload, number, endpoints):
    items = ", ".join("%d : %s . %s" % (i, *endpoint.split(":")) for i, endpoint in enumerate(endpoints))
    return "meta l4proto tcp dnat ip to numgen inc mod %d map { %s }" % (len(endpoints), items)


def _nft_hook(name, kind, hook, priority, rules):
    body = "".join("    %s\n" % rule for rule in rules)
    return "  chain %s {\n    type %s hook %s priority %d; policy accept;\n%s  }\n" % (name, kind, hook, priority, body)


def _masquerade_element(port, endpoint):
    address, backend_port = endpoint.split(":")
    return "%s . %s . tcp . %s" % (VIP, address, backend_port)


def nft_apply_script(workload):
    """The engine's dispatch by hand: one verdict-map lookup per new connection, one set lookup
    to masquerade it, and each service's choice as one numgen map."""
    services, dispatch, masquerading = [], [], []
    for s in range(workload.services):
        port = workload.service_port(s)
        dispatch.append("%s . tcp . %d : jump svc-%d" % (VIP, port, s))
        masquerading += [_masquerade_element(port, endpoint) for endpoint in workload.endpoint_list(s)]
        services.append("  chain svc-%d {\n    %s\n  }\n" % (s, _nft_service_map(workload, s, workload.endpoint_list(s))))
    ports = [workload.mirror_port(m) for m in range(workload.mirrors)]
    lookup = "ip daddr . meta l4proto . th dport vmap @services"
    # nft 1.0.6 rejects the name dstnat on a nat output hook: numeric priorities throughout.
    return ("table ip %s {\n" % NFT_TABLE
            + "  map services {\n    type ipv4_addr . inet_proto . inet_service : verdict\n    elements = { %s }\n  }\n" % ", ".join(dispatch)
            + "  set masquerading {\n    type ipv4_addr . ipv4_addr . inet_proto . inet_service\n    elements = { %s }\n  }\n"
            % ", ".join(masquerading)
            + "".join(services)
            + _nft_hook("prerouting", "nat", "prerouting", -100, [lookup])
            + _nft_hook("output", "nat", "output", -100, [lookup])
            + _nft_hook("postrouting", "nat", "postrouting", 100,
                        ["ct status dnat ct original ip daddr . ip daddr . meta l4proto . th dport @masquerading masquerade"])
            + _nft_hook("mirror-out", "filter", "output", -150, ["tcp dport %d dup to %s" % (p, COLLECTOR) for p in ports])
            + _nft_hook("mirror-in", "filter", "prerouting", -150, ["tcp sport %d dup to %s" % (p, COLLECTOR) for p in ports])
            + "}\n")


def nft_change_script(workload):
    endpoints = [workload.replacement_endpoint()] + workload.endpoint_list(0)[1:]
    port = workload.service_port(0)
    return ("flush chain ip %s svc-0\nadd rule ip %s svc-0 %s\n" % (NFT_TABLE, NFT_TABLE, _nft_service_map(workload, 0, endpoints))
            + "delete element ip %s masquerading { %s }\n" % (NFT_TABLE, _masquerade_element(port, workload.endpoint_list(0)[0]))
            + "add element ip %s masquerading { %s }\n" % (NFT_TABLE, _masquerade_element(port, endpoints[0])))


# --- the floors as methods -----------------------------------------------------

def iptables_floor(variant):
    """Steps of the iptables-<variant>-restore floor."""
    restore = ["iptables-%s-restore" % variant, "--noflush"]
    return {
        "apply": lambda run, w: run(restore, iptables_apply_buffer(w)),
        # The least a no-change check must do: read the ruleset once.
        "noop": lambda run, w: run(["iptables-%s-save" % variant], None),
        "change": lambda run, w: run(restore, iptables_change_buffer(w)),
        "remove": lambda run, w: run(restore, iptables_remove_buffer(w)),
    }


def nft_floor():
    return {
        "apply": lambda run, w: run(["nft", "-f", "-"], nft_apply_script(w)),
        "noop": lambda run, w: run(["nft", "-j", "list", "table", "ip", NFT_TABLE], None),
        "change": lambda run, w: run(["nft", "-f", "-"], nft_change_script(w)),
        "remove": lambda run, w: run(["nft", "delete", "table", "ip", NFT_TABLE], None),
    }


FLOORS = {
    "iptables-nft-restore": iptables_floor("nft"),
    "iptables-legacy-restore": iptables_floor("legacy"),
    "nft -f": nft_floor(),
}


def floor_of(engine):
    """The floor an engine is held to: the tool that writes the same kernel tables.

    python-iptables (iptc) talks to legacy x_tables; an nftables engine writes nf_tables natively.
    """
    if engine.startswith("nft"):
        return "nft -f"
    if "legacy" in engine or "python" in engine or "iptc" in engine:
        return "iptables-legacy-restore"
    return "iptables-nft-restore"
