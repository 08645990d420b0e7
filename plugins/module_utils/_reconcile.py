# -*- coding: utf-8 -*-
# Copyright: netmagic.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pipeline every module runs: validated model -> engine rules -> diff -> one apply."""

from __future__ import annotations

from dataclasses import dataclass, field

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.netmagic.netfilter.plugins.module_utils._host import AnsibleHost, EngineError, MissingLibraryError, host_lock
from ansible_collections.netmagic.netfilter.plugins.module_utils._conntrack import clear_stale_flows, services_to_clear
from ansible_collections.netmagic.netfilter.plugins.module_utils._engines import AUTO, ENGINE_CLASSES, ENGINE_NAMES, other_backends, select_engine
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import (
    BALANCER,
    MIRROR,
    ValidationError,
    build_balancer,
    build_listed,
    build_mirror,
    definition,
    digest,
    input_digest,
    naming,
    rebuild,
    validate_name,
)
from ansible_collections.netmagic.netfilter.plugins.module_utils import _record as record
from ansible_collections.netmagic.netfilter.plugins.module_utils._naming import token_collisions
from ansible_collections.netmagic.netfilter.plugins.module_utils._persist import DEFAULT_PATH, persist, validate_persist_path
from ansible_collections.netmagic.netfilter.plugins.module_utils._preflight import check_gateway

# Options of every rule-managing module (doc fragment netmagic.netfilter.netfilter).
SHARED_OPTIONS = dict(
    engine=dict(type="str", choices=list(ENGINE_NAMES), default="auto"),
    persist=dict(type="bool", default=False),
    persist_path=dict(type="path", default=DEFAULT_PATH),
    persist_service=dict(type="bool", default=True),
)
# Options of one object (doc fragment netmagic.netfilter.netfilter.object).
OBJECT_OPTIONS = dict(
    name=dict(type="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)
MIRROR_OPTIONS = dict(
    gateway=dict(type="str"),
    gateways=dict(type="list", elements="str"),
    protocol=dict(type="str", choices=["tcp", "udp", "icmp", "all"], default="tcp"),
    ports=dict(type="list", elements="str", default=[]),
    service=dict(type="str", choices=["remote", "local", "routed"], default="remote"),
    direction=dict(type="str", choices=["both", "ingress", "egress"], default="both"),
    peer=dict(type="str"),
    interface=dict(type="str"),
    force=dict(type="bool", default=False),
    sample=dict(type="int", default=1),
    connmark_bit=dict(type="int", default=20),
    max_new_connections=dict(type="int"),
    gateway_interface=dict(type="str"),
    exclude=dict(type="list", elements="str", default=[]),
)
MIRROR_REQUIRED_IF = [("state", "present", ("gateway", "gateways"), True)]
BALANCER_OPTIONS = dict(
    vip=dict(type="str"),
    port=dict(type="int"),
    protocol=dict(type="str", choices=["tcp", "udp"], default="tcp"),
    backends=dict(type="list", elements="raw"),
    mode=dict(type="str", choices=["round_robin", "random", "source_hash"], default="round_robin"),
    masquerade=dict(type="bool", default=True),
    local_clients=dict(type="bool", default=True),
    source_ranges=dict(type="list", elements="str", default=[]),
    affinity=dict(type="str", choices=["none", "client_ip"], default="none"),
    affinity_timeout=dict(type="int", default=10800),
)
BALANCER_REQUIRED_IF = [("state", "present", ("vip", "port", "backends"))]


def argument_spec(**specific):
    """The options of a module managing one object: its own, plus the object's and the shared ones."""
    return dict(OBJECT_OPTIONS, **SHARED_OPTIONS, **specific)


# netfilter_apply's option exclusive names kinds by the option that lists them.
KIND_OF_OPTION = {"mirrors": MIRROR, "balancers": BALANCER}


def item_specs():
    """{option: spec} of the lists mirrors and balancers, each item as the one-object module takes it
    (netfilter_apply applies them, netfilter_info compares with them)."""
    return dict(
        mirrors=dict(type="list", elements="dict", options=dict(OBJECT_OPTIONS, **MIRROR_OPTIONS), required_if=MIRROR_REQUIRED_IF),
        balancers=dict(type="list", elements="dict", options=dict(OBJECT_OPTIONS, **BALANCER_OPTIONS), required_if=BALANCER_REQUIRED_IF),
    )


def objects_argument_spec():
    """netfilter_apply: lists of mirrors and balancers, the kinds it owns exclusively, and the shared options."""
    return dict(SHARED_OPTIONS, exclusive=dict(type="list", elements="str", choices=sorted(KIND_OF_OPTION), default=[]),
                **{option: dict(spec, default=[]) for option, spec in item_specs().items()})


def _remove_elsewhere(host, engine, keys, check_only):
    """What the objects owned under another engine goes, so a host never holds both.

    Returns (the engines that held any, the keys they held, warnings)."""
    engines, removed_keys, warnings = [], set(), []
    for other in other_backends(host, engine):
        if other.holds_nothing():
            continue
        snapshot = other.read()
        owned = snapshot.owned(keys)
        held = [key for key in keys if owned[key]]
        if held:
            other.apply(other.plan(snapshot, {key: (owned[key], {}) for key in held}), check_only=check_only)
            engines.append(other)
            removed_keys.update(held)
            if not check_only:
                warnings += _forget_elsewhere(other, held)
    return engines, removed_keys, warnings


def _forget_elsewhere(other, held):
    """The other backend's record no longer holds what left it (nor is it trusted: this run's write
    moved on); returns warnings."""
    try:
        record.update(other.backend, dict.fromkeys(held))
    except OSError as error:
        return ["the record of what %s holds could not be written (%s): netfilter_info without definitions there may report "
                "the objects moved away from it as missing" % (other.name, error)]
    return []


@dataclass
class Outcome:
    """What one converge did: the engine, each object's rules before and after, what changed."""

    engine: object
    current: dict
    desired: dict
    changed_keys: list
    removed_from: list = field(default_factory=list)
    removed_keys: set = field(default_factory=set)
    persisted: dict = field(default_factory=dict)
    persist_changed: bool = False
    unlisted: list = field(default_factory=list)  # removed because an exclusive kind does not list them
    warnings: list = field(default_factory=list)

    @property
    def changed(self):
        return bool(self.changed_keys or self.removed_from or self.persist_changed)

    def object_changed(self, key):
        return key in self.changed_keys or key in self.removed_keys

    def object_result(self, key):
        chains, rules = self.engine.describe(self.desired[key])
        return {"changed": self.object_changed(key), "chains": chains, "rules": rules}

    def diff(self, keys, header):
        return {
            "before": "".join(self.engine.as_text(self.current[key]) for key in keys),
            "after": "".join(self.engine.as_text(self.desired[key]) for key in keys),
            "before_header": "%s (%s, owned rules)" % (header, self.engine.name),
            "after_header": "%s (%s, owned rules)" % (header, self.engine.name),
        }


def refuse_token_collisions(keys):
    """Two objects whose chain names would share a token would claim each other's chains."""
    for first, second in token_collisions(keys):
        raise ValidationError("name", second[1], "gives the same chain token as %s '%s': rename one of them" % first)


def refuse_conflicts_on_host(engine, claims, objects, desired):
    """A listed balancer may not take a service another balancer on the host already balances
    (claims: the snapshot's), nor an object share a chain token with one on the host; checked
    before anything changes."""
    refuse_token_collisions(list(objects) + [key for key in claims if key not in objects])
    for key, obj in objects.items():
        if obj is None or obj.kind != BALANCER:
            continue
        mine = engine.signatures(desired[key])
        for other, claimed in sorted(claims.items()):
            if other != key and other not in objects and mine & claimed:
                raise ValidationError("vip", obj.vip, "port %d/%s of balancer '%s' is balanced already by balancer '%s' on this host: "
                                                      "remove that one (state: absent) or give this definition its name"
                                      % (obj.port, obj.protocol, obj.name, other[1]))


def refuse_removal_under_foreign_jumps(current, desired):
    """An owned chain that a rule of someone else's jumps to cannot be removed, and that rule is not ours to delete."""
    for (kind, name), scopes in current.items():
        for scope, rules in scopes.items():
            kept = desired[(kind, name)].get(scope)
            for target, line in rules.foreign_jumps:
                if kept is None or target not in kept.chains:
                    raise EngineError("%s '%s': its chain %s cannot be removed while a rule this collection does not own jumps to it: "
                                      "%s; delete or change that rule first" % (kind, name, target, line))


def _kinds(params):
    """The kinds netfilter_apply's exclusive names."""
    return {KIND_OF_OPTION[option] for option in params.get("exclusive") or []}


def _unlisted(claims, objects, params):
    """The owned objects (with a tagged jump) of the exclusive kinds that objects does not list, sorted."""
    kinds = _kinds(params)
    return sorted(key for key in claims if key[0] in kinds and key not in objects)


def _entry(engine, obj, rules, digests, inputs, key):
    entry = {"digest": digests[key], "definition": definition(obj), "signatures": sorted(engine.signatures(rules))}
    if inputs.get(key):
        entry["input"] = inputs[key]
    return entry


def _record(engine, recorded, objects, desired, changed_keys, digests, inputs, trust):
    """Records what the objects now hold, for netfilter_info's drift without definitions and the
    next run's trust; returns warnings. Only objects that changed, or whose record is missing,
    made by other code or made from other input, are described again."""
    same_code = recorded.code is not None and recorded.code == record.code_digest()
    stale = [key for key in objects if key in changed_keys or not same_code or recorded.digest(key) != digests.get(key)
             or key in inputs and recorded.input(key) != inputs[key]]
    if not stale and recorded.trust == trust:
        return []
    try:
        record.update(engine.backend, {key: _entry(engine, objects[key], desired[key], digests, inputs, key) if objects[key] else None
                                       for key in stale},
                      trust=trust, record=recorded)
    except OSError as error:
        return ["the record of what was applied could not be written (%s): netfilter_info without definitions will not "
                "see drift of these objects" % error]
    return []


class Rendered(dict):
    """{key: rules}, each made by render(key) when first asked for: what the record shows
    unchanged, or what goes with the whole of the owned rules, is rendered only if a result or a
    diff shows it."""

    def __init__(self, render):
        super().__init__()
        self.render = render

    def __missing__(self, key):
        self[key] = self.render(key)
        return self[key]


def _rendered(engine, objects):
    return Rendered(lambda key: engine.render(objects[key]) if objects[key] else {})


def _clears_everything(recorded, objects):
    """Whether the run removes every recorded object and adds none: all owned rules go."""
    return bool(recorded.objects) and not any(objects.values()) and set(recorded.objects) <= set(objects)


def _as_recorded(recorded, objects, digests):
    """The keys whose object is known from a trusted record to be on the host as asked: recorded
    with its definition's digest, or absent and not recorded."""
    return {key for key, obj in objects.items() if (recorded.digest(key) == digests[key] if obj else key not in recorded.objects)}


def _trusted_records(host):
    """{backend: Record} of the backends with a generation whose record is trusted now."""
    found = {}
    for engine_class in ENGINE_CLASSES:
        engine = engine_class(host)
        # A fingerprint costs a read of the rules: only the engine a run selects takes one.
        trust = record.trust_now(host, engine, fingerprint=False) if engine.backend not in found else None
        if trust is not None:
            recorded = record.read(engine.backend)
            if recorded.trusted_at(trust):
                found[engine.backend] = recorded
    return found


def _compare(engine, state, objects, unchanged):
    """(current, desired, changed keys) of objects, comparing those not known unchanged: the
    others are rendered only if a result or a diff shows them. Refuses conflicts first."""
    compared = {key: obj for key, obj in objects.items() if key not in unchanged}
    desired = _rendered(engine, objects)
    current = _rendered(engine, objects)
    current.update(state.owned(list(compared)))
    refuse_conflicts_on_host(engine, state.claims, compared, desired)
    refuse_removal_under_foreign_jumps({key: current[key] for key in compared}, desired)
    return current, desired, [key for key in compared if not engine.same(current[key], desired[key])]


def _trust_after(host, engine, before, complete, plan):
    """The trust of a record made after this run's writes: only when the generation moved by
    exactly the run's own commits (no one else wrote meanwhile) and every owned object is known.
    A fingerprint is of the rules the run read, so it holds only when the run wrote nothing."""
    if before is None or not complete:
        return None
    if "generation" not in before:
        return None if plan else before
    now = record.trust_now(host, engine)
    expected = dict(before, generation=before["generation"] + (engine.commits(plan) if plan else 0))
    return now if now == expected else None


def converge(host, params, objects, check_only, inputs=None):
    """Bring objects to their desired state in one atomic apply, from one read of the rules or,
    when a record is trusted at the ruleset's current generation, from the record alone.

    objects: {(kind, name): validated model object (or Recalled), or None for absent}. params
    holds the shared options (engine, persist, persist_path, persist_service). inputs: {key:
    input_digest of the definition given}, recorded so that a later run recalls the object.
    """
    inputs = inputs or {}
    keys = list(objects)
    if params.get("persist"):
        validate_persist_path(params["persist_path"])
    refuse_token_collisions(keys)
    with host_lock():
        trusted_records = _trusted_records(host) if params["engine"] == AUTO else {}
        engine = select_engine(host, params["engine"], {backend for backend, found in trusted_records.items() if found.objects})
        before = record.trust_now(host, engine)
        recorded = trusted_records.get(engine.backend) or record.read(engine.backend)
        # Persistence saves what a read gives.
        trusted = recorded.trusted_at(before) and not params.get("persist")
        state = engine.recorded_state(recorded.objects, rebuild) if trusted else engine.read()
        # Owned objects of an exclusive kind that the run does not list go in the same change.
        unlisted = _unlisted(state.claims, objects, params)
        objects = {**objects, **{key: None for key in unlisted}}
        keys = list(objects)
        digests = {key: digest(obj) for key, obj in objects.items() if obj}
        # Removing everything a trusted record holds needs none of the objects' rules.
        plan = state.clearing_plan() if trusted and _clears_everything(recorded, objects) else None
        if plan:
            current, desired = Rendered(lambda key: state.owned([key])[key]), _rendered(engine, objects)
            changed_keys = [key for key in keys if key in recorded.objects]
        else:
            current, desired, changed_keys = _compare(engine, state, objects, _as_recorded(recorded, objects, digests) if trusted else set())
            if trusted and not state.can_plan({key: (current[key], desired[key]) for key in changed_keys}):
                trusted, state = False, engine.read()
                current, desired, changed_keys = _compare(engine, state, objects, set())
            plan = engine.plan(state, {key: (current[key], desired[key]) for key in changed_keys}) if changed_keys else None
        if plan is not None:
            engine.apply(plan, check_only=check_only)
        removed_from, removed_keys, warnings = _remove_elsewhere(host, engine, keys, check_only)
        outcome = Outcome(engine, current, desired, changed_keys, removed_from, removed_keys, warnings=warnings)
        if plan is not None and not check_only:
            outcome.warnings += clear_stale_flows(host, services_to_clear(
                [(recorded.objects.get(key, {}).get("definition"), objects[key]) for key in changed_keys if key[0] == BALANCER]))
        outcome.unlisted = unlisted
        if not check_only:
            # Recorded objects of an exclusive kind that the host does not hold are forgotten.
            kinds = _kinds(params)
            forgotten = [key for key in recorded.objects if key not in objects and key[0] in kinds]
            complete = recorded.trusted_at(before) or (set(state.claims) <= set(objects) and set(recorded.objects) <= set(objects) | set(forgotten)
                                                       and state.holds_only({key: current[key] for key in keys}))
            trust = _trust_after(host, engine, before, complete, plan)
            outcome.warnings += _record(engine, recorded, {**objects, **dict.fromkeys(forgotten)}, desired, changed_keys, digests, inputs, trust)
        if params["persist"]:
            # Every backend this run changed is saved again, so no file brings back what was removed.
            outcome.persist_changed, outcome.persisted = persist(host, [engine] + outcome.removed_from, params["persist_path"],
                                                                 params["persist_service"], check_only)
    return outcome


def fail_on_errors(module, action):
    """Runs action(); an error becomes fail_json with a message naming what failed. Returns its result."""
    try:
        return action()
    except ValidationError as error:
        module.fail_json(msg="%s: %s" % (module._name, error), parameter=error.parameter)
    except MissingLibraryError as error:
        module.fail_json(msg=missing_required_lib(error.library, reason=error.reason), exception=error.traceback)
    except EngineError as error:
        module.fail_json(msg="%s: %s" % (module._name, error))
    except OSError as error:
        module.fail_json(msg="%s: persist: %s" % (module._name, error))


def reconcile(module, kind, build, preflight=None):
    """Bring the module's one object to its desired state; returns (module result, model object or None).

    build(params) returns the validated model object and preflight(host, obj), when
    given, checks the host for it; both run before anything is read or written, so bad
    input leaves the host untouched.
    """
    params = module.params
    key = (kind, params["name"])

    def run():
        validate_name(params["name"])
        obj = build(params) if params["state"] == "present" else None
        host = AnsibleHost(module)
        if obj and preflight:
            preflight(host, obj)
        return converge(host, params, {key: obj}, module.check_mode), obj

    outcome, obj = fail_on_errors(module, run)
    for warning in outcome.warnings:
        module.warn(warning)
    result = outcome.object_result(key)
    result.update(changed=outcome.changed, engine=outcome.engine.name, removed_from=[other.name for other in outcome.removed_from],
                  persisted=outcome.persisted)
    if module._diff:
        result["diff"] = outcome.diff([key], "%s %s" % key)
    return result, obj


def _object_results(outcome, params, kind, option):
    """name, state and changed of each listed item: the rules of many objects would make a result
    of tens of thousands of lines (netfilter_info lists them)."""
    return [{"name": item["name"], "state": item["state"], "changed": outcome.object_changed((kind, item["name"]))}
            for item in params[option]]


def _build_or_recall(option, kind, build, items, recalled, inputs):
    """build_listed, where a definition given exactly as a record made by this code holds it is
    recalled instead of validated again; fills inputs with each definition's input digest."""
    def build_or_recall(params):
        given = input_digest(params)
        inputs[(kind, params["name"])] = given
        return recalled.get((kind, params["name"], given)) or build(params)
    return build_listed(option, kind, build_or_recall, items)


def reconcile_objects(module):
    """netfilter_apply: every mirror and balancer listed, in one read and one atomic apply."""
    params = module.params

    def run():
        recalled, inputs = record.recalled_definitions(), {}
        mirrors = _build_or_recall("mirrors", MIRROR, build_mirror, params["mirrors"], recalled, inputs)
        objects = {**mirrors, **_build_or_recall("balancers", BALANCER, build_balancer, params["balancers"], recalled, inputs)}
        host = AnsibleHost(module)
        for index, item in enumerate(params["mirrors"]):
            mirror = mirrors[(MIRROR, item["name"])]
            if mirror and not item["force"]:
                with naming("mirrors[%d]" % index):
                    check_gateway(host, mirror)
        return converge(host, params, objects, module.check_mode, inputs), objects

    outcome, objects = fail_on_errors(module, run)
    for warning in outcome.warnings:
        module.warn(warning)
    result = {"changed": outcome.changed, "engine": outcome.engine.name, "mirrors": _object_results(outcome, params, MIRROR, "mirrors"),
              "balancers": _object_results(outcome, params, BALANCER, "balancers"),
              "removed_from": [other.name for other in outcome.removed_from], "persisted": outcome.persisted,
              "removed": [{"kind": kind, "name": name} for kind, name in outcome.unlisted]}
    if module._diff:
        result["diff"] = outcome.diff(list(objects) + outcome.unlisted,
                                      "%d mirrors, %d balancers" % (len(params["mirrors"]), len(params["balancers"])))
    return result
