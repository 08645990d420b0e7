# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: capture_command
short_description: The mirror_collector role's tcpdump arguments, each checked
description:
  - Checks the role's capture settings and returns tcpdump's arguments (without the program), for the capture unit.
  - Only names that fully match their pattern and whole numbers are returned; the filter is free text without control
    characters, which the unit's template quotes.
  - A buffer of C(auto) holds a quarter of a second at the line rate of the fastest link tcpdump listens on (from the
    host's network facts; a link that reports no speed counts as 10 Gbit/s), at least 32 and at most 4096 MiB.
  - Fails with a message naming the variable of the first value that cannot be used.
version_added: 0.2.0
author:
  - netmagic.netfilter maintainers (@netmagic)
positional: facts
options:
  _input:
    description:
      - The settings, keyed by the role variables' names without C(mirror_collector_capture_) (C(interface),
        C(filter), C(directory), C(file_size_mb), C(file_count), C(user), C(buffer_mb)).
    type: dict
    required: true
  facts:
    description: The collector's facts (C(ansible_facts)), for the links' speeds.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: The capture's command line
  ansible.builtin.set_fact:
    capture_arguments: >-
      {{ {'interface': 'eth1', 'filter': 'tcp port 80', 'directory': '/var/lib/capture', 'file_size_mb': 100,
          'file_count': 10, 'user': 'tcpdump', 'buffer_mb': 'auto'} | netmagic.netfilter.capture_command(ansible_facts) }}
"""

RETURN = r"""
_value:
  description: tcpdump's arguments, in order.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.netmagic.netfilter.plugins.module_utils._capture import capture_argv
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import ValidationError


def capture_command(settings, facts=None):
    try:
        return capture_argv(settings, facts)
    except ValidationError as problem:
        raise AnsibleFilterError("%s: %r %s" % (problem.parameter, problem.value, problem.reason)) from None


class FilterModule:
    def filters(self):
        return {"capture_command": capture_command}
