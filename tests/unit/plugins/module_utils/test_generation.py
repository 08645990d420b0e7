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
