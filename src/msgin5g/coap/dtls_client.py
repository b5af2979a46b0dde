# SPDX-License-Identifier: Apache-2.0
"""The client side of DTLS 1.2 with pre-shared keys for a CoAP client (RFC 6347, RFC 4279;
coaps:// per RFC 7252 §9.1.3.1; ADR 0016).

:func:`connect_coaps` opens a UDP socket connected to the server, runs the handshake
(python-mbedtls sans-IO buffers; the HelloVerifyRequest round is handled by Mbed TLS) and
then hands the :class:`~msgin5g.coap.CoapClient` a transport that encrypts what it sends;
decrypted records reach the client as datagrams from the server's address. A lost handshake
flight is sent again on Mbed TLS's retransmission timer, polled every ``_POLL`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, cast

from mbedtls import tls
from mbedtls.exceptions import TLSError

from msgin5g.coap.dtls import CIPHER_SUITES
from msgin5g.coap.endpoint import CoapClient

__all__ = ["DtlsClientLayer", "DtlsHandshakeError", "connect_coaps"]

logger = logging.getLogger(__name__)

Address = tuple[Any, ...]

_CHUNK = 16_384 + 2048
_POLL = 0.25


class DtlsHandshakeError(ConnectionError):
    """The DTLS handshake failed or timed out (wrong key or identity, no server)."""


class _SecureTransport(asyncio.DatagramTransport):
    def __init__(self, layer: DtlsClientLayer, outer: asyncio.DatagramTransport) -> None:
        super().__init__()
        self._layer = layer
        self._outer = outer

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        self._layer.send_application(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._outer.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._outer.is_closing()

    def close(self) -> None:
        self._layer.close()

    def abort(self) -> None:
        self._layer.close()


class DtlsClientLayer(asyncio.DatagramProtocol):
    """DTLS-PSK between one connected UDP socket and an ``asyncio.DatagramProtocol``."""

    def __init__(self, inner: asyncio.DatagramProtocol, identity: str, key: bytes) -> None:
        self._inner = inner
        context = tls.ClientContext(
            tls.DTLSConfiguration(
                ciphers=CIPHER_SUITES,
                lowest_supported_version=tls.DTLSVersion.DTLSv1_2,
                highest_supported_version=tls.DTLSVersion.DTLSv1_2,
                validate_certificates=False,
                pre_shared_key=(identity, key),
            )
        )
        self._buffer = context.wrap_buffers(None)
        self._transport: asyncio.DatagramTransport | None = None
        self._remote: Address = ()
        self._established = False
        self._failed: DtlsHandshakeError | None = None
        self._progress = asyncio.Event()

    async def connect(self, host: str, port: int, handshake_timeout: float = 10.0) -> None:
        """Connect and complete the handshake; raises :class:`DtlsHandshakeError`."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, remote_addr=(host, port))
        self._remote = transport.get_extra_info("peername")
        try:
            async with asyncio.timeout(handshake_timeout):
                while not self._handshake():
                    self._progress.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(_POLL):
                            await self._progress.wait()
        except TimeoutError:
            self.close()
            raise DtlsHandshakeError(f"no DTLS handshake with {host}:{port}") from None
        except DtlsHandshakeError:
            self.close()
            raise
        self._established = True
        self._inner.connection_made(_SecureTransport(self, cast(Any, self._transport)))

    def _handshake(self) -> bool:
        """One handshake step; True when the handshake is over."""
        if self._failed is not None:
            raise self._failed
        buffer = self._buffer
        while not _handshake_over(buffer):
            try:
                buffer.do_handshake()
            except tls.WantWriteError:
                self._flush()
            except tls.WantReadError:
                self._flush()
                return False
            except TLSError as exc:
                self._flush()
                raise DtlsHandshakeError(f"DTLS handshake failed: {exc}") from None
        self._flush()
        return True

    def close(self) -> None:
        """Send close_notify and close the socket."""
        transport, self._transport = self._transport, None
        if transport is None:
            return
        if self._established:
            with contextlib.suppress(TLSError):
                self._buffer.shutdown()
            data = self._buffer.peek_outgoing(_CHUNK)
            if data:
                transport.sendto(data)
        transport.close()

    def send_application(self, data: bytes) -> None:
        if self._transport is None or not self._established:
            return
        try:
            self._buffer.write(data)
        except TLSError as exc:
            logger.info("DTLS: cannot send: %s", exc)
            return
        self._flush()

    def _flush(self) -> None:
        while True:
            data = self._buffer.peek_outgoing(_CHUNK)
            if not data:
                return
            self._buffer.consume_outgoing(len(data))
            if self._transport is not None:
                self._transport.sendto(data)

    # -- asyncio.DatagramProtocol -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._established:
            self._inner.connection_lost(exc)

    def error_received(self, exc: Exception) -> None:
        logger.debug("DTLS client socket error: %s", exc)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._buffer.receive_from_network(data)
        if not self._established:
            try:
                self._handshake()
            except DtlsHandshakeError as exc:
                self._failed = exc
            self._progress.set()
            return
        while True:
            try:
                plaintext = self._buffer.read(_CHUNK)
            except tls.WantReadError:
                return
            except TLSError as exc:  # close_notify or a fatal alert from the server
                logger.info("DTLS session with %s ended: %s", addr, exc)
                self._established = False
                return
            if not plaintext:
                return
            self._inner.datagram_received(plaintext, self._remote)


def _handshake_over(buffer: tls.TLSWrappedBuffer) -> bool:
    over: Any = tls.HandshakeStep.HANDSHAKE_OVER
    return bool(buffer._handshake_state is over)


async def connect_coaps(
    client: CoapClient,
    host: str,
    port: int,
    identity: str,
    key: bytes,
    handshake_timeout: float = 10.0,
) -> DtlsClientLayer:
    """Run ``client`` over DTLS-PSK to ``host:port`` (numeric); its requests go to the
    server's address as before. Stop it with ``client.stop()``."""
    layer = DtlsClientLayer(client, identity, key)
    await layer.connect(host, port, handshake_timeout)
    return layer
