"""Hypothesis strategies: definitions of mirrors and balancers whose every field is either a valid
value, a valid value with something hostile stuck to it, or anything at all."""

from hypothesis import strategies as st

# What an attacker appends or prepends: line breaks, NUL, zone ids, quotes, restore-file syntax,
# Unicode digits, shell syntax, IPv4-in-IPv6.
HOSTILE = [
    "\n", "\x00", " ", "%1", "%1\nCOMMIT\n*filter\n-F\n-X\n-P INPUT ACCEPT\nCOMMIT\n*nat\n#", '"', "\\", "\u00b2", "\u0663",
    "$(id)", "::ffff:", "\r", "\t", "\u2028", ":", "-", "/32",
]


def hostile(valid):
    """A valid value, alone or with hostile text before or after it."""
    return st.tuples(st.sampled_from(valid), st.sampled_from(HOSTILE), st.booleans()).map(
        lambda parts: (parts[1] + str(parts[0])) if parts[2] else (str(parts[0]) + parts[1]))


ANYTHING = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2 ** 70, max_value=2 ** 70), st.floats(allow_nan=True),
    st.text(max_size=40), st.lists(st.text(max_size=8), max_size=3), st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)


def field(valid):
    """A bad value for a field: a valid one spoilt, or anything at all (valid by chance at times)."""
    return st.one_of(hostile(valid), hostile(valid), ANYTHING)


def corrupted(valid, bad_fields):
    """A valid definition with none, one or two of its fields replaced by a bad value or left out."""
    one_change = st.one_of([st.fixed_dictionaries({name: st.one_of(strategy, st.just(MISSING))}) for name, strategy in bad_fields.items()])

    def apply(parts):
        params, changes = parts
        params = dict(params)
        for change in changes:
            for name, value in change.items():
                if value is MISSING:
                    params.pop(name, None)
                else:
                    params[name] = value
        return params
    return st.tuples(valid, st.lists(one_change, max_size=2)).map(apply)


MISSING = object()
NAMES = ["http", "web-1", "a.b_c", "x" * 64]
ADDRESSES4 = ["198.18.0.3", "198.19.255.254"]
ADDRESSES6 = ["2001:2::3", "2001:2:0:0:0:0:0:21", "2001:2::ABCD"]


def mirror_params():
    return corrupted(valid_mirror_params(), {
        "name": field(NAMES),
        "gateway": field(ADDRESSES4 + ADDRESSES6),
        "protocol": field(["tcp", "udp", "icmp", "all"]),
        "ports": st.one_of(st.lists(st.one_of(st.sampled_from(["80", "8000:8100", 8080]), field(["80", "8000:8100", "65535"])), max_size=3),
                           ANYTHING),
        "service": field(["remote", "local", "routed"]),
        "direction": field(["both", "ingress", "egress"]),
        "peer": field(["198.18.0.0/24", "2001:2::/64", "198.18.0.7", "2001:2::7/128"]),
        "interface": field(["d0", "eth+", "veth1.2", "a" * 15]),
        "sample": field([1, 4, "10", 0, 1000001]),
        "connmark_bit": field([0, 31, "20", 32]),
        "max_new_connections": field([1, "100", 10000, 0, 10001]),
        "gateways": st.one_of(st.lists(field(ADDRESSES4 + ADDRESSES6), max_size=3), ANYTHING),
    })


BACKEND_ADDRESSES = ["198.18.0.21", "198.18.0.22", "2001:2::21", "2001:2::22"]
BACKEND_TEXTS = ["198.18.0.21", "198.18.0.22:8080", "[2001:2::21]:80", "2001:2::22", "[2001:2::23]"]


def backend():
    return st.one_of(
        field(BACKEND_TEXTS),
        st.fixed_dictionaries({"address": field(BACKEND_ADDRESSES)}, optional={"port": field([80, "81"]), "weight": field([1, 3, "2", 4096])}),
        ANYTHING,
    )


SOURCE_RANGES4 = ["198.18.1.0/24", "198.18.2.0/24", "198.18.3.7", "10.0.0.0/8", "10.1.0.0/16"]
SOURCE_RANGES6 = ["2001:2::/64", "2001:2:0:1::/64", "2001:3::7"]


def balancer_params():
    return corrupted(valid_balancer_params(), {
        "name": field(NAMES),
        "vip": field(["198.18.0.100", "2001:2::100"]),
        "port": field([80, "8080", 443]),
        "protocol": field(["tcp", "udp"]),
        "backends": st.one_of(st.lists(backend(), max_size=4), ANYTHING),
        "mode": field(["round_robin", "random", "source_hash"]),
        "masquerade": field([True, False]),
        "local_clients": field([True, False]),
        "source_ranges": st.one_of(st.lists(field(SOURCE_RANGES4 + SOURCE_RANGES6 + ["198.18.1.5/24", "2001:2::/200"]), max_size=4), ANYTHING),
        "affinity": field(["none", "client_ip"]),
        "affinity_timeout": field([1, "600", 86400, 0, 86401]),
    })


def valid_mirror_params():
    """Definitions most of which are valid, for the kernel's own dry run."""
    family = st.sampled_from([4, 6])
    return family.flatmap(lambda f: st.fixed_dictionaries({
        "name": st.sampled_from(NAMES),
        "gateway": st.sampled_from(ADDRESSES4 if f == 4 else ADDRESSES6),
        "protocol": st.sampled_from(["tcp", "udp", "icmp", "all"]),
        "service": st.sampled_from(["remote", "local", "routed"]),
        "direction": st.sampled_from(["both", "ingress", "egress"]),
    }, optional={
        "ports": st.lists(st.sampled_from(["80", "8000:8100", "443", "1-1024", "65535"]), max_size=2, unique=True),
        "peer": st.sampled_from(["198.18.0.0/24", "198.18.0.7"] if f == 4 else ["2001:2::/64", "2001:2::7/128", "2001:2::7"]),
        "interface": st.sampled_from(["d0", "eth+", "veth1.2", "a" * 15]),
        "sample": st.sampled_from([1, 2, 10, 1000000]),
        "connmark_bit": st.sampled_from([0, 20, 31]),
        "max_new_connections": st.sampled_from([1, 5, 50, 10000]),
        "gateways": st.sampled_from([[], ["198.18.0.3", "198.18.0.4"], ["198.18.0.3", "198.18.0.4", "198.18.0.5"]] if f == 4
                                    else [[], ["2001:2::3", "2001:2::4"]]),
    })).map(_one_collector_option)


def _one_collector_option(params):
    """A pool's definition without the gateway the strategy gives every definition."""
    return {key: value for key, value in params.items() if key != "gateway" or not params.get("gateways")}


def valid_balancer_params():
    family = st.sampled_from([4, 6])
    return family.flatmap(lambda f: st.fixed_dictionaries({
        "name": st.sampled_from(NAMES),
        "vip": st.just("198.18.0.100" if f == 4 else "2001:2::100"),
        "port": st.integers(min_value=1, max_value=65535),
        "protocol": st.sampled_from(["tcp", "udp"]),
        "backends": st.lists(st.fixed_dictionaries(
            {"address": st.sampled_from(["198.18.0.%d" % i for i in range(21, 30)] if f == 4 else ["2001:2::%x" % i for i in range(0x21, 0x30)])},
            optional={"port": st.integers(min_value=1, max_value=65535), "weight": st.integers(min_value=1, max_value=40)}),
            min_size=1, max_size=5, unique_by=lambda b: (b["address"], b.get("port"))),
        "mode": st.sampled_from(["round_robin", "random", "source_hash"]),
        "masquerade": st.booleans(),
        "local_clients": st.booleans(),
    }, optional={
        "source_ranges": st.lists(st.sampled_from(SOURCE_RANGES4 if f == 4 else SOURCE_RANGES6), max_size=4),
        "affinity": st.sampled_from(["none", "client_ip"]),
        "affinity_timeout": st.integers(min_value=1, max_value=86400),
    }))
