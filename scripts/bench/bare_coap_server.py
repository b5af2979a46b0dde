# SPDX-License-Identifier: Apache-2.0
"""The ceiling of DESIGN 4's CoAP MSG path: one asyncio UDP endpoint on uvloop + msgspec,
storing nothing (for `coap_ingest.py`).

A Confirmable POST to /msgin5g/v1/messages has its options walked (RFC 7252 3.1), its MSG body
decoded into the same struct msgin5g decodes (`coap_msgin5g1.Msg`), and is answered at once
with a piggybacked 2.04 MSGRESP `DELY_STORED`; a POST to /msgin5g/v1/registrations gets 2.01.
No commit, no duplicate detection, no registration check, no 5.03 when busy.

Usage: python scripts/bench/bare_coap_server.py PORT
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import msgspec
import uvloop
from leanload import walk_options

from msgin5g.api.coap_msgin5g1 import Msg, MsgResp

_decode = msgspec.json.Decoder(Msg).decode
_encode = msgspec.json.Encoder().encode


_CONTENT_FORMAT = bytes([0xC1, 50])  # option 12 (delta 12 from 0), length 1: application/json


class Endpoint(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        first = data[0]
        if first & 0x30 or data[1] != 2:  # only Confirmable POSTs
            return
        tkl = first & 0x0F
        path: list[bytes] = []
        body = walk_options(data, 4 + tkl, path) or b""
        ids = data[2 : 4 + tkl]  # message id and token, echoed
        if path[2:3] == [b"messages"]:
            msg = _decode(body)
            out = _encode(MsgResp("MSGRESP", msgId=msg.msgId, status="DELY_STORED"))
            reply = bytes([0x60 | tkl, 0x44]) + ids + _CONTENT_FORMAT + b"\xff" + out
        else:  # a registration
            reply = bytes([0x60 | tkl, 0x41]) + ids
        self.transport.sendto(reply, addr)


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Endpoint, local_addr=("127.0.0.1", port))
    try:
        await asyncio.Event().wait()
    finally:
        transport.close()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
