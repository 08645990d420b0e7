# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: without_backends
short_description: Balancer items with the backends that failed a health check left out
description:
  - Leaves the given backends out of the TCP balancers among the items of
    O(netmagic.netfilter.netfilter_apply#module:balancers); fails naming the services left with none.
version_added: 0.2.0
author:
  - netmagic.netfilter maintainers (@netmagic)
positional: down
options:
  _input:
    description: The balancer items, each backend a dict with C(address) and C(port).
    type: list
    elements: dict
    required: true
  down:
    description: The backends to leave out, each a dict with C(address) and C(port).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Leave out the backends that did not answer
  ansible.builtin.set_fact:
    balancers: "{{ balancers | netmagic.netfilter.without_backends([{'address': '198.18.0.21', 'port': 80}]) }}"
"""

RETURN = r"""
_value:
  description: The items, without those backends.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.netmagic.netfilter.plugins.module_utils._plan import PlanError, without_backends as leave_out


def without_backends(balancers, down):
    try:
        return leave_out(balancers, down)
    except PlanError as error:
        raise AnsibleFilterError(str(error)) from None


class FilterModule:
    def filters(self):
        return {"without_backends": without_backends}
