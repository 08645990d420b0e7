"""The balancer role on engine nftables: rules in table ip netmagic only, exact rotation."""

CLIENT = "nm-nft-client"
BALANCER = "nm-nft-lb"
BACKENDS = ["nm-nft-backend1", "nm-nft-backend2"]
VIP = "198.19.42.150"


def test_rules_live_in_the_netmagic_table_only(container):
    balancer = container(BALANCER)
    table = balancer.check_output("nft list table ip netmagic")
    assert "ip daddr . meta l4proto . th dport vmap @services" in table  # one lookup per new connection
    assert "dnat ip to numgen inc mod 2 map {" in table and "NM-SEP-" not in table  # choice and DNAT in one rule
    assert 'comment "netmagic:balancer:web"' in table
    assert "NM-" not in balancer.check_output("iptables-nft-save")


def test_connections_rotate_over_the_two_backends(container):
    names = container(CLIENT).check_output(f"for i in $(seq 20); do curl -s -m 3 http://{VIP}/; done").split()
    cycle = names[:2]
    assert sorted(cycle) == sorted(BACKENDS), names
    assert names == cycle * 10, names
