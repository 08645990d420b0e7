"""Property test against the kernel: each generated definition is refused naming a parameter, or
the kernel's own dry run takes its rendered rules (iptables-restore --test, nft -c), they apply,
read back equal to what was rendered, and their removal leaves the foreign ruleset as it was."""

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ansible_collections.netmagic.netfilter.plugins.module_utils._engines import REGISTRY
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import ValidationError, build_balancer, build_mirror
from ansible_collections.netmagic.netfilter.tests.unit.plugins.module_utils.strategies import (
    balancer_params,
    mirror_params,
    valid_balancer_params,
    valid_mirror_params,
)
from tests.integration.netfilter import NetnsHost, lab_namespace, plant_foreign, rules_of

KINDS = {"mirror": build_mirror, "balancer": build_balancer}
DEFINITIONS = st.one_of(
    st.tuples(st.just("mirror"), st.one_of(valid_mirror_params(), mirror_params())),
    st.tuples(st.just("balancer"), st.one_of(valid_balancer_params(), balancer_params())),
)
ENGINES = {name: REGISTRY[name] for name in ("iptables-nft", "iptables-legacy", "nftables")}


@pytest.fixture(scope="module", params=sorted(ENGINES))
def lab(request):
    """(engine, namespace, its ruleset with foreign rules planted), one namespace per engine."""
    with lab_namespace() as netns:
        plant_foreign(netns, request.param)
        yield ENGINES[request.param](NetnsHost(netns)), netns, rules_of(netns)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(definition=DEFINITIONS)
# Two adjacent networks that nft merges into one range which is no prefix.
@example(definition=("balancer", {
    "name": "http", "vip": "198.18.0.100", "port": 1, "protocol": "udp", "source_ranges": ["198.18.1.0/24", "198.18.2.0/24"],
    "backends": [{"address": "198.18.0.21"}, {"address": "198.18.0.22", "weight": 3}],
}))
def test_the_kernel_takes_what_validation_lets_through_and_gives_it_back(lab, definition):
    engine, netns, foreign = lab
    kind, params = definition
    try:
        obj = KINDS[kind](params)
    except ValidationError as error:
        assert error.parameter.split("[")[0].split(".")[0] in params or error.parameter in ("name", "gateway", "vip", "port", "backends")
        return
    key = (kind, obj.name)
    desired = engine.render(obj)
    snapshot = engine.read()
    change = engine.plan(snapshot, {key: (snapshot.owned([key])[key], desired)})
    engine.apply(change, check_only=True)
    assert rules_of(netns) == foreign, "the dry run changed the ruleset"
    engine.apply(change)
    snapshot = engine.read()
    assert engine.same(snapshot.owned([key])[key], desired), "what was applied does not read back as rendered"
    engine.apply(engine.plan(snapshot, {key: (snapshot.owned([key])[key], {})}))
    assert rules_of(netns) == foreign
