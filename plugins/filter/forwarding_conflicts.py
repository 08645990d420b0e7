# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: forwarding_conflicts
short_description: Why a host cannot be both a collector and a balancer
description:
  - A collector keeps forwarding off so that it never passes mirrored packets on; a balancer needs it on. Returns a
    message for a host that is in the collector group and has present balancer services, else an empty list.
version_added: 0.2.0
author:
  - netmagic.netfilter maintainers (@netmagic)
positional: services, collector_hosts
options:
  _input:
    description: The host (C(inventory_hostname)).
    type: str
    required: true
  services:
    description: The host's balancer services (O(netmagic.netfilter.load_balancer#role:main:load_balancer_services)).
    type: list
    elements: dict
    required: true
  collector_hosts:
    description: The hosts of the collector group.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Refuse a host that would forward and must not
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems | join('; ') }}"
  vars:
    problems: "{{ inventory_hostname | netmagic.netfilter.forwarding_conflicts(load_balancer_services, groups['collectors']) }}"
"""

RETURN = r"""
_value:
  description: The messages, empty when there is no conflict.
  type: list
  elements: str
"""

from ansible_collections.netmagic.netfilter.plugins.module_utils._plan import forwarding_conflicts


class FilterModule:
    def filters(self):
        return {"forwarding_conflicts": forwarding_conflicts}
