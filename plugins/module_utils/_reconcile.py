# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pipeline every module runs: validated model -> engine rules -> diff -> one apply."""

from __future__ import annotations

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.netmagic.netfilter.plugins.module_utils._host import AnsibleHost, EngineError, MissingLibraryError, host_lock
from ansible_collections.netmagic.netfilter.plugins.module_utils._iptables_engine import IptablesEngine, detect_variant
from ansible_collections.netmagic.netfilter.plugins.module_utils._iptc_engine import IptcEngine
from ansible_collections.netmagic.netfilter.plugins.module_utils._nftables_engine import NftablesEngine
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import ValidationError, validate_name
from ansible_collections.netmagic.netfilter.plugins.module_utils._persist import DEFAULT_PATH, persist

ENGINES = ("auto", "iptables-nft", "iptables-legacy", "nftables", "python-iptables")


def argument_spec(**specific):
    """The options every rule-managing module takes (doc fragment netmagic.netfilter.netfilter), plus its own."""
    spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        engine=dict(type="str", choices=list(ENGINES), default="auto"),
        persist=dict(type="bool", default=False),
        persist_path=dict(type="path", default=DEFAULT_PATH),
        persist_service=dict(type="bool", default=True),
    )
    spec.update(specific)
    return spec


def _engine(host, name):
    if name == "nftables":
        return NftablesEngine(host)
    if name == "python-iptables":
        return IptcEngine(host)
    return IptablesEngine(host, name.split("-", 1)[1])


def select_engine(host, requested):
    """The engine asked for; for auto, the one this host already uses."""
    if requested != "auto":
        return _engine(host, requested)
    nftables = NftablesEngine(host)
    if nftables.available() and (nftables.holds_tables() or not host.which("iptables")):
        return nftables
    return IptablesEngine(host, detect_variant(host))


def _other_backends(host, engine):
    """One engine for each kernel backend other than engine's that this host has.

    The first listed wins: iptables-legacy, not python-iptables, for legacy x_tables, as it
    needs no library.
    """
    found = {}
    for name in ENGINES[1:]:
        other = _engine(host, name)
        if other.backend != engine.backend and other.backend not in found and other.available():
            found[other.backend] = other
    return list(found.values())


def _remove_elsewhere(host, engine, kind, name, check_only):
    """What the object owned under another engine goes, so a host never holds both."""
    removed = []
    for other in _other_backends(host, engine):
        owned = other.read(kind, name)
        if owned:
            other.apply(owned, {}, check_only=check_only)
            removed.append(other)
    return removed


def reconcile(module, kind, build, preflight=None):
    """Bring one object to its desired state; returns (module result, model object or None).

    build(params) returns the validated model object and preflight(host, obj), when
    given, checks the host for it; both run before anything is read or written, so bad
    input leaves the host untouched.
    """
    params = module.params
    present = params["state"] == "present"
    try:
        validate_name(params["name"])
        obj = build(params) if present else None
        host = AnsibleHost(module)
        if present and preflight:
            preflight(host, obj)
        with host_lock():
            engine = select_engine(host, params["engine"])
            current = engine.read(kind, params["name"])
            desired = engine.render(obj) if present else {}
            changed = not engine.same(current, desired)
            if changed:
                engine.apply(current, desired, check_only=module.check_mode)
            removed_from = _remove_elsewhere(host, engine, kind, params["name"], module.check_mode)
            persisted = {}
            if params["persist"]:
                # Every backend this run changed is saved again, so no file brings back what was removed.
                saved, persisted = persist(host, [engine] + removed_from, params["persist_path"], params["persist_service"], module.check_mode)
                changed |= saved
    except ValidationError as error:
        module.fail_json(msg="%s: %s" % (module._name, error), parameter=error.parameter)
    except MissingLibraryError as error:
        module.fail_json(msg=missing_required_lib(error.library, reason=error.reason), exception=error.traceback)
    except EngineError as error:
        module.fail_json(msg="%s: %s" % (module._name, error))
    except OSError as error:
        module.fail_json(msg="%s: persist: %s" % (module._name, error))
    chains, rules = engine.describe(desired)
    result = {"changed": changed or bool(removed_from), "engine": engine.name, "chains": chains, "rules": rules,
              "removed_from": [other.name for other in removed_from], "persisted": persisted}
    if module._diff:
        result["diff"] = {
            "before": engine.as_text(current),
            "after": engine.as_text(desired),
            "before_header": "%s %s (%s, owned rules)" % (kind, params["name"], engine.name),
            "after_header": "%s %s (%s, owned rules)" % (kind, params["name"], engine.name),
        }
    return result, obj
