# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: announcement_commands
short_description: The mirror_collector role's announcements, as arping's arguments, each checked
description:
  - A collector never transmits, so a switch forgets its MAC after the ageing time (300 s by default) and from then on
    floods every clone to every port of the segment. One frame from the collector makes the switches learn it again.
  - Returns, for each IPv4 address of each of the collector's active links (loopback and the tunnel devices C(nmvx*)
    aside), arping's arguments for one unsolicited ARP from that address (C(-U -c 1 -I DEVICE ADDRESS)), a broadcast
    every switch learns the collector's MAC from.
  - Only interface names that fully match their pattern and canonical addresses are returned.
version_added: 0.2.0
author:
  - netmagic.netfilter maintainers (@netmagic)
options:
  _input:
    description: The collector's facts (C(ansible_facts)), with the network subset.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: The announcements of this collector
  ansible.builtin.set_fact:
    announcements: "{{ ansible_facts | netmagic.netfilter.announcement_commands }}"
"""

RETURN = r"""
_value:
  description: One list of arping's arguments per address.
  type: list
  elements: list
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.netmagic.netfilter.plugins.module_utils._capture import announcement_arguments
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import ValidationError


def announcement_commands(facts):
    try:
        return announcement_arguments(facts)
    except ValidationError as problem:
        raise AnsibleFilterError("%s: %r %s" % (problem.parameter, problem.value, problem.reason)) from None


class FilterModule:
    def filters(self):
        return {"announcement_commands": announcement_commands}
