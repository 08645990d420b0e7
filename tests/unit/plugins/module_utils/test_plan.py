"""The roles' plans: each case is the role variables and inventory, and the items or the problems."""

import socket

import pytest

from ansible_collections.netmagic.netfilter.plugins.module_utils._model import ValidationError, build_balancer
from ansible_collections.netmagic.netfilter.plugins.module_utils._plan import (
    PlanError,
    balancer_plan,
    forwarding_conflicts,
    mirror_plan,
    resolve,
    stale_tunnels,
    without_backends,
)

GROUPS = {"backends": ["app1", "app2", "app3"], "collectors": ["col1"], "named": ["app1.example", "198.18.0.33"]}
HOSTVARS = {
    "app1": {"ansible_host": "198.18.0.21", "app_port": 8080, "facts": {"v6": "2001:2::21"}},
    "app2": {"ansible_host": "198.18.0.22", "app_port": "8081", "app_weight": 2, "facts": {"v6": "2001:2::22"}},
    "app3": {"ansible_host": "198.18.0.23", "app_port": 8080, "facts": {"v6": "2001:2::23"}, "maintenance": True},
    "col1": {"ansible_host": "198.18.0.3", "mirror_collector_forwarding": {"net.ipv4.ip_forward": 0}},
}


def fake_resolver(name, _port, family, _type):
    """app1.example has two addresses per family; nothing else resolves."""
    table = {("app1.example", socket.AF_INET): ["198.18.0.32", "198.18.0.31"], ("app1.example", socket.AF_INET6): ["2001:2::31"]}
    if (name, family) not in table:
        raise socket.gaierror("not known")
    return [(family, socket.SOCK_STREAM, 6, "", (address, 0)) for address in table[(name, family)]]


def service(**changes):
    return dict({"name": "web", "vip": "198.18.0.100", "port": 80}, **changes)


def plan(*services):
    return balancer_plan(list(services), GROUPS, HOSTVARS, resolver=fake_resolver)


GOOD = [
    # (service, backends as netfilter_apply gets them)
    (service(backends=["198.18.0.21", "198.18.0.22:8080"]),
     [{"address": "198.18.0.21", "port": 80, "weight": 1}, {"address": "198.18.0.22", "port": 8080, "weight": 1}]),
    (service(backends_from={"port_var": "app_port", "weight_var": "app_weight"}),
     [{"address": "198.18.0.21", "port": 8080, "weight": 1}, {"address": "198.18.0.22", "port": 8081, "weight": 2},
      {"address": "198.18.0.23", "port": 8080, "weight": 1}]),
    (service(backends_from={"drain_var": "maintenance"}),
     [{"address": "198.18.0.21", "port": 80, "weight": 1}, {"address": "198.18.0.22", "port": 80, "weight": 1},
      {"address": "198.18.0.23", "port": 80, "weight": 1, "drain": True}]),
    (service(vip="2001:2::100", backends_from={"address_var": "facts.v6"}),
     [{"address": "2001:2::21", "port": 80, "weight": 1}, {"address": "2001:2::22", "port": 80, "weight": 1},
      {"address": "2001:2::23", "port": 80, "weight": 1}]),
    (service(backends_from={"query": "[?app_port == `8080`].{address: ansible_host, port: app_port}"}),
     [{"address": "198.18.0.21", "port": 8080, "weight": 1}, {"address": "198.18.0.23", "port": 8080, "weight": 1}]),
    # Hosts as users write them: no ansible_host, the inventory name is an address or a name resolved on the controller.
    (service(backends_from={"group": "named"}),
     [{"address": "198.18.0.31", "port": 80, "weight": 1}, {"address": "198.18.0.33", "port": 80, "weight": 1}]),
    (service(vip="2001:2::100", backends_from={"group": "named", "query": "[0:1].inventory_hostname"}), None),
]


@pytest.mark.parametrize("definition, backends", GOOD)
def test_services_become_netfilter_apply_items(definition, backends):
    if backends is None:  # a query gives names, which are not resolved: refused as the module would
        with pytest.raises(PlanError):
            plan(definition)
        return
    result = plan(definition)
    [item] = result["balancers"]
    assert item["backends"] == backends and item["vip"] == str(definition["vip"])
    assert "backends_from" not in item
    assert result["forwarding"] == ["net.ipv4.ip_forward" if ":" not in definition["vip"] else "net.ipv6.conf.all.forwarding"]


BAD = [
    # (services, the problem, word for word)
    ([service(backends=["198.18.0.21", "backend-two"])],
     "load_balancer_services[0] (web).backends[1]: 'backend-two' is not an IPv4 or IPv6 address"),
    ([service(vip="vip-address", backends=["198.18.0.21"])],
     "load_balancer_services[0] (web).vip: 'vip-address' is not an IPv4 or IPv6 address"),
    ([service(backends_from={"group": "nowhere"})],
     'load_balancer_services[0] (web).backends_from.group: the inventory has no host in group "nowhere"'),
    ([service(backends_from={"address_var": "no_such_var"})],
     "load_balancer_services[0] (web).backends_from[0] (host app1).address: None is required"),
    ([service(vip="2001:2::100", backends_from={"port_var": "app_port"})],
     "load_balancer_services[0] (web).backends_from[0] (host app1): '198.18.0.21' is IPv4 but vip is IPv6"),
    ([service(backends=[])], "load_balancer_services[0] (web).backends: [] must list at least one backend"),
    ([service(backends_from={"query": "length(@)"})], "load_balancer_services[0] (web).backends_from.query: gives 3, not a list"),
    ([service(backends_from={"query": "[?"})], 'load_balancer_services[0] (web).backends_from.query: "[?" is not a JMESPath expression'),
    ([service(vip="2001:2::100%1", backends=["2001:2::21"])], "load_balancer_services[0] (web).vip: '2001:2::100%1' has an IPv6 zone id"),
    ([service(backends=["198.18.0.21"]), service(name="web2", backends=["198.18.0.22"])],
     "load_balancer_services[1].vip: '198.18.0.100' port 80/tcp is balanced by load_balancer_services[0] ('web') too"),
]


@pytest.mark.parametrize("services, problem", BAD)
def test_bad_services_name_their_variable(services, problem):
    with pytest.raises(PlanError) as error:
        plan(*services)
    assert any(found.startswith(problem) for found in error.value.problems), error.value.problems


def test_the_role_and_the_module_give_the_same_reason():
    definition = service(backends=["198.18.0.21", {"address": "198.18.0.22", "weight": "heavy"}])
    with pytest.raises(ValidationError) as module_error:
        build_balancer(definition)
    with pytest.raises(PlanError) as role_error:
        plan(definition)
    assert role_error.value.problems == ["load_balancer_services[0] (web).%s: %r %s" % (
        module_error.value.parameter, module_error.value.value, module_error.value.reason)]


def test_absent_services_need_nothing_else():
    assert plan({"name": "old", "state": "absent"})["balancers"] == [{"name": "old", "state": "absent"}]


def test_resolution_takes_the_first_address_in_order_and_an_address_as_it_is():
    assert resolve("app1.example", 4, fake_resolver) == "198.18.0.31"
    assert resolve("app1.example", 6, fake_resolver) == "2001:2::31"
    assert resolve("2001:2:0::5", 6, fake_resolver) == "2001:2::5"
    assert resolve("nowhere.example", 4, fake_resolver) is None


def mirrors(*items, host="web1"):
    return mirror_plan(list(items), GROUPS, HOSTVARS, host, resolver=fake_resolver)


def test_a_mirror_goes_to_the_first_collector_whose_forwarding_is_checked():
    result = mirrors({"name": "http", "ports": ["80"]})
    assert result["mirrors"] == [{"name": "http", "state": "present", "ports": ["80"], "gateway": "198.18.0.3"}]
    assert result["forwarding"] == [{"collector": "col1", "gateway": "198.18.0.3", "key": "net.ipv4.ip_forward", "value": 0}]


def test_a_pool_checks_each_of_its_collectors():
    groups = dict(GROUPS, collectors=["col1", "col2"])
    hostvars = dict(HOSTVARS, col2={"ansible_host": "198.18.0.4", "mirror_collector_forwarding": {"net.ipv4.ip_forward": 1}})
    with pytest.raises(PlanError) as error:
        mirror_plan([{"name": "http", "gateways": ["198.18.0.3", "198.18.0.4"]}], groups, hostvars, "web1", resolver=fake_resolver)
    assert [problem[:24] for problem in error.value.problems] == ["collector col2 forwards "]
    hostvars["col2"]["mirror_collector_forwarding"] = {"net.ipv4.ip_forward": 0}
    result = mirror_plan([{"name": "http", "gateways": ["198.18.0.3", "198.18.0.4"]}], groups, hostvars, "web1", resolver=fake_resolver)
    assert result["mirrors"] == [{"name": "http", "state": "present", "gateways": ["198.18.0.3", "198.18.0.4"]}]
    assert [check["collector"] for check in result["forwarding"]] == ["col1", "col2"]
    with pytest.raises(PlanError) as error:
        mirror_plan([{"name": "http", "gateways": ["198.18.0.3", "198.18.0.9"]}], groups, hostvars, "web1", resolver=fake_resolver)
    assert error.value.problems[0].startswith("mirror_sender_mirrors[0] (http).gateways[1]: 198.18.0.9 is not the address")


def read(content, collector="col1", key="net.ipv4.ip_forward"):
    """One result of the role's looped slurp of a forwarding setting on a collector."""
    return {"item": {"collector": collector, "key": key}, "content": content, "encoding": "base64"}


@pytest.mark.parametrize("published, reads, value, problem", [
    (None, [], None, None),  # not known yet: the role reads it
    (None, [read("MAo=")], 0, None),  # "0\n"
    (None, [read("MAo=", collector="col2")], None, None),  # another collector's read
    (None, [read("MQo=")], 1, "collector col1 forwards (net.ipv4.ip_forward is 1) and would pass every mirrored packet on"),
    (1, [], 1, "collector col1 forwards (net.ipv4.ip_forward is 1) and would pass every mirrored packet on"),
    (0, [read("MQo=")], 0, None),  # what the collector role published wins over an earlier read
])
def test_a_collector_that_forwards_is_a_problem_whether_published_or_read(published, reads, value, problem):
    hostvars = dict(HOSTVARS, col1={"ansible_host": "198.18.0.3"})
    if published is not None:
        hostvars["col1"]["mirror_collector_forwarding"] = {"net.ipv4.ip_forward": published}
    arguments = ([{"name": "http", "ports": ["80"]}], GROUPS, hostvars, "web1")
    if problem:
        with pytest.raises(PlanError) as error:
            mirror_plan(*arguments, resolver=fake_resolver, forwarding_read=reads)
        assert [found[:len(problem)] for found in error.value.problems] == [problem]
    else:
        result = mirror_plan(*arguments, resolver=fake_resolver, forwarding_read=reads)
        assert [check["value"] for check in result["forwarding"]] == [value]


@pytest.mark.parametrize("items, host, problem", [
    ([{"name": "http", "gateway": "198.18.0.9"}], "web1", "mirror_sender_mirrors[0] (http).gateway: 198.18.0.9 is not the address"),
    ([{"name": "http"}], "col1", "mirror_sender_mirrors[0] (http): the collector col1 (198.18.0.3) is this host itself"),
    ([{"name": "http", "ports": ["80:90", "85"]}], "web1", "mirror_sender_mirrors[0] (http).ports[1]: '85' overlaps ports[0]"),
    ([{"name": "http", "gateway": "not-an-address"}], "web1", "mirror_sender_mirrors[0] (http).gateway: 'not-an-address' is not"),
])
def test_bad_mirrors_name_their_variable(items, host, problem):
    with pytest.raises(PlanError) as error:
        mirrors(*items, host=host)
    assert any(found.startswith(problem) for found in error.value.problems), error.value.problems


def test_a_collector_that_is_also_a_balancer_is_refused():
    assert forwarding_conflicts("col1", [service(backends=["198.18.0.21"])], ["col1"])
    assert forwarding_conflicts("col1", [{"name": "old", "state": "absent"}], ["col1"]) == []
    assert forwarding_conflicts("lb1", [service(backends=["198.18.0.21"])], ["col1"]) == []


def test_backends_down_are_left_out_and_a_service_left_empty_is_refused():
    items = plan(service(backends=["198.18.0.21", "198.18.0.22"]))["balancers"]
    kept = without_backends(items, [{"address": "198.18.0.21", "port": "80"}])
    assert [b["address"] for b in kept[0]["backends"]] == ["198.18.0.22"]
    with pytest.raises(PlanError, match="no backend of web"):
        without_backends(kept, [{"address": "198.18.0.22", "port": 80}])


def test_the_health_check_tries_each_tcp_backend_once_and_knows_its_services():
    result = plan(service(backends=["198.18.0.21", "198.18.0.22"]), service(name="api", port=443, backends=["198.18.0.21:80"]),
                  service(name="dns", port=53, protocol="udp", backends=["198.18.0.23:53"]))
    assert result["tcp_endpoints"] == [{"address": "198.18.0.21", "port": 80, "services": ["web", "api"]},
                                       {"address": "198.18.0.22", "port": 80, "services": ["web"]}]


@pytest.mark.parametrize("services, conntrack", [
    ([service(backends=["198.18.0.21"])], False),
    ([service(backends=["198.18.0.21"]), service(name="dns", port=53, protocol="udp", backends=["198.18.0.23:53"])], True),
    ([service(backends=["198.18.0.21"]), {"name": "dns", "state": "absent"}], False),
])
def test_the_plan_asks_for_conntrack_where_a_udp_service_is_present(services, conntrack):
    assert plan(*services)["conntrack"] is conntrack


def tunnelled(**tunnels):
    """The inventory with collectors col1 and col2 (198.19.2.12, .13) behind tunnels: {host: mirror_collector_tunnel}."""
    groups = dict(GROUPS, collectors=["col1", "col2"])
    hostvars = dict(HOSTVARS, col2={"ansible_host": "198.19.2.13", "mirror_collector_forwarding": {"net.ipv4.ip_forward": 0}})
    hostvars["col1"] = dict(HOSTVARS["col1"], ansible_host="198.19.2.12")
    for host, tunnel in tunnels.items():
        hostvars[host] = dict(hostvars[host], mirror_collector_tunnel=tunnel)
    return groups, hostvars


def test_a_collector_behind_a_tunnel_is_reached_through_it_and_its_own_address_is_never_mirrored():
    groups, hostvars = tunnelled(col1={"vni": 4242, "address": "198.18.250.1/24"}, col2={"vni": 4242, "address": "198.18.250.2/24"})
    result = mirror_plan([{"name": "http", "ports": ["80"], "exclude": ["198.18.9.0/24"]},
                          {"name": "pool", "gateways": ["198.19.2.12", "198.19.2.13"]}], groups, hostvars, "web1", resolver=fake_resolver)
    assert result["mirrors"] == [
        {"name": "http", "state": "present", "ports": ["80"], "gateway": "198.18.250.1", "gateway_interface": "nmvx4242",
         "exclude": ["198.18.9.0/24", "198.19.2.12"]},
        {"name": "pool", "state": "present", "gateways": ["198.18.250.1", "198.18.250.2"], "gateway_interface": "nmvx4242",
         "exclude": ["198.19.2.12", "198.19.2.13"]},
    ]
    assert result["tunnels"] == [{"vni": 4242, "port": 4789, "peers": [{"address": "198.18.250.1", "remote": "198.19.2.12"},
                                                                       {"address": "198.18.250.2", "remote": "198.19.2.13"}]}]
    assert [check["gateway"] for check in result["forwarding"]] == ["198.18.250.1", "198.18.250.2"]


@pytest.mark.parametrize("tunnels, problem", [
    ({"col1": {"vni": 4242, "address": "198.18.250.1/24"}},
     "mirror_sender_mirrors[0] (pool): its collectors col1, col2 must all be reached through one tunnel"),
    ({"col1": {"vni": 4242, "address": "198.18.250.1/24"}, "col2": {"vni": 4243, "address": "198.18.250.2/24"}},
     "mirror_sender_mirrors[0] (pool): its collectors col1, col2 must all be reached through one tunnel"),
    ({"col1": {"vni": 0, "address": "198.18.250.1/24"}, "col2": {"vni": 4242, "address": "198.18.250.2/24"}},
     "mirror_collector_tunnel of collector col1: vni: 0 is not a whole number between 1 and 16777215"),
    ({"col1": {"vni": 4242, "address": "198.18.250.1"}, "col2": {"vni": 4242, "address": "198.18.250.2/24"}},
     "mirror_collector_tunnel of collector col1: address: '198.18.250.1' is not an address with its prefix length"),
])
def test_a_pool_through_unlike_tunnels_or_a_bad_tunnel_is_a_problem_named_by_its_variable(tunnels, problem):
    groups, hostvars = tunnelled(**tunnels)
    with pytest.raises(PlanError) as error:
        mirror_plan([{"name": "pool", "gateways": ["198.19.2.12", "198.19.2.13"]}], groups, hostvars, "web1", resolver=fake_resolver)
    assert error.value.problems[0].startswith(problem), error.value.problems


LINKS = [{"ifname": name} for name in ("nmvx4242", "nmvx7", "vxlan0", "nmvx07", "nmvx99999999", "nmvx42a", "nmvx4243")]


@pytest.mark.parametrize("hostvars, stale", [
    ({}, [7, 4243]),
    ({"web1": {"mirror_collector_tunnel": {"vni": 7, "address": "198.18.250.9/24"}}}, [4243]),
    ({"web1": {"mirror_collector_tunnel": {"vni": "4243", "address": "198.18.250.9/24"}}}, [7]),
])
def test_stale_tunnels_are_the_collections_devices_no_planned_tunnel_and_not_the_hosts_own_end_uses(hostvars, stale):
    assert stale_tunnels(LINKS, [{"vni": 4242, "port": 4789, "peers": []}], "web1", hostvars) == stale


def test_a_bad_own_tunnel_fails_stale_tunnels_naming_it():
    with pytest.raises(ValidationError) as error:
        stale_tunnels(LINKS, [], "web1", {"web1": {"mirror_collector_tunnel": {"vni": "x"}}})
    assert error.value.parameter == "mirror_collector_tunnel.vni"
