# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: info_summary
short_description: One line for a host's netfilter_info result
description:
  - Summarises a M(netmagic.netfilter.netfilter_info) result as one line - the engine, each mirror with the clones it
    sent, each balancer with the new connections it balanced (C(?) where the rules hold no counters), and every
    drift finding.
version_added: 0.2.0
author:
  - netmagic.netfilter maintainers (@netmagic)
options:
  _input:
    description: The registered result of M(netmagic.netfilter.netfilter_info).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Read what the collection owns
  netmagic.netfilter.netfilter_info:
  register: owned

- name: Say it in one line
  ansible.builtin.debug:
    msg: "{{ owned | netmagic.netfilter.info_summary }}"
"""

RETURN = r"""
_value:
  description: "The line, such as C(engine iptables-nft; mirrors: http (120 clones); balancers: web (30 connections); drift: none)."
  type: str
"""

from ansible_collections.netmagic.netfilter.plugins.module_utils._info import summary


class FilterModule:
    def filters(self):
        return {"info_summary": summary}
