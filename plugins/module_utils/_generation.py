# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nf_tables ruleset generation: a counter the kernel advances by one at every committed
change of a network namespace's nf_tables ruleset (nft, iptables-nft, any other writer), and
never on a read. Equal generations mean an unchanged ruleset, so a run can trust what it
recorded at that generation instead of listing 10,000 rules again.

Asked with one netlink request (NFT_MSG_GETGEN), as nft and iptables-nft ask it themselves.
"""

from __future__ import annotations

import socket
import struct

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETGEN = 16
NLM_F_REQUEST = 0x1
NFTA_GEN_ID = 1
NLMSG_ERROR = 2
NLMSG_HEADER = struct.Struct("=IHHII")
NFGEN_HEADER = struct.Struct("=BBH")
ATTRIBUTE_HEADER = struct.Struct("=HH")
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


def _request():
    payload = NFGEN_HEADER.pack(socket.AF_UNSPEC, 0, 0)
    return NLMSG_HEADER.pack(NLMSG_HEADER.size + len(payload), (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, NLM_F_REQUEST, 1, 0) + payload


def parse_reply(data):
    """The generation in a GETGEN reply, or None for an error reply or one without it."""
    if len(data) < NLMSG_HEADER.size + NFGEN_HEADER.size:
        return None
    length, message_type, _flags, _sequence, _port = NLMSG_HEADER.unpack_from(data)
    if message_type == NLMSG_ERROR:
        return None
    offset = NLMSG_HEADER.size + NFGEN_HEADER.size
    while offset + ATTRIBUTE_HEADER.size <= min(length, len(data)):
        size, kind = ATTRIBUTE_HEADER.unpack_from(data, offset)
        if size < ATTRIBUTE_HEADER.size:
            return None
        if kind & 0x3FFF == NFTA_GEN_ID and size >= ATTRIBUTE_HEADER.size + 4:
            return struct.unpack_from("!I", data, offset + ATTRIBUTE_HEADER.size)[0]
        offset += (size + 3) & ~3
    return None


def ruleset_generation():
    """This network namespace's nf_tables generation, or None where the kernel cannot tell."""
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as connection:
            connection.settimeout(2)
            connection.bind((0, 0))
            connection.send(_request())
            return parse_reply(connection.recv(65536))
    except (OSError, AttributeError):
        # AttributeError: a Python without AF_NETLINK.
        return None
