#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vxlan_tunnel
short_description: One end of a VXLAN tunnel that carries mirrored traffic to remote collectors
version_added: 0.2.0
description:
  - Brings this host's end of a VXLAN tunnel to its definition, so that
    M(netmagic.netfilter.tee_mirror) can clone traffic to a collector beyond a router (TEE reaches
    only on-link gateways). The device is C(nmvx<vni>); at a collector it holds the inner
    O(address), at a sender it knows the collectors (O(peers)).
  - A collector's end learns nothing and has no far end, so it never sends a packet into the
    tunnel. A sender's end knows each collector by a permanent neighbour entry (the inner
    address to the MAC of the collector's device, which both ends derive from that address) and
    a permanent forwarding entry (that MAC to the collector's underlay address), so it never
    asks either; it holds no address of its own.
  - The device's MTU is at least the largest of the host's other links, so the kernel never
    drops a clone of a full-size packet (TEE clones carry DF) nor tells a production peer to
    send smaller packets. Over an underlay of the same MTU the tunnel's outer packets are then
    fragmented; an underlay 50 bytes larger avoids that.
  - Changes only the device C(nmvx<vni>) and what it holds; a second run with the same
    definition changes nothing.
  - The P(netmagic.netfilter.mirror_collector#role) and P(netmagic.netfilter.mirror_sender#role)
    roles build both ends from the inventory (a collector's C(mirror_collector_tunnel)).
author:
  - netmagic.netfilter maintainers (@netmagic)
options:
  vni:
    description: The tunnel's VXLAN network identifier (1 to 16777215); the device is C(nmvx) and the VNI.
    type: int
    required: true
  port:
    description: The UDP port of the tunnel, at both ends.
    type: int
    default: 4789
  address:
    description:
      - At a collector, its inner address with the inner network's prefix length, such as
        C(198.18.250.1/24), the address senders give M(netmagic.netfilter.tee_mirror) as the
        gateway. IPv4 or IPv6.
      - Exclusive with O(peers).
    type: str
  peers:
    description:
      - At a sender, the collectors the tunnel reaches. Exclusive with O(address).
    type: list
    elements: dict
    default: []
    suboptions:
      address:
        description: The collector's inner address (its O(address) without the prefix length).
        type: str
        required: true
      remote:
        description: The collector's underlay IPv4 address, routed from this host.
        type: str
        required: true
  local:
    description: The underlay IPv4 address of this host the tunnel sends from or listens on; unset, any.
    type: str
  mtu:
    description:
      - The device's MTU (1280 to 65535), at least the largest MTU of the host's other links;
        C(auto) is that MTU.
    type: raw
    default: auto
  state:
    description:
      - C(absent) removes the device and everything it holds, and the unit of O(persist) from
        O(persist_path) and systemd when there is one.
    type: str
    choices: [present, absent]
    default: present
  persist:
    description:
      - Keep the device across reboots. Writes the unit C(netmagic-vxlan-<vni>.service) into
        O(persist_path) and, with O(persist_service), installs and enables it. At boot it builds
        the device as defined (with the MTU of this run) before the network comes up and before
        the unit of M(netmagic.netfilter.netfilter_apply)'s O(netmagic.netfilter.netfilter_apply#module:persist)
        restores the owned rules, so that a persisted mirror through the tunnel finds its device
        (nftables refuses a whole ruleset that names a device that does not exist).
      - A mirror persisted through a tunnel needs the tunnel persisted too.
      - V(false) leaves a unit written before as it is; O(state=absent) removes it.
    type: bool
    default: false
  persist_path:
    description:
      - The directory the unit is written to (as O(netmagic.netfilter.netfilter_apply#module:persist_path),
        with the same checks).
    type: path
    default: /etc/netmagic/netfilter
  persist_service:
    description:
      - Install the unit into C(/etc/systemd/system) and enable it. Skipped where systemd is
        not running (such as a container), where the unit is only written to O(persist_path).
    type: bool
    default: true
notes:
  - Needs the C(ip) and C(bridge) commands (iproute2) and a kernel with VXLAN.
  - A collector needs UDP O(port) let in by its firewall.
  - Without O(persist) the device does not survive a reboot; run the role again after one.
    Mirrors through a missing device send no clone.
seealso:
  - module: netmagic.netfilter.tee_mirror
"""

EXAMPLES = r"""
- name: A collector's end of tunnel 4242
  netmagic.netfilter.vxlan_tunnel:
    vni: 4242
    address: 198.18.250.1/24

- name: A sender's end, to that collector at 198.19.2.12
  netmagic.netfilter.vxlan_tunnel:
    vni: 4242
    peers:
      - {address: 198.18.250.1, remote: 198.19.2.12}

- name: A sender's end that is built again at boot, before the persisted mirrors are restored
  netmagic.netfilter.vxlan_tunnel:
    vni: 4242
    peers:
      - {address: 198.18.250.1, remote: 198.19.2.12}
    persist: true

- name: Remove the tunnel (and its unit, if it was persisted)
  netmagic.netfilter.vxlan_tunnel:
    vni: 4242
    state: absent
"""

RETURN = r"""
device:
  description: The tunnel's device.
  returned: always
  type: str
  sample: nmvx4242
mtu:
  description: The device's MTU, as set or to be set; null after removal.
  returned: always
  type: int
  sample: 1500
commands:
  description: The commands run (in check mode, that would run), in order; empty when nothing changed.
  returned: always
  type: list
  elements: list
  sample: [[ip, link, add, nmvx4242, mtu, "1500", type, vxlan, id, "4242", dstport, "4789", nolearning]]
persisted:
  description: With O(persist=true), the unit written; empty otherwise.
  returned: always
  type: dict
  contains:
    unit:
      description: The unit's path under O(persist_path).
      type: str
      sample: /etc/netmagic/netfilter/netmagic-vxlan-4242.service
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netmagic.netfilter.plugins.module_utils._host import AnsibleHost, EngineError
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import ValidationError
from ansible_collections.netmagic.netfilter.plugins.module_utils._persist import DEFAULT_PATH, validate_persist_path
from ansible_collections.netmagic.netfilter.plugins.module_utils._tunnel import build_tunnel, converge_tunnel


def main():
    module = AnsibleModule(
        argument_spec=dict(
            vni=dict(type="int", required=True),
            port=dict(type="int", default=4789),
            address=dict(type="str"),
            peers=dict(type="list", elements="dict", default=[],
                       options=dict(address=dict(type="str", required=True), remote=dict(type="str", required=True))),
            local=dict(type="str"),
            mtu=dict(type="raw", default="auto"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            persist=dict(type="bool", default=False),
            persist_path=dict(type="path", default=DEFAULT_PATH),
            persist_service=dict(type="bool", default=True),
        ),
        mutually_exclusive=[("address", "peers")],
        supports_check_mode=True,
    )
    try:
        tunnel = build_tunnel(module.params)
        persist = None
        if module.params["persist"] or module.params["state"] == "absent":
            validate_persist_path(module.params["persist_path"])
            persist = {"path": module.params["persist_path"], "service": module.params["persist_service"]}
        result = converge_tunnel(AnsibleHost(module), tunnel, module.params["state"], module.check_mode, persist)
    except ValidationError as error:
        module.fail_json(msg="%s: %s" % (module._name, error), parameter=error.parameter)
    except EngineError as error:
        module.fail_json(msg="%s: %s" % (module._name, error))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
