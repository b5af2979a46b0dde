# SPDX-License-Identifier: Apache-2.0
"""The DTLS-PSK layer (msgin5g.coap.dtls and dtls_client) in process, on real UDP sockets:
the PSK identity reaches the CoAP handler, the cookie exchange keeps no state for a spoofable
ClientHello, wrong keys fail without the key in any log, the session table is bounded (LRU,
idle and stalled sessions dropped) and a restarted client replaces its session."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import pytest
from mbedtls import tls

from msgin5g.coap import (
    CoapClient,
    CoapEndpoint,
    CoapRequest,
    CoapResponse,
    Code,
    Observation,
    decode,
    encode,
)
from msgin5g.coap.dtls import DtlsConfig, DtlsServer, PskStore, serve_coaps
from msgin5g.coap.dtls_client import DtlsHandshakeError, connect_coaps
from msgin5g.coap.message import Message, MessageType

KEYS = {"dev-1": b"key-of-dev-1", "dev-2": b"key-of-dev-2", "dev-3": b"key-of-dev-3"}
BIG = b"x" * 3000  # block-wise (Block2) through the DTLS session


class WhoAmI:
    """Answers with the peer identity the endpoint gave the request, then a large body;
    accepts observations."""

    def __init__(self) -> None:
        self.observations: list[Observation] = []

    async def handle(self, request: CoapRequest) -> CoapResponse:
        identity = (request.peer_identity or "-").encode()
        if request.wants_observation:
            self.observations.append(request.accept_observation())
            return CoapResponse(payload=identity)
        return CoapResponse(payload=identity + b"|" + BIG)


async def start(
    config: DtlsConfig | None = None, app: WhoAmI | None = None
) -> tuple[CoapEndpoint, DtlsServer]:
    endpoint = CoapEndpoint(app or WhoAmI())
    server = await serve_coaps(endpoint, "127.0.0.1", 0, KEYS, config)
    return endpoint, server


@pytest.fixture
async def dtls() -> AsyncIterator[tuple[CoapEndpoint, DtlsServer]]:
    endpoint, server = await start()
    try:
        yield endpoint, server
    finally:
        await endpoint.stop()


async def client_for(endpoint: CoapEndpoint, identity: str, key: bytes | None = None) -> CoapClient:
    client = CoapClient()
    host, port = endpoint.address[:2]
    await connect_coaps(client, host, port, identity, key or KEYS[identity], handshake_timeout=3)
    return client


async def test_identity_reaches_the_handler_and_large_bodies_go_blockwise(
    dtls: tuple[CoapEndpoint, DtlsServer],
) -> None:
    endpoint, server = dtls
    client = await client_for(endpoint, "dev-2")
    try:
        answer = await client.request(endpoint.address, Code.GET, ("who",))
        assert answer.code == Code.CONTENT
        assert answer.payload == b"dev-2|" + BIG
        assert server.sessions == 1
    finally:
        await client.stop()
    await asyncio.sleep(0.1)
    assert server.sessions == 0  # close_notify ended the session


async def test_plain_endpoint_requests_have_no_identity() -> None:
    endpoint = CoapEndpoint(WhoAmI())
    await endpoint.start("127.0.0.1", 0)
    try:
        async with CoapClient() as client:
            answer = await client.request(endpoint.address, Code.GET, ("who",))
        assert answer.payload.startswith(b"-|")
    finally:
        await endpoint.stop()


def client_hello() -> bytes:
    """A real DTLS 1.2 ClientHello (no cookie) from a python-mbedtls client buffer."""
    context = tls.ClientContext(
        tls.DTLSConfiguration(validate_certificates=False, pre_shared_key=("dev-1", b"k"))
    )
    buffer = context.wrap_buffers(None)
    hello = b""
    while not hello:
        with contextlib.suppress(tls.WantReadError, tls.WantWriteError):
            buffer.do_handshake()
        hello = buffer.peek_outgoing(4096)
    assert hello[0] == 22  # a handshake record ...
    assert hello[13] == 1  # ... carrying a ClientHello
    return hello


async def exchange(port: int, datagram: bytes, wait: float = 0.5) -> bytes | None:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(("127.0.0.1", port))
        await loop.sock_sendall(sock, datagram)
        try:
            async with asyncio.timeout(wait):
                return await loop.sock_recv(sock, 4096)
        except TimeoutError:
            return None


async def test_cookie_exchange_keeps_no_state_and_junk_is_ignored(
    dtls: tuple[CoapEndpoint, DtlsServer],
) -> None:
    endpoint, server = dtls
    port = endpoint.address[1]
    reply = await exchange(port, client_hello())
    assert reply is not None
    assert reply[0] == 22
    assert reply[13] == 3  # HelloVerifyRequest
    assert server.sessions == 0
    plain_coap = encode(Message(MessageType.CON, Code.GET, 0x1234, b"t"))
    for junk in (plain_coap, b"\x17\xfe\xfd" + b"\0" * 20, b"\x16", b""):
        assert await exchange(port, junk, wait=0.2) is None
    assert server.sessions == 0
    # The server still serves a real client afterwards.
    client = await client_for(endpoint, "dev-1")
    await client.stop()


async def test_wrong_key_and_unknown_identity_fail_without_leaking_keys(
    dtls: tuple[CoapEndpoint, DtlsServer], caplog: pytest.LogCaptureFixture
) -> None:
    endpoint, server = dtls
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DtlsHandshakeError):
        await client_for(endpoint, "dev-1", b"wrong-key-123")
    with pytest.raises(DtlsHandshakeError):
        await client_for(endpoint, "nobody", b"some-key-456")
    assert server.sessions == 0
    assert "failed (identity 'dev-1')" in caplog.text
    for secret in (*KEYS.values(), b"wrong-key-123", b"some-key-456"):
        assert secret.decode() not in caplog.text
    assert "key-of" not in repr(PskStore(KEYS)) + str(PskStore(KEYS))


async def test_session_table_is_bounded_least_recently_used_goes() -> None:
    endpoint, server = await start(DtlsConfig(max_sessions=2))
    clients = []
    try:
        for identity in ("dev-1", "dev-2"):
            clients.append(await client_for(endpoint, identity))
        # dev-1 talks, so dev-2 is the least recently used when dev-3 arrives.
        await clients[0].request(endpoint.address, Code.GET, ("who",))
        clients.append(await client_for(endpoint, "dev-3"))
        assert server.sessions == 2
        identities = {server.identities().get(("127.0.0.1", c.address[1])) for c in clients}
        assert identities == {"dev-1", "dev-3", None}
        answer = await clients[0].request(endpoint.address, Code.GET, ("who",))
        assert answer.payload.startswith(b"dev-1|")
    finally:
        for client in clients:
            await client.stop()
        await endpoint.stop()


async def half_handshake(port: int) -> socket.socket:
    """A client that passes the cookie exchange, gets the server's flight and goes silent."""
    context = tls.ClientContext(
        tls.DTLSConfiguration(validate_certificates=False, pre_shared_key=("dev-1", b"k"))
    )
    buffer = context.wrap_buffers(None)
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.connect(("127.0.0.1", port))
    for _ in range(2):  # the ClientHello, then the ClientHello with the cookie
        flight = b""
        while not flight:
            with contextlib.suppress(tls.WantReadError, tls.WantWriteError):
                buffer.do_handshake()
            flight = buffer.peek_outgoing(4096)
        buffer.consume_outgoing(len(flight))
        await loop.sock_sendall(sock, flight)
        async with asyncio.timeout(2):
            buffer.receive_from_network(await loop.sock_recv(sock, 4096))
    return sock


async def test_idle_and_stalled_sessions_are_dropped() -> None:
    endpoint, server = await start(DtlsConfig(idle_timeout=0.3, handshake_timeout=0.3))
    client = await client_for(endpoint, "dev-1")
    stalled = await half_handshake(endpoint.address[1])
    try:
        assert server.sessions == 2
        assert server.identities().get(("127.0.0.1", client.address[1])) == "dev-1"
        assert server.identities().get(stalled.getsockname()) is None  # not established
        await asyncio.sleep(1.3)
        assert server.sessions == 0
        assert server.identities().get(("127.0.0.1", client.address[1])) is None
    finally:
        stalled.close()
        await client.stop()
        await endpoint.stop()


def _blocking_client(port: int, local_port: int, identity: str, key: bytes, mid: int) -> bytes:
    """A python-mbedtls socket client from a fixed local port: handshake, one CoAP GET, and
    no close_notify (as a UE that loses power)."""
    context = tls.ClientContext(
        tls.DTLSConfiguration(validate_certificates=False, pre_shared_key=(identity, key))
    )
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    raw.bind(("127.0.0.1", local_port))
    raw.settimeout(3)
    sock = context.wrap_socket(raw, server_hostname=None)
    try:
        sock.connect(("127.0.0.1", port))
        sock.do_handshake()
        sock.send(encode(Message(MessageType.CON, Code.GET, mid, b"tk", ((11, b"who"),))))
        return decode(sock.recv(4096)).payload
    finally:
        raw.close()


async def test_restarted_client_on_the_same_address_replaces_its_session(
    dtls: tuple[CoapEndpoint, DtlsServer],
) -> None:
    endpoint, server = dtls
    port = endpoint.address[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        local_port = probe.getsockname()[1]
    first = await asyncio.to_thread(_blocking_client, port, local_port, "dev-1", KEYS["dev-1"], 7)
    assert first.startswith(b"dev-1|")
    assert server.identities().get(("127.0.0.1", local_port)) == "dev-1"
    # Same address and same Message ID: still a new exchange of the new session, not a
    # duplicate answered from the cache of the old one (RFC 7252 §9.1).
    second = await asyncio.to_thread(_blocking_client, port, local_port, "dev-2", KEYS["dev-2"], 7)
    assert second.startswith(b"dev-2|")
    assert server.identities().get(("127.0.0.1", local_port)) == "dev-2"
    assert server.sessions == 1


async def test_observations_end_with_the_session() -> None:
    app = WhoAmI()
    endpoint, server = await start(app=app)
    try:
        client = await client_for(endpoint, "dev-1")
        observation = await client.observe(endpoint.address, ("obs",))
        (registered,) = app.observations
        assert not registered.cancelled
        await client.stop()  # close_notify ends the session
        async with asyncio.timeout(2):
            assert await registered.wait_cancelled() == "session ended"
        assert observation.closed
        assert server.sessions == 0
    finally:
        await endpoint.stop()


async def test_updated_keys_end_the_sessions_of_revoked_identities_only() -> None:
    """A reloaded PSK file (ADR 0016): a removed identity, a re-keyed one and one named in
    `revoke` (its ueSvcId moved) lose their sessions and observations; others keep theirs."""
    app = WhoAmI()
    endpoint, server = await start(app=app)
    clients = {i: await client_for(endpoint, i) for i in KEYS}
    try:
        for client in clients.values():
            await client.observe(endpoint.address, ("obs",))
        assert server.sessions == 3
        keys = {"dev-2": b"new-key-of-dev-2", "dev-3": KEYS["dev-3"], "dev-4": b"key-of-dev-4"}
        assert server.update_keys(keys) == 2  # dev-1 removed, dev-2 re-keyed
        assert set(server.identities().values()) == {"dev-3"}
        async with asyncio.timeout(2):
            for observation in app.observations[:2]:
                assert await observation.wait_cancelled() == "session ended"
        assert not app.observations[2].cancelled
        assert server.update_keys(keys, revoke={"dev-3"}) == 1
        assert server.sessions == 0
        fresh = await client_for(endpoint, "dev-4", b"key-of-dev-4")  # added: shakes hands
        answer = await fresh.request(endpoint.address, Code.GET, ("who",))
        assert answer.payload.startswith(b"dev-4|")
        await fresh.stop()
    finally:
        for client in clients.values():
            await client.stop()
        await endpoint.stop()
