"""Rendering, parsing and planning of iptables-save text, without touching a host."""

import ipaddress
import re

import pytest

from ansible_collections.netmagic.netfilter.plugins.module_utils import _iptables_rules as r
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import build_balancer, build_mirror, source_hash_table
from ansible_collections.netmagic.netfilter.plugins.module_utils._naming import ChainOwners, chain_name, object_token

GW = "198.18.0.3"
NAT, MANGLE = (4, "nat"), (4, "mangle")


def mirror(**params):
    return build_mirror(dict({"name": "http", **({} if "gateways" in params else {"gateway": GW})}, **params))


def balancer(**params):
    return build_balancer(dict({"name": "web", "vip": "198.18.0.100", "port": 80, "backends": ["198.18.0.21", "198.18.0.22"]}, **params))


def chain_rules(owned, table, role):
    [chain] = [c for c in owned[table].chains if c.startswith("NM-%s-" % role)]
    return [line.split(" ", 2)[2] for line in owned[table].chains[chain]]


@pytest.mark.parametrize(
    "params, role, expected",
    [
        ({"ports": ["80"]}, "MIRO", ["-p tcp -m tcp --dport 80 -j TEE --gateway %s" % GW]),
        ({"ports": ["80"]}, "MIRI", ["-p tcp -m tcp --sport 80 -j TEE --gateway %s" % GW]),
        ({"ports": ["80"], "service": "local"}, "MIRO", ["-p tcp -m tcp --sport 80 -j TEE --gateway %s" % GW]),
        ({"ports": ["80"], "service": "local"}, "MIRI", ["-p tcp -m tcp --dport 80 -j TEE --gateway %s" % GW]),
        ({"ports": ["53", "8000:8100"], "protocol": "udp"}, "MIRO",
         ["-p udp -m udp --dport 53 -j TEE --gateway %s" % GW, "-p udp -m udp --dport 8000:8100 -j TEE --gateway %s" % GW]),
        ({}, "MIRO", ["-p tcp -j TEE --gateway %s" % GW]),
        ({"protocol": "icmp"}, "MIRI", ["-p icmp -j TEE --gateway %s" % GW]),
        ({"protocol": "all"}, "MIRO", ["-j TEE --gateway %s" % GW]),
        ({"peer": "198.18.1.0/24", "interface": "eth0"}, "MIRO", ["-d 198.18.1.0/24 -o eth0 -p tcp -j TEE --gateway %s" % GW]),
        ({"peer": "198.18.1.0/24", "interface": "eth0"}, "MIRI", ["-s 198.18.1.0/24 -i eth0 -p tcp -j TEE --gateway %s" % GW]),
        # Routed: requests to the service, then its responses, both as the host forwards them.
        ({"ports": ["80"], "service": "routed"}, "MIRF",
         ["-p tcp -m tcp --dport 80 -j TEE --gateway %s" % GW, "-p tcp -m tcp --sport 80 -j TEE --gateway %s" % GW]),
        ({"ports": ["80"], "service": "routed", "peer": "198.18.1.0/24", "interface": "eth1"}, "MIRF",
         ["-d 198.18.1.0/24 -o eth1 -p tcp -m tcp --dport 80 -j TEE --gateway %s" % GW,
          "-s 198.18.1.0/24 -i eth1 -p tcp -m tcp --sport 80 -j TEE --gateway %s" % GW]),
        ({"protocol": "all", "service": "routed"}, "MIRF", ["-j TEE --gateway %s" % GW]),
        # Sampled: new connections go to the sampler where their first packet passes, then only marked ones are cloned.
        ({"ports": ["80"], "sample": 4, "direction": "ingress"}, "MIRO",
         ["-p tcp -m tcp --dport 80 -m conntrack --ctstate NEW -j %s" % chain_name("MIRS", "mirror", "http")]),
        ({"ports": ["80"], "sample": 4, "direction": "ingress"}, "MIRI",
         ["-p tcp -m tcp --sport 80 -m connmark --mark 0x100000/0x100000 -j TEE --gateway %s" % GW]),
        ({"ports": ["80"], "sample": 4, "connmark_bit": 0}, "MIRS",
         ["-m statistic --mode nth --every 4 --packet 0 -j CONNMARK --set-xmark 0x1/0x1"]),
        # A pool: connections numbered in turn in a two-bit field, each number's packets to its collector.
        ({"ports": ["80"], "gateways": [GW, "198.18.0.4", "198.18.0.5"]}, "MIRS", [
            "-m connmark --mark 0x0/0x300000 -m statistic --mode nth --every 3 --packet 0 -j CONNMARK --set-xmark 0x100000/0x300000",
            "-m connmark --mark 0x0/0x300000 -m statistic --mode nth --every 2 --packet 0 -j CONNMARK --set-xmark 0x200000/0x300000",
            "-m connmark --mark 0x0/0x300000 -j CONNMARK --set-xmark 0x300000/0x300000"]),
        ({"ports": ["80"], "gateways": [GW, "198.18.0.4"], "direction": "ingress"}, "MIRI", [
            "-p tcp -m tcp --sport 80 -m connmark --mark 0x100000/0x300000 -j TEE --gateway %s" % GW,
            "-p tcp -m tcp --sport 80 -m connmark --mark 0x200000/0x300000 -j TEE --gateway 198.18.0.4"]),
        ({"ports": ["80"], "gateways": [GW, "198.18.0.4"], "sample": 2}, "MIRS",
         ["-m statistic --mode nth --every 2 --packet 0 -j %s" % chain_name("MIRP", "mirror", "http")]),
        ({"ports": ["80"], "max_new_connections": 5}, "MIRS", ["-m limit --limit 5/sec -j CONNMARK --set-xmark 0x100000/0x100000"]),
        ({"ports": ["80"], "max_new_connections": 50}, "MIRS",
         ["-m limit --limit 50/sec --limit-burst 50 -j CONNMARK --set-xmark 0x100000/0x100000"]),
        ({"ports": ["80"], "sample": 2, "max_new_connections": 50}, "MIRS",
         ["-m statistic --mode nth --every 2 --packet 0 -m limit --limit 50/sec --limit-burst 50 -j CONNMARK --set-xmark 0x100000/0x100000"]),
        ({"protocol": "all", "service": "local", "sample": 3}, "MIRI",
         ["-m conntrack --ctstate NEW -j %s" % chain_name("MIRS", "mirror", "http"), "-m connmark --mark 0x100000/0x100000 -j TEE --gateway %s" % GW]),
        ({"protocol": "icmp", "service": "routed", "peer": "198.18.1.7"}, "MIRF",
         ["-d 198.18.1.7/32 -p icmp -j TEE --gateway %s" % GW, "-s 198.18.1.7/32 -p icmp -j TEE --gateway %s" % GW]),
        # A collector through a tunnel: the clones leave by its interface.
        ({"ports": ["80"], "gateway_interface": "nmvx42"}, "MIRO", ["-p tcp -m tcp --dport 80 -j TEE --gateway %s --oif nmvx42" % GW]),
        ({"ports": ["80"], "gateway_interface": "nmvx42", "sample": 2}, "MIRI",
         ["-p tcp -m tcp --sport 80 -m connmark --mark 0x100000/0x100000 -j TEE --gateway %s --oif nmvx42" % GW]),
    ],
)
def test_mirror_rules(params, role, expected):
    """Each hook chain starts by returning the traffic with each collector, then clones."""
    collectors = params.get("gateways", [GW])
    returns = [line % collector for collector in collectors for line in ("-d %s/32 -j RETURN", "-s %s/32 -j RETURN")]
    assert chain_rules(r.render(mirror(**params)), MANGLE, role) == (returns if role.startswith("MIR") and role[3] in "OIF" else []) + expected


def test_a_mirror_never_clones_traffic_with_its_collectors_or_an_excluded_network():
    owned = r.render(mirror(ports=["80"], exclude=["198.18.9.2", "198.18.8.0/24", "198.18.9.2/32", GW]))
    assert chain_rules(owned, MANGLE, "MIRO") == [
        "-d 198.18.0.3/32 -j RETURN", "-s 198.18.0.3/32 -j RETURN",
        "-d 198.18.9.2/32 -j RETURN", "-s 198.18.9.2/32 -j RETURN",
        "-d 198.18.8.0/24 -j RETURN", "-s 198.18.8.0/24 -j RETURN",
        "-p tcp -m tcp --dport 80 -j TEE --gateway 198.18.0.3",
    ]


@pytest.mark.parametrize(
    "direction, hooks",
    [("both", ["OUTPUT", "PREROUTING"]), ("egress", ["OUTPUT"]), ("ingress", ["PREROUTING"]), ("routed", ["FORWARD"])],
)
def test_mirror_jumps_one_per_builtin_chain_with_tag(direction, hooks):
    owned = r.render(mirror(service="routed") if direction == "routed" else mirror(direction=direction))
    assert [jump.split()[1] for jump in owned[MANGLE].jumps] == hooks
    assert all('-m comment --comment "netmagic:mirror:http"' in jump for jump in owned[MANGLE].jumps)
    assert len(owned[MANGLE].chains) == len(hooks)


def test_round_robin_cascade_is_exact():
    owned = r.render(balancer(backends=["198.18.0.21", "198.18.0.22", "198.18.0.23"]))
    token = object_token("balancer", "web")
    assert chain_rules(owned, NAT, "SVC") == [
        "-m statistic --mode nth --every 3 --packet 0 -j NM-SEP-%s-0-we" % token,
        "-m statistic --mode nth --every 2 --packet 0 -j NM-SEP-%s-1-we" % token,
        "-j NM-SEP-%s-2-we" % token,
    ]


def test_affinity_sends_a_known_client_back_before_the_cascade_and_remembers_it_on_the_way_out():
    backends = [{"address": "198.18.0.21", "drain": True}, "198.18.0.22", "198.18.0.23"]
    owned = r.render(balancer(affinity="client_ip", affinity_timeout=600, backends=backends))
    token = object_token("balancer", "web")
    recent = "--name NM-AFF-%s-%d-we --mask 255.255.255.255 --rsource"
    assert chain_rules(owned, NAT, "SVC") == [
        "-m recent --rcheck --seconds 600 --reap %s -j NM-SEP-%s-1-we" % (recent % (token, 1), token),
        "-m recent --rcheck --seconds 600 --reap %s -j NM-SEP-%s-2-we" % (recent % (token, 2), token),
        "-m statistic --mode nth --every 2 --packet 0 -j NM-SEP-%s-1-we" % token,
        "-j NM-SEP-%s-2-we" % token,
    ]
    assert owned[NAT].chains["NM-SEP-%s-2-we" % token] == [
        "-A NM-SEP-%s-2-we -p tcp -m recent --set %s -j DNAT --to-destination 198.18.0.23:80" % (token, recent % (token, 2))]


def test_affinity_of_ipv6_clients_masks_the_whole_address():
    owned = r.render(build_balancer({"name": "web", "vip": "2001:2::100", "port": 80, "backends": ["2001:2::21"], "affinity": "client_ip"}))
    [remember] = owned[(6, "nat")].chains["NM-SEP-%s-0-we" % object_token("balancer", "web")]
    assert "--mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource" in remember


def test_weights_become_slots():
    owned = r.render(balancer(backends=[{"address": "198.18.0.21", "weight": 3}, "198.18.0.22"]))
    targets = [line.rsplit("-", 2)[-2] for line in chain_rules(owned, NAT, "SVC")]
    assert targets == ["0", "0", "1", "0"]


def test_random_cascade_prints_probabilities_as_iptables_save_does():
    owned = r.render(balancer(mode="random", backends=["198.18.0.21", "198.18.0.22", "198.18.0.23"]))
    rules = chain_rules(owned, NAT, "SVC")
    assert "--probability 0.33333333349" in rules[0]
    assert "--probability 0.50000000000" in rules[1]
    assert "statistic" not in rules[2]


@pytest.mark.parametrize(
    "probability, printed",
    [(0.5, "0.50000000000"), (1 / 3, "0.33333333349"), (0.25, "0.25000000000"), (0.1, "0.10000000009")],
)
def test_iptables_probability(probability, printed):
    assert r.iptables_probability(probability) == printed


@pytest.mark.parametrize(
    "params, jumps",
    [
        ({}, ["OUTPUT", "POSTROUTING", "PREROUTING"]),
        ({"local_clients": False}, ["POSTROUTING", "PREROUTING"]),
        ({"masquerade": False}, ["OUTPUT", "PREROUTING"]),
        ({"masquerade": False, "local_clients": False}, ["PREROUTING"]),
    ],
)
def test_balancer_hooks(params, jumps):
    owned = r.render(balancer(**params))
    assert [jump.split()[1] for jump in owned[NAT].jumps] == jumps
    assert any(c.startswith("NM-MASQ-") for c in owned[NAT].chains) == params.get("masquerade", True)


def test_masquerade_matches_only_balanced_connections():
    [post] = [j for j in r.render(balancer(port=8080, protocol="udp"))[NAT].jumps if j.startswith("-A POSTROUTING")]
    assert "-p udp -m conntrack --ctstate DNAT --ctorigdst 198.18.0.100 --ctorigdstport 8080" in post


@pytest.mark.parametrize(
    "role, kind, name, index",
    [("SVC", "balancer", "web", None), ("SEP", "balancer", "a-very-long-service-name-indeed", 4095), ("MIRO", "mirror", "x" * 64, None),
     ("MASQ", "balancer", "n", None)],
)
def test_chain_names_are_short_and_owned(role, kind, name, index):
    chain = r.chain_name(role, kind, name, index)
    other_kind = "mirror" if kind == "balancer" else "balancer"
    assert len(chain) <= 28
    assert chain.startswith("NM-%s-" % role)
    assert ChainOwners([(kind, name)]).owner(chain) == (kind, name)
    assert ChainOwners([(kind, name + "2")]).owner(chain) is None
    assert ChainOwners([(other_kind, name)]).owner(chain) is None
    assert ChainOwners([(kind, name)]).owner(chain + "x") is None


def test_names_sharing_a_prefix_get_distinct_chains():
    first = r.render(balancer(name="frontend-service-number-one"))
    second = r.render(balancer(name="frontend-service-number-two"))
    assert not set(first[NAT].chains) & set(second[NAT].chains)


LIVE = """# Generated by iptables-save v1.8.9 (nf_tables)
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
:{svc} - [0:0]
:{other} - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A PREROUTING -d 198.18.0.100/32 -p tcp -m tcp --dport 80 -m comment --comment "netmagic:balancer:web" -j {svc}
-A PREROUTING -d 198.18.0.101/32 -p tcp -m tcp --dport 80 -m comment --comment "netmagic:balancer:web2" -j {other}
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A {svc} -j DNAT --to-destination 198.18.0.21:80
-A {other} -j DNAT --to-destination 198.18.0.31:80
COMMIT
"""


def live_text():
    return LIVE.format(svc=r.chain_name("SVC", "balancer", "web"), other=r.chain_name("SVC", "balancer", "web2"))


def test_owned_rules_take_only_the_objects_own_lines():
    owned = r.owned_rules_of(r.parse_save(live_text()), [("balancer", "web")])[("balancer", "web")]
    svc = r.chain_name("SVC", "balancer", "web")
    assert list(owned) == [NAT]
    assert owned[NAT].chains == {svc: ["-A %s -j DNAT --to-destination 198.18.0.21:80" % svc]}
    assert owned[NAT].jumps == [
        '-A PREROUTING -d 198.18.0.100/32 -p tcp -m tcp --dport 80 -m comment --comment "netmagic:balancer:web" -j %s' % svc
    ]


def test_no_change_plans_nothing():
    desired = r.render(balancer())
    assert r.restore_buffer(desired, r.render(balancer())) == ""
    assert r.same_rules(desired, r.render(balancer()))


def test_first_apply_declares_chains_then_inserts_jumps():
    buffer = r.restore_buffer({}, r.render(balancer(masquerade=False, local_clients=False))).splitlines()
    assert buffer[0] == "*nat"
    assert buffer[-1] == "COMMIT"
    declared = [i for i, line in enumerate(buffer) if line.startswith(":")]
    inserted = [i for i, line in enumerate(buffer) if line.startswith("-I PREROUTING 1 ")]
    assert len(declared) == 3 and len(inserted) == 1 and max(declared) < inserted[0]
    assert not any(line.startswith(("-D", "-X", "-F")) for line in buffer)


def test_changing_a_backend_rewrites_only_its_chain_and_keeps_jumps():
    before = r.render(balancer(backends=["198.18.0.21", "198.18.0.22"]))
    after = r.render(balancer(backends=["198.18.0.21", "198.18.0.23"]))
    buffer = r.restore_buffer(before, after).splitlines()
    rewritten = [line[1:].split()[0] for line in buffer if line.startswith(":")]
    # The service chain names endpoint chains by position, so swapping one backend rewrites one chain.
    assert rewritten == [r.chain_name("SEP", "balancer", "web", 1)]
    assert not any(line.startswith(("-I", "-D", "-X")) for line in buffer)


def test_removal_deletes_jumps_before_chains():
    buffer = r.restore_buffer(r.render(balancer()), {}).splitlines()
    deletes = [i for i, line in enumerate(buffer) if line.startswith("-D ")]
    removals = [i for i, line in enumerate(buffer) if line.startswith("-X ")]
    assert len(deletes) == 3 and len(removals) == 4
    assert max(deletes) < min(removals)
    assert all('--comment "netmagic:balancer:web"' in buffer[i] for i in deletes)


def test_duplicate_jumps_are_reduced_to_one():
    desired = r.render(balancer(masquerade=False, local_clients=False))
    current = r.render(balancer(masquerade=False, local_clients=False))
    current[NAT].jumps = current[NAT].jumps * 3
    buffer = r.restore_buffer(current, desired).splitlines()
    assert sum(line.startswith("-D PREROUTING ") for line in buffer) == 2
    assert not r.same_rules(current, desired)


def test_as_text_round_trips_through_the_parser():
    desired = r.render(balancer())
    text = "*nat\n" + "\n".join(r.as_text(desired).splitlines()[1:]) + "\nCOMMIT\n"
    assert r.same_rules(r.owned_rules_of(r.parse_save(text), [("balancer", "web")])[("balancer", "web")], desired)


def test_foreign_chains_with_our_prefix_but_another_token_are_not_owned():
    text = "*nat\n:NM-SVC-deadbeef-web - [0:0]\n-A NM-SVC-deadbeef-web -j RETURN\nCOMMIT\n"
    assert r.owned_rules_of(r.parse_save(text), [("balancer", "web")])[("balancer", "web")] == {}


def test_ipv6_rules_use_ip6tables_forms():
    owned = r.render(balancer(vip="2001:2::100", backends=["[2001:2::51]:8080", "2001:2::52"]))
    assert list(owned) == [(6, "nat")]
    text = r.as_text(owned)
    assert text.startswith("# ip6tables\n*nat\n")
    assert "-d 2001:2::100/128 -p tcp -m tcp --dport 80" in text
    assert "--ctorigdst 2001:2::100 --ctorigdstport 80" in text
    assert "-j DNAT --to-destination [2001:2::51]:8080" in text
    assert "-j DNAT --to-destination [2001:2::52]:80" in text
    assert r.restore_buffer({}, owned, 4) == ""
    assert r.restore_buffer({}, owned, 6).startswith("*nat\n")


def test_ipv6_icmp_mirror():
    owned = r.render(mirror(gateway="2001:2::3", protocol="icmp", direction="egress"))
    assert chain_rules(owned, (6, "mangle"), "MIRO") == [
        "-d 2001:2::3/128 -j RETURN", "-s 2001:2::3/128 -j RETURN", "-p ipv6-icmp -j TEE --gateway 2001:2::3"]


def run_bpf(bytecode, header):
    """The verdict of a classic BPF program (-m bpf --bytecode) on a packet's network header."""
    _count, *words = bytecode.split(",")
    program = [tuple(int(value) for value in word.split()) for word in words]
    a = x = position = 0
    while True:
        code, jump_true, jump_false, k = program[position]
        if code == 6:  # ret k
            return k
        if code in (53, 37):  # jge k, jgt k
            position += 1 + (jump_true if (a >= k if code == 53 else a > k) else jump_false)
            continue
        a = {32: lambda: int.from_bytes(header[k:k + 4], "big"), 36: lambda: (a * k) & 0xFFFFFFFF, 7: lambda: a,
             172: lambda: a ^ x, 116: lambda: a >> k}[code]()
        x = a if code == 7 else x
        position += 1


def knuth_slot(address):
    """The slot of an address as the programs compute it: each 32-bit word multiplied by
    2654435761 (mod 2**32), IPv6 words folded in with xor first, the product's top 12 bits."""
    packed = ipaddress.ip_address(address).packed
    value = 0
    for offset in range(0, len(packed), 4):
        value = ((value ^ int.from_bytes(packed[offset:offset + 4], "big")) * 2654435761) & 0xFFFFFFFF
    return value >> 20


def header(address):
    packed = ipaddress.ip_address(address).packed
    return bytes(12) + packed + bytes(4) if len(packed) == 4 else bytes(8) + packed + bytes(16)


def backend_of(owned, balancer, address):
    """Follows the service chain's rules for a packet from address to the endpoint chain that takes it."""
    chains = owned[(balancer.family, "nat")].chains
    chain = next(name for name in chains if name.startswith("NM-SVC-"))
    while not chain.startswith("NM-SEP-"):
        for line in chains[chain]:
            bytecode = re.search(r'--bytecode "([^"]+)"', line)
            if bytecode is None or run_bpf(bytecode.group(1), header(address)):
                chain = line.rsplit(" -j ", 1)[1]
                break
    return balancer.backends[int(chain.split("-")[3])]


@pytest.mark.parametrize("vip, prefix", [("198.18.0.100", "198.18.%d.%d"), ("2001:2::100", "2001:2::%x:%x")])
def test_source_hash_rules_send_each_client_to_its_slots_backend(vip, prefix):
    backends = [prefix % (0, 21 + index) for index in range(10)]
    balancer = build_balancer({"name": "dns", "vip": vip, "port": 53, "protocol": "udp", "mode": "source_hash", "backends": backends})
    owned = r.render(balancer)
    table = source_hash_table(balancer.serving)
    clients = [prefix % (1 + index // 250, 1 + index % 250) for index in range(800)]
    assert all(backend_of(owned, balancer, client) == table[knuth_slot(client)] for client in clients)
    assert len({knuth_slot(client) for client in clients}) > 650, "the hash does not spread sequential addresses"
    longest = max(len(rules) for name, rules in owned[(balancer.family, "nat")].chains.items() if name.startswith("NM-HSH-"))
    assert longest < 200, "a block holds %d rules" % longest
