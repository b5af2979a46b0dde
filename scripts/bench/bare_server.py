# SPDX-License-Identifier: Apache-2.0
"""The reference ceiling of DESIGN 4: granian (embedded, one process) + raw ASGI + msgspec.

It decodes the same body (ASMessageDelivery, or by path UEMessageDelivery or
DeliveryStatusReport) and answers a MessageDeliveryAck, storing nothing.
With `rsgi` it does the same over granian's native RSGI interface, which msgin5g serves
(ADR 0021): the stricter ceiling.
Usage: python scripts/bench/bare_server.py PORT [asyncio|uvloop] [asgi|rsgi]
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import msgspec
from granian.constants import HTTPModes, Interfaces
from granian.server.embed import Server

from msgin5g.wire.common import DeliveryStatusReport
from msgin5g.wire.msgs import ASMessageDelivery, MessageDeliveryAck, UEMessageDelivery

_DECODERS: dict[str, Any] = {
    "/msgs-msgdelivery/v1/deliver-ue-message": msgspec.json.Decoder(UEMessageDelivery).decode,
    "/msgs-msgdelivery/v1/deliver-report": msgspec.json.Decoder(DeliveryStatusReport).decode,
}
_decode_as = msgspec.json.Decoder(ASMessageDelivery).decode
_encode = msgspec.json.Encoder().encode


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    request = _DECODERS.get(scope["path"], _decode_as)(body)
    out = _encode(MessageDeliveryAck(oriAddr=request.oriAddr, msgId=request.msgId))
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": out})


_HEADERS = [("content-type", "application/json")]


async def rsgi_app(scope: Any, proto: Any) -> None:
    request = _DECODERS.get(scope.path, _decode_as)(await proto())
    proto.response_bytes(
        200, _HEADERS, _encode(MessageDeliveryAck(oriAddr=request.oriAddr, msgId=request.msgId))
    )


async def main(port: int, rsgi: bool) -> None:
    server = Server(
        rsgi_app if rsgi else app,
        address="127.0.0.1",
        port=port,
        interface=Interfaces.RSGI if rsgi else Interfaces.ASGINL,
        http=HTTPModes.auto,
        websockets=False,
        backlog=2048,
        log_enabled=False,
    )
    await server.serve()


if __name__ == "__main__":
    rsgi = sys.argv[3:] == ["rsgi"]
    if sys.argv[2:3] == ["uvloop"]:
        import uvloop

        uvloop.run(main(int(sys.argv[1]), rsgi))
    else:
        asyncio.run(main(int(sys.argv[1]), rsgi))
