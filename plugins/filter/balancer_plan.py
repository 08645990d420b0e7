# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: balancer_plan
short_description: The load_balancer role's services as the balancers of one netfilter_apply call
description:
  - Resolves the backends of every service (literal C(backends), or C(backends_from) an inventory group by host
    variable names or a JMESPath query) and checks every service with the validators of
    M(netmagic.netfilter.dnat_balancer), so the role refuses what the module refuses, with the same reason.
  - A backend host without its address variable is reached by its inventory name, an address or a name resolved
    once, on the controller (the first address of the VIP's family, in sorted order).
  - Returns every problem, each naming the variable it comes from, instead of failing, so a role can report all of them.
version_added: 0.2.0
author:
  - netmagic.netfilter maintainers (@netmagic)
positional: groups, hostvars, variable, default_group, engine
options:
  _input:
    description: The services, as O(netmagic.netfilter.load_balancer#role:main:load_balancer_services) takes them.
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
  variable:
    description: The variable the services come from, for the messages.
    type: str
    default: load_balancer_services
  default_group:
    description: The group C(backends_from) draws from when it names none.
    type: str
    default: backends
  engine:
    description: The engine of the services that name none; all of a host's services must come to one engine.
    type: str
    default: auto
requirements:
  - jmespath (on the controller), for C(backends_from.query)
"""

EXAMPLES = r"""
- name: Resolve and check the services
  ansible.builtin.set_fact:
    plan: "{{ services | netmagic.netfilter.balancer_plan(groups, hostvars) }}"
  vars:
    services:
      - {name: web, vip: 198.18.0.100, port: 80, backends_from: {group: backends, port_var: app_port}}
"""

RETURN = r"""
_value:
  description:
    - C(balancers), the items for O(netmagic.netfilter.netfilter_apply#module:balancers) with canonical addresses and
      every backend as C(address), C(port), C(weight); C(forwarding), the sysctl keys the present services need on;
      C(engine), the one engine of the services; C(tcp_endpoints), each backend C(address) and C(port) of the TCP
      services once, with the C(services) it serves; C(conntrack), whether a present service is UDP (the
      C(conntrack) program then deletes stale flows after a change);
      C(problems), every problem found (empty when there is none).
  type: dict
"""

from ansible_collections.netmagic.netfilter.plugins.module_utils._plan import PlanError, balancer_plan as plan


def balancer_plan(services, groups, hostvars, variable="load_balancer_services", default_group="backends", engine="auto"):
    try:
        return dict(plan(services, groups, hostvars, variable, default_group, engine=engine), problems=[])
    except PlanError as error:
        return {"balancers": [], "forwarding": [], "engine": engine, "tcp_endpoints": [], "conntrack": False, "problems": error.problems}


class FilterModule:
    def filters(self):
        return {"balancer_plan": balancer_plan}
