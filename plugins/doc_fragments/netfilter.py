# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Options, notes and attributes every rule-managing module shares."""

    DOCUMENTATION = r"""
options:
  engine:
    description:
      - The netfilter engine that stores the rules.
      - C(iptables-nft) and C(iptables-legacy) write through C(iptables-restore) of that
        backend; C(nftables) owns the tables C(ip netmagic) and C(ip6 netmagic) and writes
        them with one C(nft -j -f) transaction.
      - C(python-iptables) writes the legacy x_tables backend through the python-iptables
        library (iptc) 1.2.0, which must be installed for the Python that runs the module on
        the managed host (C(pip install python-iptables==1.2.0); it builds from source with
        gcc and the Python headers). Each table's changes are one commit, made under the
        xtables lock (C(/run/xtables.lock)). It reads with C(iptables-legacy-save) and writes
        the same rules as C(iptables-legacy), so each sees the other's rules as its own. A
        host whose rules are in nf_tables (C(iptables-nft-save) lists any) is refused.
      - C(auto) uses C(nftables) where a netmagic table already exists (or where only C(nft) is
        installed), else the iptables backend the host already holds rules in, or the one its
        C(iptables) command reports. A host with rules in both iptables backends is refused.
      - Applying an object with one engine removes what the collection owned for it under the
        other backends, so a host never holds both.
    type: str
    choices: [auto, iptables-nft, iptables-legacy, nftables, python-iptables]
    default: auto
  persist:
    description:
      - Save the rules the collection owns after each run, so they come back at boot without a play.
      - Writes, under O(persist_path), one C(iptables-restore --noflush) file per family holding only the owned chains and the
        tagged jumps (C(xtables-nft-4.rules), C(xtables-legacy-6.rules), ...), or for O(engine=nftables) one C(nft -j -f)
        batch that replaces the netmagic tables (C(nftables.json)); and the unit C(netmagic-netfilter-restore.service),
        whose C(ExecStart) lines run those tools on those files, so the host needs nothing of the collection at boot.
      - Every object the engine's backend holds is saved, not only this one (the chains and jumps of each object with a
        tagged jump, exactly named; rules and chains of others are never saved). A run that changes nothing rewrites nothing.
      - Running the unit again on a host that already holds the iptables rules adds their jumps a second time; the next
        run of the module removes the copies.
    type: bool
    default: false
    version_added: 0.2.0
  persist_path:
    description:
      - The directory of the saved files and the unit, with O(persist=true).
      - An absolute path of letters, digits and C(_./-) only, without C(..) and not C(/); no directory on the way may be
        world-writable, except a sticky one (such as C(/tmp)) whose next component exists and belongs to root. Checked
        before any rule changes; a bad path fails naming O(persist_path).
    type: path
    default: /etc/netmagic/netfilter
    version_added: 0.2.0
  persist_service:
    description:
      - With O(persist=true), install the unit into C(/etc/systemd/system) and enable it (C(systemctl daemon-reload),
        C(systemctl enable)). Skipped on hosts where systemd does not run.
      - C(false) only writes the files and the unit under O(persist_path), for hosts that restore them another way.
    type: bool
    default: true
    version_added: 0.2.0
notes:
  - Needs root on the managed host, and the C(iptables) package (1.8 or later) or, for
    O(engine=nftables), the C(nftables) package (1.0 or later). O(engine=python-iptables) also
    needs the Python library python-iptables 1.2.0 there.
  - Holds a lock file (C(/run/netmagic-netfilter.lock)) for the whole read-compare-apply cycle,
    and the xtables lock while applying.
  - Rules the collection does not own are never changed, reordered or flushed. The change is
    applied with one C(iptables-restore --noflush), atomically per table; a run that finds the
    owned rules already as desired changes nothing.
  - A run that changes rules records each object's rules in C(/var/lib/netmagic/netfilter) (one file per engine
    backend and network namespace), so that M(netmagic.netfilter.netfilter_info) reports drift without definitions;
    where that file cannot be written the run warns and its rules are applied all the same.
attributes:
  check_mode:
    support: full
    description: Can run in check_mode and return changed status prediction without modifying the host.
    details: Check mode reports the change and verifies it with C(iptables-restore --test) or C(nft -c);
      with O(engine=python-iptables), by building it with the library and not committing it.
  diff_mode:
    support: full
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    details: The diff shows the owned rules before and after, as iptables-save text or nft JSON rules.
"""

    # The options of one object, for the modules that manage one.
    OBJECT = r"""
options:
  name:
    description:
      - The object's identity; its chain names and rule tag derive from it.
      - 1 to 64 characters of letters, digits, C(-), C(_) and C(.).
    type: str
    required: true
  state:
    description:
      - C(present) makes the object's rules exactly as described.
      - C(absent) removes every rule and chain of the object.
    type: str
    choices: [present, absent]
    default: present
"""

    # The items of the lists mirrors and balancers: netfilter_apply applies them, netfilter_info compares with them.
    ITEMS = r"""
options:
  mirrors:
    type: list
    elements: dict
    suboptions:
      name:
        description: As O(netmagic.netfilter.tee_mirror#module:name).
        type: str
        required: true
      state:
        description: As O(netmagic.netfilter.tee_mirror#module:state).
        type: str
        choices: [present, absent]
        default: present
      gateway:
        description: As O(netmagic.netfilter.tee_mirror#module:gateway); required when present, unless gateways is given.
        type: str
      gateways:
        description: As O(netmagic.netfilter.tee_mirror#module:gateways).
        type: list
        elements: str
      protocol:
        description: As O(netmagic.netfilter.tee_mirror#module:protocol).
        type: str
        choices: [tcp, udp, icmp, all]
        default: tcp
      ports:
        description: As O(netmagic.netfilter.tee_mirror#module:ports).
        type: list
        elements: str
        default: []
      service:
        description: As O(netmagic.netfilter.tee_mirror#module:service).
        type: str
        choices: [remote, local, routed]
        default: remote
      direction:
        description: As O(netmagic.netfilter.tee_mirror#module:direction).
        type: str
        choices: [both, ingress, egress]
        default: both
      peer:
        description: As O(netmagic.netfilter.tee_mirror#module:peer).
        type: str
      interface:
        description: As O(netmagic.netfilter.tee_mirror#module:interface).
        type: str
      force:
        description: As O(netmagic.netfilter.tee_mirror#module:force).
        type: bool
        default: false
      sample:
        description: As O(netmagic.netfilter.tee_mirror#module:sample).
        type: int
        default: 1
      connmark_bit:
        description: As O(netmagic.netfilter.tee_mirror#module:connmark_bit).
        type: int
        default: 20
      max_new_connections:
        description: As O(netmagic.netfilter.tee_mirror#module:max_new_connections).
        type: int
      gateway_interface:
        description: As O(netmagic.netfilter.tee_mirror#module:gateway_interface).
        type: str
      exclude:
        description: As O(netmagic.netfilter.tee_mirror#module:exclude).
        type: list
        elements: str
        default: []
  balancers:
    type: list
    elements: dict
    suboptions:
      name:
        description: As O(netmagic.netfilter.dnat_balancer#module:name).
        type: str
        required: true
      state:
        description: As O(netmagic.netfilter.dnat_balancer#module:state).
        type: str
        choices: [present, absent]
        default: present
      vip:
        description: As O(netmagic.netfilter.dnat_balancer#module:vip); required when present.
        type: str
      port:
        description: As O(netmagic.netfilter.dnat_balancer#module:port); required when present.
        type: int
      protocol:
        description: As O(netmagic.netfilter.dnat_balancer#module:protocol).
        type: str
        choices: [tcp, udp]
        default: tcp
      backends:
        description: As O(netmagic.netfilter.dnat_balancer#module:backends); required when present.
        type: list
        elements: raw
      mode:
        description: As O(netmagic.netfilter.dnat_balancer#module:mode).
        type: str
        choices: [round_robin, random, source_hash]
        default: round_robin
      masquerade:
        description: As O(netmagic.netfilter.dnat_balancer#module:masquerade).
        type: bool
        default: true
      local_clients:
        description: As O(netmagic.netfilter.dnat_balancer#module:local_clients).
        type: bool
        default: true
      source_ranges:
        description: As O(netmagic.netfilter.dnat_balancer#module:source_ranges).
        type: list
        elements: str
        default: []
      affinity:
        description: As O(netmagic.netfilter.dnat_balancer#module:affinity).
        type: str
        choices: [none, client_ip]
        default: none
      affinity_timeout:
        description: As O(netmagic.netfilter.dnat_balancer#module:affinity_timeout).
        type: int
        default: 10800
"""
