"""Every promise of the modules, proven with real packets between lab namespaces."""

import collections
import ipaddress
import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from tests.integration.collector_capture import start_collector_capture, stop_collector_capture
from tests.integration.netfilter import distrust, plant_foreign, ruleset, run_module, wait_until, without_counters
from ansible_collections.netmagic.netfilter.plugins.module_utils._capture import announcement_arguments
from tests.lab.netlab import INTERFACE, Lab, pcap_packet_count

CLIENT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lab", "client.py")


@pytest.fixture
def make_lab():
    labs = []

    def make(backends=3):
        lab = Lab("t" + uuid.uuid4().hex[:5], backends=backends, subnet="198.18.%d.0/24" % (len(labs) + 1))
        labs.append(lab)
        lab.up()
        return lab

    yield make
    for lab in labs:
        lab.down()


def connect(lab, host, target, count, port=80, **options):
    argv = [sys.executable, CLIENT, target, "--port", str(port), "--count", str(count)]
    for name, value in options.items():
        argv += ["--" + name.replace("_", "-"), str(value)]
    completed = lab.run(host, argv, check=True, timeout=120)
    return json.loads(completed.stdout)["answers"]


def apply(lab, host, module, **params):
    result = run_module(lab.ns(host), module, params)
    assert result["rc"] == 0 and not result.get("failed"), result
    return result


def address(lab, host, family):
    return lab.addr(host) if family == 4 else lab.addr6(host)


def vip(lab, family):
    return lab.vip if family == 4 else lab.vip6


def set_forwarding(lab, host, value):
    lab.set_sysctl(host, "net.ipv4.ip_forward", value)
    lab.set_sysctl(host, "net.ipv6.conf.all.forwarding", value)


CLIENT_NETWORKS = {4: "198.19.0.0/22", 6: "2001:2:0:ffff::/64"}


def client_network(lab, family, count):
    """count addresses on the client in a network of their own, which the balancer routes to the client."""
    network = ipaddress.ip_network(CLIENT_NETWORKS[family])
    addresses = [str(network.network_address + 1 + index) for index in range(count)]
    lab.run("client", ["ip", "-batch", "-"], check=True, input="".join(
        "addr add %s/%d dev %s%s\n" % (a, network.max_prefixlen, INTERFACE, " nodad" if family == 6 else "") for a in addresses))
    lab.run("lb", ["ip", "-%d" % family, "route", "add", str(network), "via", address(lab, "client", family)], check=True)
    return addresses


def assert_exact_rotation(answers, backends):
    """Every window of one cycle holds each backend its number of turns, in the same order."""
    period = len(backends)
    cycle = answers[:period]
    assert sorted(cycle) == sorted(backends), answers
    assert answers == (cycle * (len(answers) // period + 1))[: len(answers)], answers


# --- mirror -------------------------------------------------------------------

PORT_80 = ("tcp dport 80", "tcp sport 80")


def mirror_lab(make_lab, forwarding="0"):
    lab = make_lab(backends=1)
    lab.start_http("web", 80)
    lab.start_http("web", 8080)
    set_forwarding(lab, "collector", forwarding)
    return lab


def test_mirror_clones_every_request_and_response_packet(make_lab, engine, family):
    lab = mirror_lab(make_lab)
    apply(lab, "sender", "tee_mirror", name="http", gateway=address(lab, "collector", family), ports=["80"], engine=engine)
    web = address(lab, "web", family)
    with lab.count("collector", *PORT_80) as clones, lab.count("web", *PORT_80) as originals:
        answers = connect(lab, "sender", web, 5)
    with lab.count("collector", "tcp dport 8080", "tcp sport 8080") as unmatched:
        assert connect(lab, "sender", web, 3, port=8080) == ["web"] * 3
    assert answers == ["web"] * 5
    assert originals.count >= 5 * 8, "too few packets for five HTTP exchanges"
    assert clones.count == originals.count
    assert unmatched.count == 0
    assert lab.http_requests("web") == 8, "the web server saw a request more than once"
    assert lab.forwarded("collector") == 0


AGEING_SECONDS = 2


def flooded_clones(lab, announcing):
    """Clones that reach the client, a host of the segment uninvolved in the mirror, in 20
    exchanges after the bridge's ageing time, while the collector announces itself as the
    mirror_collector role's timer does (every second here, against an ageing time of two) or
    stays silent as a collector otherwise does."""
    facts = {"interfaces": [INTERFACE], INTERFACE: {"device": INTERFACE, "active": True, "ipv4": {"address": lab.addr("collector")}}}
    announcements = []
    if announcing:
        commands = "\n".join("arping %s" % " ".join(arguments) for arguments in announcement_arguments(facts))
        # Bounded: 30 rounds, one a second.
        announcements.append(lab.popen("collector", ["sh", "-c", "for i in $(seq 30); do %s; sleep 1; done" % commands],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    # The bridge's clean-up runs once per ageing time: an entry goes within two of them.
    time.sleep(3 * AGEING_SECONDS)
    with lab.capture("client", "tcp port 80 and ether dst %s" % lab.mac("collector")) as seen:
        assert connect(lab, "sender", lab.addr("web"), 20) == ["web"] * 20
    for process in announcements:
        process.kill()
        process.wait()
    return seen.count


@pytest.mark.alone
def test_a_collector_that_announces_itself_is_never_flooded_to_the_segment(make_lab):
    """A collector never transmits, so the bridge forgets its MAC after its ageing time and
    floods every clone to every port; the collector role's announcements keep it known."""
    lab = mirror_lab(make_lab)
    set_forwarding(lab, "collector", "0")
    subprocess.run(["ip", "link", "set", "dev", lab.bridge, "type", "bridge", "ageing_time", str(AGEING_SECONDS * 100)], check=True)
    apply(lab, "sender", "tee_mirror", name="http", gateway=lab.addr("collector"), ports=["80"])
    # The sender resolves the collector's address: the collector's one answer, then silence.
    assert connect(lab, "sender", lab.addr("web"), 1) == ["web"]
    assert flooded_clones(lab, announcing=False) >= 20 * 8, "the bridge did not flood: the test proves nothing"
    assert flooded_clones(lab, announcing=True) == 0


@pytest.mark.alone
def test_the_collectors_capture_keeps_every_clone_it_receives_under_load(make_lab, tmp_path):
    lab = mirror_lab(make_lab)
    apply(lab, "sender", "tee_mirror", name="http", gateway=lab.addr("collector"), ports=["80"])
    capture = start_collector_capture(lab, tmp_path, "tcp port 80")
    with lab.count("collector", *PORT_80) as delivered, lab.count("web", *PORT_80) as originals:
        load = lab.run("sender", ["wrk", "-t2", "-c32", "-d5s", "--timeout", "2s", "http://%s/" % lab.addr("web")], check=True, timeout=60)
    statistics = stop_collector_capture(capture)
    written = sum(pcap_packet_count(path) for path in tmp_path.glob("mirror.pcap*"))
    assert " requests in " in load.stdout, load.stdout
    assert originals.count > 10000, "too little load to show anything"
    # Under load the segment itself may lose a few originals or clones after the TEE rule
    # counted them; what is claimed here is the capture's fidelity to what was delivered.
    assert abs(delivered.count - originals.count) <= originals.count // 1000, (delivered.count, originals.count)
    assert statistics["dropped_by_kernel"] == 0, statistics
    assert statistics["captured"] == written, "tcpdump counted packets its files do not hold"
    assert written >= 0.999 * delivered.count, (written, delivered.count, statistics)


@pytest.mark.parametrize(
    "direction, cloned, not_cloned",
    [("egress", "tcp dport 80", "tcp sport 80"), ("ingress", "tcp sport 80", "tcp dport 80")],
)
def test_mirror_one_direction_only(make_lab, engine, family, direction, cloned, not_cloned):
    lab = mirror_lab(make_lab)
    apply(lab, "sender", "tee_mirror", name="http", gateway=address(lab, "collector", family), ports=["80"],
          direction=direction, engine=engine)
    with lab.count("collector", cloned) as clones, lab.count("collector", not_cloned) as others, \
            lab.count("web", cloned) as originals:
        assert connect(lab, "sender", address(lab, "web", family), 4) == ["web"] * 4
    assert clones.count == originals.count > 0
    assert others.count == 0


def test_mirror_on_the_server_with_service_local(make_lab, engine, family):
    lab = mirror_lab(make_lab)
    apply(lab, "web", "tee_mirror", name="served-http", gateway=address(lab, "collector", family), ports=["80"],
          service="local", engine=engine)
    # Counted at the client: the web host also sends the clones, which would count twice there.
    with lab.count("collector", *PORT_80) as clones, lab.count("client", *PORT_80) as originals:
        assert connect(lab, "client", address(lab, "web", family), 4) == ["web"] * 4
    assert clones.count == originals.count > 0
    assert lab.http_requests("web") == 4


def route_through_sender(lab, family):
    """Client and web reach each other through the sender, which forwards on its one link and
    sends them no redirect (nor do they take one)."""
    set_forwarding(lab, "sender", "1")
    for key in ("net.ipv4.conf.all.send_redirects", "net.ipv4.conf.%s.send_redirects" % INTERFACE):
        lab.set_sysctl("sender", key, "0")
    prefix = 32 if family == 4 else 128
    for host, other in (("client", "web"), ("web", "client")):
        for key in ("net.ipv4.conf.all.accept_redirects", "net.ipv6.conf.%s.accept_redirects" % INTERFACE):
            lab.set_sysctl(host, key, "0")
        lab.run(host, ["ip", "-%d" % family, "route", "add", "%s/%d" % (address(lab, other, family), prefix),
                       "via", address(lab, "sender", family)], check=True)


def test_a_router_mirrors_both_directions_of_routed_traffic_with_service_routed(make_lab, engine, family):
    assert_routed_clones(make_lab, engine, family, "routed", "all")


@pytest.mark.parametrize("service, cloned", [("remote", "responses"), ("local", "requests")])
def test_a_router_mirrors_one_direction_of_routed_traffic_with_service_remote_or_local(make_lab, engine, service, cloned):
    assert_routed_clones(make_lab, engine, 4, service, cloned)


def assert_routed_clones(make_lab, engine, family, service, cloned):
    lab = mirror_lab(make_lab)
    route_through_sender(lab, family)
    apply(lab, "sender", "tee_mirror", name="routed-http", gateway=address(lab, "collector", family), ports=["80"],
          service=service, engine=engine)
    with lab.count("collector", "tcp dport 80") as request_clones, lab.count("collector", "tcp sport 80") as response_clones, \
            lab.count("web", "tcp dport 80") as requests, lab.count("web", "tcp sport 80") as responses:
        assert connect(lab, "client", address(lab, "web", family), 5) == ["web"] * 5
    assert requests.count >= 5 * 4 and responses.count >= 5 * 4, "too few packets for five HTTP exchanges"
    expected = {"all": (requests.count, responses.count), "responses": (0, responses.count), "requests": (requests.count, 0)}
    assert (request_clones.count, response_clones.count) == expected[cloned]
    assert lab.http_requests("web") == 5, "the web server saw a request more than once"


# Tests that read whole connections from captures run alone: with two tests at a time on two
# cores a capture once lost a connection's first packet.
def connection_packets(pcap, service_port=80):
    """{(client port, client's initial sequence number): packets} of the TCP connections in a
    capture, in the order they began, as tshark reads them (a port may serve two connections)."""
    fields = subprocess.run(["tshark", "-n", "-r", str(pcap), "-Y", "tcp", "-T", "fields", "-e", "tcp.stream", "-e", "tcp.srcport",
                             "-e", "tcp.dstport", "-e", "tcp.seq_raw", "-e", "tcp.flags.syn", "-e", "tcp.flags.ack"],
                            capture_output=True, text=True, check=True, timeout=60).stdout
    streams, keys = {}, {}
    for line in fields.splitlines():
        stream, source, destination, sequence, syn, ack = line.split("\t")
        streams[stream] = streams.get(stream, 0) + 1
        if syn in ("1", "True") and ack in ("0", "False") and int(destination) == service_port:
            keys[stream] = (int(source), int(sequence))
    assert set(keys) == set(streams), "a connection without its first packet in %s" % pcap
    return {keys[stream]: count for stream, count in streams.items()}


@pytest.mark.alone  # whole connections from captures (connection_packets)
def test_a_sampled_mirror_clones_one_connection_in_n_whole_in_both_directions(make_lab, engine, family):
    lab = mirror_lab(make_lab)
    apply(lab, "sender", "tee_mirror", name="http", gateway=address(lab, "collector", family), ports=["80"], sample=4, engine=engine)
    with lab.capture("collector", "tcp port 80") as clones, lab.capture("web", "tcp port 80") as originals:
        assert connect(lab, "sender", address(lab, "web", family), 40) == ["web"] * 40
    sent, mirrored = connection_packets(originals.path), connection_packets(clones.path)
    assert len(sent) == 40 and all(count >= 8 for count in sent.values()), sent
    assert mirrored == {port: sent[port] for port in list(sent)[::4]}, "not the first of every 4 connections, each whole"


@pytest.mark.alone  # a rate per second: beside other tests, its seconds stretch
def test_a_capped_mirror_clones_at_most_its_rate_of_new_connections_each_whole(make_lab, engine, family):
    lab = mirror_lab(make_lab)
    apply(lab, "sender", "tee_mirror", name="http", gateway=address(lab, "collector", family), ports=["80"], max_new_connections=5,
          engine=engine)
    with lab.capture("collector", "tcp port 80") as clones, lab.capture("web", "tcp port 80") as originals:
        started = time.monotonic()
        assert connect(lab, "sender", address(lab, "web", family), 40) == ["web"] * 40
        seconds = time.monotonic() - started
    sent, mirrored = connection_packets(originals.path), connection_packets(clones.path)
    assert len(sent) == 40
    assert list(sent)[:5] == list(mirrored)[:5], "the first second's worth of connections was not mirrored"
    assert len(mirrored) <= 5 + 5 * seconds + 1, (len(mirrored), seconds)
    assert mirrored == {key: sent[key] for key in mirrored}, "a mirrored connection is not whole"
    assert not apply(lab, "sender", "tee_mirror", name="http", gateway=address(lab, "collector", family), ports=["80"],
                     max_new_connections=5, engine=engine)["changed"]


@pytest.mark.alone  # whole connections from captures (connection_packets)
def test_a_pool_sends_each_connection_wholly_to_one_collector_in_turn(make_lab, engine, family):
    lab = make_lab(backends=2)
    lab.start_http("web", 80)
    set_forwarding(lab, "collector", "0")
    pool = ["collector", "be1", "be2"]
    apply(lab, "sender", "tee_mirror", name="http", gateways=[address(lab, host, family) for host in pool], ports=["80"], engine=engine)
    # What each collector is sent, not what the bridge floods to it before it learns the others' addresses.
    received = {host: "tcp port 80 and ether dst %s" % mac_of(lab, host) for host in pool}
    exchanged = "tcp port 80 and ether host %s" % mac_of(lab, "web")
    with lab.capture("web", exchanged) as originals, lab.capture("collector", received["collector"]) as first, \
            lab.capture("be1", received["be1"]) as second, lab.capture("be2", received["be2"]) as third:
        assert connect(lab, "sender", address(lab, "web", family), 30) == ["web"] * 30
    sent = connection_packets(originals.path)
    assert len(sent) == 30
    for turn, capture in enumerate((first, second, third)):
        assert connection_packets(capture.path) == {key: sent[key] for key in list(sent)[turn::3]}, "collector %s" % pool[turn]


def mac_of(lab, host):
    return lab.run(host, ["cat", "/sys/class/net/eth0/address"], check=True).stdout.strip()


def collector_mac(lab):
    return mac_of(lab, "collector")


def test_a_collector_that_forwards_puts_clones_back_on_the_network(make_lab, engine):
    """Why the collector role exists: with forwarding on, the web server receives every clone again."""
    lab = mirror_lab(make_lab, forwarding="1")
    apply(lab, "sender", "tee_mirror", name="http", gateway=lab.addr("collector"), ports=["80"], engine=engine)
    leaked = "tcp port 80 and ether src %s" % collector_mac(lab)
    with lab.capture("web", leaked) as duplicates:
        connect(lab, "sender", lab.addr("web"), 3)
    assert duplicates.count > 0
    assert lab.forwarded("collector") > 0

    lab.set_sysctl("collector", "net.ipv4.ip_forward", "0")
    forwarded_before = lab.forwarded("collector")
    with lab.capture("web", leaked) as duplicates, lab.capture("collector", "tcp port 80") as clones:
        connect(lab, "sender", lab.addr("web"), 3)
    assert clones.count > 0
    assert duplicates.count == 0
    assert lab.forwarded("collector") == forwarded_before


# --- balancer -----------------------------------------------------------------

def balancer_lab(make_lab, backends):
    lab = make_lab(backends=backends)
    for backend in lab.backend_hosts:
        lab.start_http(backend, 80)
    return lab


def backend_addresses(lab, family):
    return [address(lab, b, family) for b in lab.backend_hosts]


@pytest.mark.parametrize("backends", [2, 3, 5])
def test_round_robin_rotates_exactly(make_lab, engine, family, backends):
    lab = balancer_lab(make_lab, backends)
    apply(lab, "lb", "dnat_balancer", name="web", vip=vip(lab, family), port=80, engine=engine,
          backends=backend_addresses(lab, family))
    answers = connect(lab, "client", vip(lab, family), 30)
    assert_exact_rotation(answers, lab.backend_hosts)
    assert collections.Counter(answers) == {b: 30 // backends for b in lab.backend_hosts}


def test_services_applied_in_one_run_each_rotate_exactly(make_lab, engine, family):
    lab = balancer_lab(make_lab, 3)
    web, api = backend_addresses(lab, family), backend_addresses(lab, family)[:2]
    result = apply(lab, "lb", "netfilter_apply", engine=engine, balancers=[
        {"name": "web", "vip": vip(lab, family), "port": 80, "backends": web},
        {"name": "api", "vip": vip(lab, family), "port": 8080, "backends": [{"address": a, "port": 80} for a in api]}])
    assert [item["changed"] for item in result["balancers"]] == [True, True]
    on_web, on_api = connect(lab, "client", vip(lab, family), 30), connect(lab, "client", vip(lab, family), 30, port=8080)
    assert_exact_rotation(on_web, lab.backend_hosts)
    assert_exact_rotation(on_api, lab.backend_hosts[:2])
    assert collections.Counter(on_api) == {"be1": 15, "be2": 15}


def test_source_ranges_balance_only_the_clients_in_them(make_lab, engine, family):
    """The client's own address is the range; another host's connections reach the VIP address
    itself unchanged (nothing listens there on the balancer: refused), and no backend sees them."""
    lab = balancer_lab(make_lab, 2)
    host_prefix = 32 if family == 4 else 128
    apply(lab, "lb", "dnat_balancer", name="web", vip=vip(lab, family), port=80, engine=engine, backends=backend_addresses(lab, family),
          source_ranges=["%s/%d" % (address(lab, "client", family), host_prefix)])
    inside = connect(lab, "client", vip(lab, family), 10)
    outside = connect(lab, "sender", vip(lab, family), 4)
    assert collections.Counter(inside) == {"be1": 5, "be2": 5}
    assert len(outside) == 4 and all(answer.startswith("ERROR") for answer in outside), outside
    widened = apply(lab, "lb", "dnat_balancer", name="web", vip=vip(lab, family), port=80, engine=engine, backends=backend_addresses(lab, family),
                    source_ranges=["%s/%d" % (address(lab, host, family), host_prefix) for host in ("sender", "client")])
    assert widened["changed"]
    assert collections.Counter(connect(lab, "sender", vip(lab, family), 4)) == {"be1": 2, "be2": 2}


STREAM_TICKS = 40  # 4 s: the drain, the removal and the new connections fit in it


@pytest.mark.parametrize("drained_first", [True, False], ids=["drained-then-removed", "removed"])
def test_draining_and_removing_a_backend_keep_its_open_connection(make_lab, engine, family, drained_first):
    """A stream open on be1 goes on, whole, while be1 is drained and removed (or removed at once); no new connection reaches be1."""
    lab = balancer_lab(make_lab, 2)
    be1, be2 = backend_addresses(lab, family)
    service = dict(name="web", vip=vip(lab, family), port=80, engine=engine)
    apply(lab, "lb", "dnat_balancer", backends=[be1, be2], **service)
    # A fresh rotation sends its first connection to be1.
    stream = lab.popen("client", [sys.executable, CLIENT, vip(lab, family), "--count", "1", "--path", "/stream/%d" % STREAM_TICKS,
                                  "--timeout", "10"], stdout=subprocess.PIPE, text=True)
    assert wait_until(lambda: lab.http_requests("be1") >= 1) and lab.http_requests("be1") == 1, "the stream did not reach be1"
    if drained_first:
        assert apply(lab, "lb", "dnat_balancer", backends=[{"address": be1, "drain": True}, be2], **service)["changed"]
        assert connect(lab, "client", vip(lab, family), 6) == ["be2"] * 6
    # Removing the drained backend changes nothing on nftables (no chain per backend) and renumbers
    # the endpoint chains on iptables.
    apply(lab, "lb", "dnat_balancer", backends=[be2], **service)
    assert connect(lab, "client", vip(lab, family), 4) == ["be2"] * 4
    assert stream.poll() is None, "the stream ended before the drain and the removal were done"
    output = stream.communicate(timeout=20)[0]
    assert json.loads(output)["answers"][0].split() == ["be1"] + ["tick"] * STREAM_TICKS
    assert lab.http_requests("be1") == 1, "a new connection reached the drained backend"


AFFINITY_TIMEOUT = 3  # seconds: each client comes back within it while 30 clients take turns


def test_affinity_keeps_each_client_on_its_backend_until_the_timeout(make_lab, engine, family):
    """30 clients, 10 connections each, in turns: each keeps the backend of its first connection,
    and the first connections rotate over every backend. Once the timeout has passed, one new
    client moves the rotation one turn on, so every client, forgotten, lands on the next backend."""
    lab = balancer_lab(make_lab, 3)
    clients = client_network(lab, family, 31)
    regulars, newcomer = clients[:30], clients[30]
    service = dict(name="web", vip=vip(lab, family), port=80, engine=engine, backends=backend_addresses(lab, family),
                   affinity="client_ip", affinity_timeout=AFFINITY_TIMEOUT)
    apply(lab, "lb", "dnat_balancer", **service)
    answers = connect(lab, "client", vip(lab, family), 300, source=",".join(regulars))
    # The clients remembered are the packet path's, not rules: a run that reads them changes nothing.
    distrust(lab.ns("lb"))
    assert apply(lab, "lb", "dnat_balancer", **service)["changed"] is False
    assert len(answers) == 300
    by_client = {client: answers[index::30] for index, client in enumerate(regulars)}
    assert all(len(set(seen)) == 1 for seen in by_client.values()), by_client
    first = [by_client[client][0] for client in regulars]
    assert collections.Counter(first) == {backend: 10 for backend in lab.backend_hosts}
    # Masquerade takes a source address of the balancer's outgoing interface; the VIP is one too.
    seen_from = [source for backend in lab.backend_hosts for source in lab.http_clients(backend)]
    assert len(seen_from) == 300 and set(seen_from) <= {address(lab, "lb", family), vip(lab, family)}, "not masqueraded"
    time.sleep(AFFINITY_TIMEOUT + 1)
    assert connect(lab, "client", vip(lab, family), 1, source=newcomer) == ["be1"]
    later = connect(lab, "client", vip(lab, family), 30, source=",".join(regulars))
    following = {"be1": "be2", "be2": "be3", "be3": "be1"}
    assert later == [following[backend] for backend in first], "a client kept its backend after the timeout"


UDP_SCRIPT = os.path.join(os.path.dirname(CLIENT), "udp.py")
UDP_DATAGRAMS = 30  # one every 100 ms: the change happens while they flow


def udp_reached(lab, family, count, source_port, options, interval):
    """{number: the backend it reached} of count numbered datagrams, sent with udp.py's options
    (each datagram a flow of its own), counted in the backends' logs."""
    before = {host: len(lab.udp_datagrams(host)) for host in lab.backend_hosts}
    lab.run("client", [sys.executable, UDP_SCRIPT, "send", vip(lab, family), "--port", "53", "--source-port", str(source_port),
                       "--count", str(count), "--interval", str(interval)] + options, check=True, timeout=120)
    time.sleep(0.3)
    return {int(number): host for host in lab.backend_hosts for number in lab.udp_datagrams(host)[before[host]:]}


def udp_flows(lab, family, count, first_port):
    """The backend each of count new UDP flows (each datagram from a source port of its own, from
    first_port on) reached, in order."""
    reached = udp_reached(lab, family, count, first_port, ["--new-flows"], 0.02)
    return [reached.get(number, "lost") for number in range(1, count + 1)]


def udp_round(lab, family, sources, source_port):
    """{number of the source: the backend its datagram reached}, one datagram (one flow) from each source."""
    return udp_reached(lab, family, len(sources), source_port, ["--sources", ",".join(sources)], 0.0002)


def test_udp_flows_rotate_exactly_with_and_without_weights(make_lab, engine, family):
    lab = make_lab(backends=3)
    for backend in lab.backend_hosts:
        lab.start_udp(backend, 53)
    for weights, first_port in (((1, 1, 1), 41000), ((3, 1, 1), 42000)):
        backends = [{"address": a, "weight": w} for a, w in zip(backend_addresses(lab, family), weights)]
        apply(lab, "lb", "dnat_balancer", name="dns", vip=vip(lab, family), port=53, protocol="udp", engine=engine, backends=backends)
        reached = udp_flows(lab, family, 6 * sum(weights), first_port)
        assert collections.Counter(reached) == {host: 6 * weight for host, weight in zip(lab.backend_hosts, weights)}, reached
        assert_exact_rotation(reached, [host for host, weight in zip(lab.backend_hosts, weights) for _turn in range(weight)])


def test_source_hash_moves_only_the_clients_of_a_removed_backend(make_lab, engine, family):
    """1,000 client addresses over 10 backends: removing one moves its clients, all of them and no
    others (at most 1/10 + 2 % of all), and adding it back gives each client its backend again."""
    lab = make_lab(backends=10)
    for backend in lab.backend_hosts:
        lab.start_udp(backend, 53)
    clients = client_network(lab, family, 1000)
    backends = backend_addresses(lab, family)
    service = dict(name="dns", vip=vip(lab, family), port=53, protocol="udp", mode="source_hash", engine=engine)
    apply(lab, "lb", "dnat_balancer", backends=backends, **service)
    first = udp_round(lab, family, clients, 42001)
    assert len(first) == 1000 and set(first.values()) == set(lab.backend_hosts)
    assert max(collections.Counter(first.values()).values()) <= 150, collections.Counter(first.values())
    apply(lab, "lb", "dnat_balancer", backends=backends[:4] + backends[5:], **service)
    second = udp_round(lab, family, clients, 42002)
    moved = {number for number in first if second.get(number) != first[number]}
    assert len(second) == 1000 and moved == {number for number, host in first.items() if host == "be5"}
    assert len(moved) <= 120, len(moved)
    apply(lab, "lb", "dnat_balancer", backends=backends, **service)
    assert udp_round(lab, family, clients, 42003) == first


@pytest.mark.parametrize("change", ["removed", "drained", "created"])
def test_a_udp_flow_that_keeps_its_source_port_moves_with_the_change(make_lab, engine, family, change):
    """A client sends from one source port, so every datagram is one conntrack flow, while its
    backend is removed or drained, or while the service is created (its first datagrams went to
    the VIP itself). Every datagram after the run reaches a serving backend, none is lost in
    between, and none reaches the old backend."""
    lab = make_lab(backends=2)
    for backend in lab.backend_hosts:
        lab.start_udp(backend, 53)
    be1, be2 = backend_addresses(lab, family)
    service = dict(name="dns", vip=vip(lab, family), port=53, protocol="udp", engine=engine)
    if change != "created":
        apply(lab, "lb", "dnat_balancer", backends=[be1, be2], **service)
    else:
        # With NAT hooks in place (another service here), a flow's first packet binds it to no
        # translation; without, the flow would still be translated once rules come.
        apply(lab, "lb", "dnat_balancer", name="web", vip=vip(lab, family), port=80, engine=engine, backends=[be1])
    started = time.monotonic()
    sender = lab.popen("client", [sys.executable, UDP_SCRIPT, "send", vip(lab, family), "--port", "53", "--source-port", "40053",
                                  "--count", str(UDP_DATAGRAMS)], stdout=subprocess.PIPE, text=True)
    if change == "created":
        time.sleep(1)
        assert lab.udp_datagrams("be1") == lab.udp_datagrams("be2") == []
    else:
        assert wait_until(lambda: len(lab.udp_datagrams("be1")) >= 5), "the flow did not reach be1 (the first turn)"
    backends = {"removed": [be2], "drained": [{"address": be1, "drain": True}, be2], "created": [be1, be2]}[change]
    assert apply(lab, "lb", "dnat_balancer", backends=backends, **service)["changed"]
    sent_by_then = int((time.monotonic() - started) / 0.1) + 1
    before = {host: lab.udp_datagrams(host) for host in lab.backend_hosts}
    assert json.loads(sender.communicate(timeout=20)[0]) == {"sent": UDP_DATAGRAMS}
    time.sleep(0.3)
    after = {host: lab.udp_datagrams(host)[len(before[host]):] for host in lab.backend_hosts}
    received = [int(number) for host in lab.backend_hosts for number in before[host] + after[host]]
    if change == "created":
        # The datagrams before the service went to the VIP itself; every one after it to be1.
        assert after["be2"] == [] and received == list(range(received[0], UDP_DATAGRAMS + 1)), received
        # Sent after the run: from the one after the last sent by then on (the sender starts late, if at all).
        assert received[0] <= sent_by_then + 1, "datagrams sent after the run were lost"
    else:
        assert after["be1"] == [], "datagrams reached the old backend after the run"
        assert received == list(range(1, UDP_DATAGRAMS + 1)), "datagrams were lost: %s" % received
        assert after["be2"], "no datagram reached the backend left"


def test_weights_three_to_one_split_exactly(make_lab, engine, family):
    lab = balancer_lab(make_lab, 2)
    apply(lab, "lb", "dnat_balancer", name="web", vip=vip(lab, family), port=80, engine=engine,
          backends=[{"address": address(lab, "be1", family), "weight": 3}, address(lab, "be2", family)])
    answers = connect(lab, "client", vip(lab, family), 40)
    assert collections.Counter(answers) == {"be1": 30, "be2": 10}
    assert_exact_rotation(answers, ["be1", "be1", "be1", "be2"])


def test_random_mode_spreads_evenly(make_lab, engine, family):
    lab = balancer_lab(make_lab, 3)
    apply(lab, "lb", "dnat_balancer", name="web", vip=vip(lab, family), port=80, mode="random", engine=engine,
          backends=backend_addresses(lab, family))
    answers = connect(lab, "client", vip(lab, family), 3000, max_seconds=120)
    assert len(answers) == 3000
    shares = {b: answers.count(b) / 3000 for b in lab.backend_hosts}
    assert all(abs(share - 1 / 3) < 0.05 for share in shares.values()), shares
    assert answers[:30] != answers[3:33], "random mode rotates like round robin"


@pytest.mark.parametrize("local_clients", [True, False])
def test_connections_opened_on_the_balancer_itself(make_lab, engine, family, local_clients):
    lab = balancer_lab(make_lab, 3)
    apply(lab, "lb", "dnat_balancer", name="web", vip=vip(lab, family), port=80, local_clients=local_clients,
          engine=engine, backends=backend_addresses(lab, family))
    answers = connect(lab, "lb", vip(lab, family), 9, timeout=1)
    if local_clients:
        assert_exact_rotation(answers, lab.backend_hosts)
    else:
        assert all(answer.startswith("ERROR") for answer in answers), answers
    assert_exact_rotation(connect(lab, "client", vip(lab, family), 9), lab.backend_hosts)


def test_masquerade_covers_balanced_connections_only(make_lab, engine, family):
    lab = balancer_lab(make_lab, 2)
    apply(lab, "lb", "dnat_balancer", name="web", vip=vip(lab, family), port=80, engine=engine,
          backends=backend_addresses(lab, family))
    connect(lab, "client", vip(lab, family), 4)
    lb, client, be2 = (address(lab, host, family) for host in ("lb", "client", "be2"))
    # Masquerade takes a source address of the balancer's outgoing interface; the VIP is one too.
    lb_addresses = {lb, vip(lab, family)}
    assert len(lab.http_clients("be1")) == 2 and set(lab.http_clients("be1")) <= lb_addresses

    # Other traffic routed through the balancer keeps its source address. The client ignores
    # redirects, so its packets keep going through the balancer.
    for key in ("net.ipv4.conf.all.accept_redirects", "net.ipv4.conf.eth0.accept_redirects",
                "net.ipv6.conf.all.accept_redirects", "net.ipv6.conf.eth0.accept_redirects"):
        lab.set_sysctl("client", key, "0")
    lab.run("client", ["ip", "route", "add", be2, "via", lb], check=True)
    forwarded_before = lab.run("lb", ["cat", "/proc/net/snmp6"], check=True).stdout + str(lab.forwarded("lb"))
    assert connect(lab, "client", be2, 2) == ["be2", "be2"]
    forwarded_after = lab.run("lb", ["cat", "/proc/net/snmp6"], check=True).stdout + str(lab.forwarded("lb"))
    assert forwarded_after != forwarded_before, "the test connection did not pass through the balancer"
    sources = lab.http_clients("be2")
    assert set(sources[:2]) <= lb_addresses and sources[2:] == [client] * 2


def test_changing_backends_under_load_fails_no_connection(make_lab, engine, family):
    lab = balancer_lab(make_lab, 4)
    first, second = ["be1", "be2", "be3"], ["be1", "be2", "be4"]
    service = {"name": "web", "vip": vip(lab, family), "port": 80, "engine": engine}
    apply(lab, "lb", "dnat_balancer", backends=[address(lab, b, family) for b in first], **service)
    stop = lab.state_dir / "stop-load"
    # The load runs until every change is applied and a little after, however slow the applies are.
    load = lab.popen("client", [sys.executable, CLIENT, vip(lab, family), "--count", "20000", "--pause", "0.005",
                                "--max-seconds", "60", "--until-file", str(stop)], stdout=subprocess.PIPE, text=True)
    for backends in (second, first, second):
        apply(lab, "lb", "dnat_balancer", backends=[address(lab, b, family) for b in backends], **service)
    time.sleep(0.5)
    stop.touch()
    stdout, _unused = load.communicate(timeout=60)
    answers = json.loads(stdout)["answers"]
    assert not [a for a in answers if a.startswith("ERROR")]
    assert answers[-1] in second and "be4" in answers and "be3" in answers
    tail = answers[answers.index("be4"):]
    assert set(tail) <= set(first) | set(second)


def test_check_mode_apply_again_and_removal_on_the_lab(make_lab, engine, family):
    lab = balancer_lab(make_lab, 2)
    # A FORWARD policy of DROP would stop the balanced traffic itself, so this host accepts forwarding.
    before = without_counters(plant_foreign(lab.ns("lb"), engine, forward_policy="ACCEPT"))
    service = {"name": "web", "vip": vip(lab, family), "port": 80, "engine": engine,
               "backends": [address(lab, "be1", family), address(lab, "be2", family)]}
    assert run_module(lab.ns("lb"), "dnat_balancer", service, check=True)["changed"]
    assert without_counters(ruleset(lab.ns("lb"))) == before
    assert all(a.startswith("ERROR") for a in connect(lab, "client", vip(lab, family), 2, timeout=1)), "check mode balanced"
    assert apply(lab, "lb", "dnat_balancer", **service)["changed"]
    assert not apply(lab, "lb", "dnat_balancer", **service)["changed"]
    assert connect(lab, "client", vip(lab, family), 2, timeout=1) in (["be1", "be2"], ["be2", "be1"])
    apply(lab, "lb", "dnat_balancer", name="web", state="absent", engine=engine)
    assert without_counters(ruleset(lab.ns("lb"))) == before
    assert all(a.startswith("ERROR") for a in connect(lab, "client", vip(lab, family), 2, timeout=1))
