"""HTTP server for lab hosts: every GET is answered with the host's name and logged.

Run inside a lab namespace by Lab.start_http. Stdlib only, so any Python 3 runs it.
Each handled GET appends one line to --log; Lab.http_requests counts those lines.
GET /stream/N keeps the connection open for N ticks, one every 0.1 s, after the name.
--ready is written once the socket listens, so the caller knows when to send traffic.
"""

import argparse
import http.server
import socket
import threading
import time
from pathlib import Path


STREAM = "/stream/"
TICK = b"tick\n"
TICK_SECONDS = 0.1


def client_address(address):
    """IPv4 clients of the dual-stack socket show as ::ffff:a.b.c.d; log them as a.b.c.d."""
    return address[7:] if address.startswith("::ffff:") else address


class DualStackServer(http.server.ThreadingHTTPServer):
    """Listens on :: for IPv6 and, through mapped addresses, IPv4."""

    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def make_handler(name, log_path):
    body = f"{name}\n".encode()
    log_lock = threading.Lock()

    class NameHandler(http.server.BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so a balancer sees one new flow per request.
        protocol_version = "HTTP/1.0"

        def do_GET(self):
            # Logged before answering: once a client has the body, the count includes it.
            with log_lock, open(log_path, "a", encoding="utf-8") as log:
                log.write(f"{client_address(self.client_address[0])} {self.path}\n")
            ticks = int(self.path[len(STREAM):]) if self.path.startswith(STREAM) and self.path[len(STREAM):].isdigit() else 0
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body) + ticks * len(TICK)))
            self.end_headers()
            self.wfile.write(body)
            # /stream/N: a connection kept open, one tick every TICK_SECONDS, N of them.
            for _tick in range(ticks):
                self.wfile.flush()
                time.sleep(TICK_SECONDS)
                self.wfile.write(TICK)

        def log_message(self, format, *args):  # noqa: A002 - signature set by the base class
            """Quiet: the request log file is the record."""

    return NameHandler


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True, help="body of every answer")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--log", required=True, type=Path, help="one line per handled GET")
    parser.add_argument("--ready", required=True, type=Path, help="written once listening")
    args = parser.parse_args()

    server = DualStackServer(("::", args.port), make_handler(args.name, args.log))
    server.daemon_threads = True
    args.ready.write_text(f"{args.port}\n", encoding="utf-8")
    server.serve_forever()


if __name__ == "__main__":
    main()
