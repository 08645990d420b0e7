# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Opt-in persistence: the owned ruleset saved to files, restored at boot by a systemd unit.

The unit runs the engine's own restore tool on each file (`iptables-restore --noflush`,
`nft -j -f`), so hosts need nothing of the collection at boot. Files hold only what the
collection owns: owned chains and tagged jumps (iptables), or the netmagic tables (nftables).
"""

from __future__ import annotations

import os
import re
import stat
import tempfile

from ansible_collections.netmagic.netfilter.plugins.module_utils._engines import persist_files
from ansible_collections.netmagic.netfilter.plugins.module_utils._host import EngineError
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import ValidationError

UNIT_NAME = "netmagic-netfilter-restore.service"
DEFAULT_PATH = "/etc/netmagic/netfilter"
SYSTEMD_DIR = "/etc/systemd/system"
# persist_path reaches the unit's ExecStart lines: plain path characters only.
PERSIST_PATH = re.compile(r"[A-Za-z0-9_./-]+")
DIRECTORY_MODE = 0o755
FILE_MODE = 0o644


def _path_prefixes(path):
    """'/', '/a', '/a/b', ... of an absolute path."""
    prefixes, current = ["/"], "/"
    for part in path.split("/"):
        if part:
            current = os.path.join(current, part)
            prefixes.append(current)
    return prefixes


def _lstat(path):
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _check_chain(original, path):
    """Refuses a component of path that a user other than root could replace (world-writable)."""
    prefixes = _path_prefixes(path)
    for index, prefix in enumerate(prefixes):
        status = _lstat(prefix)
        if status is None:
            return
        if stat.S_ISLNK(status.st_mode):
            if not os.path.exists(prefix):
                raise ValidationError("persist_path", original, "goes through %s, a symbolic link to nothing" % prefix)
            # A link's own mode is always 0777 and means nothing; its directory and its target are checked.
            continue
        if not stat.S_ISDIR(status.st_mode):
            raise ValidationError("persist_path", original, "goes through %s, which is not a directory" % prefix)
        if not status.st_mode & stat.S_IWOTH:
            continue
        if not status.st_mode & stat.S_ISVTX:
            raise ValidationError("persist_path", original, "is under the world-writable directory %s: any user could replace what is "
                                  "restored at boot" % prefix)
        if index + 1 == len(prefixes):
            raise ValidationError("persist_path", original, "is the world-writable directory %s itself" % prefix)
        below = prefixes[index + 1]
        below_status = _lstat(below)
        if below_status is None:
            raise ValidationError("persist_path", original, "is in the world-writable directory %s, and %s does not exist yet: "
                                  "another user could create it first" % (prefix, below))
        if below_status.st_uid not in (0, os.geteuid()):
            raise ValidationError("persist_path", original, "is in the world-writable directory %s, and %s belongs to user id %d"
                                  % (prefix, below, below_status.st_uid))


def validate_persist_path(path):
    """Refuses a persist_path that could break the unit's command lines or be replaced by another user.

    Runs before any rule changes. The path must be absolute, of letters, digits and "_./-"
    only, without ".." components and not "/"; no directory on the way may be world-writable,
    except a sticky one (such as /tmp) whose next component exists and belongs to root.
    """
    if not isinstance(path, str):
        raise ValidationError("persist_path", path, "is not a string")
    if not PERSIST_PATH.fullmatch(path):
        raise ValidationError("persist_path", path, 'may hold only letters, digits and "_./-" (it is written into the unit\'s ExecStart lines)')
    if not path.startswith("/"):
        raise ValidationError("persist_path", path, "is not an absolute path")
    if ".." in path.split("/"):
        raise ValidationError("persist_path", path, 'holds a ".." component')
    if not path.strip("/"):
        raise ValidationError("persist_path", path, "is the root directory")
    _check_chain(path, path)
    real = os.path.realpath(path)
    if real != path.rstrip("/"):
        _check_chain(path, real)


def systemd_quote(argument):
    """One ExecStart argument as systemd.service(5) "Command lines" reads it back: double-quoted,
    backslash and double quote escaped, "%" (specifiers) and "$" (variables) doubled, and
    control characters (which would end the line) as C escapes (systemd.syntax(7), "Quoting")."""
    out = []
    for char in argument:
        if char in '\\"':
            out.append("\\" + char)
        elif char in "%$":
            out.append(char * 2)
        elif ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F:
            out.append("\\x%02x" % ord(char))
        else:
            out.append(char)
    return '"%s"' % "".join(out)


# Every line unit_text writes: a comment, a section, a known key, a blank line.
_QUOTED = r'"(?:[^"\\%$\x00-\x1f\x7f-\x9f]|\\["\\]|\\x[0-9a-f]{2}|%%|\$\$)*"'
_UNIT_LINE = re.compile(
    r"#[^\x00-\x1f\x7f-\x9f]*"
    r"|\[(?:Unit|Service|Install)\]"
    r"|(?:Description|DefaultDependencies|Wants|Before|After|Conflicts|Type|RemainAfterExit|WantedBy)=[A-Za-z0-9 ._:@-]*"
    r'|ExecStart="/' + _QUOTED[1:] + r"(?: " + _QUOTED + r")*"
    r"|")


def check_unit(text, path):
    """Refuses to write a unit with a line the renderer does not produce, whatever the input was."""
    for number, line in enumerate(text.split("\n"), 1):
        if not _UNIT_LINE.fullmatch(line):
            shown = path if path.isprintable() else repr(path)
            raise EngineError("internal error: the unit %s would hold an unexpected line %d (%r); nothing was written" % (shown, number, line))


def restore_commands(host, directory, written=()):
    """The argv of every restore the unit runs: one per saved file (there already, or in written,
    the paths about to be written), tools by absolute path."""
    commands = []
    for _backend, name, argv in sorted(persist_files()):
        path = os.path.join(directory, name)
        if path in written or os.path.exists(path):
            tool = host.which(argv[0])
            if not tool:
                raise EngineError("persist: %s not found to restore %s at boot" % (argv[0], path))
            commands.append([tool] + argv[1:] + [path])
    return commands


RULES_UNIT = {
    "comment": "restores the rules it owns at boot",
    "description": "Restore the netfilter rules owned by netmagic.netfilter",
    "before": "network-pre.target shutdown.target",
    # After whatever loads (and flushes) the rest of the ruleset at boot.
    "after": "local-fs.target nftables.service netfilter-persistent.service firewalld.service",
}


def unit_text(commands, purpose=None):
    """The unit that runs commands at boot, every argument quoted for systemd (systemd_quote);
    purpose: its comment, description and ordering (RULES_UNIT unless given)."""
    purpose = purpose or RULES_UNIT
    execs = "".join("ExecStart=%s\n" % " ".join(systemd_quote(argument) for argument in argv) for argv in commands)
    return (
        "# Written by netmagic.netfilter: %s.\n"
        "[Unit]\n"
        "Description=%s\n"
        "DefaultDependencies=no\n"
        "Wants=network-pre.target\n"
        "Before=%s\n"
        "After=%s\n"
        "Conflicts=shutdown.target\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        "RemainAfterExit=yes\n"
        "%s\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n" % (purpose["comment"], purpose["description"], purpose["before"], purpose["after"], execs)
    )


def make_directories(directory):
    """Creates directory and its missing parents, each 0755 whatever the umask."""
    missing = []
    while not os.path.isdir(directory):
        missing.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    for path in reversed(missing):
        try:
            os.mkdir(path, DIRECTORY_MODE)
        except FileExistsError:
            if not os.path.isdir(path):
                raise
            continue
        os.chmod(path, DIRECTORY_MODE)


def write_if_changed(path, text, check_only):
    """Atomically replaces path with text (mode 0644) when it differs; True when it did (or would)."""
    try:
        with open(path) as handle:
            if handle.read() == text:
                return False
    except FileNotFoundError:
        pass
    if not check_only:
        directory = os.path.dirname(path)
        make_directories(directory)
        with tempfile.NamedTemporaryFile("w", dir=directory, prefix=".netmagic-", delete=False) as handle:
            handle.write(text)
        try:
            os.chmod(handle.name, FILE_MODE)
            os.replace(handle.name, path)
        except OSError:
            os.unlink(handle.name)
            raise
    return True


def _systemctl(host):
    """systemctl's path, or None when systemd does not run here."""
    systemctl = host.which("systemctl")
    return systemctl if systemctl and os.path.isdir("/run/systemd/system") else None


def _run_all(host, commands):
    for argv in commands:
        rc, _out, err = host.run(argv)
        if rc != 0:
            raise EngineError("persist: %s failed (rc=%d): %s" % (" ".join(argv), rc, err.strip()))


def _enable(host, unit, check_only, name=UNIT_NAME):
    """Installs the unit into systemd and enables it; argv only. False when systemd does not run here."""
    systemctl = _systemctl(host)
    if not systemctl:
        return False
    unit_path = os.path.join(SYSTEMD_DIR, name)
    check_unit(unit, unit_path)
    changed = write_if_changed(unit_path, unit, check_only)
    if not check_only:
        _run_all(host, [[systemctl, "daemon-reload"], [systemctl, "enable", name]])
    return changed


def install_unit(host, directory, name, unit, service, check_only):
    """Writes the unit under directory (validated) and, with service, into systemd, enabled;
    (changed, its path under directory)."""
    unit_path = os.path.join(directory, name)
    check_unit(unit, unit_path)
    try:
        changed = write_if_changed(unit_path, unit, check_only)
        if service:
            changed |= _enable(host, unit, check_only, name)
    except OSError as error:
        raise EngineError("persist_path %s: %s" % (directory, error)) from None
    return changed, unit_path


def remove_unit(host, directory, name, check_only):
    """Disables and removes the unit, from systemd and from directory; whether there was one."""
    installed = os.path.join(SYSTEMD_DIR, name)
    systemctl = _systemctl(host)
    paths = [path for path in (os.path.join(directory, name), installed if systemctl else None) if path and os.path.exists(path)]
    if paths and not check_only:
        if installed in paths:
            _run_all(host, [[systemctl, "disable", name]])
        try:
            for path in paths:
                os.unlink(path)
        except OSError as error:
            raise EngineError("persist_path %s: %s" % (directory, error)) from None
        if installed in paths:
            _run_all(host, [[systemctl, "daemon-reload"]])
    return bool(paths)


def persist(host, engines, directory, service, check_only):
    """Saves the owned rules of each engine's backend and the unit; returns (changed, result).

    directory went through validate_persist_path before the rules changed. The unit is
    rendered and checked (check_unit) before any file is written; an error writing is
    reported naming persist_path.
    """
    unit_path = os.path.join(directory, UNIT_NAME)
    try:
        files = {}
        for engine in engines:
            files.update((os.path.join(directory, name), text) for name, text in engine.read().persisted().items())
        unit = unit_text(restore_commands(host, directory, written=files))
        check_unit(unit, unit_path)
        changed = False
        for path, text in files.items():
            changed |= write_if_changed(path, text, check_only)
    except OSError as error:
        raise EngineError("persist_path %s: %s" % (directory, error)) from None
    unit_changed, unit_path = install_unit(host, directory, UNIT_NAME, unit, service, check_only)
    return changed or unit_changed, {"path": directory, "unit": unit_path}
