"""Property tests: whatever a definition holds, it is refused naming a parameter, or every value
of the model is canonical and every renderer's output passes the writer guards."""

import ipaddress
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.netmagic.netfilter.plugins.module_utils import _iptables_rules as iprules
from ansible_collections.netmagic.netfilter.plugins.module_utils import _nftables_engine as nft
from ansible_collections.netmagic.netfilter.plugins.module_utils._guard import check_nft_commands, check_restore_buffer
from ansible_collections.netmagic.netfilter.plugins.module_utils._model import (
    INTERFACE_PATTERN,
    NAME_PATTERN,
    ValidationError,
    _backend_from_string,
    _canonical_unicast_ipv4,
    _parsed_backend,
    build_balancer,
    build_mirror,
)
from ansible_collections.netmagic.netfilter.tests.unit.plugins.module_utils.strategies import balancer_params, mirror_params

MIRROR_OPTIONS = {"name", "gateway", "protocol", "ports", "service", "direction", "peer", "interface", "sample", "connmark_bit",
                  "max_new_connections", "gateways"}
BALANCER_OPTIONS = {"name", "vip", "port", "protocol", "backends", "mode", "masquerade", "local_clients", "source_ranges", "affinity",
                    "affinity_timeout"}
PROPERTY_SETTINGS = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def option_of(parameter):
    """'backends[2].weight' -> 'backends'."""
    return parameter.split("[", 1)[0].split(".", 1)[0]


def built(build, params, options):
    """The model object, or None after checking the refusal names one of the options."""
    try:
        return build(params)
    except ValidationError as error:
        assert option_of(error.parameter) in options, error
        assert str(error).startswith("parameter '%s'" % error.parameter)
        return None


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def assert_canonical_address(text):
    assert "%" not in text
    assert str(ipaddress.ip_address(text)) == text


def assert_rendered_output_passes_the_guards(obj):
    owned = iprules.render(obj)
    buffer = iprules.restore_buffer({}, owned, obj.family)
    assert buffer and check_restore_buffer(buffer) == buffer
    removal = iprules.restore_buffer(owned, {}, obj.family)
    assert check_restore_buffer(removal) == removal
    desired = nft.render(obj)[obj.family]
    commands = nft._family_commands(obj.family, [(nft.NftRules(), desired)], nft.FamilyState())
    assert check_nft_commands(commands) == commands
    json.dumps(commands)


def assert_it_reads_back_as_rendered(obj):
    """What the renderer writes is what the reader takes as this object's, nothing less or more."""
    owned = iprules.render(obj)
    key = (obj.kind, obj.name)
    read = iprules.owned_rules_of(iprules.parse_save(iprules.as_text(owned)), [key], obj.family)[key]
    assert iprules.same_rules(read, owned)


@PROPERTY_SETTINGS
@given(mirror_params())
def test_any_mirror_definition_is_refused_or_canonical(params):
    mirror = built(build_mirror, params, MIRROR_OPTIONS)
    if mirror is None:
        return
    assert NAME_PATTERN.fullmatch(mirror.name)
    assert_canonical_address(mirror.gateway)
    if mirror.peer:
        assert str(ipaddress.ip_network(mirror.peer)) == mirror.peer and "%" not in mirror.peer
    if mirror.interface:
        assert INTERFACE_PATTERN.fullmatch(mirror.interface)
    assert all(isinstance(port.first, int) and 1 <= port.first <= port.last <= 65535 for port in mirror.ports)
    assert is_int(mirror.sample) and 1 <= mirror.sample <= 1000000 and is_int(mirror.connmark_bit) and 0 <= mirror.connmark_bit <= 31
    assert_rendered_output_passes_the_guards(mirror)
    assert_it_reads_back_as_rendered(mirror)


@PROPERTY_SETTINGS
@given(balancer_params())
def test_any_balancer_definition_is_refused_or_canonical(params):
    balancer = built(build_balancer, params, BALANCER_OPTIONS)
    if balancer is None:
        return
    assert NAME_PATTERN.fullmatch(balancer.name)
    assert_canonical_address(balancer.vip)
    assert is_int(balancer.port) and isinstance(balancer.masquerade, bool) and isinstance(balancer.local_clients, bool)
    for backend in balancer.backends:
        assert_canonical_address(backend.address)
        assert is_int(backend.port) and is_int(backend.weight)
    networks = [ipaddress.ip_network(network) for network in balancer.source_ranges]
    assert [str(network) for network in networks] == list(balancer.source_ranges)
    assert list(ipaddress.collapse_addresses(networks)) == networks, "source ranges that overlap or could merge"
    assert balancer.affinity in ("none", "client_ip") and is_int(balancer.affinity_timeout) and 1 <= balancer.affinity_timeout <= 86400
    assert_rendered_output_passes_the_guards(balancer)
    assert_it_reads_back_as_rendered(balancer)


DOTTED = st.lists(st.one_of(st.integers(0, 300).map(str), st.sampled_from(["0", "00", "01", "127", "224", "239", "255", "256"])),
                  min_size=3, max_size=5).map(".".join)


@given(st.one_of(DOTTED, st.from_regex(r"[0-9.]{1,16}", fullmatch=True)))
@PROPERTY_SETTINGS
def test_the_dotted_quad_shortcut_agrees_with_ipaddress(text):
    """A text the shortcut accepts is a unicast address whose canonical form is that text."""
    if _canonical_unicast_ipv4(text) is None:
        return
    address = ipaddress.ip_address(text)
    assert str(address) == text and not (address.is_unspecified or address.is_multicast or address.is_loopback)
    assert address != ipaddress.IPv4Address("255.255.255.255")


@given(st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))))
@PROPERTY_SETTINGS
def test_every_canonical_unicast_quad_takes_the_shortcut(text):
    address = ipaddress.IPv4Address(text)
    unicast = not (address.is_unspecified or address.is_multicast or address.is_loopback or text == "255.255.255.255")
    assert (_canonical_unicast_ipv4(text) == text) is unicast


ADDRESSES = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)


@given(ADDRESSES, ADDRESSES, st.sampled_from(["tcp", "udp"]), st.integers(1, 65535))
@PROPERTY_SETTINGS
def test_a_masquerading_key_formatted_directly_is_the_canonical_one(address, backend, protocol, port):
    assert nft._masquerade_key(address, backend, protocol, port) == nft._key(address, backend, protocol, port)


OCTETS = st.one_of(st.integers(min_value=0, max_value=300).map(str), st.sampled_from(["00", "01", "010", "255", "256", "", "1a"]))
PORTS = st.one_of(st.none(), st.integers(min_value=0, max_value=99999).map(str), st.sampled_from(["080", "", " 80", "65536", "8o"]))


def _outcome(parse, text):
    try:
        return parse("backends[0]", text, 443)
    except ValidationError as error:
        return str(error)


@PROPERTY_SETTINGS
@given(st.lists(OCTETS, min_size=3, max_size=5), PORTS, st.sampled_from(["", " ", "[", "]", "\n"]))
def test_the_usual_backend_is_told_as_the_whole_parser_tells_it(octets, port, affix):
    text = ".".join(octets) + ("" if port is None else ":" + port)
    for candidate in (text, affix + text, text + affix):
        assert _outcome(_backend_from_string, candidate) == _outcome(_parsed_backend, candidate), candidate
