# SPDX-License-Identifier: Apache-2.0
"""A stand-alone AS callback receiver for tests, in one of two real HTTP stacks.

    python -m tests.support.receiver --port P --mode h1|h2c --out FILE [--status CODE]

`h1` is the standard library's HTTP/1.1 server (it cannot speak HTTP/2 at all); `h2c` is
granian restricted to HTTP/2 with prior knowledge (it cannot speak HTTP/1.1). Each POST is
appended to FILE as one JSON line {"path", "http_version", "body"}; `--delay S` (h2c) answers S
seconds after recording, as a slow AS would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def _record(out: Path, path: str, version: str, body: bytes) -> None:
    line = json.dumps({"path": path, "http_version": version, "body": json.loads(body)})
    with out.open("a") as f:
        f.write(line + "\n")


def run_h1(port: int, out: Path, status: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            _record(out, self.path, "1.1", body)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def run_h2c(port: int, out: Path, status: int, delay: float = 0.0) -> None:
    from granian.constants import HTTPModes, Interfaces
    from granian.server.embed import Server

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        _record(out, scope["path"], scope.get("http_version", "?"), body)
        if delay:
            await asyncio.sleep(delay)  # a slow AS: recorded on arrival, answered later
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    server = Server(
        app,
        address="127.0.0.1",
        port=port,
        interface=Interfaces.ASGINL,
        http=HTTPModes.http2,
        websockets=False,
        log_enabled=False,
    )
    asyncio.run(server.serve())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["h1", "h2c"], required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--status", type=int, default=204)
    parser.add_argument("--delay", type=float, default=0.0, help="h2c: seconds before answering")
    args = parser.parse_args()
    if args.mode == "h1":
        run_h1(args.port, args.out, args.status)
    else:
        run_h2c(args.port, args.out, args.status, args.delay)


if __name__ == "__main__":
    main()
