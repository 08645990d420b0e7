#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: netfilter_apply
short_description: Apply many TEE mirrors and DNAT balancers in one atomic change
version_added: 0.2.0
description:
  - Brings every listed mirror and balancer to its desired state in one run. The host's rules are
    read once, and every change is written in one C(iptables-restore --noflush) per family (one
    C(nft -j -f) transaction for O(engine=nftables)), so the host goes from the old set of objects to
    the new one atomically.
  - Each item takes the options of M(netmagic.netfilter.tee_mirror) or
    M(netmagic.netfilter.dnat_balancer) and writes exactly the rules that module writes, so objects
    can move between this module and those at any time.
  - Use it where a host has many objects; a run per object reads the whole ruleset each time, which
    grows with the number of services.
  - Objects not listed are left as they are, unless their kind is in O(exclusive).
author:
  - netmagic.netfilter maintainers (@netmagic)
extends_documentation_fragment:
  - netmagic.netfilter.netfilter
  - netmagic.netfilter.netfilter.items
options:
  exclusive:
    description:
      - Kinds this run owns exclusively on the host, C(mirrors) and/or C(balancers).
      - Every object of a listed kind that the collection owns on the host (found by its tagged jumps) and that the
        run does not list is removed, in the same atomic change as the rest. Rules the collection does not own are
        never touched.
      - Check mode and C(--diff) show these removals; RV(removed) lists them.
      - Empty, objects not listed are left as they are.
    type: list
    elements: str
    choices: [balancers, mirrors]
    default: []
  mirrors:
    description:
      - TEE mirrors, each with the options of M(netmagic.netfilter.tee_mirror). Names are unique within the list.
    default: []
  balancers:
    description:
      - DNAT balancers, each with the options of M(netmagic.netfilter.dnat_balancer). Names are unique within the list.
    default: []
notes:
  - Every listed item is validated, and every mirror's gateway checked, before anything is read or
    written; an error names the item (C(balancers[2].port)) and leaves the host unchanged.
  - With O(engine=python-iptables), IPv4 and IPv6 objects that use the same target (two mirrors,
    say) cannot be written in one run; the module refuses before any change.
seealso:
  - module: netmagic.netfilter.tee_mirror
  - module: netmagic.netfilter.dnat_balancer
  - module: netmagic.netfilter.netfilter_info
"""

EXAMPLES = r"""
- name: A host's balancers and mirror, applied together
  netmagic.netfilter.netfilter_apply:
    balancers:
      - name: web
        vip: 198.18.0.100
        port: 80
        backends: [198.18.0.21, 198.18.0.22]
      - name: api
        vip: 198.18.0.100
        port: 443
        backends:
          - {address: 198.18.0.21, port: 8443, weight: 2}
          - 198.18.0.22:8443
    mirrors:
      - name: http
        gateway: 198.18.0.3
        ports: ["80"]

- name: Exactly these balancers on the host; any other balancer the collection owns there goes
  netmagic.netfilter.netfilter_apply:
    exclusive: [balancers]
    balancers:
      - {name: web, vip: 198.18.0.100, port: 80, backends: [198.18.0.21, 198.18.0.22]}

- name: Services from inventory, one run for all of them; retired ones listed as absent
  netmagic.netfilter.netfilter_apply:
    balancers: "{{ services + (retired_services | map('combine', {'state': 'absent'}) | list) }}"
  vars:
    services:
      - {name: web, vip: 198.18.0.100, port: 80, backends: [198.18.0.21, 198.18.0.22]}
    retired_services:
      - {name: old-web}
"""

RETURN = r"""
engine:
  description: The engine that holds the objects.
  returned: success
  type: str
  sample: iptables-nft
mirrors:
  description:
    - One entry per listed mirror, in the order given. The rules themselves are left out, as a host
      with many objects would return tens of thousands of lines; M(netmagic.netfilter.netfilter_info)
      lists them, and diff mode shows what changed.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The mirror's name.
      type: str
    state:
      description: Its state as listed.
      type: str
    changed:
      description: Whether this run changed its rules, here or under another engine.
      type: bool
  sample: [{name: http, state: present, changed: true}]
balancers:
  description: One entry per listed balancer, in the order given, as RV(mirrors).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The balancer's name.
      type: str
    state:
      description: Its state as listed.
      type: str
    changed:
      description: Whether this run changed its rules, here or under another engine.
      type: bool
  sample: [{name: web, state: present, changed: false}, {name: old-web, state: absent, changed: true}]
removed:
  description: The objects removed because their kind is in O(exclusive) and the run does not list them.
  returned: success
  type: list
  elements: dict
  contains:
    kind:
      description: C(mirror) or C(balancer).
      type: str
    name:
      description: The object's name.
      type: str
  sample: [{kind: balancer, name: old-web}]
removed_from:
  description:
    - Other engines that held rules of listed objects, which this run removed there (see O(engine)).
  returned: success
  type: list
  elements: str
  sample: [iptables-legacy]
persisted:
  description: Where the owned rules were saved, with O(persist=true); empty otherwise.
  returned: success
  type: dict
  sample: {path: /etc/netmagic/netfilter, unit: /etc/netmagic/netfilter/netmagic-netfilter-restore.service}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netmagic.netfilter.plugins.module_utils._reconcile import objects_argument_spec, reconcile_objects


def main():
    module = AnsibleModule(argument_spec=objects_argument_spec(), supports_check_mode=True)
    module.exit_json(**reconcile_objects(module))


if __name__ == "__main__":
    main()
