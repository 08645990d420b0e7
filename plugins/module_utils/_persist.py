# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Opt-in persistence: the owned ruleset saved to files, restored at boot by a systemd unit.

The unit runs the engine's own restore tool on each file (`iptables-restore --noflush`,
`nft -j -f`), so hosts need nothing of the collection at boot. Files hold only what the
collection owns: owned chains and tagged jumps (iptables), or the netmagic tables (nftables).
"""

from __future__ import annotations

import json
import os
import tempfile

from ansible_collections.netmagic.netfilter.plugins.module_utils import _iptables_rules as iprules
from ansible_collections.netmagic.netfilter.plugins.module_utils._host import EngineError
from ansible_collections.netmagic.netfilter.plugins.module_utils._info import TAG

UNIT_NAME = "netmagic-netfilter-restore.service"
DEFAULT_PATH = "/etc/netmagic/netfilter"
SYSTEMD_DIR = "/etc/systemd/system"
FAMILY_TOOLS = {4: "iptables", 6: "ip6tables"}
# backend -> (file name, family, restore argv before the file name)
FILES = {
    "xtables-nft": [("xtables-nft-%d.rules" % f, f, ["%s-nft-restore" % t, "--noflush"]) for f, t in FAMILY_TOOLS.items()],
    "xtables-legacy": [("xtables-legacy-%d.rules" % f, f, ["%s-legacy-restore" % t, "--noflush"]) for f, t in FAMILY_TOOLS.items()],
    "nftables": [("nftables.json", None, ["nft", "-j", "-f"])],
}


def _is_tagged(line):
    match = iprules.TAG_IN_RULE.search(line)
    return bool(match and TAG.match(match.group(1)))


def iptables_buffer(save_text):
    """The owned part of one family's iptables-save as an iptables-restore --noflush buffer.

    Jumps are inserted at the top in reverse, so they end in the order they had, ahead of
    rules other tools load later.
    """
    out = []
    for table, chains in iprules.parse_save(save_text).items():
        owned = sorted(c for c in chains if c.startswith(iprules.CHAIN_PREFIX))
        jumps = [line for chain, lines in chains.items() if not chain.startswith(iprules.CHAIN_PREFIX) for line in lines if _is_tagged(line)]
        if not owned and not jumps:
            continue
        out += ["*%s" % table] + [":%s - [0:0]" % chain for chain in owned]
        out += [line for chain in owned for line in chains[chain]]
        out += ["-I %s 1 %s" % iprules._rule_spec(line) for line in reversed(jumps)]
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""


def _without_handle(fields):
    return {key: value for key, value in fields.items() if key != "handle"}


def nftables_batch(listings):
    """The netmagic tables as one `nft -j -f` batch that replaces them whole (add, delete, refill)."""
    commands = []
    for _family, listing in sorted(listings.items()):
        for item in json.loads(listing).get("nftables", []):
            if "table" in item:
                table = _without_handle(item["table"])
                commands += [{"add": {"table": table}}, {"delete": {"table": table}}, {"add": {"table": table}}]
            elif "chain" in item or "rule" in item:
                (kind, fields), = item.items()
                commands.append({"add": {kind: _without_handle(fields)}})
    return json.dumps({"nftables": commands}) + "\n"


def contents(engine):
    """{file name: text} of the engine's backend, one file per family (iptables) or one batch (nftables)."""
    if engine.backend == "nftables":
        return {FILES["nftables"][0][0]: nftables_batch(engine.snapshot())}
    saves = engine.snapshot()
    return {name: iptables_buffer(saves.get(family, "")) for name, family, _argv in FILES[engine.backend] if family in saves}


def restore_commands(host, directory):
    """The argv of every restore the unit runs: one per saved file, tools by absolute path."""
    commands = []
    for backend in sorted(FILES):
        for name, _family, argv in FILES[backend]:
            path = os.path.join(directory, name)
            if os.path.exists(path):
                tool = host.which(argv[0])
                if not tool:
                    raise EngineError("persist: %s not found to restore %s at boot" % (argv[0], path))
                commands.append([tool] + argv[1:] + [path])
    return commands


def unit_text(commands):
    execs = "".join("ExecStart=%s\n" % " ".join(argv) for argv in commands)
    return (
        "# Written by netmagic.netfilter: restores the rules it owns at boot.\n"
        "[Unit]\n"
        "Description=Restore the netfilter rules owned by netmagic.netfilter\n"
        "DefaultDependencies=no\n"
        "Wants=network-pre.target\n"
        "Before=network-pre.target shutdown.target\n"
        # After whatever loads (and flushes) the rest of the ruleset at boot.
        "After=local-fs.target nftables.service netfilter-persistent.service firewalld.service\n"
        "Conflicts=shutdown.target\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        "RemainAfterExit=yes\n"
        "%s\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n" % execs
    )


def write_if_changed(path, text, check_only):
    """Atomically replaces path with text when it differs; True when it did (or would)."""
    try:
        with open(path) as handle:
            if handle.read() == text:
                return False
    except FileNotFoundError:
        pass
    if not check_only:
        directory = os.path.dirname(path)
        os.makedirs(directory, mode=0o755, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=directory, prefix=".netmagic-", delete=False) as handle:
            handle.write(text)
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, path)
    return True


def _enable(host, unit, check_only):
    """Installs the unit into systemd and enables it; argv only. False when systemd does not run here."""
    systemctl = host.which("systemctl")
    if not systemctl or not os.path.isdir("/run/systemd/system"):
        return False
    changed = write_if_changed(os.path.join(SYSTEMD_DIR, UNIT_NAME), unit, check_only)
    if not check_only:
        for argv in ([systemctl, "daemon-reload"], [systemctl, "enable", UNIT_NAME]):
            rc, _out, err = host.run(argv)
            if rc != 0:
                raise EngineError("persist: %s failed (rc=%d): %s" % (" ".join(argv), rc, err.strip()))
    return changed


def persist(host, engines, directory, service, check_only):
    """Saves the owned rules of each engine's backend and the unit; returns (changed, result)."""
    changed = False
    for engine in engines:
        for name, text in contents(engine).items():
            changed |= write_if_changed(os.path.join(directory, name), text, check_only)
    unit_path = os.path.join(directory, UNIT_NAME)
    unit = unit_text(restore_commands(host, directory))
    changed |= write_if_changed(unit_path, unit, check_only)
    if service:
        changed |= _enable(host, unit, check_only)
    return changed, {"path": directory, "unit": unit_path}
