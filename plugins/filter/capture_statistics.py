# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: capture_statistics
short_description: The counts of tcpdump's last report in its log
description:
  - tcpdump reports how many packets it captured, how many its filter received and how many the kernel dropped, on
    C(SIGUSR1) (one line) and when it stops (a line each). Returns the last report's counts and how many reports the
    text holds.
version_added: 0.2.0
author:
  - netmagic.netfilter maintainers (@netmagic)
options:
  _input:
    description: tcpdump's log (its standard error, or the journal of its unit with C(--output cat)).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Counts of the capture service
  ansible.builtin.command: journalctl --unit netmagic-mirror-capture.service --output cat
  register: capture_log
  changed_when: false

- name: Show them
  ansible.builtin.debug:
    msg: "{{ capture_log.stdout | netmagic.netfilter.capture_statistics }}"
"""

RETURN = r"""
_value:
  description: The counts; only C(reports), 0, when the text holds no report.
  type: dict
  contains:
    reports:
      description: How many reports the text holds.
      type: int
    captured:
      description: Packets tcpdump wrote.
      type: int
    received_by_filter:
      description: Packets that matched the filter.
      type: int
    dropped_by_kernel:
      description: Packets the kernel dropped because the capture buffer was full.
      type: int
    dropped_by_interface:
      description: Packets the interface dropped, where libpcap knows them; else 0.
      type: int
"""

from ansible_collections.netmagic.netfilter.plugins.module_utils._capture import capture_statistics


class FilterModule:
    def filters(self):
        return {"capture_statistics": capture_statistics}
