# Copyright (c) 2025 netmagic maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: netns
short_description: Run tasks inside a network namespace on the controller
description:
  - Runs every command of a task inside a named Linux network namespace on the Ansible
    controller, through C(ip netns exec NAME /bin/sh -c COMMAND).
  - A network namespace isolates only the network stack (interfaces, addresses, routes,
    netfilter rules, C(net.*) sysctls). Processes see the controller's filesystem, users
    and processes, so a namespace is a cheap stand-in for a managed host in network labs.
  - File transfers are plain local copies, because the namespace shares the controller's
    filesystem.
author:
  - netmagic.netfilter maintainers (@netmagic)
version_added: 0.1.0
options:
  remote_addr:
    description:
      - Namespace name used when O(netns_name) is not set.
    type: string
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
  netns_name:
    description:
      - Name of the network namespace, as listed by C(ip netns list).
      - It must start with a letter or digit and contain only letters, digits, C(.),
        C(_) and C(-), at most 255 characters.
      - When not set, O(remote_addr) is used.
    type: string
    vars:
      - name: ansible_netns_name
  executable:
    description:
      - Shell that runs the command inside the namespace.
    type: string
    default: /bin/sh
    ini:
      - section: defaults
        key: executable
    env:
      - name: ANSIBLE_EXECUTABLE
    vars:
      - name: ansible_executable
extends_documentation_fragment:
  - connection_pipelining
notes:
  - Needs root on the controller (C(ip netns exec) needs C(CAP_SYS_ADMIN)).
  - The namespace shares the controller's filesystem, users and processes; only the
    network stack is separate. Tasks that change files change them on the controller.
  - The namespace must exist, for example created with C(ip netns add NAME); a missing
    namespace makes the host unreachable.
  - The remote user is ignored; commands run as the user running Ansible.
  - Privilege escalation methods that prompt for a password are not supported.
"""

EXAMPLES = r"""
# inventory.yml
# all:
#   hosts:
#     collector:
#       ansible_connection: netmagic.netfilter.netns
#       ansible_netns_name: nm-lab1-collector

- name: Show the addresses a namespace has
  hosts: collector
  gather_facts: false
  tasks:
    - name: List addresses
      ansible.builtin.command: ip -o addr
      changed_when: false
"""

import os
import re
import shutil
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()

# Where iproute2 keeps the bind mounts of named namespaces.
NETNS_RUN_DIR = "/run/netns"

# A leading letter or digit keeps a name from being read as an option of `ip`;
# no "/" keeps it a plain file name under NETNS_RUN_DIR.
_NETNS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")


def validate_netns_name(name):
    """Return name if it is a safe network namespace name, else raise AnsibleError."""
    if not isinstance(name, str) or not _NETNS_NAME.fullmatch(name):
        raise AnsibleError(f"invalid network namespace name: {name!r}")
    return name


def netns_exec_argv(ip_path, netns, executable, cmd):
    """argv that runs the shell command cmd with executable inside netns (no local shell)."""
    return [ip_path, "netns", "exec", validate_netns_name(netns), executable, "-c", to_text(cmd)]


class Connection(ConnectionBase):
    """Commands in a network namespace of the controller; files copied locally."""

    transport = "netmagic.netfilter.netns"
    has_pipelining = True
    has_tty = False
    default_user = "root"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._ip_path = None

    @property
    def netns(self):
        """Namespace this connection targets: netns_name, else remote_addr."""
        return validate_netns_name(self.get_option("netns_name") or self.get_option("remote_addr"))

    def _connect(self):
        if self._connected:
            return self
        if os.geteuid() != 0:
            raise AnsibleConnectionFailure("the netns connection needs root on the controller")
        self._ip_path = shutil.which("ip")
        if self._ip_path is None:
            raise AnsibleConnectionFailure("the netns connection needs iproute2's ip command")
        if not os.path.exists(os.path.join(NETNS_RUN_DIR, self.netns)):
            raise AnsibleConnectionFailure(f"network namespace {self.netns!r} does not exist")
        display.vvv(f"ESTABLISH NETNS CONNECTION TO {self.netns}", host=self.netns)
        self._connected = True
        return self

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        argv = netns_exec_argv(self._ip_path, self.netns, self.get_option("executable"), cmd)
        display.vvv(f"EXEC {argv}", host=self.netns)
        proc = subprocess.Popen(
            [to_bytes(arg, errors="surrogate_or_strict") for arg in argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        stdout, stderr = proc.communicate(in_data)
        return proc.returncode, stdout, stderr

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        display.vvv(f"PUT {in_path} TO {out_path}", host=self.netns)
        self._copy(in_path, out_path)

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        display.vvv(f"FETCH {in_path} TO {out_path}", host=self.netns)
        self._copy(in_path, out_path)

    @staticmethod
    def _copy(in_path, out_path):
        """Local copy: a namespace sees the controller's filesystem."""
        b_in_path = to_bytes(in_path, errors="surrogate_or_strict")
        if not os.path.exists(b_in_path):
            raise AnsibleFileNotFound(f"file or module does not exist: {in_path}")
        try:
            shutil.copyfile(b_in_path, to_bytes(out_path, errors="surrogate_or_strict"))
        except shutil.SameFileError as ex:
            raise AnsibleError(f"failed to copy: {in_path} and {out_path} are the same") from ex
        except OSError as ex:
            raise AnsibleError(f"failed to copy {in_path} to {out_path}") from ex

    def reset(self):
        """Nothing persists between commands, so there is nothing to reset."""

    def close(self):
        self._connected = False
