"""persist: true: the owned rules come back after a (simulated) reboot, by the unit's own commands."""

import difflib
import os
import shlex

import pytest

from tests.integration.netfilter import LEGACY_ENGINES, in_netns, plant_foreign, ruleset, run_module, without_counters
from tests.integration.test_core import DEFINITIONS

UNIT = "netmagic-netfilter-restore.service"


def apply_persisted(netns, engine, directory, options=None):
    """The definitions of both families, with options (per family) for the balancers."""
    for family in (4, 6):
        for module in ("tee_mirror", "dnat_balancer"):
            # persist_service false: tests never install or enable a unit on this machine.
            params = dict(DEFINITIONS[family][module], engine=engine, force=True, persist=True, persist_path=directory, persist_service=False,
                          **((options or {}).get(family, {}) if module == "dnat_balancer" else {}))
            params["name"] += "" if family == 4 else "6"  # one object per family, so both stay
            if module == "dnat_balancer":
                params.pop("force")
            result = run_module(netns, module, params)
            assert result["rc"] == 0 and not result.get("failed"), result
            assert result["persisted"]["unit"] == os.path.join(directory, UNIT)


def reboot(netns, engine):
    """Every rule of the engine's backend gone, as after a reboot (the legacy tables stay, empty:
    flushing legacy tables that do not exist would create them)."""
    in_netns(netns, ["nft", "flush", "ruleset"], check=True)
    if engine not in LEGACY_ENGINES:
        return
    for tool in ("iptables-legacy", "ip6tables-legacy"):
        for table in ("filter", "nat", "mangle"):
            in_netns(netns, [tool, "-t", table, "-F"], check=True)
            in_netns(netns, [tool, "-t", table, "-X"], check=True)


def unit_commands(directory, name=UNIT):
    """The argv of each ExecStart line of the unit, as systemd reads them."""
    with open(os.path.join(directory, name)) as handle:
        return [shlex.split(line.split("=", 1)[1]) for line in handle if line.startswith("ExecStart=")]


BALANCER_OPTIONS = {
    "round robin": None,
    "affinity and source hash": {4: {"affinity": "client_ip", "affinity_timeout": 60}, 6: {"mode": "source_hash"}},
}


@pytest.mark.parametrize("options", BALANCER_OPTIONS.values(), ids=BALANCER_OPTIONS)
def test_the_units_commands_bring_the_owned_rules_back(netns, engine, tmp_path, options):
    plant_foreign(netns, engine)
    apply_persisted(netns, engine, str(tmp_path), options)
    before = without_counters(ruleset(netns))
    reboot(netns, engine)
    plant_foreign(netns, engine)
    assert "NM-" not in ruleset(netns)
    commands = unit_commands(str(tmp_path))
    expected_tool = {"nftables": "nft", "iptables-nft": "iptables-nft-restore"}.get(engine, "iptables-legacy-restore")
    assert expected_tool in [os.path.basename(argv[0]) for argv in commands]
    for argv in commands:
        in_netns(netns, argv, check=True)
    after = without_counters(ruleset(netns))
    # Sorted: the saved file creates chains in iptables-save's order, and nft lists chains in creation order.
    assert sorted(after.splitlines()) == sorted(before.splitlines()), "\n".join(
        difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm=""))


def test_persisting_again_without_a_change_changes_nothing(netns, tmp_path):
    apply_persisted(netns, "iptables-nft", str(tmp_path))
    params = dict(DEFINITIONS[4]["tee_mirror"], engine="iptables-nft", force=True, persist=True, persist_path=str(tmp_path), persist_service=False)
    assert run_module(netns, "tee_mirror", params)["changed"] is False


def test_a_removed_object_leaves_the_saved_rules(netns, tmp_path):
    apply_persisted(netns, "iptables-nft", str(tmp_path))
    params = dict(name="web", state="absent", engine="iptables-nft", persist=True, persist_path=str(tmp_path), persist_service=False)
    assert run_module(netns, "dnat_balancer", params)["changed"]
    saved = (tmp_path / "xtables-nft-4.rules").read_text()
    assert "NM-MIRO-" in saved and "NM-SVC-" not in saved and "netmagic:balancer" not in saved
    assert "netmagic:balancer:web6" in (tmp_path / "xtables-nft-6.rules").read_text()
