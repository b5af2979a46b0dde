# SPDX-License-Identifier: Apache-2.0
"""Lean load clients for `a2u.py`, so that one load core can saturate the server under test.

- `RawH2`: an h2c client (prior knowledge) written on the frames themselves (RFC 9113), POST
  only. Requests are HPACK literals without indexing (RFC 7541 6.2.2), so no encoder state; a
  response's status is read from its first header field when the server sends it from the
  static table (`:status 200` is 0x88, RFC 7541 Appendix A), as granian does; any other first
  field counts as status -1 (a failure, with the body kept). About a fifth of the `h2`
  package's CPU per request, which was two thirds of the load process with `--as-client h2`.
- `LeanUeSocket`: CoAP UEs (RFC 7252) on one UDP socket, differing by token. Registration and
  observation go through :mod:`msgin5g.coap.message`; a notification is ACKed the moment it
  arrives (an empty ACK), deduplicated by message id, and its payload handed on, with no task
  per UE. Notifications must fit one datagram (no Block2), as a 100-byte payload does. For
  `coap_ingest.py` it also sends pre-encoded Confirmable POSTs (`post_fast`), answered by
  token, piggybacked or separate.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from msgin5g.coap import Code, ContentFormat
from msgin5g.coap.message import Message, MessageType, OptionNumber, decode, encode, encode_uint

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _RST, _SETTINGS, _PING, _GOAWAY, _WINDOW = 0, 1, 3, 4, 6, 7, 8
_END_STREAM, _ACK_FLAG, _END_HEADERS, _PADDED, _PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
_STATIC_STATUS = {0x88: 200, 0x89: 204, 0x8A: 206, 0x8B: 304, 0x8C: 400, 0x8D: 404, 0x8E: 500}
_BIG = (1 << 31) - 1


def h2_frame(ftype: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One frame: 24-bit length, type, flags, stream id (RFC 9113 4.1)."""
    return struct.pack("!IBI", len(payload) << 8 | ftype, flags, stream) + payload


def _literal(index: int, value: bytes) -> bytes:
    """A literal header field without indexing, name from the static table (RFC 7541 6.2.2);
    values here are shorter than 127 octets."""
    head = bytes([index]) if index < 15 else bytes([0x0F, index - 15])
    return head + bytes([len(value)]) + value


class RawH2(asyncio.Protocol):
    """`post(path, body) -> (status, body)` over one h2c connection."""

    def __init__(self, authority: str) -> None:
        self._authority = authority.encode()
        self._transport: Any = None
        self._buf = bytearray()
        self._next_stream = 1
        self._streams: dict[int, tuple[asyncio.Future[tuple[int, bytes]], list[Any]]] = {}
        self._send_window = 65_535  # the connection's; streams get _BIG-sized ones below
        self._max_streams = 100
        self._received = 0
        self._changed = asyncio.Event()
        self._closed: Exception | None = None
        self._prefix: dict[bytes, bytes] = {}

    @classmethod
    async def connect(cls, host: str, port: int) -> RawH2:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(lambda: cls(f"{host}:{port}"), host, port)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        settings = struct.pack("!HIHIHI", 0x2, 0, 0x3, 1000, 0x4, _BIG)  # no push
        transport.write(  # type: ignore[attr-defined]
            PREFACE
            + h2_frame(_SETTINGS, 0, 0, settings)
            + h2_frame(_WINDOW, 0, 0, struct.pack("!I", 1 << 30))
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("h2c connection closed"))

    def _fail(self, exc: Exception) -> None:
        self._closed = exc
        for future, _ in self._streams.values():
            if not future.done():
                future.set_exception(exc)
        self._streams.clear()
        self._changed.set()

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos, end_of_data = 0, len(buf)
        while end_of_data - pos >= 9:
            length = int.from_bytes(buf[pos : pos + 3], "big")
            end = pos + 9 + length
            if end > end_of_data:
                break
            ftype, flags = buf[pos + 3], buf[pos + 4]
            stream = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            payload = bytes(buf[pos + 9 : end])
            pos = end
            if ftype in (_DATA, _HEADERS):
                self._stream_frame(ftype, flags, stream, payload)
            elif ftype == _WINDOW:
                if stream == 0:
                    self._send_window += int.from_bytes(payload, "big") & 0x7FFFFFFF
                    self._changed.set()
            elif ftype == _SETTINGS:
                if not flags & _ACK_FLAG:
                    for i in range(0, len(payload), 6):
                        key, value = struct.unpack_from("!HI", payload, i)
                        if key == 0x3:
                            self._max_streams = value
                    self._transport.write(h2_frame(_SETTINGS, _ACK_FLAG, 0))
                    self._changed.set()
            elif ftype == _PING:
                if not flags & _ACK_FLAG:
                    self._transport.write(h2_frame(_PING, _ACK_FLAG, 0, payload))
            elif ftype == _RST:
                entry = self._streams.pop(stream, None)
                if entry is not None and not entry[0].done():
                    code = int.from_bytes(payload, "big")
                    entry[0].set_exception(ConnectionError(f"stream reset {code}"))
                self._changed.set()
            elif ftype == _GOAWAY:
                self._fail(ConnectionError(f"GOAWAY {payload[4:8].hex()}"))
        del buf[:pos]

    def _stream_frame(self, ftype: int, flags: int, stream: int, payload: bytes) -> None:
        if flags & _PADDED:
            payload = payload[1 : len(payload) - payload[0]]
        entry = self._streams.get(stream)
        if ftype == _DATA:
            self._received += len(payload)
            if self._received > 1 << 29:
                self._transport.write(h2_frame(_WINDOW, 0, 0, struct.pack("!I", self._received)))
                self._received = 0
            if entry is not None:
                entry[1].append(payload)
        else:
            if flags & _PRIORITY:
                payload = payload[5:]
            if entry is not None:
                entry[1][0] = _STATIC_STATUS.get(payload[0], -1) if payload else -1
        if flags & _END_STREAM and entry is not None:
            del self._streams[stream]
            parts = entry[1]
            if not entry[0].done():
                entry[0].set_result((parts[0], b"".join(parts[1:])))
            self._changed.set()

    def _headers(self, path: bytes, length: int) -> bytes:
        prefix = self._prefix.get(path)
        if prefix is None:
            prefix = self._prefix[path] = (
                b"\x83\x86"  # :method POST, :scheme http (static 3, 6)
                + _literal(1, self._authority)
                + _literal(4, path)
                + _literal(31, b"application/json")
            )
        return prefix + _literal(28, str(length).encode())

    async def post(self, path: bytes, body: bytes) -> tuple[int, bytes]:
        while self._closed is None and (
            len(self._streams) >= self._max_streams or self._send_window < len(body)
        ):
            self._changed.clear()
            await self._changed.wait()
        if self._closed is not None:
            raise self._closed
        stream = self._next_stream
        self._next_stream += 2
        self._send_window -= len(body)
        future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._streams[stream] = (future, [-1])
        self._transport.write(
            h2_frame(_HEADERS, _END_HEADERS, stream, self._headers(path, len(body)))
            + h2_frame(_DATA, _END_STREAM, stream, body)
        )
        return await future

    async def aclose(self) -> None:
        if self._transport is not None and self._closed is None:
            last = max(1, self._next_stream - 2)
            self._transport.write(h2_frame(_GOAWAY, 0, 0, struct.pack("!II", last, 0)))
            self._transport.close()


class LeanUeSocket(asyncio.DatagramProtocol):
    """CoAP UEs sharing one UDP socket; `on_note(payload)` gets each new notification body."""

    def __init__(self, on_note: Callable[[bytes], None]) -> None:
        self.on_note = on_note
        self.transport: Any = None
        self._mid = int.from_bytes(os.urandom(2), "big")
        self._waiting: dict[bytes, asyncio.Future[Message]] = {}  # token -> setup response
        self._seen: OrderedDict[tuple[Any, bytes], None] = OrderedDict()
        # token -> [answer, datagram, server, sent at]; an empty ACK (no token) is not matched,
        # so a request answered separately may be resent, which the server deduplicates
        self._fast: dict[bytes, list[Any]] = {}
        self._tokens = int.from_bytes(os.urandom(4), "big")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        first = data[0]
        kind = first & 0x30
        if self._fast and len(data) >= 4 + (first & 0x0F):
            token = data[4 : 4 + (first & 0x0F)]
            entry = self._fast.get(token)
            if entry is not None and (kind == 0x20 or (kind == 0 and data[1] >= 64)):
                if kind == 0:  # a separate response (RFC 7252 5.2.2)
                    self.transport.sendto(b"\x60\x00" + data[2:4], addr)
                del self._fast[token]
                if not entry[0].done():
                    entry[0].set_result((data[1], walk_options(data, 4 + (first & 0x0F)) or b""))
                return
        if kind != 0x20 and len(data) > 4 and data[1] >= 64:  # a CON or NON response
            if kind == 0:
                self.transport.sendto(b"\x60\x00" + data[2:4], addr)  # empty ACK
                key = (addr, data[2:4])
                if key in self._seen:  # a retransmission already taken (RFC 7252 4.5)
                    return
                self._seen[key] = None
                if len(self._seen) > 60_000:
                    self._seen.popitem(last=False)
            token = data[4 : 4 + (first & 0x0F)]
            if token in self._waiting:
                self._setup_answer(data)
                return
            body = walk_options(data, 4 + (first & 0x0F))
            if body is not None:
                self.on_note(body)
        elif kind == 0x20 and data[1]:  # a piggybacked answer to a setup request
            self._setup_answer(data)

    def _setup_answer(self, data: bytes) -> None:
        message = decode(data)
        future = self._waiting.pop(message.token, None)
        if future is not None and not future.done():
            future.set_result(message)

    async def request(
        self, server: Any, code: int, path: tuple[str, ...], body: bytes = b"", **extra: Any
    ) -> Message:
        """One Confirmable request, resent every 2 s up to 4 times (setup only)."""
        token = os.urandom(8)
        options = [(OptionNumber.URI_PATH, p.encode()) for p in path]
        if "observe" in extra:
            options.append((OptionNumber.OBSERVE, encode_uint(extra["observe"])))
        if body:
            options.append((OptionNumber.CONTENT_FORMAT, encode_uint(ContentFormat.JSON)))
        self._mid = (self._mid + 1) & 0xFFFF
        datagram = encode(
            Message(
                mtype=MessageType.CON,
                code=code,
                mid=self._mid,
                token=token,
                options=tuple(options),
                payload=body,
            )
        )
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        try:
            for _ in range(5):
                self.transport.sendto(datagram, server)
                done, _ = await asyncio.wait({future}, timeout=2.0)
                if done:
                    return future.result()
            raise TimeoutError(f"no answer to {'/'.join(path)}")
        finally:
            self._waiting.pop(token, None)

    def post_fast(self, server: Any, head: bytes, body: bytes) -> asyncio.Future[tuple[int, bytes]]:
        """A Confirmable POST with a 4-byte token; `head` is its options, already encoded.
        The future gets (code, body) of the answer; :meth:`resend` repeats unanswered ones."""
        self._mid = (self._mid + 1) & 0xFFFF
        self._tokens = (self._tokens + 1) & 0xFFFFFFFF
        token = self._tokens.to_bytes(4, "big")
        datagram = b"".join((b"\x44\x02", self._mid.to_bytes(2, "big"), token, head, b"\xff", body))
        future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._fast[token] = [future, datagram, server, time.monotonic()]
        self.transport.sendto(datagram, server)
        return future

    def resend(self, older_than: float) -> int:
        """Send again (same message id) each fast request unanswered for `older_than` s."""
        limit = time.monotonic() - older_than
        again = [entry for entry in self._fast.values() if entry[3] < limit]
        for entry in again:
            entry[3] = time.monotonic()
            self.transport.sendto(entry[1], entry[2])
        return len(again)

    async def observe(self, server: Any, path: tuple[str, ...]) -> Message:
        return await self.request(server, Code.GET, path, observe=0)


def walk_options(data: bytes, pos: int, collect: list[bytes] | None = None) -> bytes | None:
    """Walk the options from `pos` (RFC 7252 3.1), appending the Uri-Path values to `collect`
    when given; the body after them, or None when there is none."""
    end, number = len(data), 0
    while pos < end:
        byte = data[pos]
        if byte == 0xFF:
            return data[pos + 1 :]
        pos += 1
        delta, length = byte >> 4, byte & 0x0F
        if delta == 13:
            delta = data[pos] + 13
            pos += 1
        elif delta == 14:
            delta = int.from_bytes(data[pos : pos + 2], "big") + 269
            pos += 2
        if length == 13:
            length = data[pos] + 13
            pos += 1
        elif length == 14:
            length = int.from_bytes(data[pos : pos + 2], "big") + 269
            pos += 2
        number += delta
        if collect is not None and number == 11:
            collect.append(data[pos : pos + length])
        pos += length
    return None
