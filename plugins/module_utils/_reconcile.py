# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pipeline every module runs: validated model -> engine rules -> diff -> one apply."""

from __future__ import annotations

from ansible_collections.netmagic.netfilter.plugins.module_utils._host import AnsibleHost, EngineError, host_lock
from ansible_collections.netmagic.netfilter.plugins.module_utils._iptables_engine import iptables_engine
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import ValidationError, validate_name

ENGINES = ("auto", "iptables-nft", "iptables-legacy")


def argument_spec(**specific):
    """The options every rule-managing module takes (doc fragment netmagic.netfilter.netfilter), plus its own."""
    spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        engine=dict(type="str", choices=list(ENGINES), default="auto"),
    )
    spec.update(specific)
    return spec


def select_engine(host, requested):
    return iptables_engine(host, requested)


def reconcile(module, kind, build):
    """Bring one object to its desired state; returns (module result, model object or None).

    build(params) returns the validated model object; it runs before anything is
    read or written, so bad input leaves the host untouched.
    """
    params = module.params
    present = params["state"] == "present"
    try:
        validate_name(params["name"])
        obj = build(params) if present else None
        host = AnsibleHost(module)
        with host_lock():
            engine = select_engine(host, params["engine"])
            current = engine.read(kind, params["name"])
            desired = engine.render(obj) if present else {}
            changed = not engine.same(current, desired)
            if changed:
                engine.apply(current, desired, check_only=module.check_mode)
    except ValidationError as error:
        module.fail_json(msg="%s: %s" % (module._name, error), parameter=error.parameter)
    except EngineError as error:
        module.fail_json(msg="%s: %s" % (module._name, error))
    chains, rules = engine.describe(desired)
    result = {"changed": changed, "engine": engine.name, "chains": chains, "rules": rules}
    if module._diff:
        result["diff"] = {
            "before": engine.as_text(current),
            "after": engine.as_text(desired),
            "before_header": "%s %s (%s, owned rules)" % (kind, params["name"], engine.name),
            "after_header": "%s %s (%s, owned rules)" % (kind, params["name"], engine.name),
        }
    return result, obj
