"""Makes the working tree importable as ansible_collections.netmagic.netfilter."""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_ROOT = os.path.join(REPO, ".build", "src")


def _link_collection():
    namespace_dir = os.path.join(SOURCE_ROOT, "ansible_collections", "netmagic")
    link = os.path.join(namespace_dir, "netfilter")
    os.makedirs(namespace_dir, exist_ok=True)
    if not os.path.islink(link):
        os.symlink(REPO, link)


_link_collection()
if SOURCE_ROOT not in sys.path:
    sys.path.insert(0, SOURCE_ROOT)
if REPO not in sys.path:
    sys.path.insert(0, REPO)
