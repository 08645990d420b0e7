# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: mirror_plan
short_description: The mirror_sender role's mirrors as the mirrors of one netfilter_apply call
description:
  - Gives every present mirror its collector (the first host of the collector group unless it names a C(gateway)),
    and checks every mirror with the validators of M(netmagic.netfilter.tee_mirror), so the role refuses what the
    module refuses, with the same reason.
  - A collector without its address variable is reached by its inventory name, an address or a name resolved once,
    on the controller.
  - A collector with a tunnel (its C(mirror_collector_tunnel)) is reached through it. The mirror's gateway becomes the
    collector's inner address, its C(gateway_interface) the tunnel's device, and the collector's own address joins its
    C(exclude).
  - Returns every problem, each naming the variable it comes from, instead of failing.
version_added: 0.2.0
author:
  - netmagic.netfilter maintainers (@netmagic)
positional: groups, hostvars, this_host, collector_group, address_var, engine
options:
  _input:
    description: The mirrors, as O(netmagic.netfilter.mirror_sender#role:main:mirror_sender_mirrors) takes them.
    type: list
    elements: dict
    required: true
  groups:
    description: The inventory's groups (C(groups)).
    type: dict
    required: true
  hostvars:
    description: The inventory's host variables (C(hostvars)).
    type: dict
    required: true
  this_host:
    description: The sender (C(inventory_hostname)), which may not be its own collector.
    type: str
    required: true
  collector_group:
    description: The inventory group of the collectors.
    type: str
    default: collectors
  address_var:
    description: The host variable, or dotted path, that holds a collector's address.
    type: str
    default: ansible_host
  engine:
    description: The engine of the mirrors that name none; all of a host's mirrors must come to one engine.
    type: str
    default: auto
  forwarding_read:
    description:
      - The results of a looped M(ansible.builtin.slurp) of the forwarding settings under C(/proc/sys) on collectors
        that did not publish them, each with the C(item) it read (a C(collector) and a C(key)).
      - A collector found forwarding, published or read, is a problem.
    type: list
    elements: dict
    default: []
"""

EXAMPLES = r"""
- name: Give each mirror its collector and check the mirrors
  ansible.builtin.set_fact:
    plan: "{{ mirrors | netmagic.netfilter.mirror_plan(groups, hostvars, inventory_hostname) }}"
  vars:
    mirrors:
      - {name: http, ports: ["80"]}
"""

RETURN = r"""
_value:
  description:
    - C(mirrors), the items for O(netmagic.netfilter.netfilter_apply#module:mirrors), each present one with its
      C(gateway); C(forwarding), one C(collector), C(gateway), C(key), C(value) per collector and sysctl key to check,
      C(value) being what the P(netmagic.netfilter.mirror_collector#role) role published, else what O(forwarding_read)
      read, else null; C(tunnels), the definitions for M(netmagic.netfilter.vxlan_tunnel) of this host's end of each
      tunnel to a collector that has one (its C(mirror_collector_tunnel)), whose mirrors then go through it; C(problems),
      every problem found, a collector that forwards among them; C(engine), the one engine of the mirrors.
  type: dict
"""

from ansible_collections.netmagic.netfilter.plugins.module_utils._plan import PlanError, mirror_plan as plan


def mirror_plan(mirrors, groups, hostvars, this_host, collector_group="collectors", address_var="ansible_host", engine="auto",
                forwarding_read=()):
    try:
        return dict(plan(mirrors, groups, hostvars, this_host, collector_group, address_var, engine=engine,
                         forwarding_read=forwarding_read), problems=[])
    except PlanError as error:
        return {"mirrors": [], "forwarding": [], "tunnels": [], "engine": engine, "problems": error.problems}


class FilterModule:
    def filters(self):
        return {"mirror_plan": mirror_plan}
