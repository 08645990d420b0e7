"""A small asyncio HTTP server for data-plane runs: one short answer per connection, then close.

The lab's own server (tests/lab/httpd.py) starts a thread per request and logs each one,
which caps it far below what DNAT costs; this one answers from one event loop, so the
network path, not the server, is what load measures. HTTP/1.0 and Connection: close make
every request a new connection, which is what a balancer acts on. Stdlib only.
"""

import argparse
import asyncio
from pathlib import Path


def answer(name):
    body = f"{name}\n".encode()
    head = f"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    return head.encode() + body


async def serve(name, port, ready):
    response = answer(name)

    async def handle(reader, writer):
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(response)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "0.0.0.0", port, backlog=4096, reuse_address=True)
    ready.write_text(f"{port}\n", encoding="utf-8")
    async with server:
        await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True, help="body of every answer")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ready", type=Path, required=True, help="written once listening")
    args = parser.parse_args()
    asyncio.run(serve(args.name, args.port, args.ready))


if __name__ == "__main__":
    main()
