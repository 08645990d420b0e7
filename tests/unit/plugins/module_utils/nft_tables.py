"""What `nft -j list table ip netmagic` prints on a host holding rendered objects, for tests
without root: the table, its maps, set and scaffold rules, and each object's chains, tagged
rules, elements and sets, with handles."""

import json

from ansible_collections.netmagic.netfilter.plugins.module_utils import _nftables_engine as nft


def listing(*objects, counter=None, extra_chains=(), family=4):
    """The listing as text; counter adds a counter statement to every rule."""
    name = nft.FAMILIES[family]

    def ref(**fields):
        return dict({"family": name, "table": nft.TABLE}, **fields)

    prefix = [{"counter": counter}] if counter else []
    owned = [nft.render(obj)[family] for obj in objects]
    balancing = any(rules.elements for rules in owned)
    items = [{"table": {"family": name, "name": nft.TABLE, "handle": 1}}]
    chains = list(nft.NAT_CHAINS) if balancing else []
    chains += [chain for rules in owned for chain, _expr in rules.jumps] + list(extra_chains)
    chains += [chain for rules in owned for chain in rules.chains]
    items += [{"chain": ref(name=chain, handle=2)} for chain in dict.fromkeys(chains)]
    if balancing:
        for kind, fields in nft._scaffold_sets(family):
            entries = [[{"elem": {"val": nft._key_value(key), "comment": rules.tag}}, {"jump": {"target": target}}]
                       for rules in owned for service_map, key, target in rules.elements if service_map == fields["name"]]
            if kind == "set":
                entries = [nft._key_value(key) for rules in owned for key in rules.masquerade]
            items.append({kind: ref(handle=3, **(dict(fields, elem=entries) if entries else fields))})
    # An affinity set as the packet path fills it: its clients are listed, with their expiry.
    client = "198.18.1.5" if family == 4 else "2001:2::5"
    items += [{"set": ref(name=set_name, handle=4, elem=[{"elem": {"val": client, "timeout": 60, "expires": 42}}], **json.loads(declared))}
              for rules in owned for set_name, declared in rules.sets.items()]
    handle = 10
    rules = [(chain, None, json.loads(expr)) for chain, expr in (nft._scaffold_rules(family) if balancing else [])]
    rules += [(chain, owner.tag, json.loads(expr)) for owner in owned for chain, expr in owner.jumps]
    rules += [(chain, None, json.loads(expr)) for owner in owned for chain, exprs in owner.chains.items() for expr in exprs]
    for chain, comment, expr in rules:
        rule = ref(chain=chain, handle=handle, expr=prefix + expr)
        if comment:
            rule["comment"] = comment
        items.append({"rule": rule})
        handle += 1
    return json.dumps({"nftables": items})
