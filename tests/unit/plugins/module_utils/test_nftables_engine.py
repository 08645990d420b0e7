"""The nftables engine's transactions, as golden normalised batches: each case is the table on
the host, the objects' new state, and every command of the one `nft -j -f` batch, one per line.
A failure shows the whole expected and found transaction side by side."""

import json

import pytest

from ansible_collections.netmagic.netfilter.plugins.module_utils import _nftables_engine as nft
from ansible_collections.netmagic.netfilter.plugins.module_utils._host import EngineError
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import build_balancer, build_mirror, definition, rebuild, source_hash_table
from ansible_collections.netmagic.netfilter.plugins.module_utils._naming import chain_name
from ansible_collections.netmagic.netfilter.tests.unit.plugins.module_utils.nft_tables import listing

WEB = ("balancer", "web")
HTTP = ("mirror", "http")
SVC = "NM-SVC-7c6509ab5641d564-web"
MASQ = "NM-MASQ-7c6509ab5641d564-web"
SEP0, SEP1 = "NM-SEP-7c6509ab5641d564-0-we", "NM-SEP-7c6509ab5641d564-1-we"
AFF0, AFF1 = "NM-AFF-7c6509ab5641d564-0-we", "NM-AFF-7c6509ab5641d564-1-we"


def web(backends=("198.18.0.21", "198.18.0.22"), **changes):
    return build_balancer(dict({"name": "web", "vip": "198.18.0.100", "port": 80, "backends": list(backends)}, **changes))


def http():
    return build_mirror({"name": "http", "gateway": "198.18.0.3", "ports": ["80"]})


def routed():
    return build_mirror({"name": "http", "gateway": "198.18.0.3", "ports": ["80"], "service": "routed", "peer": "198.18.1.0/24"})


def sampled():
    return build_mirror({"name": "http", "gateway": "198.18.0.3", "ports": ["80"], "sample": 4, "direction": "ingress"})


def tunnelled():
    return build_mirror({"name": "http", "gateway": "198.18.250.1", "gateway_interface": "nmvx42", "ports": ["80"],
                         "direction": "egress", "exclude": ["198.18.2.2"]})


def pooled():
    return build_mirror({"name": "http", "gateways": ["198.18.0.3", "198.18.0.4"], "ports": ["80"], "direction": "egress", "sample": 2})


MIRF, MIRI, MIRO, MIRP, MIRS = (chain_name(role, "mirror", "http") for role in ("MIRF", "MIRI", "MIRO", "MIRP", "MIRS"))


def line(command):
    """One command as 'verb kind name: the rule in nft syntax'."""
    (verb, body), = command.items()
    (kind, fields), = body.items()
    assert fields.get("table", fields.get("name")) == "netmagic", "a command outside the netmagic table: %s" % command
    if kind == "rule" and "expr" in fields:
        text = nft.rule_text(nft.canonical(fields["expr"]))
        return "%s rule %s: %s%s" % (verb, fields["chain"], text, ' comment "%s"' % fields["comment"] if "comment" in fields else "")
    if kind == "rule":
        return "%s rule %s handle %d" % (verb, fields["chain"], fields["handle"])
    if kind == "element":
        return "; ".join("%s %s" % (verb, _element_line(fields["name"], entry)) for entry in fields["elem"])
    if kind == "set" and fields["name"].startswith("NM-AFF-") and "type" in fields:
        return "%s %s" % (verb, nft.set_text(fields["name"], nft.canonical({k: v for k, v in fields.items() if k in ("type", "flags", "size")})))
    if kind == "set" and fields["name"].startswith("NM-AFF-"):
        return "%s set %s" % (verb, fields["name"])
    if kind == "chain" and "hook" in fields:
        return "%s chain %s { type %s hook %s priority %d; policy %s; }" % (
            verb, fields["name"], fields["type"], fields["hook"], fields["prio"], fields["policy"])
    return "%s %s %s" % (verb, kind, fields["name"] if kind == "chain" else "%s %s" % (fields["family"], fields["name"]))


def _element_line(name, entry):
    key, target = entry if isinstance(entry, list) else (entry, None)
    comment = key["elem"].get("comment") if "elem" in key else None
    value = key["elem"]["val"] if "elem" in key else key
    text = nft.element_text(name, nft.canonical(value["concat"]), target and target["jump"]["target"])
    return text + (' comment "%s"' % comment if comment else "")


def transaction(host_objects, changes, extra_chains=()):
    """The normalised batch that turns the host (holding host_objects) into changes' desired state."""
    snapshot = nft.NftablesSnapshot({4: listing(*host_objects, extra_chains=extra_chains)} if host_objects or extra_chains else {})
    keys = list(changes)
    current = snapshot.owned(keys)
    plan = nft.NftablesEngine(host=None).plan(snapshot, {key: (current[key], nft.render(obj) if obj else {}) for key, obj in changes.items()})
    return [line(command) for command in json.loads(plan.batch)["nftables"]] if plan else []


API = ("balancer", "api")
API_SVC = "NM-SVC-a2a2fb06ca4b146b-api"


def weighted(mode, name="web", port=80):
    return build_balancer({"name": name, "vip": "198.18.0.100", "port": port, "mode": mode,
                           "backends": [{"address": "198.18.0.21", "weight": 2}, {"address": "198.18.0.22", "port": 81}]})


def api():
    return build_balancer({"name": "api", "vip": "198.18.0.100", "port": 8080, "backends": ["198.18.0.21:80"]})


NAT_SCAFFOLD = [
    "add chain nat-output { type nat hook output priority -100; policy accept; }",
    "add chain nat-postrouting { type nat hook postrouting priority 100; policy accept; }",
    "add chain nat-prerouting { type nat hook prerouting priority -100; policy accept; }",
    "add map ip local-services", "add map ip services", "add set ip masquerading",
    "add rule nat-output: ip daddr . meta l4proto . th dport vmap @local-services",
    "add rule nat-postrouting: ct status dnat ct original ip daddr . ip daddr . meta l4proto . th dport @masquerading masquerade",
    "add rule nat-prerouting: ip daddr . meta l4proto . th dport vmap @services",
]
WEB_CHAINS_GONE = ["flush chain %s" % SVC, "delete chain %s" % SVC]
WEB_ELEMENTS_GONE = ["delete local-services: 198.18.0.100 . tcp . 80", "delete services: 198.18.0.100 . tcp . 80"]

CASES = {
    "create": ((), {WEB: web()}, ["add table ip netmagic"] + NAT_SCAFFOLD + [
        "add chain %s" % SVC,
        "add rule %s: meta l4proto tcp dnat ip to numgen inc mod 2 map { 0 : 198.18.0.21 . 80, 1 : 198.18.0.22 . 80 }" % SVC,
        'add local-services: 198.18.0.100 . tcp . 80 : jump %s comment "netmagic:balancer:web"' % SVC,
        'add services: 198.18.0.100 . tcp . 80 : jump %s comment "netmagic:balancer:web"' % SVC,
        "add masquerading: 198.18.0.100 . 198.18.0.21 . tcp . 80; add masquerading: 198.18.0.100 . 198.18.0.22 . tcp . 80",
    ]),
    "no change": ((web(),), {WEB: web()}, []),
    "a backend drained": ((web(),), {WEB: web([{"address": "198.18.0.21", "drain": True}, "198.18.0.22"])}, [
        "add table ip netmagic",
        "add chain %s" % SVC, "flush chain %s" % SVC,
        "add rule %s: meta l4proto tcp dnat ip to numgen inc mod 1 map { 0 : 198.18.0.22 . 80 }" % SVC,
        "delete masquerading: 198.18.0.100 . 198.18.0.21 . tcp . 80",
    ]),
    "only some sources": ((web(),), {WEB: web(source_ranges=["198.18.2.0/24", "198.18.1.0/24", "198.18.9.9"])}, [
        "add table ip netmagic",
        "add chain %s" % SVC, "flush chain %s" % SVC,
        "add rule %s: ip saddr != { 198.18.1.0-198.18.2.255, 198.18.9.9 } return" % SVC,
        "add rule %s: meta l4proto tcp dnat ip to numgen inc mod 2 map { 0 : 198.18.0.21 . 80, 1 : 198.18.0.22 . 80 }" % SVC,
    ]),
    "one source network": ((), {WEB: web(source_ranges=["198.18.4.0/24"])}, ["add table ip netmagic"] + NAT_SCAFFOLD + [
        "add chain %s" % SVC,
        "add rule %s: ip saddr != 198.18.4.0/24 return" % SVC,
        "add rule %s: meta l4proto tcp dnat ip to numgen inc mod 2 map { 0 : 198.18.0.21 . 80, 1 : 198.18.0.22 . 80 }" % SVC,
        'add local-services: 198.18.0.100 . tcp . 80 : jump %s comment "netmagic:balancer:web"' % SVC,
        'add services: 198.18.0.100 . tcp . 80 : jump %s comment "netmagic:balancer:web"' % SVC,
        "add masquerading: 198.18.0.100 . 198.18.0.21 . tcp . 80; add masquerading: 198.18.0.100 . 198.18.0.22 . tcp . 80",
    ]),
    "weights, rotating and random": ((web(),), {WEB: weighted("round_robin"), API: weighted("random", "api", 8080)}, [
        "add table ip netmagic",
        "add chain %s" % SVC, "flush chain %s" % SVC,
        "add chain %s" % API_SVC,
        "add rule %s: meta l4proto tcp dnat ip to numgen inc mod 3 map { 0 : 198.18.0.21 . 80, 1 : 198.18.0.22 . 81, 2 : 198.18.0.21 . 80 }" % SVC,
        "add rule %s: meta l4proto tcp dnat ip to numgen random mod 3 map { 0-1 : 198.18.0.21 . 8080, 2 : 198.18.0.22 . 81 }" % API_SVC,
        'add local-services: 198.18.0.100 . tcp . 8080 : jump %s comment "netmagic:balancer:api"' % API_SVC,
        'add services: 198.18.0.100 . tcp . 8080 : jump %s comment "netmagic:balancer:api"' % API_SVC,
        "delete masquerading: 198.18.0.100 . 198.18.0.22 . tcp . 80",
        "add masquerading: 198.18.0.100 . 198.18.0.21 . tcp . 8080; add masquerading: 198.18.0.100 . 198.18.0.22 . tcp . 81",
    ]),
    "change one backend": ((web(),), {WEB: web(["198.18.0.21", "198.18.0.23"])}, [
        "add table ip netmagic",
        "add chain %s" % SVC, "flush chain %s" % SVC,
        "add rule %s: meta l4proto tcp dnat ip to numgen inc mod 2 map { 0 : 198.18.0.21 . 80, 1 : 198.18.0.23 . 80 }" % SVC,
        "delete masquerading: 198.18.0.100 . 198.18.0.22 . tcp . 80",
        "add masquerading: 198.18.0.100 . 198.18.0.23 . tcp . 80",
    ]),
    "affinity": ((web(),), {WEB: web(affinity="client_ip", affinity_timeout=600)}, [
        "add table ip netmagic",
        "add chain %s" % SEP0, "add chain %s" % SEP1, "add chain %s" % SVC, "flush chain %s" % SVC,
        "add set %s { type ipv4_addr; flags timeout; size 65535 }" % AFF0,
        "add set %s { type ipv4_addr; flags timeout; size 65535 }" % AFF1,
        "add rule %s: update @%s { ip saddr timeout 600s } meta l4proto tcp dnat to 198.18.0.21:80" % (SEP0, AFF0),
        "add rule %s: update @%s { ip saddr timeout 600s } meta l4proto tcp dnat to 198.18.0.22:80" % (SEP1, AFF1),
        "add rule %s: ip saddr @%s goto %s" % (SVC, AFF0, SEP0),
        "add rule %s: ip saddr @%s goto %s" % (SVC, AFF1, SEP1),
        "add rule %s: numgen inc mod 2 vmap { 0 : goto %s, 1 : goto %s }" % (SVC, SEP0, SEP1),
    ]),
    "affinity with one backend drained and a new timeout": (
        (web(affinity="client_ip"),), {WEB: web([{"address": "198.18.0.21", "drain": True}, "198.18.0.22"], affinity="client_ip", affinity_timeout=5)}, [
            "add table ip netmagic",
            "add chain %s" % SEP1, "flush chain %s" % SEP1, "add chain %s" % SVC, "flush chain %s" % SVC,
            "add rule %s: update @%s { ip saddr timeout 5s } meta l4proto tcp dnat to 198.18.0.22:80" % (SEP1, AFF1),
            "add rule %s: ip saddr @%s goto %s" % (SVC, AFF1, SEP1),
            "add rule %s: numgen inc mod 1 vmap { 0 : goto %s }" % (SVC, SEP1),
            "delete masquerading: 198.18.0.100 . 198.18.0.21 . tcp . 80",
            "flush chain %s" % SEP0, "delete chain %s" % SEP0,
            "delete set %s" % AFF0,
        ]),
    "affinity given up": ((web(affinity="client_ip"),), {WEB: web()}, [
        "add table ip netmagic",
        "add chain %s" % SVC, "flush chain %s" % SVC,
        "add rule %s: meta l4proto tcp dnat ip to numgen inc mod 2 map { 0 : 198.18.0.21 . 80, 1 : 198.18.0.22 . 80 }" % SVC,
        "flush chain %s" % SEP0, "flush chain %s" % SEP1, "delete chain %s" % SEP0, "delete chain %s" % SEP1,
        "delete set %s" % AFF0, "delete set %s" % AFF1,
    ]),
    "a mirror of routed traffic": ((), {HTTP: routed()}, [
        "add table ip netmagic",
        "add chain mangle-forward { type filter hook forward priority -150; policy accept; }",
        "add chain %s" % MIRF,
        "add rule %s: ip daddr 198.18.0.3 return" % MIRF,
        "add rule %s: ip saddr 198.18.0.3 return" % MIRF,
        "add rule %s: ip daddr 198.18.1.0/24 tcp dport 80 dup to 198.18.0.3" % MIRF,
        "add rule %s: ip saddr 198.18.1.0/24 tcp sport 80 dup to 198.18.0.3" % MIRF,
        'add rule mangle-forward: jump %s comment "netmagic:mirror:http"' % MIRF,
    ]),
    "a sampled mirror of ingress only chooses its connections at egress": ((), {HTTP: sampled()}, [
        "add table ip netmagic",
        "add chain mangle-output { type filter hook output priority -150; policy accept; }",
        "add chain mangle-prerouting { type filter hook prerouting priority -150; policy accept; }",
        "add chain %s" % MIRI, "add chain %s" % MIRO, "add chain %s" % MIRS,
        "add rule %s: ip daddr 198.18.0.3 return" % MIRI,
        "add rule %s: ip saddr 198.18.0.3 return" % MIRI,
        "add rule %s: tcp sport 80 ct mark & 0x00100000 == 0x00100000 dup to 198.18.0.3" % MIRI,
        "add rule %s: ip daddr 198.18.0.3 return" % MIRO,
        "add rule %s: ip saddr 198.18.0.3 return" % MIRO,
        "add rule %s: tcp dport 80 ct state new jump %s" % (MIRO, MIRS),
        "add rule %s: numgen inc mod 4 0 ct mark set ct mark | 0x00100000" % MIRS,
        'add rule mangle-output: jump %s comment "netmagic:mirror:http"' % MIRO,
        'add rule mangle-prerouting: jump %s comment "netmagic:mirror:http"' % MIRI,
    ]),
    "a sampled pool numbers the connections it takes in turn": ((), {HTTP: pooled()}, [
        "add table ip netmagic",
        "add chain mangle-output { type filter hook output priority -150; policy accept; }",
        "add chain %s" % MIRO, "add chain %s" % MIRP, "add chain %s" % MIRS,
        "add rule %s: ip daddr 198.18.0.3 return" % MIRO,
        "add rule %s: ip saddr 198.18.0.3 return" % MIRO,
        "add rule %s: ip daddr 198.18.0.4 return" % MIRO,
        "add rule %s: ip saddr 198.18.0.4 return" % MIRO,
        "add rule %s: tcp dport 80 ct state new jump %s" % (MIRO, MIRS),
        "add rule %s: tcp dport 80 ct mark & 0x00300000 == 0x00100000 dup to 198.18.0.3" % MIRO,
        "add rule %s: tcp dport 80 ct mark & 0x00300000 == 0x00200000 dup to 198.18.0.4" % MIRO,
        "add rule %s: ct mark & 0x00300000 == 0x00000000 numgen inc mod 2 0 ct mark set ct mark & 0xffdfffff | 0x00100000" % MIRP,
        "add rule %s: ct mark & 0x00300000 == 0x00000000 ct mark set ct mark & 0xffefffff | 0x00200000" % MIRP,
        "add rule %s: numgen inc mod 2 0 jump %s" % (MIRS, MIRP),
        'add rule mangle-output: jump %s comment "netmagic:mirror:http"' % MIRO,
    ]),
    "a mirror to a collector through a tunnel leaves its underlay address alone": ((), {HTTP: tunnelled()}, [
        "add table ip netmagic",
        "add chain mangle-output { type filter hook output priority -150; policy accept; }",
        "add chain %s" % MIRO,
        "add rule %s: ip daddr 198.18.250.1 return" % MIRO,
        "add rule %s: ip saddr 198.18.250.1 return" % MIRO,
        "add rule %s: ip daddr 198.18.2.2 return" % MIRO,
        "add rule %s: ip saddr 198.18.2.2 return" % MIRO,
        'add rule %s: tcp dport 80 dup to 198.18.250.1 device "nmvx42"' % MIRO,
        'add rule mangle-output: jump %s comment "netmagic:mirror:http"' % MIRO,
    ]),
    "remove the last object": ((web(),), {WEB: None}, ["delete table ip netmagic"]),
    "remove one of two objects": ((web(), http()), {WEB: None}, ["add table ip netmagic"] + WEB_ELEMENTS_GONE + [
        "delete masquerading: 198.18.0.100 . 198.18.0.21 . tcp . 80; delete masquerading: 198.18.0.100 . 198.18.0.22 . tcp . 80",
    ] + WEB_CHAINS_GONE),
    "a masquerading key two balancers share stays with the one left": ((web(), api()), {WEB: None}, [
        "add table ip netmagic"] + WEB_ELEMENTS_GONE + ["delete masquerading: 198.18.0.100 . 198.18.0.22 . tcp . 80"] + WEB_CHAINS_GONE),
    "a chain of someone else's keeps the table": ((web(),), {WEB: None}, ["add table ip netmagic"] + WEB_ELEMENTS_GONE + [
        "delete masquerading: 198.18.0.100 . 198.18.0.21 . tcp . 80; delete masquerading: 198.18.0.100 . 198.18.0.22 . tcp . 80",
    ] + WEB_CHAINS_GONE, ("handmade",)),
}


@pytest.mark.parametrize("name", CASES)
def test_transaction(name):
    host_objects, changes, expected, *extra = CASES[name]
    found = transaction(host_objects, changes, *extra)
    assert found == expected, "\n".join(["expected:"] + expected + ["found:"] + found)


def recorded_state(*host_objects):
    recorded = {(obj.kind, obj.name): {"definition": definition(obj), "signatures": sorted(nft.NftablesEngine.signatures(nft.render(obj)))}
                for obj in host_objects}
    return nft.NftablesEngine(host=None).recorded_state(recorded, rebuild)


def recorded_changes(state, changes):
    current = state.owned(list(changes))
    return {key: (current[key], nft.render(obj) if obj else {}) for key, obj in changes.items()}


def recorded_transaction(host_objects, changes):
    """The batch planned from a trusted record of host_objects instead of a listing."""
    state = recorded_state(*host_objects)
    plan = nft.NftablesEngine(host=None).plan(state, recorded_changes(state, changes))
    return [line(command) for command in json.loads(plan.batch)["nftables"]] if plan else []


def test_a_record_plans_the_removal_of_a_mirror_jump_only_with_its_table():
    """The jump is deleted by its handle, which only a listing gives, unless the table goes."""
    state = recorded_state(web(), http())
    assert not state.can_plan(recorded_changes(state, {HTTP: None}))
    assert state.can_plan(recorded_changes(state, {WEB: web(["198.18.0.23"])}))
    assert state.can_plan(recorded_changes(state, {HTTP: None, WEB: None}))
    assert recorded_transaction((web(), http()), {HTTP: None, WEB: None}) == ["delete table ip netmagic"]


def test_a_key_that_only_a_drained_backend_of_another_balancer_names_is_added_from_a_record_as_from_a_listing():
    drained = web([{"address": "198.18.0.21", "drain": True}, "198.18.0.22"])
    listed = transaction((drained,), {API: api()})
    assert "add masquerading: 198.18.0.100 . 198.18.0.21 . tcp . 80" in listed, listed
    assert recorded_transaction((drained,), {API: api()}) == listed


def web6():
    return build_balancer({"name": "web6", "vip": "2001:2::100", "port": 80, "backends": ["2001:2::21"]})


@pytest.mark.parametrize("host_objects, tables", [
    pytest.param((web(),), ["ip"], id="one"),
    pytest.param((web(), http()), ["ip"], id="two"),
    pytest.param((web(), http(), web6()), ["ip", "ip6"], id="both families"),
])
def test_a_record_clears_its_tables_as_the_removal_of_each_object_would_without_their_rules(host_objects, tables):
    keys = [(obj.kind, obj.name) for obj in host_objects]
    recorded = recorded_state(*host_objects).recorded

    def refuse(kind, params):
        raise AssertionError("%s %s was rendered" % (kind, params["name"]))
    clearing = nft.NftablesEngine(host=None).recorded_state(recorded, refuse).clearing_plan()
    found = [line(command) for command in json.loads(clearing.batch)["nftables"]]
    assert found == recorded_transaction(host_objects, dict.fromkeys(keys))
    assert found == ["delete table %s netmagic" % family for family in tables]


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if len(case) == 3])
def test_a_trusted_record_plans_the_transaction_a_listing_does(name):
    host_objects, changes, expected = CASES[name]
    found = recorded_transaction(host_objects, changes)
    assert found == expected, "\n".join(["expected:"] + expected + ["found:"] + found)


@pytest.mark.parametrize("table, keys, holds_only", [
    pytest.param(listing(web(), http()), [WEB, HTTP], True, id="the objects and the scaffold"),
    pytest.param(listing(web(), http()), [WEB], False, id="an object the keys do not name"),
    pytest.param(listing(web(), extra_chains=("handmade",)), [WEB], False, id="a chain of someone else's"),
    pytest.param(listing(web(), api()).replace('"198.18.0.21", "tcp", 80', '"198.18.0.29", "tcp", 80', 1), [WEB, ("balancer", "api")], False,
                 id="a masquerading key no balancer needs"),
    pytest.param(listing(http()), [HTTP], True, id="a mirror, no scaffold"),
    pytest.param(listing(web(affinity="client_ip")), [WEB], True, id="affinity sets, their clients listed"),
    pytest.param(listing(web(affinity="client_ip")).replace("NM-AFF-7c6509ab5641d564-1-we", "handmade", 1), [WEB], False,
                 id="a set of someone else's"),
])
def test_only_a_table_of_owned_objects_alone_can_be_trusted_to_a_record(table, keys, holds_only):
    snapshot = nft.NftablesSnapshot({4: table})
    assert snapshot.holds_only(snapshot.owned(keys)) is holds_only


class RecordingHost:
    """nft answers with rc and stderr; the batch file it was given is kept."""

    def __init__(self, rc=0, err=""):
        self.rc, self.err, self.batches = rc, err, []

    @staticmethod
    def which(name):
        return "/usr/sbin/" + name

    def run(self, argv):
        with open(argv[-1]) as handle:
            self.batches.append((argv[:-1], handle.read()))
        return self.rc, "", self.err


def test_a_change_is_one_nft_run_on_a_file_and_check_mode_adds_c():
    engine = nft.NftablesEngine(RecordingHost())
    plan = engine.plan(nft.NftablesSnapshot({}), {WEB: ({}, nft.render(web()))})
    engine.apply(plan, check_only=True)
    engine.apply(plan)
    assert [argv for argv, _batch in engine.host.batches] == [["/usr/sbin/nft", "-c", "-j", "-f"], ["/usr/sbin/nft", "-j", "-f"]]
    assert engine.host.batches[0][1] == plan.batch and len(plan.batch.splitlines()) == len(json.loads(plan.batch)["nftables"]) + 2


def test_a_refused_batch_shows_the_failing_command_in_context():
    host = RecordingHost(rc=1, err="/tmp/netmagic-x.json:5:1-20: Error: Could not process rule: No such file or directory\n")
    engine = nft.NftablesEngine(host)
    with pytest.raises(EngineError) as raised:
        engine.apply(engine.plan(nft.NftablesSnapshot({}), {WEB: ({}, nft.render(web()))}))
    message = str(raised.value)
    assert message.startswith("nft refused the change, nothing was applied (rc=1)")
    assert "the kernel may lack an nftables expression" in message and "numgen (CONFIG_NFT_NUMGEN)" in message
    assert len(message.splitlines()) <= 12, "more than the failing line and its context"


def test_source_hash_is_a_jhash_of_the_client_into_the_lookup_table():
    balancer = web([{"address": "198.18.0.21", "weight": 2}, "198.18.0.22", "198.18.0.23"], mode="source_hash")
    [rule] = nft.render(balancer)[4].chains[SVC]
    dnat = json.loads(rule)[1]["dnat"]["addr"]["map"]
    assert dnat["key"] == {"jhash": {"mod": 4096, "seed": nft.HASH_SEED, "expr": {"payload": {"protocol": "ip", "field": "saddr"}}}}
    slots = []
    for key, data in dnat["data"]["set"]:
        first, last = key["range"] if isinstance(key, dict) else (key, key)
        slots += [tuple(data["concat"])] * (last - first + 1)
    assert slots == [(backend.address, backend.port) for backend in source_hash_table(balancer.serving)]
    assert nft.rule_text(rule).startswith("meta l4proto tcp dnat ip to jhash ip saddr mod 4096 seed 0x6e6d6e6d map { 0")
