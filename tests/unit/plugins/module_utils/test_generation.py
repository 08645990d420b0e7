"""The nf_tables generation from a GETGEN reply, as the kernel sends it."""

import socket
import struct

import pytest

from ansible_collections.netmagic.netfilter.plugins.module_utils import _generation as generation


def reply(*attributes, message_type=(generation.NFNL_SUBSYS_NFTABLES << 8) | generation.NFT_MSG_GETGEN):
    """A netlink message: header, nfgenmsg, then (type, payload) attributes padded to 4 bytes."""
    body = generation.NFGEN_HEADER.pack(socket.AF_UNSPEC, 0, 0)
    for kind, payload in attributes:
        body += struct.pack("=HH", 4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)
    return generation.NLMSG_HEADER.pack(16 + len(body), message_type, 0, 1, 0) + body


@pytest.mark.parametrize("data, expected", [
    pytest.param(reply((generation.NFTA_GEN_ID, struct.pack("!I", 4242))), 4242, id="the id"),
    pytest.param(reply((2, struct.pack("!I", 99)), (3, b"nft\0\0"), (generation.NFTA_GEN_ID, struct.pack("!I", 7))), 7,
                 id="after other attributes"),
    pytest.param(reply((generation.NFTA_GEN_ID | 0x8000, struct.pack("!I", 5))), 5, id="with a nested flag"),
    pytest.param(reply((2, struct.pack("!I", 99))), None, id="without the id"),
    pytest.param(reply(message_type=generation.NLMSG_ERROR), None, id="an error"),
    pytest.param(reply((generation.NFTA_GEN_ID, struct.pack("!I", 4242)))[:22], None, id="cut short"),
    pytest.param(b"", None, id="nothing"),
])
def test_the_generation_is_read_from_the_reply(data, expected):
    assert generation.parse_reply(data) == expected


def test_the_request_asks_nf_tables_for_its_generation():
    length, message_type, flags, _sequence, _port = generation.NLMSG_HEADER.unpack_from(generation._request())
    assert (length, message_type, flags) == (20, (10 << 8) | 16, generation.NLM_F_REQUEST)


def table(family, name):
    """A NEWTABLE message of a dump, with the family in its nfgenmsg."""
    body = generation.NFGEN_HEADER.pack(family, 0, 0)
    for kind, payload in ((generation.NFTA_TABLE_NAME, name.encode() + b"\0"), (4, struct.pack("!I", 1))):
        body += struct.pack("=HH", 4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)
    return generation.NLMSG_HEADER.pack(16 + len(body), (generation.NFNL_SUBSYS_NFTABLES << 8) | generation.NFT_MSG_NEWTABLE, 2, 1, 0) + body


DONE = generation.NLMSG_HEADER.pack(20, generation.NLMSG_DONE, 2, 1, 0) + b"\0" * 4


@pytest.mark.parametrize("data, expected", [
    pytest.param(table(2, "netmagic") + table(10, "nat") + DONE, (True, {("ip", "netmagic"), ("ip6", "nat")}), id="two tables and the end"),
    pytest.param(table(1, "filter"), (False, {("inet", "filter")}), id="more to come"),
    pytest.param(DONE, (True, set()), id="no table"),
])
def test_the_tables_are_read_from_a_dump(data, expected):
    assert generation.parse_tables(data) == expected


@pytest.mark.parametrize("data", [
    pytest.param(generation.NLMSG_HEADER.pack(36, generation.NLMSG_ERROR, 0, 1, 0) + b"\0" * 20, id="an error"),
    pytest.param(table(2, "nat")[:-4] + b"\x00\x00", id="cut short"),
])
def test_a_dump_that_is_no_table_dump_is_refused(data):
    with pytest.raises(ValueError):
        generation.parse_tables(data)


def test_the_table_request_is_a_dump():
    length, message_type, flags, _sequence, _port = generation.NLMSG_HEADER.unpack_from(
        generation._request(generation.NFT_MSG_GETTABLE, generation.NLM_F_REQUEST | generation.NLM_F_DUMP))
    assert (length, message_type, flags) == (20, (10 << 8) | 1, 0x301)
