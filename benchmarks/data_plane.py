"""Data plane in the lab: what mirroring and balancing cost the traffic, and changes under load.

Mirror: iperf3 TCP throughput and wrk HTTP latency from sender to web with no mirror, a full
mirror, one sampling 1 in 10 connections and one over a pool of three collectors (interleaved),
and the share of the clones sent that the collectors received.
Balancer: wrk connections per second from client through the VIP on lb, against straight to one
backend, with the per-backend split; then connections that failed while the service was changed
in the middle of a bounded load; then connections per second through the VIP with 1 service and
with 1,000 services on the host, per engine, and with session affinity against round robin.
Every load has a fixed duration and ends by itself.
"""

import contextlib
import re
import subprocess
import sys
import time

from benchmarks import collection, measure

sys.path.insert(0, collection.REPO)
from tests.integration.netfilter import run_module  # noqa: E402 - needs the repo on the path
from tests.lab.netlab import Lab  # noqa: E402

LAB_ID = "bdp"
SUBNET = "198.18.1.0/24"
BACKENDS = 4
HTTP_PORT = 8080
# The "whole service rewritten" step moves every backend to this second port.
OTHER_HTTP_PORT = 8081
IPERF_PORT = 5201
VIP_PORT = 80
FAST_HTTPD = __file__.replace("data_plane.py", "fast_httpd.py")
WRK_CONNECTIONS = 16
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
# Fresh connections at full speed run out of ephemeral ports within seconds without these.
CLIENT_SYSCTLS = {"net.ipv4.ip_local_port_range": "1024 65535", "net.ipv4.tcp_tw_reuse": "1"}


# --- load generators -------------------------------------------------------------

def _ms(text):
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * UNITS[unit]


def parse_wrk(text):
    """Requests, requests/s, latency percentiles (ms) and failed requests from wrk --latency output."""
    percentiles = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)$", text, re.M))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "requests": int(re.search(r"(\d+) requests in", text).group(1)),
        "per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "p50_ms": _ms(percentiles["50"]), "p90_ms": _ms(percentiles["90"]), "p99_ms": _ms(percentiles["99"]),
        "failed": (sum(int(n) for n in errors.groups()) if errors else 0) + (int(non_2xx.group(1)) if non_2xx else 0),
    }


def wrk(lab, host, url, duration):
    argv = ["wrk", "-t1", "-c%d" % WRK_CONNECTIONS, "-d%ds" % duration, "--timeout", "2s", "--latency", url]
    completed = lab.run(host, argv, check=True, timeout=duration + 30)
    return parse_wrk(completed.stdout)


def iperf(lab, duration):
    """Sender-to-web TCP throughput in Gbit/s of IPERF_STREAMS connections, as the receiver counted it."""
    completed = lab.run("sender", ["iperf3", "-c", lab.addr("web"), "-p", str(IPERF_PORT), "-t", str(duration), "-P", str(IPERF_STREAMS), "-J"],
                        check=True, timeout=duration + 30)
    received = re.search(r'"sum_received":\s*{[^}]*"bits_per_second":\s*([\d.e+]+)', completed.stdout)
    return float(received.group(1)) / 1e9


# --- lab set-up ------------------------------------------------------------------

def start_fast_httpd(lab, host, port):
    ready = lab.state_dir / ("fast-%s-%d.ready" % (host, port))
    ready.unlink(missing_ok=True)
    lab.popen(host, [sys.executable, FAST_HTTPD, "--name", host, "--port", str(port), "--ready", str(ready)])
    deadline = time.monotonic() + 10
    while not ready.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("fast_httpd on %s:%d did not start" % (host, port))
        time.sleep(0.05)


def prepare(lab):
    lab.set_sysctl("collector", "net.ipv4.ip_forward", "0")  # clones must stop at the collector
    for host in ("client", "sender"):
        for key, value in CLIENT_SYSCTLS.items():
            lab.set_sysctl(host, key, value)
    for host in ["web", *lab.backend_hosts]:
        for port in (HTTP_PORT, OTHER_HTTP_PORT):
            start_fast_httpd(lab, host, port)
    lab.popen("web", ["iperf3", "-s", "-p", str(IPERF_PORT)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # iperf3 -s has no ready signal


def module(lab, host, name, args):
    result = run_module(lab.ns(host), name, args)
    if result.get("rc") or result.get("failed"):
        raise RuntimeError("%s on %s failed: %s" % (name, host, result.get("msg")))
    return result


# --- mirror ----------------------------------------------------------------------

IPERF_STREAMS = 10  # so that sampling 1 in 10 connections has connections to choose from
# The pool's collectors: backends have forwarding off too, and the balancer runs come later.
POOL = ("collector", "be1", "be2")
# tee_mirror options of each way of mirroring, against the mirror absent ("off").
MIRRORS = {"off": None, "full": {}, "sampled": {"sample": 10}, "pooled": {"gateways": POOL}}


def collectors(options):
    """The hosts a way of mirroring sends clones to."""
    return list(options["gateways"]) if options and "gateways" in options else ["collector"]


def set_mirror(lab, options):
    if options is None:
        return module(lab, "sender", "tee_mirror", {"name": "bench", "state": "absent"})
    addresses = [lab.addr(host) for host in collectors(options)]
    args = {"name": "bench", "ports": [str(IPERF_PORT), str(HTTP_PORT)], "sample": options.get("sample", 1)}
    args.update({"gateways": addresses} if "gateways" in options else {"gateway": addresses[0]})
    return module(lab, "sender", "tee_mirror", args)


def counted(lab, port, hosts, action):
    """action's result and exact counts of one port's packets: the sender's own, the clones it
    sent, and the clones each of hosts received."""
    # The sender's clones leave through its OUTPUT hook too, as untracked packets.
    own = ("tcp dport %d ct state != untracked" % port, "tcp sport %d ct state != untracked" % port)
    clones = ("tcp dport %d ct state untracked" % port, "tcp sport %d ct state untracked" % port)
    with contextlib.ExitStack() as stack:
        sender = stack.enter_context(lab.count("sender", *own))
        sent = stack.enter_context(lab.count("sender", *clones))
        received = {host: stack.enter_context(lab.count(host, "tcp dport %d" % port, "tcp sport %d" % port)) for host in hosts}
        value = action()
    return value, {"packets": sender.count, "clones_sent": sent.count, "received": {host: c.count for host, c in received.items()}}


def mirror_trial(lab, options, duration):
    set_mirror(lab, options)
    hosts = collectors(options)
    gbps, tcp = counted(lab, IPERF_PORT, hosts, lambda: iperf(lab, duration))
    http, web = counted(lab, HTTP_PORT, hosts, lambda: wrk(lab, "sender", "http://%s:%d/" % (lab.addr("web"), HTTP_PORT), duration))
    return {"gbps": gbps, "iperf": tcp, "http": http, "http_counts": web}


def mirror_experiment(lab, repeats, duration, log):
    """Each way of mirroring in turn in every repeat, so that the ratios to "off" are paired."""
    rows = {mode: [] for mode in MIRRORS}
    engine = set_mirror(lab, MIRRORS["full"])["engine"]
    for repeat in range(repeats):
        for mode, options in MIRRORS.items():
            row = mirror_trial(lab, options, duration)
            rows[mode].append(row)
            log("  mirror %s repeat %d: %.2f Gbit/s, HTTP %.0f/s p50 %.2f ms, clones sent %d of %d packets, received %s"
                % (mode, repeat + 1, row["gbps"], row["http"]["per_second"], row["http"]["p50_ms"], row["iperf"]["clones_sent"],
                   row["iperf"]["packets"], row["iperf"]["received"]))
    set_mirror(lab, None)
    off = rows["off"]
    found = {"engine": engine, "iperf_streams": IPERF_STREAMS, "pool": list(POOL), "modes": {}}
    for mode, trials in rows.items():
        summary = _mirror_summary(trials)
        for name, figure in VERSUS_OFF.items():
            summary[name] = measure.paired_ratios([figure(r) for r in trials], [figure(r) for r in off])
        found["modes"][mode] = summary
    return found


# Figures of a trial compared with the same repeat's trial without a mirror.
VERSUS_OFF = {"throughput_vs_off": lambda trial: trial["gbps"], "latency_p50_vs_off": lambda trial: trial["http"]["p50_ms"],
              "requests_vs_off": lambda trial: trial["http"]["per_second"]}


def _shares(counts):
    """Clones sent ÷ the sender's packets, and clones received (at all collectors) ÷ clones sent."""
    received = sum(counts["received"].values())
    return (counts["clones_sent"] / counts["packets"] if counts["packets"] else None,
            received / counts["clones_sent"] if counts["clones_sent"] else None)


def _mirror_summary(rows):
    out = {"gbps": measure.summary(r["gbps"] for r in rows)}
    for key in ("per_second", "p50_ms", "p90_ms", "p99_ms", "failed"):
        out["http_" + key] = measure.summary(r["http"][key] for r in rows)
    for load, key in (("iperf", "iperf"), ("http", "http_counts")):
        shares = [_shares(r[key]) for r in rows]
        out["mirrored_share_" + load] = measure.summary(mirrored for mirrored, _delivered in shares if mirrored is not None)
        out["delivered_" + load] = measure.summary(delivered for _mirrored, delivered in shares if delivered is not None)
    # How evenly a pool spread the HTTP connections' clones: each collector's share of them.
    hosts = rows[0]["http_counts"]["received"]
    out["spread_http"] = {host: measure.summary(r["http_counts"]["received"][host] / max(sum(r["http_counts"]["received"].values()), 1)
                                                for r in rows) for host in hosts}
    return out


# --- balancer --------------------------------------------------------------------

def set_service(lab, backends, port=HTTP_PORT):
    args = {"name": "bench", "vip": lab.vip, "port": VIP_PORT, "backends": ["%s:%d" % (lab.addr(b), port) for b in backends]}
    return module(lab, "lb", "dnat_balancer", args)


def new_connections(lab, hosts, action):
    """(action's result, {host: SYNs it received}) from exact kernel counters."""
    counts = {host: lab.count(host, "tcp flags & (syn | ack) == syn") for host in hosts}
    for counter in counts.values():
        counter.__enter__()
    try:
        value = action()
    finally:
        for counter in counts.values():
            counter.__exit__(None, None, None)
    return value, {host: counter.count for host, counter in counts.items()}


def balancer_experiment(lab, repeats, duration, log):
    backends = lab.backend_hosts[:3]
    engine = set_service(lab, backends)["engine"]
    vip, straight, splits = [], [], []
    for repeat in range(repeats):
        through_vip, split = new_connections(lab, backends, lambda: wrk(lab, "client", "http://%s:%d/" % (lab.vip, VIP_PORT), duration))
        direct = wrk(lab, "client", "http://%s:%d/" % (lab.addr(backends[0]), HTTP_PORT), duration)
        vip.append(through_vip)
        straight.append(direct)
        splits.append(split)
        log("  balancer repeat %d: VIP %.0f conn/s (split %s), straight %.0f conn/s"
            % (repeat + 1, through_vip["per_second"], "/".join(str(split[b]) for b in backends), direct["per_second"]))
    return {"engine": engine, "backends": backends,
            "vip_per_second": measure.summary(r["per_second"] for r in vip),
            "straight_per_second": measure.summary(r["per_second"] for r in straight),
            "vip_vs_straight": measure.paired_ratios([r["per_second"] for r in vip], [r["per_second"] for r in straight]),
            "vip_p50_ms": measure.summary(r["p50_ms"] for r in vip), "straight_p50_ms": measure.summary(r["p50_ms"] for r in straight),
            "failed": measure.summary(r["failed"] for r in vip + straight),
            "split": {b: measure.summary(s[b] / max(sum(s.values()), 1) for s in splits) for b in backends}}


# --- many services on the host ----------------------------------------------------------

SCALE_ENGINES = ("iptables-nft", "iptables-legacy", "nftables")
SCALE_SERVICES = 1000
FILLER_PORT = 20000


def set_services(lab, engine, count):
    """The measured service (listed first) and count - 1 others on the VIP's other ports, all on
    the same three backends, in one netfilter_apply run that owns the host's balancers."""
    backends = ["%s:%d" % (lab.addr(b), HTTP_PORT) for b in lab.backend_hosts[:3]]
    services = [{"name": "bench", "vip": lab.vip, "port": VIP_PORT, "backends": backends}]
    services += [{"name": "filler%d" % index, "vip": lab.vip, "port": FILLER_PORT + index, "backends": backends} for index in range(count - 1)]
    return module(lab, "lb", "netfilter_apply", {"engine": engine, "exclusive": ["balancers"], "balancers": services})


def scale_experiment(lab, repeats, duration, log, services=SCALE_SERVICES):
    """New connections per second through one VIP with 1 service on the host and with `services`,
    per engine, side by side in every repeat."""
    found = {}
    for engine in SCALE_ENGINES:
        one, many = [], []
        for repeat in range(repeats):
            for count, rates in ((1, one), (services, many)):
                set_services(lab, engine, count)
                rates.append(wrk(lab, "client", "http://%s:%d/" % (lab.vip, VIP_PORT), duration)["per_second"])
            log("  %d services, %s, repeat %d: %.0f conn/s, 1 service %.0f conn/s" % (services, engine, repeat + 1, many[-1], one[-1]))
        found[engine] = {"one": measure.summary(one), "many": measure.summary(many), "many_vs_one": measure.paired_ratios(many, one)}
    set_services(lab, SCALE_ENGINES[0], 1)
    return {"services": services, "engines": found}


# --- balancing modes ------------------------------------------------------------------

MODES = {"round robin": {}, "affinity": {"affinity": "client_ip"}, "source hash": {"mode": "source_hash"}}


def modes_experiment(lab, repeats, duration, log):
    """New connections per second through the VIP (3 backends) balanced in round robin, with
    session affinity and by source hash, per engine, side by side in every repeat. All of wrk's
    connections come from one client address, so with affinity each new connection is a hit on
    one backend's list (xt_recent, an nft set) and renews it, and by source hash each goes
    through the hash and the lookup table (-m bpf blocks on iptables)."""
    found = {}
    backends = ["%s:%d" % (lab.addr(b), HTTP_PORT) for b in lab.backend_hosts[:3]]
    for engine in SCALE_ENGINES:
        rates = {mode: [] for mode in MODES}
        for repeat in range(repeats):
            for mode, options in MODES.items():
                module(lab, "lb", "dnat_balancer", dict({"name": "bench", "vip": lab.vip, "port": VIP_PORT, "backends": backends,
                                                         "engine": engine}, **options))
                rates[mode].append(wrk(lab, "client", "http://%s:%d/" % (lab.vip, VIP_PORT), duration)["per_second"])
            log("  %s, repeat %d: %s" % (engine, repeat + 1, ", ".join("%s %.0f conn/s" % (mode, rates[mode][-1]) for mode in MODES)))
        found[engine] = {mode: measure.summary(values) for mode, values in rates.items()}
        found[engine]["affinity_vs_round_robin"] = measure.paired_ratios(rates["affinity"], rates["round robin"])
        found[engine]["source_hash_vs_round_robin"] = measure.paired_ratios(rates["source hash"], rates["round robin"])
    set_services(lab, SCALE_ENGINES[0], 1)
    return {"engines": found}


# --- changes under load ------------------------------------------------------------

def reconfiguration_events(lab):
    """name -> (backends before, change to make mid-load)."""
    three, four = lab.backend_hosts[:3], lab.backend_hosts[:4]
    return {
        "no change": (three, lambda: None),
        "backend added": (three, lambda: set_service(lab, four)),
        "backend removed": (three, lambda: set_service(lab, three[:2])),
        "service rewritten": (three, lambda: set_service(lab, four[::-1], port=OTHER_HTTP_PORT)),
    }


def under_load(lab, change, duration):
    """wrk through the VIP for duration seconds, with change() run halfway."""
    load = lab.popen("client", ["wrk", "-t1", "-c%d" % WRK_CONNECTIONS, "-d%ds" % duration, "--timeout", "2s", "--latency",
                                "http://%s:%d/" % (lab.vip, VIP_PORT)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(duration / 2)
    change()
    out, _err = load.communicate(timeout=duration + 30)
    return parse_wrk(out)


def reconfiguration_experiment(lab, repeats, duration, log):
    events = reconfiguration_events(lab)
    results = {name: [] for name in events}
    for repeat in range(repeats):
        for name, (before, change) in events.items():
            set_service(lab, before)
            outcome = under_load(lab, change, duration)
            results[name].append(outcome)
            log("  under load, %s, repeat %d: %d failed of %d" % (name, repeat + 1, outcome["failed"], outcome["requests"]))
    return {name: {"failed": measure.summary(r["failed"] for r in rows), "requests": measure.summary(r["requests"] for r in rows)}
            for name, rows in results.items()}


def run(repeats, duration, log):
    collection.use_installed_build()
    lab = Lab(LAB_ID, backends=BACKENDS, subnet=SUBNET)
    try:
        lab.down()  # a lab left by an interrupted run
        lab.up()
        prepare(lab)
        return {
            "duration_seconds": duration, "repeats": repeats, "wrk_connections": WRK_CONNECTIONS,
            "mirror": mirror_experiment(lab, repeats, duration, log),
            "balancer": balancer_experiment(lab, repeats, duration, log),
            "reconfiguration": reconfiguration_experiment(lab, repeats, max(duration * 2, 4), log),
            "scale": scale_experiment(lab, repeats, duration, log),
            "modes": modes_experiment(lab, repeats, duration, log),
        }
    finally:
        lab.down()
