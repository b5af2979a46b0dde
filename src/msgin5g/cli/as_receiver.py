# SPDX-License-Identifier: Apache-2.0
"""`msgin5g as`: an Application Server callback receiver (DESIGN 2.2) for labs and tests.

    msgin5g as --http HOST:PORT [--server URL --id AS_SERVICE_ID] [--status CODE]

Serves `POST {path}/deliver-message` and `POST {path}/deliver-report` on HTTP/1.1 and h2c
(granian, HTTPModes.auto) and prints each as one JSON line on stdout:
`{"kind": "deliver-message"|"deliver-report", "path": ..., "body": {...}}`. Answers 204 (or
`--status`). With `--server` and `--id` it first registers as that AS with
`targetUri = http://HOST:PORT`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

import httpx

from msgin5g.sdk.as_client import AsClient
from msgin5g.sdk.ue import SdkError
from msgin5g.settings import SettingsError, split_hostport

_KINDS = ("deliver-message", "deliver-report")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--http", default="127.0.0.1:9000", help="listen address HOST:PORT")
    parser.add_argument("--server", help="server apiRoot to register with, e.g. http://h:8080")
    parser.add_argument("--id", dest="as_id", help="AS Service ID to register as")
    parser.add_argument("--status", type=int, default=204, help="HTTP status to answer")


def _app(status: int) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        path: str = scope["path"]
        kind = next((k for k in _KINDS if path.endswith("/" + k)), None)
        code = status
        if scope["method"] != "POST" or kind is None:
            code = 404
        else:
            try:
                parsed = json.loads(body)
            except ValueError:
                code = 400
            else:
                line = json.dumps({"kind": kind, "path": path, "body": parsed}, ensure_ascii=False)
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
        await send({"type": "http.response.start", "status": code, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


async def run(args: argparse.Namespace) -> int:
    from granian.constants import HTTPModes, Interfaces
    from granian.server.embed import Server

    try:
        host, port = split_hostport(args.http, "--http")
    except SettingsError as exc:
        print(f"msgin5g as: {exc}", file=sys.stderr)
        return 2
    server = Server(
        _app(args.status),
        address=host,
        port=port,
        interface=Interfaces.ASGINL,
        http=HTTPModes.auto,
        websockets=False,
        log_enabled=False,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    serving = asyncio.create_task(server.serve())
    stopping = asyncio.create_task(stop.wait())
    registered = True
    try:
        if args.server and args.as_id:
            registered = await _register(args)
            if not registered:
                stop.set()
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        stopping.cancel()
        server.stop()  # type: ignore[no-untyped-call]
        # granian waits for open keep-alive connections (the MSGin5G Server keeps its h2c
        # connection to us): give them a moment, then leave anyway.
        _done, pending = await asyncio.wait({serving}, timeout=2.0)
        for task in pending:
            task.cancel()
        await asyncio.gather(serving, stopping, return_exceptions=True)
    return 0 if registered else 1


async def _register(args: argparse.Namespace) -> bool:
    await asyncio.sleep(0.2)  # let the listener bind before the server may call back
    async with AsClient(args.server, args.as_id) as client:
        try:
            await client.register(target_uri=f"http://{args.http}")
        except (SdkError, httpx.HTTPError, OSError) as exc:
            print(f"msgin5g as: registration failed: {exc}", file=sys.stderr)
            return False
    return True


def main(args: argparse.Namespace) -> int:
    return asyncio.run(run(args))
