# SPDX-License-Identifier: Apache-2.0
"""A counting HTTP sink for benchmarks: answers 204 to every POST, GET /count returns how
many POSTs arrived. granian embedded, h2c and HTTP/1.1. Usage: sink_server.py PORT"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from granian.constants import HTTPModes, Interfaces
from granian.server.embed import Server

count = 0


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global count
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    if scope["method"] == "POST":
        count += 1
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
    else:
        body = str(count).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


async def main(port: int) -> None:
    server = Server(
        app, address="127.0.0.1", port=port, interface=Interfaces.ASGINL,
        http=HTTPModes.auto, websockets=False, log_enabled=False,
    )  # fmt: skip
    await server.serve()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
