# SPDX-License-Identifier: Apache-2.0
"""The ceiling of the AS-to-UE path on this stack: granian (RSGI, embedded) + msgspec + one
asyncio UDP endpoint, storing nothing (the companion of `bare_server.py`, for `a2u.py --bare`).

It speaks just enough of DESIGN 2.3 for `a2u.py`'s UEs: POST /msgin5g/v1/registrations (2.01)
and GET /msgin5g/v1/ues/{id}/inbox with Observe 0 (2.05 `{"pending":0}`), remembering the
observer's endpoint and token. Each deliver-as-message is decoded, turned into a Confirmable MSG
notification (Observe, Content-Format 50, the same JSON fields msgin5g sends), sent to the UE,
kept in a table until its ACK arrives, and answered 200 at once. What it leaves out is what
makes msgin5g a messaging service: no commit before the answer or after the ACK, no
retransmission timer, no idempotency, no per-UE order or one-in-flight rule, no validation
beyond the decode, no metrics. So msgin5g's rate over this server's, measured in the same run,
is the share of the framework's ceiling it reaches, as DESIGN 4 states it for ingest; and this
server's rate over Mosquitto's says what any server on this stack could reach.

Usage: python scripts/bench/bare_a2u_server.py HTTP_PORT COAP_PORT
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import sys
from typing import Any

import msgspec
import uvloop
from granian.constants import HTTPModes, Interfaces
from granian.server.embed import Server

from msgin5g.coap import Code, ContentFormat
from msgin5g.coap.message import Message, MessageType, OptionNumber, decode, encode, encode_uint
from msgin5g.wire.msgs import ASMessageDelivery, MessageDeliveryAck

_decode_request = msgspec.json.Decoder(ASMessageDelivery).decode
_encode = msgspec.json.Encoder().encode
_HEADERS = [("content-type", "application/json")]
_CONTENT_JSON = bytes([0x61, ContentFormat.JSON])  # option delta 6 (Observe 6 -> 12), length 1


class Note(msgspec.Struct, omit_defaults=True):
    """The MSG notification body, field for field what msgin5g sends for this request."""

    msgType: str
    oriAddr: Any
    destAddr: Any
    msgId: str
    payload: str | None = None
    delivStReqInd: bool | None = None


class Endpoint(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.observers: dict[str, tuple[Any, bytes]] = {}  # ueSvcId -> (endpoint, token)
        self.mids: dict[Any, itertools.count[int]] = {}
        self.unacked: dict[tuple[Any, int], bytes] = {}
        self.seq = itertools.count(2)
        self.regs = itertools.count(1)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's UDPTransport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) >= 4 and data[0] & 0x30 == 0x20:  # an ACK of a notification
            self.unacked.pop((addr, (data[2] << 8) | data[3]), None)
            return
        try:
            request = decode(data)
        except Exception:
            return
        if request.mtype != MessageType.CON or not request.is_request:
            return
        self._answer(request, addr)

    def _answer(self, request: Message, addr: Any) -> None:
        path = request.uri_path
        options: tuple[tuple[int, bytes], ...] = ()
        if request.code == Code.POST and path == ("msgin5g", "v1", "registrations"):
            ue = msgspec.json.decode(request.payload)["ueSvcId"]
            reg = f"r{next(self.regs)}"
            code, body = Code.CREATED, _encode({"msgType": "REG", "regId": reg, "ueSvcId": ue})
            where = ("msgin5g", "v1", "registrations", reg)
            options = tuple((OptionNumber.LOCATION_PATH, p.encode()) for p in where)
        elif request.code == Code.GET and len(path) == 5 and path[4] == "inbox":
            if request.observe == 0:
                self.observers[path[3]] = (addr, request.token)
            code, body = Code.CONTENT, b'{"pending":0}'
            options = ((OptionNumber.OBSERVE, encode_uint(next(self.seq) & 0xFFFFFF)),)
        else:
            code, body = Code.NOT_FOUND, b""
        options += ((OptionNumber.CONTENT_FORMAT, encode_uint(ContentFormat.JSON)),)
        reply = Message(
            mtype=MessageType.ACK,
            code=code,
            mid=request.mid,
            token=request.token,
            options=options,
            payload=body,
        )
        assert self.transport is not None
        self.transport.sendto(encode(reply), addr)

    def notify(self, ue: str, body: bytes) -> bool:
        found = self.observers.get(ue)
        if found is None:
            return False
        addr, token = found
        mids = self.mids.get(addr)
        if mids is None:
            mids = self.mids[addr] = itertools.count()
        mid = next(mids) & 0xFFFF
        header = struct.pack("!BBH", 0x40 | len(token), 0x45, mid)
        observe = next(self.seq) & 0xFFFFFF
        datagram = b"".join(
            (header, token, b"\x63", observe.to_bytes(3, "big"), _CONTENT_JSON, b"\xff", body)
        )
        self.unacked[(addr, mid)] = datagram
        assert self.transport is not None
        self.transport.sendto(datagram, addr)
        return True


def http_app(coap: Endpoint) -> Any:
    async def rsgi_app(scope: Any, proto: Any) -> None:
        if scope.method != "POST":
            proto.response_bytes(200 if scope.path == "/readyz" else 404, _HEADERS, b"{}")
            return
        request = _decode_request(await proto())
        note = _encode(
            Note(
                msgType="MSG",
                oriAddr=request.oriAddr,
                destAddr=request.destAddr,
                msgId=request.msgId,
                payload=request.payload,
                delivStReqInd=request.delivStReqInd,
            )
        )
        sent = coap.notify(request.destAddr.addr, note)
        ack = MessageDeliveryAck(oriAddr=request.oriAddr, msgId=request.msgId)
        if not sent:
            ack = MessageDeliveryAck(
                oriAddr=request.oriAddr, msgId=request.msgId, status="DELY_FAILED"
            )
        proto.response_bytes(200, _HEADERS, _encode(ack))

    return rsgi_app


async def main(http_port: int, coap_port: int) -> None:
    loop = asyncio.get_running_loop()
    transport, coap = await loop.create_datagram_endpoint(
        Endpoint, local_addr=("127.0.0.1", coap_port)
    )
    server = Server(
        http_app(coap),
        address="127.0.0.1",
        port=http_port,
        interface=Interfaces.RSGI,
        http=HTTPModes.auto,
        websockets=False,
        backlog=2048,
        log_enabled=False,
    )
    try:
        await server.serve()
    finally:
        transport.close()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2])))
