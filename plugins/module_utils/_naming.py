# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the collection names what it owns, for every engine: the tag of a rule, the names of
chains, and the exact tests that tell an owned rule or chain from any other.

A rule is owned only if its comment equals a tag exactly; a chain only if its name is exactly
the name one known object gives one of its chains.
"""

from __future__ import annotations

import functools
import hashlib
import re

from ansible_collections.netmagic.netfilter.plugins.module_utils._model import BALANCER, MIRROR, NAME_CHARACTERS

CHAIN_PREFIX = "NM-"
MAX_CHAIN_LENGTH = 28
# 64 bits: "NM-SEP-" + token + "-4095" is exactly 28 characters (a balancer has at most 4096 backends).
TOKEN_LENGTH = 16
# Chains written by release 0.1.0 carry 8 hex digits; they are recognised, so an upgrade removes them.
LEGACY_TOKEN_LENGTH = 8
# AFF names a backend's list of clients with affinity (an xt_recent list, an nft set), not a chain.
# MIRS chains choose the connections a sampled mirror clones, MIRP the collector of a pool.
# HSH chains hold one block of a source_hash lookup table (iptables).
ROLES = {"MIRO": MIRROR, "MIRI": MIRROR, "MIRF": MIRROR, "MIRS": MIRROR, "MIRP": MIRROR,
         "SVC": BALANCER, "SEP": BALANCER, "MASQ": BALANCER, "AFF": BALANCER, "HSH": BALANCER}
INDEXED_ROLES = ("SEP", "AFF", "HSH")

TAG_PATTERN = re.compile(r"netmagic:(%s|%s):(%s{1,64})" % (MIRROR, BALANCER, NAME_CHARACTERS))
# What fits the shape of an owned chain name, whatever object it names (for writer guards).
CHAIN_GRAMMAR = re.compile(r"NM-(?:%s)-(?:[0-9a-f]{%d}|[0-9a-f]{%d})(?:-%s*)?" % ("|".join(ROLES), TOKEN_LENGTH, LEGACY_TOKEN_LENGTH, NAME_CHARACTERS))


def tag(kind, name):
    return "netmagic:%s:%s" % (kind, name)


def owner_of_tag(text):
    """(kind, name) when text is exactly a tag, else None."""
    match = TAG_PATTERN.fullmatch(text) if isinstance(text, str) else None
    return (match.group(1), match.group(2)) if match else None


@functools.lru_cache(maxsize=65536)
def object_token(kind, name, length=TOKEN_LENGTH):
    """Hash shared by every chain of one object: identity survives truncation."""
    return hashlib.sha256(("%s:%s" % (kind, name)).encode()).hexdigest()[:length]


def chain_name(role, kind, name, index=None, token_length=TOKEN_LENGTH):
    """NM-ROLE-TOKEN[-INDEX]-readable, cut to 28 characters; the token keeps it unique."""
    return _named(role, object_token(kind, name, token_length), name, index)


def _named(role, token, name, index):
    head = "%s%s-%s" % (CHAIN_PREFIX, role, token)
    if index is not None:
        head += "-%d" % index
    if len(head) > MAX_CHAIN_LENGTH:
        raise ValueError("internal error: chain name %s is longer than %d characters" % (head, MAX_CHAIN_LENGTH))
    return ("%s-%s" % (head, name))[:MAX_CHAIN_LENGTH].rstrip("-")


def chain_role(chain):
    """The role of an owned chain's name (NM-ROLE-...), or None for any other chain."""
    return chain.split("-", 2)[1] if chain.startswith(CHAIN_PREFIX) and chain.count("-") >= 2 else None


class ChainOwners:
    """Which of the known objects, if any, owns a chain: by the token in its name, then by
    comparing the whole name with the one that object gives that chain."""

    def __init__(self, keys):
        self.by_token = {}
        for key in keys:
            for length in (TOKEN_LENGTH, LEGACY_TOKEN_LENGTH):
                self.by_token[object_token(*key, length=length)] = key

    def owner(self, chain):
        """The key whose object gives exactly this name to one of its chains, or None. Split, not
        matched, for speed (10,000 chains per read): the final comparison with the name the
        object would give that chain is what makes it exact."""
        if not chain.startswith(CHAIN_PREFIX):
            return None
        parts = chain.split("-", 3)
        key = self.by_token.get(parts[2]) if len(parts) > 2 else None
        if key is None or ROLES.get(parts[1]) != key[0]:
            return None
        index = None
        if parts[1] in INDEXED_ROLES:
            number = parts[3].split("-", 1)[0] if len(parts) > 3 else ""
            if not (number.isascii() and number.isdigit() and len(number) <= 4):
                return None
            index = int(number)
        return key if chain == _named(parts[1], parts[2], key[1], index) else None


def is_owned_shape(chain):
    """Whether a chain name has the shape of an owned chain (ChainOwners then finds whose)."""
    return bool(CHAIN_GRAMMAR.fullmatch(chain))


def jumps_home(owner, targets, owners):
    """Whether a tagged rule is one of its object's jumps: into that object's own chains, and nowhere else."""
    return bool(owner and targets and all(owners.owner(target) == owner for target in targets))


def token_collisions(keys):
    """Pairs of different objects whose chains would share a token."""
    seen, pairs = {}, []
    for key in keys:
        token = object_token(*key)
        if token in seen and seen[token] != key:
            pairs.append((seen[token], key))
        seen.setdefault(token, key)
    return pairs
