#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: netfilter_info
short_description: Report the mirrors and balancers this collection owns on a host, their counters and drift
version_added: 0.2.0
description:
  - Lists every mirror (M(netmagic.netfilter.tee_mirror)) and balancer
    (M(netmagic.netfilter.dnat_balancer)) the collection owns on the host, found from the jumps
    whose comment is exactly C(netmagic:KIND:NAME) and from the chains whose whole name is one such an object gives its
    chains (C(NM-ROLE-TOKEN-NAME), the token being 64 bits of a hash of kind and name).
  - Reports each owned rule with its packet and byte counters, so the number of mirrored packets
    (the C(TEE) rules) and the split of new connections over backends (the C(DNAT) rules of the
    C(NM-SEP-) chains) can be read off.
  - Reports drift. Always checked are jumps tagged twice, tagged jumps whose chain is gone, owned
    chains of an object that no tagged jump reaches, and owned chains of no object at all. When
    O(mirrors) or O(balancers) is given, each object's owned rules are also compared with the
    rendering of its definition.
  - For the kinds not given, each object is compared with what the collection last applied on this host, which every
    run that changes rules records under C(/var/lib/netmagic/netfilter) (one file per engine backend and network
    namespace). A rule deleted, added or changed inside the object's chains, a jump removed, or every rule of the
    object gone (C(object_missing)) is reported with the object's name, without any definition.
  - Changes nothing; a run of M(netmagic.netfilter.tee_mirror) or
    M(netmagic.netfilter.dnat_balancer) for the object repairs drift.
author:
  - netmagic.netfilter maintainers (@netmagic)
extends_documentation_fragment:
  - netmagic.netfilter.netfilter.items
options:
  engine:
    description:
      - The netfilter engine to read, as for the rule-managing modules.
      - C(auto) picks the engine those modules would pick on this host.
      - C(python-iptables) reads the legacy x_tables as C(iptables-legacy) does, and needs no
        library for it.
    type: str
    choices: [auto, iptables-nft, iptables-legacy, nftables, python-iptables]
    default: auto
  mirrors:
    description:
      - The mirrors this host should hold, as O(netmagic.netfilter.netfilter_apply#module:mirrors) takes
        them (the options of M(netmagic.netfilter.tee_mirror) that shape rules, plus C(name),
        C(state) and C(force)), validated as that module validates them.
      - An item with C(state=absent) expects that mirror not to be there. An owned mirror not in
        the list is reported as drift (C(object_unexpected)).
      - Unset, mirrors are not compared with definitions.
  balancers:
    description:
      - The balancers this host should hold, as O(netmagic.netfilter.netfilter_apply#module:balancers)
        takes them; otherwise as O(mirrors).
notes:
  - Needs root on the managed host, and the tools of the engine read (C(iptables-save) of that
    backend, or C(nft)).
  - The iptables engines read counters with C(iptables-save -c). The C(nftables) engine writes no
    counter statements, so its rules report C(packets) and C(bytes) as null and RV(counters) is
    false, unless counter statements were added by hand.
  - Counters start at zero when a chain is written, so they count since the object's rules last
    changed.
attributes:
  check_mode:
    support: full
    description: Can run in check_mode and return changed status prediction without modifying the host.
    details: The module never changes the host, in check mode or not.
  diff_mode:
    support: none
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
seealso:
  - module: netmagic.netfilter.tee_mirror
  - module: netmagic.netfilter.dnat_balancer
"""

EXAMPLES = r"""
- name: Read what the collection owns, with counters
  netmagic.netfilter.netfilter_info:
  register: netfilter

- name: Show how connections were split over the backends of balancer web
  ansible.builtin.debug:
    msg: "{{ item.chain }}: {{ item.packets }}"
  loop: "{{ (netfilter.balancers | selectattr('name', 'equalto', 'web') | first).rules }}"
  when: item.chain.startswith('NM-SEP-')

- name: Compare the host with its definitions and fail on drift
  netmagic.netfilter.netfilter_info:
    mirrors:
      - name: http
        gateway: 198.18.0.3
        ports: ["80"]
    balancers:
      - name: web
        vip: 198.18.0.100
        port: 80
        backends: [198.18.0.21, 198.18.0.22]
  register: checked
  failed_when: checked.drifted
"""

RETURN = r"""
changed:
  description: Always false.
  returned: always
  type: bool
engine:
  description: The engine read, after C(auto) was resolved.
  returned: success
  type: str
  sample: iptables-nft
counters:
  description: Whether the rules' counters could be read (false for C(nftables) rules without counter statements).
  returned: success
  type: bool
mirrors:
  description: Every mirror the collection owns on the host.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The mirror's name.
      type: str
    families:
      description: IP families (4, 6) it has rules in.
      type: list
      elements: int
    chains:
      description: Its owned chains.
      type: list
      elements: str
    rules:
      description: Its tagged jumps and the rules of its chains, in the order the host lists them.
      type: list
      elements: dict
      contains:
        family:
          description: IP family, 4 or 6.
          type: int
        table:
          description: The iptables table (C(mangle), C(nat)) or, for nftables, C(netmagic).
          type: str
        chain:
          description: The chain holding the rule.
          type: str
        rule:
          description: The rule, as C(iptables-save) prints it or, for nftables, as C(CHAIN - rule) in nft syntax.
          type: str
        packets:
          description: Packets the rule matched; null when the rule has no counter.
          type: int
        bytes:
          description: Bytes the rule matched; null when the rule has no counter.
          type: int
    drift:
      description: The findings of RV(drift) about this mirror.
      type: list
      elements: dict
  sample:
    - name: http
      families: [4]
      chains: [NM-MIRO-b02397ee0500cf23-htt]
      rules:
        - {family: 4, table: mangle, chain: OUTPUT, packets: 12, bytes: 824,
           rule: '-A OUTPUT -m comment --comment "netmagic:mirror:http" -j NM-MIRO-b02397ee0500cf23-htt'}
        - {family: 4, table: mangle, chain: NM-MIRO-b02397ee0500cf23-htt, packets: 6, bytes: 412,
           rule: '-A NM-MIRO-b02397ee0500cf23-htt -p tcp -m tcp --dport 80 -j TEE --gateway 198.18.0.3'}
      drift: []
balancers:
  description: Every balancer the collection owns on the host, as RV(mirrors); the C(DNAT) rule of each C(NM-SEP-) chain counts
    the new connections sent to that backend.
  returned: success
  type: list
  elements: dict
drift:
  description:
    - Every difference found. C(issue) is one of C(jump_duplicated), C(chain_missing) (a tagged jump's or a definition's chain
      is not there), C(jump_missing) (an owned chain no tagged jump reaches), C(chain_orphaned) (a chain named in the
      collection's exact grammar that no known object claims; C(object) is null; it is reported, never touched),
      C(foreign_jump) (a rule the collection does not own jumps into an owned chain, which blocks that chain's removal),
      and, against definitions, C(rule_missing), C(rule_added), C(rule_changed) (with the
      C(expected) rule), C(rules_reordered), C(chain_added), C(object_missing) and C(object_unexpected).
    - C(object) is C(KIND:NAME); C(chain), C(rule), C(expected), C(copies), C(family) and C(table) are given where they apply.
  returned: success
  type: list
  elements: dict
  sample:
    - {issue: rule_missing, object: "balancer:web", chain: NM-SEP-7c6509ab5641d564-1-we,
       rule: "-A NM-SEP-7c6509ab5641d564-1-we -p tcp -j DNAT --to-destination 198.18.0.52:80"}
drifted:
  description: Whether RV(drift) lists anything.
  returned: success
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netmagic.netfilter.plugins.module_utils import _record as record
from ansible_collections.netmagic.netfilter.plugins.module_utils._host import AnsibleHost
from ansible_collections.netmagic.netfilter.plugins.module_utils._info import build_expected, host_info
from ansible_collections.netmagic.netfilter.plugins.module_utils._engines import ENGINE_NAMES, select_engine
from ansible_collections.netmagic.netfilter.plugins.module_utils._reconcile import fail_on_errors, item_specs


def main():
    module = AnsibleModule(
        argument_spec=dict(
            engine=dict(type="str", choices=list(ENGINE_NAMES), default="auto"),
            **item_specs(),
        ),
        supports_check_mode=True,
    )

    def run():
        expected = build_expected(module.params["mirrors"], module.params["balancers"])
        engine = select_engine(AnsibleHost(module), module.params["engine"])
        return host_info(engine, expected, record.load(engine.backend))

    module.exit_json(**fail_on_errors(module, run))


if __name__ == "__main__":
    main()
