# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: stale_tunnels
short_description: The host's tunnels to remote collectors that no mirror goes through any more
description:
  - From the host's VXLAN devices, the VNIs of the collection's tunnel devices (C(nmvx<vni>)) that no tunnel of the
    plan uses and that are not the host's own collector end (its C(mirror_collector_tunnel)). The
    P(netmagic.netfilter.mirror_sender#role) role removes them with M(netmagic.netfilter.vxlan_tunnel).
  - VXLAN devices under other names are not the collection's and never listed.
version_added: 0.2.0
author:
  - netmagic.netfilter maintainers (@netmagic)
positional: tunnels, this_host, hostvars
options:
  _input:
    description: The host's VXLAN devices, the parsed output of C(ip -j link show type vxlan).
    type: list
    elements: dict
    required: true
  tunnels:
    description: The tunnels of the plan (the C(tunnels) of M(netmagic.netfilter.mirror_plan#filter)).
    type: list
    elements: dict
    required: true
  this_host:
    description: The host (C(inventory_hostname)).
    type: str
    required: true
  hostvars:
    description: The inventory's host variables (C(hostvars)).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Remove the tunnels no mirror goes through any more
  netmagic.netfilter.vxlan_tunnel:
    vni: "{{ item }}"
    state: absent
  loop: "{{ links.stdout | from_json | netmagic.netfilter.stale_tunnels(plan.tunnels, inventory_hostname, hostvars) }}"
"""

RETURN = r"""
_value:
  description: The VNIs, in ascending order.
  type: list
  elements: int
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.netmagic.netfilter.plugins.module_utils._model import ValidationError
from ansible_collections.netmagic.netfilter.plugins.module_utils._plan import stale_tunnels as stale


def stale_tunnels(links, tunnels, this_host, hostvars):
    try:
        return stale(links, tunnels, this_host, hostvars)
    except ValidationError as error:
        raise AnsibleFilterError("stale_tunnels: %s: %r %s" % (error.parameter, error.value, error.reason)) from None


class FilterModule:
    def filters(self):
        return {"stale_tunnels": stale_tunnels}
