# SPDX-License-Identifier: Apache-2.0
"""DTLS 1.2 with pre-shared keys in front of a CoAP endpoint (RFC 6347, RFC 4279; the
PreSharedKey mode of RFC 7252 §9.1.3.1, coaps:// on port 5684; ADR 0016).

:class:`DtlsServer` owns the UDP socket. Each peer address (RFC 7252 §9.1: the DTLS session
is the CoAP endpoint) gets one DTLS session run by python-mbedtls through its sans-IO
buffers; decrypted records reach the inner protocol (the :class:`~msgin5g.coap.CoapEndpoint`)
as datagrams, and what the inner protocol sends through the transport handed to it is
encrypted with the peer's session, or dropped when the peer has none.

- A ClientHello without a valid cookie gets a HelloVerifyRequest (RFC 6347 §4.2.1) and
  leaves no state behind: a spoofed source address cannot make the server keep anything.
- Sessions are bounded: at most ``max_sessions`` (the least recently used one goes when a new
  handshake needs room), handshakes that stall past ``handshake_timeout`` and sessions idle
  for ``idle_timeout`` are dropped. A new ClientHello (epoch 0) from an address with a
  session replaces it once its cookie is valid (a UE that restarted).
- Record replay protection (RFC 6347 §4.1.2.6) is on; renegotiation is off.
- The inner protocol sees each session under its own address: the peer's socket address
  plus a session number. So what the CoAP layer keys by address (duplicate detection,
  observations, block-wise caches) never carries over from one session to the next on the
  same socket address (RFC 7252 §9.1: the session is the endpoint), and a reply meant for an
  ended session is dropped rather than sent into a newer one.
- :meth:`DtlsServer.identity_of` gives the PSK identity a session authenticated with; keys
  never leave :class:`PskStore` (no log, no repr).

Every operation is a short synchronous step of the loop (PSK handshakes need no public-key
arithmetic), so nothing blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

from mbedtls import tls
from mbedtls.exceptions import TLSError

from msgin5g.coap.endpoint import CoapEndpoint

__all__ = ["CIPHER_SUITES", "DtlsConfig", "DtlsServer", "PskStore", "serve_coaps"]

logger = logging.getLogger(__name__)

Address = tuple[Any, ...]

CIPHER_SUITES = (
    "TLS-PSK-WITH-AES-128-CCM-8",  # RFC 7252 §9.1.3.1 mandatory-to-implement
    "TLS-PSK-WITH-AES-128-GCM-SHA256",
    "TLS-PSK-WITH-AES-128-CCM",
)
_HANDSHAKE = 22  # TLS ContentType handshake
_CHUNK = 16_384 + 2048


class PskStore(Mapping[str, bytes]):
    """PSK identity -> key, as python-mbedtls looks keys up during a handshake.

    It notes the identity of the last successful lookup so the server can tell which
    identity a handshake authenticated. Keys are never shown by ``repr``/``str``.
    """

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        self._keys = dict(keys)
        self.last_identity: str | None = None

    def __getitem__(self, identity: str) -> bytes:
        key = self._keys[identity]
        self.last_identity = identity
        return key

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def replace(self, keys: Mapping[str, bytes]) -> set[str]:
        """Take `keys` from now on (the next handshake looks them up); returns the identities
        that were removed or got another key."""
        old, self._keys = self._keys, dict(keys)
        return {identity for identity, key in old.items() if self._keys.get(identity) != key}

    def __repr__(self) -> str:
        return f"PskStore(<{len(self._keys)} identities>)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class DtlsConfig:
    """Session bounds (times in seconds)."""

    max_sessions: int = 2000
    idle_timeout: float = 3600.0
    handshake_timeout: float = 30.0
    mtu: int = 1280


class _Session:
    __slots__ = ("address", "buffer", "established", "identity", "last_seen", "started")

    def __init__(self, buffer: tls.TLSWrappedBuffer, now: float, address: Address) -> None:
        self.address = address
        """What the inner protocol sees: the peer's socket address + a session number."""
        self.buffer = buffer
        self.established = False
        self.identity: str | None = None
        self.started = now
        self.last_seen = now


class _SecureTransport(asyncio.DatagramTransport):
    """The transport the inner protocol sees: ``sendto`` encrypts for the peer's session."""

    def __init__(self, server: DtlsServer, outer: asyncio.DatagramTransport) -> None:
        super().__init__()
        self._server = server
        self._outer = outer

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        self._server.send_application(bytes(data), addr)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._outer.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._outer.is_closing()

    def close(self) -> None:
        self._server.close()

    def abort(self) -> None:
        self._server.close()


class DtlsServer(asyncio.DatagramProtocol):
    """The DTLS-PSK layer between a UDP socket and an ``asyncio.DatagramProtocol``."""

    def __init__(
        self,
        inner: asyncio.DatagramProtocol,
        keys: Mapping[str, bytes],
        config: DtlsConfig | None = None,
    ) -> None:
        if not keys:
            raise ValueError("DTLS-PSK needs at least one identity")
        self.config = config or DtlsConfig()
        self._inner = inner
        self._store = PskStore(keys)
        self._context = tls.ServerContext(
            tls.DTLSConfiguration(
                ciphers=CIPHER_SUITES,
                lowest_supported_version=tls.DTLSVersion.DTLSv1_2,
                highest_supported_version=tls.DTLSVersion.DTLSv1_2,
                validate_certificates=False,
                anti_replay=True,
                pre_shared_key_store=self._store,
            )
        )
        self._sessions: OrderedDict[Address, _Session] = OrderedDict()
        self._serial = 0
        self.on_session_end: Callable[[Address], None] | None = None
        """Called with the session's address when an established session ends (closed, idle,
        evicted, failed or replaced by a new handshake): what was bound to the session, such
        as observations, must not outlive it."""
        self._transport: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self, host: str, port: int) -> None:
        """Bind the UDP socket and hand the inner protocol its secure transport."""
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port))

    def close(self) -> None:
        """Send close_notify to every peer, drop all sessions and close the socket."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for address in list(self._sessions):
            session = self._sessions.pop(address)
            if session.established:
                with contextlib.suppress(TLSError):
                    session.buffer.shutdown()
                self._flush(session.buffer, address)
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    def update_keys(self, keys: Mapping[str, bytes], revoke: Iterable[str] = ()) -> int:
        """Replace the PSKs while serving: new identities can shake hands at once, and the
        sessions of identities removed, re-keyed or in `revoke` end now (close_notify; their
        observations end with them), as do handshakes in progress, which may have read an old
        key (their clients start again). Returns how many sessions ended."""
        if not keys:
            raise ValueError("DTLS-PSK needs at least one identity")
        revoked = self._store.replace(keys) | set(revoke)
        ended = 0
        for address, session in list(self._sessions.items()):
            if not session.established or session.identity in revoked:
                if session.established:
                    with contextlib.suppress(TLSError):
                        session.buffer.shutdown()
                    self._flush(session.buffer, address)
                self._drop(address)
                ended += 1
        return ended

    @property
    def sessions(self) -> int:
        """The number of sessions kept (established or in handshake)."""
        return len(self._sessions)

    def identity_of(self, address: Address) -> str | None:
        """The PSK identity of the session the inner protocol knows as ``address``, or None
        when that session is not (or no longer) established."""
        session = self._session_at(address)
        return session.identity if session is not None else None

    def identities(self) -> dict[Address, str | None]:
        """Peer socket address -> PSK identity of each established session."""
        return {peer: s.identity for peer, s in self._sessions.items() if s.established}

    def _session_at(self, address: Address) -> _Session | None:
        session = self._sessions.get(address[:-1])
        if session is None or session.address != address or not session.established:
            return None
        return session

    # -- asyncio.DatagramProtocol -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)
        self._loop = loop = asyncio.get_running_loop()
        self._schedule_sweep(loop)
        self._inner.connection_made(_SecureTransport(self, self._transport))

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def error_received(self, exc: Exception) -> None:
        logger.debug("DTLS socket error: %s", exc)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        try:
            self._on_datagram(data, addr)
        except Exception:
            logger.exception("DTLS: failed to process a datagram from %s", addr)
            self._drop(addr)

    # -- records ------------------------------------------------------------------------
    def _on_datagram(self, data: bytes, addr: Address) -> None:
        session = self._sessions.get(addr)
        if session is None or (session.established and _is_client_hello(data)):
            self._new_handshake(data, addr)
            return
        session.last_seen = self._now()
        self._sessions.move_to_end(addr)
        session.buffer.receive_from_network(data)
        if not session.established:
            self._continue_handshake(session, addr)
            if not session.established:
                return
        self._read_records(session, addr)

    def _new_handshake(self, data: bytes, addr: Address) -> None:
        if not _is_client_hello(data):
            return  # without a session only a ClientHello gets an answer
        buffer = self._context.wrap_buffers()
        buffer.setmtu(self.config.mtu)
        buffer.setcookieparam(_cookie_info(addr))
        buffer.receive_from_network(data)
        self._serial += 1
        session = _Session(buffer, self._now(), (*addr, self._serial))
        try:
            self._step(session, addr)
        except tls.HelloVerifyRequest:
            self._flush(buffer, addr)  # the HelloVerifyRequest; no state is kept
            return
        except TLSError as exc:
            self._flush(buffer, addr)
            # Debug only: the source address of a ClientHello may be spoofed.
            logger.debug("DTLS: ClientHello from %s refused: %s", addr, _reason(exc))
            return
        # The cookie was valid: the peer owns the address. Keep the session.
        self._drop(addr)
        while len(self._sessions) >= self.config.max_sessions:
            evicted = next(iter(self._sessions))  # an OrderedDict: O(1)
            self._drop(evicted)
            logger.info("DTLS: session table full, dropped the session of %s", evicted)
        self._sessions[addr] = session
        if session.established:
            self._read_records(session, addr)

    def _continue_handshake(self, session: _Session, addr: Address) -> None:
        try:
            self._step(session, addr)
        except TLSError as exc:
            self._flush(session.buffer, addr)  # the alert
            self._drop(addr)
            logger.info(
                "DTLS: handshake with %s failed (identity %r): %s",
                addr,
                self._store.last_identity,
                _reason(exc),
            )

    def _step(self, session: _Session, addr: Address) -> None:
        """Drive the handshake as far as the received records allow."""
        buffer = session.buffer
        self._store.last_identity = None
        while not _handshake_over(buffer):
            try:
                buffer.do_handshake()
            except tls.WantWriteError:
                self._flush(buffer, addr)
            except tls.WantReadError:
                break
            finally:
                if self._store.last_identity is not None:
                    session.identity = self._store.last_identity
        self._flush(buffer, addr)
        if _handshake_over(buffer):
            session.established = True
            logger.info(
                "DTLS session with %s established, identity %r, %s",
                addr,
                session.identity,
                buffer.cipher(),
            )

    def _read_records(self, session: _Session, addr: Address) -> None:
        buffer = session.buffer
        while True:
            try:
                plaintext = buffer.read(_CHUNK)
            except tls.WantReadError:
                return
            except TLSError as exc:  # close_notify or a fatal alert
                self._flush(buffer, addr)
                self._drop(addr)
                logger.debug("DTLS session with %s ended: %s", addr, _reason(exc))
                return
            if not plaintext:
                return
            self._inner.datagram_received(plaintext, session.address)

    def send_application(self, data: bytes, address: Address) -> None:
        """Encrypt ``data`` for the session the inner protocol knows as ``address`` and send
        it; dropped when that session has ended."""
        session = self._session_at(address)
        if session is None or self._transport is None:
            logger.debug("DTLS: no session %s, %d bytes dropped", address, len(data))
            return
        addr = address[:-1]
        try:
            session.buffer.write(data)
        except TLSError as exc:
            logger.info("DTLS: cannot send to %s: %s", addr, _reason(exc))
            self._drop(addr)
            return
        session.last_seen = self._now()
        self._flush(session.buffer, addr)

    def _flush(self, buffer: tls.TLSWrappedBuffer, addr: Address) -> None:
        transport = self._transport
        while True:
            data = buffer.peek_outgoing(_CHUNK)
            if not data:
                return
            buffer.consume_outgoing(len(data))
            if transport is not None:
                transport.sendto(data, addr)

    def _drop(self, addr: Address) -> None:
        session = self._sessions.pop(addr, None)
        if session is not None and session.established and self.on_session_end is not None:
            self.on_session_end(session.address)

    # -- housekeeping -------------------------------------------------------------------
    def _schedule_sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        interval = max(0.5, min(self.config.handshake_timeout, self.config.idle_timeout) / 2)
        self._sweeper = loop.call_later(interval, self._sweep)

    def _sweep(self) -> None:
        now = self._now()
        idle, stalled = self.config.idle_timeout, self.config.handshake_timeout
        for addr, session in list(self._sessions.items()):
            if session.established and now - session.last_seen > idle:
                self._drop(addr)
                logger.info("DTLS session with %s idle, dropped", addr)
            elif not session.established and now - session.started > stalled:
                self._drop(addr)
        if self._loop is not None and self._transport is not None:
            self._schedule_sweep(self._loop)

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()


def _is_client_hello(data: bytes) -> bool:
    """A handshake record of epoch 0 carrying a ClientHello (RFC 6347 §4.1, §4.2.2)."""
    return len(data) >= 14 and data[0] == _HANDSHAKE and data[3:5] == b"\0\0" and data[13] == 1


def _handshake_over(buffer: tls.TLSWrappedBuffer) -> bool:
    # The stubs type HandshakeStep members as int; the runtime values are enum members.
    over: Any = tls.HandshakeStep.HANDSHAKE_OVER
    return bool(buffer._handshake_state is over)


def _cookie_info(addr: Address) -> bytes:
    return f"{addr[0]}|{addr[1]}".encode()


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


async def serve_coaps(
    endpoint: CoapEndpoint,
    host: str,
    port: int,
    keys: Mapping[str, bytes],
    config: DtlsConfig | None = None,
) -> DtlsServer:
    """Serve ``endpoint`` over DTLS-PSK on ``host:port``; requests then carry the peer's PSK
    identity. Stop it with ``endpoint.stop()``, which closes the DTLS layer too."""
    server = DtlsServer(endpoint, keys, config)
    endpoint.peer_identity = server.identity_of
    server.on_session_end = endpoint.forget_peer
    await server.start(host, port)
    return server
