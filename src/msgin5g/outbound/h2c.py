# SPDX-License-Identifier: Apache-2.0
"""A lean HTTP/2 cleartext client (prior knowledge, RFC 9113 3.3) on the sans-IO `h2` library.

Used for the hot outbound paths: the server's deliveries to AS callbacks and gateways, and the
gateways' uplink to the server. One multiplexed connection per origin; HTTP/1.1-only or https
origins fall back to :class:`HttpClientPool`.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

from h2.connection import H2Connection
from h2.exceptions import NoAvailableStreamIDError

from msgin5g.outbound.http_client import HttpClientPool, PeerUnavailable

log = logging.getLogger(__name__)


class _Stream:
    __slots__ = ("chunks", "future", "status")

    def __init__(self, future: asyncio.Future[tuple[int, bytes]]) -> None:
        self.future = future
        self.status = 0
        self.chunks: list[bytes] = []


class StreamsExhausted(PeerUnavailable):
    """This connection has used its last client stream id (2**31 - 1, RFC 9113 5.1.1): a new
    request needs a new connection."""


class _Client(H2Connection):
    """`h2` remembers how each of the last `MAX_CLOSED_STREAMS` streams closed, to tell a late
    frame on one (RFC 9113 5.1: ignored after a reset) from a protocol error. h2's default of
    2**16 holds about 11 MiB per connection once it has carried that many requests: with
    one connection per AS or gateway, 100 of them would hold 1.1 GB (a soak showed the map among
    the largest holders of memory). A late frame comes within a round trip of its stream's
    end; 8,192 streams are 1.6 s even at 5,000 requests per second to one peer."""

    MAX_CLOSED_STREAMS = 8192


class H2cConnection:
    """One HTTP/2 cleartext connection (prior knowledge) driven by the sans-IO `h2` library."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, authority: bytes
    ) -> None:
        from h2.config import H2Configuration

        self._reader = reader
        self._writer = writer
        self._authority = authority
        # Our own fixed request headers need no validation; the checks cost a third of the
        # client's time in a profile. Responses are only read for :status and the body.
        self.h2 = _Client(
            H2Configuration(
                client_side=True,
                header_encoding=None,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
                validate_inbound_headers=False,
                normalize_inbound_headers=False,
            )
        )
        self.h2.initiate_connection()
        writer.write(self.h2.data_to_send())
        self._streams: dict[int, _Stream] = {}
        self._window = asyncio.Event()
        self._capacity = asyncio.Event()
        """Set whenever a stream ends: a request waiting for a free stream slot may go."""
        self.closed = False
        self.exhausted = False
        """True once no stream id is left: no new request; it closes when its streams end."""
        self.spoke_h2 = False
        """True once the peer sent its SETTINGS: it speaks h2c."""
        self._task = asyncio.create_task(self._read(), name="h2c-client")

    async def post(
        self, path: str, body: bytes, authorization: bytes | None = None
    ) -> tuple[int, bytes]:
        if self.closed:
            raise PeerUnavailable("connection closed")
        h2 = self.h2
        # Respect the peer's SETTINGS_MAX_CONCURRENT_STREAMS: wait for a slot, never fail.
        while h2.open_outbound_streams >= h2.remote_settings.max_concurrent_streams:
            self._capacity.clear()
            await self._capacity.wait()
            if self.closed:
                raise PeerUnavailable("connection closed")
        try:
            stream_id = h2.get_next_available_stream_id()
        except NoAvailableStreamIDError:
            self.exhausted = True
            if not self._streams:
                self._writer.close()
            raise StreamsExhausted("no stream id left on this connection") from None
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":authority", self._authority),
            (b":path", path.encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if authorization is not None:
            headers.append((b"authorization", authorization))
        h2.send_headers(stream_id, headers, end_stream=not body)
        stream = _Stream(asyncio.get_running_loop().create_future())
        self._streams[stream_id] = stream
        view = memoryview(body)
        while view:
            size = min(h2.local_flow_control_window(stream_id), h2.max_outbound_frame_size)
            if size <= 0:
                self._writer.write(h2.data_to_send())
                self._window.clear()
                await self._window.wait()
                if self.closed:
                    raise PeerUnavailable("connection closed")
                continue
            h2.send_data(stream_id, bytes(view[:size]), end_stream=len(view) <= size)
            view = view[size:]
        self._writer.write(h2.data_to_send())
        return await stream.future

    async def _read(self) -> None:
        from h2.events import (
            ConnectionTerminated,
            DataReceived,
            RemoteSettingsChanged,
            ResponseReceived,
            StreamEnded,
            StreamReset,
            WindowUpdated,
        )
        from h2.exceptions import ProtocolError

        reason = "connection closed by the peer"
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    return
                for event in self.h2.receive_data(data):
                    if isinstance(event, ResponseReceived):
                        stream = self._streams.get(event.stream_id)
                        if stream is not None:
                            for name, value in event.headers or ():
                                if name == b":status":
                                    stream.status = int(value)
                    elif isinstance(event, DataReceived):
                        stream = self._streams.get(event.stream_id)
                        if stream is not None and event.data:
                            stream.chunks.append(event.data)
                        self.h2.acknowledge_received_data(
                            event.flow_controlled_length or 0, event.stream_id or 0
                        )
                    elif isinstance(event, StreamEnded):
                        stream = self._streams.pop(event.stream_id or 0, None)
                        if stream is not None and not stream.future.done():
                            stream.future.set_result((stream.status, b"".join(stream.chunks)))
                        self._capacity.set()
                        if self.exhausted and not self._streams:
                            self._writer.close()  # the last answer of a used-up connection
                    elif isinstance(event, StreamReset):
                        stream = self._streams.pop(event.stream_id or 0, None)
                        if stream is not None and not stream.future.done():
                            stream.future.set_exception(PeerUnavailable("stream reset"))
                        self._capacity.set()
                    elif isinstance(event, RemoteSettingsChanged):
                        self.spoke_h2 = True
                        self._window.set()
                    elif isinstance(event, WindowUpdated):
                        self._window.set()
                    elif isinstance(event, ConnectionTerminated):
                        reason = f"GOAWAY {event.error_code}"
                        return
                out = self.h2.data_to_send()
                if out:
                    self._writer.write(out)
        except (OSError, ProtocolError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            self.closed = True
            self._window.set()
            self._capacity.set()
            error = PeerUnavailable(reason)
            for stream in self._streams.values():
                if not stream.future.done():
                    stream.future.set_exception(error)
            self._streams.clear()
            self._writer.close()

    async def close(self) -> None:
        self.closed = True
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class H2cClient:
    """POSTs JSON to one origin: one multiplexed h2c connection (prior knowledge, as TS 29.500
    wants HTTP/2), reopened on demand; an origin that does not speak h2c, or https, goes
    through :class:`HttpClientPool` instead (HTTP/1.1 or TLS with ALPN).

    Why not httpx for h2c: measured on this machine it tops out near 450 requests/s per core,
    which capped the gateways' reports and the server's deliveries well below their pace.
    """

    def __init__(self, origin: str, fallback: HttpClientPool, *, timeout: float) -> None:
        parts = urlsplit(origin)
        self._origin = origin.rstrip("/")
        self._fallback = fallback
        self._timeout = timeout
        self._h1 = parts.scheme != "http"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._authority = parts.netloc.encode()
        self._conn: H2cConnection | None = None
        self._lock = asyncio.Lock()

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """Returns (status, body). Raises PeerUnavailable when no answer came."""
        if self._h1:
            return await self._post_fallback(path, body)
        authorizer = self._fallback.authorizer(self._origin)
        authorization = await self._fallback.auth_header(self._origin) if authorizer else None
        conn = await self._connection()
        try:
            async with asyncio.timeout(self._timeout):
                try:
                    status, answer = await conn.post(path, body, authorization)
                except StreamsExhausted:  # after 2**30 requests: go on over a new connection
                    conn = await self._connection()
                    status, answer = await conn.post(path, body, authorization)
                if status == 401 and authorizer is not None:
                    authorizer.invalidate()  # expired or revoked: fetch anew on the retry
                return status, answer
        except TimeoutError:
            raise PeerUnavailable("no answer in time") from None
        except PeerUnavailable:
            if conn.spoke_h2:
                raise
            log.info("peer does not speak h2c; using HTTP/1.1", extra={"origin": self._origin})
            self._h1 = True
            return await self._post_fallback(path, body)

    async def _post_fallback(self, path: str, body: bytes) -> tuple[int, bytes]:
        response = await self._fallback.post_json(self._origin + path, body)
        return response.status_code, response.content

    async def _connection(self) -> H2cConnection:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.exhausted:
            return conn
        async with self._lock:
            conn = self._conn
            if conn is not None and not conn.closed and not conn.exhausted:
                return conn
            try:
                async with asyncio.timeout(min(self._timeout, 5.0)):
                    reader, writer = await asyncio.open_connection(self._host, self._port)
            except (OSError, TimeoutError) as exc:
                raise PeerUnavailable(f"cannot connect: {exc or 'timeout'}") from None
            self._conn = H2cConnection(reader, writer, self._authority)
            return self._conn

    async def aclose(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
