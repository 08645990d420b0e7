"""README's first command: the demo runs end to end on the lab and its proof holds."""

import os
import subprocess
import sys

from tests.integration.netfilter import REPO


def test_demo_proves_mirroring_and_balancing_and_leaves_nothing_behind():
    completed = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "demo.py")], capture_output=True,
                               text=True, timeout=600, check=False)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    assert "proof holds" in completed.stdout
    assert "second run: changed tasks per host  collector=0 lb=0 sender=0" in completed.stdout
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert "nm-demo-" not in namespaces
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert "nmb-demo" not in links
