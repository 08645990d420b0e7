# Copyright (c) 2025 netmagic maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: systemd_argument
short_description: Quote a value as one argument of a systemd ExecStart line
description:
  - Returns the value as one double-quoted argument of a systemd C(ExecStart=) command line, the way
    systemd.service(5) ("Command lines") reads it back, so that the value stays exactly one
    argument, with nothing expanded.
  - Backslash and double quote are escaped with a backslash, C(%) is written C(%%) (specifiers)
    and C($) is written C($$) (environment variables).
  - Fails, naming O(variable), when the value holds a control character (newline, carriage
    return, tab, NUL, ...), since a newline would end the line and could add one of its own to the unit.
  - With O(pattern), also fails when the whole value does not match that regular expression.
version_added: 0.2.0
author:
  - netmagic.netfilter maintainers (@netmagic)
positional: variable, pattern
options:
  _input:
    description: The value; a string, or an integer.
    type: raw
    required: true
  variable:
    description: Name of the variable the value came from, for the error message.
    type: str
    default: value
  pattern:
    description: Regular expression the whole value must match (Python C(re.fullmatch)).
    type: str
"""

EXAMPLES = r"""
- name: A unit whose tcpdump filter stays one argument
  ansible.builtin.copy:
    dest: /etc/systemd/system/capture.service
    content: |
      [Service]
      ExecStart=/usr/bin/tcpdump -i {{ interface_argument }} {{ filter_argument }}
    mode: "0644"
  vars:
    interface_argument: "{{ capture_interface | netmagic.netfilter.systemd_argument('capture_interface', '[A-Za-z0-9_.:@-]{1,15}') }}"
    filter_argument: "{{ capture_filter | netmagic.netfilter.systemd_argument('capture_filter') }}"
    capture_interface: eth0
    # Rendered as "tcp port 80 and host 198.18.0.3"
    capture_filter: tcp port 80 and host 198.18.0.3
"""

RETURN = r"""
_value:
  description: The value, double-quoted and escaped for a systemd command line.
  type: str
"""

import re

from ansible.errors import AnsibleFilterError


def _is_control(char):
    return ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F


def systemd_argument(value, variable="value", pattern=None):
    """value as one double-quoted systemd command-line argument; AnsibleFilterError naming variable when it cannot be one."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise AnsibleFilterError("%s: %r is not a string" % (variable, value))
    text = str(value)
    control = [char for char in text if _is_control(char)]
    if control:
        raise AnsibleFilterError("%s: %r holds the control character %r, which would break the systemd unit's command line"
                                 % (variable, text, control[0]))
    if pattern is not None and not re.fullmatch(pattern, text):
        raise AnsibleFilterError("%s: %r does not match %s" % (variable, text, pattern))
    escaped = "".join("\\" + char if char in '\\"' else char * 2 if char in "%$" else char for char in text)
    return '"%s"' % escaped


class FilterModule:
    """systemd_argument: a value quoted as one argument of a systemd ExecStart line."""

    def filters(self):
        return {"systemd_argument": systemd_argument}
