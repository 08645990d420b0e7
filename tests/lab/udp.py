"""UDP for lab hosts: `serve` logs every datagram and answers it with the host's name; `send`
sends numbered datagrams from one fixed source port, as a resolver or statsd does, so every
one of them belongs to the same conntrack flow (or each from a new port: each a new flow).

Run inside a lab namespace. Stdlib only, so any Python 3 runs it.
"""

import argparse
import json
import socket
import time
from pathlib import Path


def serve(args):
    server = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    server.bind(("::", args.port))
    args.ready.write_text(f"{args.port}\n", encoding="utf-8")
    answer = f"{args.name}\n".encode()
    with open(args.log, "a", encoding="utf-8", buffering=1) as log:
        while True:
            payload, client = server.recvfrom(2048)
            address = client[0][7:] if client[0].startswith("::ffff:") else client[0]
            log.write(f"{address} {payload.decode(errors='replace').strip()}\n")
            server.sendto(answer, client)


def _socket(args, port, source):
    sender = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind((source or "", port))
    sender.setblocking(False)
    return sender


def _sender(args, sources, number):
    """The socket datagram number is sent from: with --new-flows, from source port + number - 1,
    with --sources, from the sources in turn."""
    return _socket(args, args.source_port + (number - 1 if args.new_flows else 0), sources[(number - 1) % len(sources)])


def send(args):
    """Numbered datagrams, each from the one source port and address or, with --new-flows or
    --sources, each a new flow of its own (an ephemeral port could be one a flow still holds)."""
    sources = args.sources.split(",") if args.sources else [args.source]
    sender = _sender(args, sources, 1)
    deadline = time.monotonic()
    for number in range(1, args.count + 1):
        if (args.new_flows or args.sources) and number > 1:
            sender.close()
            sender = _sender(args, sources, number)
        # Unconnected: an ICMP port unreachable (no service yet) does not end the sending.
        sender.sendto(b"%d\n" % number, (args.host, args.port))
        deadline += args.interval
        time.sleep(max(0.0, deadline - time.monotonic()))
        try:
            while sender.recv(2048):
                pass
        except OSError:
            pass
    print(json.dumps({"sent": args.count}))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("serve")
    server.add_argument("--name", required=True, help="what every answer says")
    server.add_argument("--port", type=int, required=True)
    server.add_argument("--log", required=True, type=Path, help="one line per datagram: source address and payload")
    server.add_argument("--ready", required=True, type=Path, help="written once bound")
    client = commands.add_parser("send")
    client.add_argument("host")
    client.add_argument("--port", type=int, required=True)
    client.add_argument("--source-port", type=int, required=True)
    client.add_argument("--new-flows", action="store_true", help="each datagram from the next source port: each a new flow")
    client.add_argument("--source", help="source address")
    client.add_argument("--sources", help="source addresses, comma-separated: datagram k from the k-th, in turn")
    client.add_argument("--count", type=int, required=True)
    client.add_argument("--interval", type=float, default=0.1, help="seconds between datagrams")
    args = parser.parse_args()
    serve(args) if args.command == "serve" else send(args)


if __name__ == "__main__":
    main()
