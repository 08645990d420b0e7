#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tee_mirror
short_description: Mirror chosen traffic to a collector host with the netfilter TEE target
version_added: 0.1.0
description:
  - Clones the packets of chosen traffic to a collector host on the same L2 segment with
    C(-t mangle -j TEE --gateway COLLECTOR). The original packets go on untouched.
  - Egress packets are cloned in the mangle C(OUTPUT) chain, ingress packets in the mangle
    C(PREROUTING) chain. Traffic this host routes for others is cloned, requests and responses,
    in the mangle C(FORWARD) chain with O(service=routed).
  - Every rule lives in chains the collection owns (C(NM-MIRO-...) for egress, C(NM-MIRI-...) for
    ingress, C(NM-MIRF-...) for routed traffic), reached by one jump per built-in chain tagged
    C(netmagic:mirror:NAME). Rules the
    collection does not own are never changed, reordered or flushed.
  - The whole change is applied with one C(iptables-restore --noflush), atomically; a run that
    finds the owned rules already as desired changes nothing.
  - The collector must have IP forwarding off, or it forwards the clones on to their real
    destination and TCP sees duplicates. The P(netmagic.netfilter.mirror_collector#role) role
    does that.
author:
  - netmagic.netfilter maintainers (@netmagic)
extends_documentation_fragment:
  - netmagic.netfilter.netfilter
  - netmagic.netfilter.netfilter.object
options:
  gateway:
    description:
      - IPv4 or IPv6 address of the collector. It must be on-link from this host and not one of
        its own addresses; the module checks both (C(ip route get)) before changing anything,
        unless O(force=true).
      - A unicast address without zone id (C(%eth0)); IPv4-mapped IPv6 addresses are refused. The same holds for
        O(peer).
      - Required when O(state=present), unless O(gateways) is given.
    type: str
  gateways:
    description:
      - A pool of collectors, instead of O(gateway), each checked as O(gateway) is. Every
        connection goes wholly, both directions, to one collector of the pool, each collector in
        turn (the first new connection to the first, the next to the second, and so on), so the
        spread is even.
      - Each connection's collector is chosen where its first packet passes (see O(sample)) and
        its number (1, 2, ...) kept in a field of its connection mark from bit O(connmark_bit),
        as wide as the pool's size needs; the packet mark and the other bits are left alone.
        Connections that began before the pool are not mirrored.
      - At most 64 addresses of one family, each once; a list of one is O(gateway).
    type: list
    elements: str
    version_added: 0.2.0
  protocol:
    description:
      - Protocol of the traffic to mirror. O(ports) needs C(tcp) or C(udp).
    type: str
    choices: [tcp, udp, icmp, all]
    default: tcp
  ports:
    description:
      - Service ports or ranges to mirror, such as C(80) or C("8000:8100").
      - Ranges may not overlap (each packet would be cloned twice).
      - An empty list mirrors every port.
    type: list
    elements: str
    default: []
  service:
    description:
      - Which end of the traffic this host is.
      - C(remote) means this host is a client of the service at O(ports); its egress
        packets are matched on the destination port and its ingress packets on the source
        port.
      - C(local) means this host serves O(ports); ingress is matched on the destination port
        and egress on the source port.
      - C(routed) means this host routes the traffic between clients and servers of O(ports)
        (a router, a gateway, a host forwarding for containers); it clones in the forward hook
        the requests (matched on the destination port) and the responses (on the source port)
        as it forwards them, each once. O(direction) must then be C(both); O(peer) and
        O(interface) name the servers' side (requests go to them, responses come from them).
      - Traffic the host routes passes neither the egress nor the ingress hook of C(remote) and
        C(local) in both directions, so only C(routed) clones all of it.
    type: str
    choices: [remote, local, routed]
    default: remote
  direction:
    description:
      - Which packets to clone. C(both) clones requests and responses.
    type: str
    choices: [both, ingress, egress]
    default: both
  peer:
    description:
      - IP address or CIDR network of the other end of the traffic, of the same family as
        O(gateway). Egress matches it as destination, ingress as source; with O(service=routed),
        the servers (the destination of requests, the source of responses). Unset matches every
        peer.
    type: str
  force:
    description:
      - Apply even when O(gateway) is one of this host's own addresses, has no route, or is
        reached through a router, or O(gateway_interface) is missing or down. TEE then sends the
        clones somewhere they are of no use, so this is for set-ups the check cannot judge.
    type: bool
    default: false
    version_added: 0.2.0
  interface:
    description:
      - Interface the traffic leaves (egress) or arrives on (ingress); with O(service=routed),
        the interface toward the servers. A trailing C(+) matches every interface with that
        prefix.
    type: str
  sample:
    description:
      - Mirror one connection in O(sample), every packet of it in both directions; C(1) mirrors
        every connection.
      - The first of every O(sample) new connections the mirror matches is chosen where its
        first packet passes (egress for O(service=remote), ingress for O(service=local), the
        forward hook for O(service=routed)) and marked in its connection mark with bit
        O(connmark_bit); only packets of marked connections are cloned. A connection is kept
        or left out whole, so every mirrored flow can be reassembled, where a per-packet limit
        would cut flows into pieces.
      - Connections that began before the mirror was sampled are not mirrored.
    type: int
    default: 1
    version_added: 0.2.0
  connmark_bit:
    description:
      - The bit (0 to 31) of the connection mark that a sampled mirror sets on the connections it
        chooses, set and matched with a mask so the other bits, and other users of the mark, are
        left alone. Mirrors that sample the same connections should use different bits.
      - Used only with O(sample) above 1, O(max_new_connections) or O(gateways); a pool of N
        collectors takes the bits from O(connmark_bit) that hold the number N.
    type: int
    default: 20
    version_added: 0.2.0
  max_new_connections:
    description:
      - Mirror at most this many new connections a second (1 to 10000), each whole; beyond it
        new connections are not mirrored at all, so a burst of connections cannot flood the
        collector while every connection it gets stays complete. Up to one second's worth may
        come at once.
      - Chosen and marked as O(sample) chooses, with O(connmark_bit); with O(sample) too, the cap
        applies to the sampled connections.
      - Unset mirrors every connection (that O(sample) chooses).
    type: int
    version_added: 0.2.0
  gateway_interface:
    description:
      - The interface the clones leave by (TEE C(--oif), nft C(dup to ... device)), for a
        collector reached through a tunnel, whose collectors are on-link through this
        interface, such as the VXLAN device the
        P(netmagic.netfilter.mirror_sender#role) role builds for a remote collector.
      - The module checks before changing anything, unless O(force=true), that the interface
        exists, is up and reaches each collector on-link.
      - The interface's MTU must be at least that of the mirrored traffic, or the kernel drops
        full-size clones and tells the production peer to send smaller packets (ICMP
        fragmentation needed). See the analysis guide (docs/mirror-analysis.md).
    type: str
    version_added: 0.2.0
  exclude:
    description:
      - Addresses or networks, of the family of the collectors, whose traffic is never cloned,
        in either direction; each hook chain of the mirror returns such packets first.
      - The collectors are always excluded (a clone of a packet to a collector would reach it as
        a duplicate). A collector behind a tunnel also needs the tunnel's far end excluded, so
        that the tunnel's own packets are never cloned; the mirror_sender role adds it.
      - At most 64.
    type: list
    elements: str
    default: []
    version_added: 0.2.0
notes:
  - Needs a kernel with the TEE target.
seealso:
  - module: netmagic.netfilter.dnat_balancer
  - name: iptables-extensions TEE target
    description: The man page section of the TEE target.
    link: https://ipset.netfilter.org/iptables-extensions.man.html#lbDW
"""

EXAMPLES = r"""
- name: Mirror HTTP this host sends and receives to the collector
  netmagic.netfilter.tee_mirror:
    name: http
    gateway: 198.18.0.3
    ports: ["80"]

- name: Mirror DNS this host serves, requests only, arriving on eth0
  netmagic.netfilter.tee_mirror:
    name: dns-queries
    gateway: 198.18.0.3
    protocol: udp
    ports: ["53"]
    service: local
    direction: ingress
    interface: eth0

- name: Mirror HTTP this router forwards to and from the web servers behind eth1
  netmagic.netfilter.tee_mirror:
    name: routed-http
    gateway: 198.18.0.3
    ports: ["80"]
    service: routed
    peer: 198.18.1.0/24
    interface: eth1

- name: Mirror one HTTP connection in ten, each whole, both directions
  netmagic.netfilter.tee_mirror:
    name: http-sampled
    gateway: 198.18.0.3
    ports: ["80"]
    sample: 10

- name: Mirror HTTP to a pool of three collectors, each connection wholly to one of them
  netmagic.netfilter.tee_mirror:
    name: http-pool
    gateways: [198.18.0.3, 198.18.0.4, 198.18.0.5]
    ports: ["80"]

- name: Mirror everything exchanged with one subnet
  netmagic.netfilter.tee_mirror:
    name: lab-subnet
    gateway: 198.18.0.3
    protocol: all
    peer: 198.18.1.0/24

- name: Mirror HTTP to a collector behind a router, through the VXLAN device nmvx4242
  netmagic.netfilter.tee_mirror:
    name: http-remote
    gateway: 198.18.250.1
    gateway_interface: nmvx4242
    exclude: [198.19.2.2]
    ports: ["80"]

- name: Remove a mirror
  netmagic.netfilter.tee_mirror:
    name: http
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
  description: The chains the mirror owns when in the desired state; empty after removal.
  returned: success
  type: list
  elements: str
  sample: [NM-MIRI-1c0ab3e1-http, NM-MIRO-1c0ab3e1-http]
rules:
  description:
    - The mirror's rules in the desired state, as C(iptables-save) prints them (all in the
      mangle table); empty after removal.
  returned: success
  type: list
  elements: str
  sample:
    - -A OUTPUT -m comment --comment "netmagic:mirror:http" -j NM-MIRO-1c0ab3e1-http
    - -A NM-MIRO-1c0ab3e1-http -d 198.18.0.3/32 -j RETURN
    - -A NM-MIRO-1c0ab3e1-http -s 198.18.0.3/32 -j RETURN
    - -A NM-MIRO-1c0ab3e1-http -p tcp -m tcp --dport 80 -j TEE --gateway 198.18.0.3
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netmagic.netfilter.plugins.module_utils._model import MIRROR, build_mirror
from ansible_collections.netmagic.netfilter.plugins.module_utils._preflight import check_gateway
from ansible_collections.netmagic.netfilter.plugins.module_utils._reconcile import MIRROR_OPTIONS, MIRROR_REQUIRED_IF, argument_spec, reconcile


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(**MIRROR_OPTIONS),
        required_if=MIRROR_REQUIRED_IF,
        supports_check_mode=True,
    )
    preflight = None if module.params["force"] else check_gateway
    result = reconcile(module, MIRROR, build_mirror, preflight)[0]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
