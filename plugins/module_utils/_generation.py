# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Two questions to nf_tables over netlink, each one request, as nft and iptables-nft ask them:

- the ruleset generation (NFT_MSG_GETGEN): a counter the kernel advances by one at every
  committed change of a network namespace's nf_tables ruleset (nft, iptables-nft, any other
  writer), and never on a read. Equal generations mean an unchanged ruleset, so a run can trust
  what it recorded at that generation instead of listing 10,000 rules again;
- the tables (NFT_MSG_GETTABLE): a backend with none of its tables holds no rules, and is not
  listed to find out.
"""

from __future__ import annotations

import socket
import struct

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETGEN = 16
NFT_MSG_NEWTABLE = 0
NFT_MSG_GETTABLE = 1
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NFTA_GEN_ID = 1
NFTA_TABLE_NAME = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
# nfgenmsg's family: the nft family names of NFPROTO_* numbers.
FAMILY_NAMES = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}
NLMSG_HEADER = struct.Struct("=IHHII")
NFGEN_HEADER = struct.Struct("=BBH")
ATTRIBUTE_HEADER = struct.Struct("=HH")
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


def _request(message=NFT_MSG_GETGEN, flags=NLM_F_REQUEST):
    payload = NFGEN_HEADER.pack(socket.AF_UNSPEC, 0, 0)
    return NLMSG_HEADER.pack(NLMSG_HEADER.size + len(payload), (NFNL_SUBSYS_NFTABLES << 8) | message, flags, 1, 0) + payload


def _attributes(data, offset, end):
    """(kind, payload) of each attribute from offset to end; stops at a malformed one."""
    while offset + ATTRIBUTE_HEADER.size <= end:
        size, kind = ATTRIBUTE_HEADER.unpack_from(data, offset)
        if size < ATTRIBUTE_HEADER.size or offset + size > end:
            return
        yield kind & 0x3FFF, data[offset + ATTRIBUTE_HEADER.size:offset + size]
        offset += (size + 3) & ~3


def parse_reply(data):
    """The generation in a GETGEN reply, or None for an error reply or one without it."""
    if len(data) < NLMSG_HEADER.size + NFGEN_HEADER.size:
        return None
    length, message_type, _flags, _sequence, _port = NLMSG_HEADER.unpack_from(data)
    if message_type == NLMSG_ERROR:
        return None
    for kind, payload in _attributes(data, NLMSG_HEADER.size + NFGEN_HEADER.size, min(length, len(data))):
        if kind == NFTA_GEN_ID and len(payload) >= 4:
            return struct.unpack_from("!I", payload)[0]
    return None


def parse_tables(data):
    """(done, {(family, name)}) of the NEWTABLE messages in one buffer of a GETTABLE dump: done
    once the dump's end is in it. An error or a malformed message raises ValueError."""
    tables, offset = set(), 0
    while offset + NLMSG_HEADER.size <= len(data):
        length, message_type, _flags, _sequence, _port = NLMSG_HEADER.unpack_from(data, offset)
        if length < NLMSG_HEADER.size or offset + length > len(data) or message_type == NLMSG_ERROR:
            raise ValueError("not a table dump")
        if message_type == NLMSG_DONE:
            return True, tables
        if message_type == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE and length >= NLMSG_HEADER.size + NFGEN_HEADER.size:
            family = FAMILY_NAMES.get(data[offset + NLMSG_HEADER.size], "unknown")
            for kind, payload in _attributes(data, offset + NLMSG_HEADER.size + NFGEN_HEADER.size, offset + length):
                if kind == NFTA_TABLE_NAME:
                    tables.add((family, payload.split(b"\0", 1)[0].decode("ascii", "replace")))
        offset += (length + 3) & ~3
    return False, tables


def ruleset_tables():
    """{(family, name)} of this network namespace's nf_tables tables, or None where the kernel
    cannot tell."""
    tables = set()
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as connection:
            connection.settimeout(2)
            connection.bind((0, 0))
            connection.send(_request(NFT_MSG_GETTABLE, NLM_F_REQUEST | NLM_F_DUMP))
            done = False
            while not done:
                done, found = parse_tables(connection.recv(65536))
                tables |= found
    except (OSError, AttributeError, ValueError):
        return None
    return tables


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
