"""Listed definitions (netfilter_apply, netfilter_info) turned into model objects; errors name the item."""

import pytest
from ansible_collections.netmagic.netfilter.plugins.module_utils._host import EngineError
from ansible_collections.netmagic.netfilter.plugins.module_utils._iptc_engine import _refuse_a_target_in_two_families
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import ValidationError, build_balancer, build_listed


def balancer(name="web", state="present", **options):
    return dict({"name": name, "state": state, "vip": "198.18.0.100", "port": 80, "backends": ["198.18.0.21"]}, **options)


@pytest.mark.parametrize(
    "items, keys",
    [
        ([], []),
        ([balancer()], [("balancer", "web")]),
        ([balancer("web"), balancer("api", port=443)], [("balancer", "web"), ("balancer", "api")]),
        ([balancer("old", state="absent", vip=None, port=None, backends=None)], [("balancer", "old")]),
    ],
)
def test_listed_items_become_objects_in_order(items, keys):
    objects = build_listed("balancers", "balancer", build_balancer, items)
    assert list(objects) == keys
    assert [obj is None for obj in objects.values()] == [item["state"] == "absent" for item in items]


@pytest.mark.parametrize(
    "items, parameter",
    [
        ([balancer(backends=["nope"])], "balancers[0].backends[0]"),
        ([balancer("web"), balancer("web", port=81)], "balancers[1].name"),
        ([balancer("web"), balancer("web", state="absent")], "balancers[1].name"),
        ([balancer("web"), balancer("a b")], "balancers[1].name"),
        ([balancer(port=0)], "balancers[0].port"),
        ([balancer(vip="2001:2::1")], "balancers[0].backends[0]"),
    ],
)
def test_a_bad_item_is_named_by_its_position(items, parameter):
    with pytest.raises(ValidationError) as error:
        build_listed("balancers", "balancer", build_balancer, items)
    assert error.value.parameter == parameter and parameter in str(error.value)


@pytest.mark.parametrize(
    "ipv4, ipv6, refused",
    [
        ("-A NM-MIRO-1 -j TEE --gateway 198.18.0.3\n", "-A NM-MIRO-2 -j TEE --gateway 2001:2::3\n", "TEE"),
        ("-A NM-SEP-1 -p tcp -j DNAT --to-destination 198.18.0.21:80\n", "-A NM-MIRO-2 -j TEE --gateway 2001:2::3\n", None),
        ("-A NM-MIRO-1 -j TEE --gateway 198.18.0.3\n", ":NM-MIRO-2 - [0:0]\n-X NM-MIRO-2\n", None),
        ("-A NM-MASQ-1 -j MASQUERADE\n", "-I NM-MASQ-2 1 -j MASQUERADE\n", "MASQUERADE"),
    ],
)
def test_python_iptables_refuses_only_a_target_written_in_both_families(ipv4, ipv6, refused):
    buffers = {4: "*nat\n" + ipv4 + "COMMIT\n", 6: "*nat\n" + ipv6 + "COMMIT\n"}
    if refused is None:
        _refuse_a_target_in_two_families(buffers)
        return
    with pytest.raises(EngineError, match="cannot write %s rules of IPv4 and of IPv6 in one run" % refused):
        _refuse_a_target_in_two_families(buffers)
