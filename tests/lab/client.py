"""HTTP client for lab hosts: COUNT GETs, each on a new connection, bounded in time.

Prints one JSON object: {"answers": [body or "ERROR: ..."], "seconds": elapsed}.
Stdlib only, so it runs with any Python 3 inside a lab namespace.
"""

import argparse
import http.client
import json
import os
import time


def get_once(host, port, timeout, path="/", source=None):
    connection = http.client.HTTPConnection(host, port, timeout=timeout, source_address=(source, 0) if source else None)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.read().decode().strip()
    except OSError as error:
        return "ERROR: %s" % error
    finally:
        connection.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("host")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--count", type=int, required=True, help="connections to open, one after another")
    parser.add_argument("--max-seconds", type=float, default=60, help="stop early after this long")
    parser.add_argument("--timeout", type=float, default=2, help="per connection")
    parser.add_argument("--pause", type=float, default=0, help="seconds between connections")
    parser.add_argument("--until-file", help="stop early once this file exists")
    parser.add_argument("--path", default="/", help="what to GET (/stream/N: a long answer)")
    parser.add_argument("--source", help="source addresses, comma-separated: connection k comes from the k-th, in turn")
    args = parser.parse_args()
    sources = args.source.split(",") if args.source else [None]

    started = time.monotonic()
    answers = []
    while len(answers) < args.count and time.monotonic() - started < args.max_seconds:
        if args.until_file and os.path.exists(args.until_file):
            break
        answers.append(get_once(args.host, args.port, args.timeout, args.path, sources[len(answers) % len(sources)]))
        if args.pause:
            time.sleep(args.pause)
    print(json.dumps({"answers": answers, "seconds": time.monotonic() - started}))


if __name__ == "__main__":
    main()
