#!/usr/bin/env python3
"""Example backend behind the cronofy_callback guard.

The guard in Caddy verifies the Cronofy-HMAC-SHA256 signature, checks the
JSON and sets X-Cronofy-* request headers from the verified body before it
proxies the request here. This server therefore does no verification of
its own. It reads only the X-Cronofy-* headers, which the guard removes
from the inbound request before setting its own, so a client cannot supply
them. It must only be reachable through the guard, which is why it listens
on 127.0.0.1.

It responds to a POST with 200 and a JSON object of the X-Cronofy-* headers it
received, percent-decoded back to UTF-8, and the body length, and it prints
the same object as one JSON line on stdout. A POST without Content-Length,
which the guard always sets, gets 411.

Usage: python3 upstream.py PORT
PORT 0 picks a free port. The first stdout line is always "listening on
PORT", so a caller can read the port that was picked.
"""

import json
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

# The guard owns every request header with this prefix.
GUARD_HEADER_PREFIX = "x-cronofy-"


def guard_headers(headers):
    """Return the X-Cronofy-* headers, decoded, keyed by their name.

    The guard writes every byte outside printable ASCII, and "%" itself, as
    %XX, so unquote restores the UTF-8 text of the body. errors="strict"
    makes a value that is not valid UTF-8 raise instead of turning into
    replacement characters.
    """
    found = {}
    for name, value in headers.items():
        if name.lower().startswith(GUARD_HEADER_PREFIX):
            found[name] = unquote(value, encoding="utf-8", errors="strict")
    return found


class CallbackHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        # The guard always forwards a Content-Length, also for chunked
        # inbound requests, so a request without one did not come through it.
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self.send_json(HTTPStatus.LENGTH_REQUIRED, {"error": "missing or invalid Content-Length"})
            return
        body = self.rfile.read(int(length_header))

        try:
            headers = guard_headers(self.headers)
        except UnicodeDecodeError:
            self.send_json(HTTPStatus.BAD_REQUEST, {"error": "X-Cronofy-* header is not percent-encoded UTF-8"})
            return

        received = {"path": self.path, "body_length": len(body), "headers": headers}
        print(json.dumps(received, ensure_ascii=False, sort_keys=True), flush=True)
        self.send_json(HTTPStatus.OK, received)

    def send_json(self, status, payload):
        data = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main():
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: upstream.py PORT (0 picks a free port)")

    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), CallbackHandler)
    print(f"listening on {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
