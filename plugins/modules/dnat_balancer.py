#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dnat_balancer
short_description: Spread new connections to a virtual IP over backends with DNAT, as kube-proxy does
version_added: 0.1.0
description:
  - Balances new connections to O(vip):O(port) over O(backends). Each new connection is sent
    by DNAT to the backend it is given; the rest of the connection follows it through
    conntrack.
  - The rules follow kube-proxy's layout in the nat table. A service chain
    C(NM-SVC-...) chooses a backend, one endpoint chain C(NM-SEP-...) per backend does the
    DNAT, and C(NM-MASQ-...) masquerades the balanced connections so replies come back
    through this host. Built-in chains get one jump each, tagged C(netmagic:balancer:NAME).
  - With O(engine=nftables) the service is an element of a verdict map, tagged the same way,
    and its C(NM-SVC-...) chain chooses the backend and does the DNAT in one rule (a numgen
    map to the backends' addresses and ports); one set lists what to masquerade. With
    O(affinity=client_ip) it chooses among endpoint chains C(NM-SEP-...), as kube-proxy's nftables mode does.
  - C(round_robin) uses a cascade of C(-m statistic --mode nth) rules, which rotates exactly
    over the backends, each backend taking as many turns in a cycle as its weight.
  - Rules the collection does not own are never changed, reordered or flushed. The change is
    applied with one C(iptables-restore --noflush), atomically; changing the backends rewrites
    only this service's chains.
  - The balancer host must forward (C(net.ipv4.ip_forward=1), for IPv6 C(net.ipv6.conf.all.forwarding=1)) to balance connections from
    other hosts; the P(netmagic.netfilter.load_balancer#role) role sets it.
author:
  - netmagic.netfilter maintainers (@netmagic)
extends_documentation_fragment:
  - netmagic.netfilter.netfilter
  - netmagic.netfilter.netfilter.object
options:
  vip:
    description:
      - The virtual IPv4 or IPv6 address clients connect to. Required when O(state=present).
      - A unicast address without zone id (C(%eth0)); IPv4-mapped IPv6 addresses (C(::ffff:a.b.c.d)) are refused, give the
        IPv4 address instead. The same holds for the backends' addresses.
      - The backends must be of the same family, and no other balancer on this host may serve the same O(vip), O(port)
        and O(protocol); such a definition is refused before anything changes, naming the other balancer.
      - Traffic to it must reach this host, for example because the address is configured on one
        of its interfaces.
    type: str
  port:
    description:
      - The service port on O(vip). Required when O(state=present).
    type: int
  protocol:
    description:
      - Protocol of the service.
    type: str
    choices: [tcp, udp]
    default: tcp
  backends:
    description:
      - The backends, at least one, each once.
      - An item is a string C(ADDRESS) or C(ADDRESS:PORT) (IPv6 as C([ADDRESS]:PORT)), or a
        dict with C(address) and optional C(port), C(weight) and C(drain).
      - The port defaults to O(port), the weight to C(1); a weight is a whole number from 1 to 65535.
      - C(drain=true) drains a backend (new in 0.2.0) - it takes no new connection while its
        established ones go on until they close, because conntrack keeps the DNAT of a connection
        for its life. Removing a backend does the same for TCP. At least one backend must serve.
      - Required when O(state=present).
    type: list
    elements: raw
  mode:
    description:
      - C(round_robin) rotates exactly; a backend of weight W takes W turns per cycle (weights
        are reduced by their common divisor, and expand to at most 4096 turns).
      - C(random) chooses each new connection at random, a backend's chance in proportion to its
        weight. Its reduced weights add up to at most 4096 too.
      - C(source_hash) (new in 0.2.0) sends every connection of a client address to the same backend, through a
        consistent lookup table of 4096 slots (as IPVS's C(mh) scheduler, after Google's Maglev). A client's address
        hashes to a slot (nftables C(jhash), iptables Knuth's multiplicative hash in a C(-m bpf) program), and each
        slot belongs to the backend of highest weighted rendezvous score for it. So removing or draining one of N
        backends moves only its own clients (about 1/N of them) and no others, adding it back gives them back, and
        each backend's share of the slots follows its weight (within a few percent, the table being a hash). The
        table depends only on the backends' addresses and ports, so every balancer host of a service with the same
        engine maps a client alike. It cannot be combined with O(affinity).
      - With the iptables engines the table is 32 blocks of C(-m bpf) rules (chains C(NM-HSH-...)); a new
        connection passes at most 32 plus one block's rules, about 150 for 10 backends.
    type: str
    choices: [round_robin, random, source_hash]
    default: round_robin
  masquerade:
    description:
      - Masquerade the connections this service balances, so backends answer through this
        host. Only those connections are masqueraded, never the host's other traffic.
    type: bool
    default: true
  local_clients:
    description:
      - Also balance connections opened on this host itself (nat C(OUTPUT)), besides those
        arriving from other hosts (nat C(PREROUTING)).
    type: bool
    default: true
  source_ranges:
    description:
      - Balance only connections from these networks (C(ADDRESS/LENGTH) or an address), of the
        family of O(vip); empty balances every client.
      - A connection from elsewhere is not balanced and passes on unchanged, to the VIP address
        itself. The collection writes NAT rules only and never filters; drop such clients with
        the host's firewall where the VIP must not be reached at all.
      - The networks are kept as the fewest networks covering the same addresses (adjacent and
        overlapping ones merged, as nft holds them). A connection balanced already keeps its
        backend when its network is removed from the list (conntrack holds its DNAT).
    type: list
    elements: str
    default: []
    version_added: 0.2.0
  affinity:
    description:
      - C(client_ip) keeps each client, by its source address, on the backend it was given as long as it opens a new
        connection within O(affinity_timeout) of its last one; a new client, or one back after the timeout, follows
        O(mode), as with Kubernetes' C(sessionAffinity) C(ClientIP).
      - A drained or removed backend loses its clients, who are balanced again on their next connection.
      - With the iptables engines each backend's clients are an C(xt_recent) list, as kube-proxy keeps them, which
        remembers at most 100 clients per backend unless the kernel's C(xt_recent.ip_list_tot) is raised (boot
        parameter, or module option where C(xt_recent) is a module); beyond it the least recent clients are forgotten.
        With O(engine=nftables) each backend has a set with a timeout per client, up to 65535 clients.
      - Clients behind one NAT share an address, so they share a backend.
    type: str
    choices: [none, client_ip]
    default: none
    version_added: 0.2.0
  affinity_timeout:
    description:
      - Seconds, from 1 to 86400, a client keeps its backend after its last new connection, with O(affinity=client_ip).
    type: int
    default: 10800
    version_added: 0.2.0
notes:
  - Each rule's nth counter starts again when its chain is rewritten, so a change of backends
    restarts the rotation.
  - A UDP client that keeps its source port (a resolver, statsd, QUIC) is one conntrack flow for as
    long as it sends, and conntrack keeps the DNAT of its first datagram. So after a change of a UDP
    service, every flow of it whose replies come from anything but a serving backend (a removed or
    drained one, or the VIP itself for a flow begun before the service existed) is deleted with the
    C(conntrack) program, and the next datagram is balanced afresh. Without C(conntrack) on the host
    the run warns, and such flows go on where they went until they are idle for the UDP timeout
    (30 s, 120 s once replied). A removed service's flows are deleted when the record of what was
    applied holds its definition.
seealso:
  - module: netmagic.netfilter.tee_mirror
  - name: kube-proxy iptables mode
    description: The rule layout this module follows.
    link: https://kubernetes.io/docs/reference/networking/virtual-ips/#proxy-mode-iptables
"""

EXAMPLES = r"""
- name: Two web servers behind a virtual IP, in exact rotation
  netmagic.netfilter.dnat_balancer:
    name: web
    vip: 198.18.0.100
    port: 80
    backends:
      - 198.18.0.21
      - 198.18.0.22

- name: Three backends on another port, one taking half the connections
  netmagic.netfilter.dnat_balancer:
    name: api
    vip: 198.18.0.100
    port: 443
    backends:
      - {address: 198.18.0.21, port: 8443, weight: 2}
      - 198.18.0.22:8443
      - 198.18.0.23:8443

- name: Drain one of them before its maintenance (its open connections go on)
  netmagic.netfilter.dnat_balancer:
    name: api
    vip: 198.18.0.100
    port: 443
    backends:
      - {address: 198.18.0.21, port: 8443, weight: 2}
      - 198.18.0.22:8443
      - {address: 198.18.0.23, port: 8443, drain: true}

- name: Random choice for a UDP service, only for clients on other hosts
  netmagic.netfilter.dnat_balancer:
    name: dns
    vip: 198.18.0.100
    port: 53
    protocol: udp
    mode: random
    local_clients: false
    backends: [198.18.0.31, 198.18.0.32]

- name: Balance only the office networks
  netmagic.netfilter.dnat_balancer:
    name: intranet
    vip: 198.18.0.110
    port: 443
    source_ranges: [198.18.4.0/24, 198.18.5.0/24]
    backends: [198.18.0.41, 198.18.0.42]

- name: Keep each client on its backend while it comes back within an hour
  netmagic.netfilter.dnat_balancer:
    name: shop
    vip: 198.18.0.120
    port: 443
    affinity: client_ip
    affinity_timeout: 3600
    backends: [198.18.0.51, 198.18.0.52, 198.18.0.53]

- name: Remove a service
  netmagic.netfilter.dnat_balancer:
    name: web
    state: absent
"""

RETURN = r"""
changed:
  description: Whether the owned rules were (or in check mode would be) changed.
  returned: always
  type: bool
engine:
  description: The engine used, after C(auto) was resolved.
  returned: success
  type: str
  sample: nftables
removed_from:
  description: Engines of other kernel backends from which this object's old rules were removed.
  returned: success
  type: list
  elements: str
  sample: [iptables-legacy]
persisted:
  description: With O(persist=true), where the owned rules were saved; empty otherwise.
  returned: success
  type: dict
  contains:
    path:
      description: The directory of the saved files (O(persist_path)).
      type: str
    unit:
      description: The unit file written there, whose C(ExecStart) lines restore the files.
      type: str
  sample: {path: /etc/netmagic/netfilter, unit: /etc/netmagic/netfilter/netmagic-netfilter-restore.service}
chains:
  description: The chains the service owns when in the desired state; empty after removal.
  returned: success
  type: list
  elements: str
  sample: [NM-MASQ-4b1a0c2d-web, NM-SEP-4b1a0c2d-0-web, NM-SEP-4b1a0c2d-1-web, NM-SVC-4b1a0c2d-web]
rules:
  description:
    - The service's rules in the desired state, as C(iptables-save) prints them (all in the nat
      table); empty after removal.
  returned: success
  type: list
  elements: str
  sample:
    - -A PREROUTING -d 198.18.0.100/32 -p tcp -m tcp --dport 80 -m comment --comment "netmagic:balancer:web" -j NM-SVC-4b1a0c2d-web
    - -A NM-SVC-4b1a0c2d-web -m statistic --mode nth --every 2 --packet 0 -j NM-SEP-4b1a0c2d-0-web
    - -A NM-SVC-4b1a0c2d-web -j NM-SEP-4b1a0c2d-1-web
backends:
  description: The backends as normalized, in the order given; empty after removal.
  returned: success
  type: list
  elements: dict
  contains:
    address:
      description: Backend IP address.
      type: str
    port:
      description: Backend port.
      type: int
    weight:
      description: Backend weight.
      type: int
    drain:
      description: Present, and true, for a drained backend.
      type: bool
  sample: [{address: 198.18.0.21, port: 80, weight: 1}, {address: 198.18.0.22, port: 80, weight: 1}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netmagic.netfilter.plugins.module_utils._model import BALANCER, build_balancer
from ansible_collections.netmagic.netfilter.plugins.module_utils._reconcile import BALANCER_OPTIONS, BALANCER_REQUIRED_IF, argument_spec, reconcile


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(**BALANCER_OPTIONS),
        required_if=BALANCER_REQUIRED_IF,
        supports_check_mode=True,
    )
    result, balancer = reconcile(module, BALANCER, build_balancer)
    result["backends"] = [backend.as_dict() for backend in balancer.backends] if balancer else []
    module.exit_json(**result)


if __name__ == "__main__":
    main()
