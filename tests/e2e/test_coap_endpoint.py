# SPDX-License-Identifier: Apache-2.0
"""The CoAP endpoint on a real UDP socket, against libcoap's coap-client and our CoapClient."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from msgin5g.coap import (
    CoapClient,
    CoapEndpoint,
    CoapRequest,
    CoapResponse,
    Code,
    ContentFormat,
    EndpointConfig,
    Message,
    MessageType,
    Observation,
    TransmissionParameters,
    decode,
    encode,
)
from msgin5g.coap.message import OptionNumber, string_options

pytestmark = pytest.mark.e2e

COAP_CLIENT = next(
    (
        path
        for name in (
            "coap-client",
            "coap-client-notls",
            "coap-client-openssl",
            "coap-client-gnutls",
        )
        if (path := shutil.which(name))
    ),
    None,
)
needs_coap_client = pytest.mark.skipif(COAP_CLIENT is None, reason="libcoap coap-client missing")

FAST = TransmissionParameters(ack_timeout=0.2, exchange_lifetime=10.0, non_lifetime=10.0)
# For the tests that wait for a sender to give up: MAX_TRANSMIT_WAIT ~ 0.9 s.
FASTER = TransmissionParameters(ack_timeout=0.02, exchange_lifetime=10.0, non_lifetime=10.0)
BIG = bytes(i % 251 for i in range(5000))
HOST = "127.0.0.1"


class App:
    """Echo, a 5000-byte resource, an upload sink and an observable resource."""

    def __init__(self) -> None:
        self.requests: list[CoapRequest] = []
        self.observations: asyncio.Queue[Observation] = asyncio.Queue()

    async def handle(self, request: CoapRequest) -> CoapResponse:
        self.requests.append(request)
        match request.path:
            case ("echo",):
                if request.method == Code.GET:
                    return CoapResponse(payload=b"hello", content_format=ContentFormat.TEXT_PLAIN)
                return CoapResponse(
                    Code.CHANGED, payload=request.payload, content_format=request.content_format
                )
            case ("big",):
                return CoapResponse(payload=BIG, content_format=ContentFormat.OCTET_STREAM)
            case ("upload",):
                return CoapResponse(
                    Code.CREATED, location_path=("upload", str(len(request.payload)))
                )
            case ("obs",):
                if request.wants_observation:
                    self.observations.put_nowait(request.accept_observation())
                return CoapResponse(payload=b'{"pending":0}', content_format=ContentFormat.JSON)
            case _:
                return CoapResponse(Code.NOT_FOUND)


@pytest.fixture
async def served() -> AsyncIterator[tuple[CoapEndpoint, App, int]]:
    app = App()
    endpoint = CoapEndpoint(app, params=FAST, config=EndpointConfig(block_fetch_timeout=3.0))
    await endpoint.start(HOST, 0)
    yield endpoint, app, endpoint.address[1]
    await endpoint.stop()


async def coap_client(*args: str) -> str:
    """Run coap-client with a -v 6 trace; returns stdout and stderr together."""
    assert COAP_CLIENT is not None
    process = await asyncio.create_subprocess_exec(
        COAP_CLIENT,
        "-v",
        "6",
        "-B",
        "5",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(10):
        out, _ = await process.communicate()
    assert process.returncode == 0
    return out.decode(errors="replace")


# -- coap-client as an independent peer ------------------------------------------------------


@needs_coap_client
async def test_coap_client_get(served: tuple[CoapEndpoint, App, int]) -> None:
    _, _, port = served
    trace = await coap_client("-m", "get", f"coap://{HOST}:{port}/echo")
    assert "2.05" in trace
    assert "hello" in trace


@needs_coap_client
async def test_coap_client_post_json_and_unknown_path(
    served: tuple[CoapEndpoint, App, int],
) -> None:
    _, app, port = served
    trace = await coap_client(
        "-m", "post", "-t", "50", "-e", '{"a":1}', f"coap://{HOST}:{port}/echo"
    )
    assert "2.04" in trace
    assert '{"a":1}' in trace
    assert app.requests[-1].content_format == 50
    assert app.requests[-1].payload == b'{"a":1}'
    trace = await coap_client("-m", "get", f"coap://{HOST}:{port}/nowhere")
    assert "4.04" in trace


@needs_coap_client
@pytest.mark.parametrize("block_size", ["1024", "64"])
async def test_coap_client_large_post_block1(
    served: tuple[CoapEndpoint, App, int], tmp_path: Path, block_size: str
) -> None:
    _, app, port = served
    body = os.urandom(4000)
    (tmp_path / "body").write_bytes(body)
    trace = await coap_client(
        "-m", "post", "-b", block_size, "-t", "42", "-f", str(tmp_path / "body"),
        f"coap://{HOST}:{port}/upload",
    )  # fmt: skip
    assert "2.01" in trace
    assert app.requests[-1].payload == body
    assert app.requests[-1].content_format == 42


@needs_coap_client
async def test_coap_client_large_get_block2(
    served: tuple[CoapEndpoint, App, int], tmp_path: Path
) -> None:
    _, _, port = served
    out = tmp_path / "out"
    await coap_client("-m", "get", "-o", str(out), f"coap://{HOST}:{port}/big")
    assert out.read_bytes() == BIG


@needs_coap_client
async def test_coap_client_observe_acks_notifications_and_cancels(
    served: tuple[CoapEndpoint, App, int],
) -> None:
    endpoint, app, port = served
    client = asyncio.create_task(coap_client("-s", "3", "-m", "get", f"coap://{HOST}:{port}/obs"))
    async with asyncio.timeout(5):
        observation = await app.observations.get()
    large = b'{"payload":"' + b"z" * 2980 + b'"}'
    bodies = [b'{"n":1}', large, b'{"n":3}']
    results = [await observation.notify(body, content_format=50) for body in bodies]
    assert results == [True, True, True]
    assert not observation.cancelled
    trace = await client
    assert '{"n":1}' in trace
    assert '{"n":3}' in trace
    assert trace.count("z") >= 2980
    # coap-client deregisters when its -s time is up; at the latest the next notification
    # would be rejected with RST.
    async with asyncio.timeout(3):
        reason = await observation.wait_cancelled()
    assert reason in {"deregistered", "reset"}
    assert not endpoint.observations


# -- our own client against the endpoint -------------------------------------------------------


@pytest.fixture
async def client() -> AsyncIterator[CoapClient]:
    async with CoapClient(params=FAST) as coap:
        yield coap


async def test_client_requests_both_block_directions(
    served: tuple[CoapEndpoint, App, int], client: CoapClient
) -> None:
    _, app, port = served
    remote = (HOST, port)
    response = await client.request(remote, Code.GET, ("echo",))
    assert (response.code, response.payload) == (Code.CONTENT, b"hello")
    big = await client.request(remote, Code.GET, ("big",))
    assert big.payload == BIG
    assert big.content_format == ContentFormat.OCTET_STREAM
    body = os.urandom(3000)
    created = await client.request(
        remote, Code.POST, ("upload",), payload=body, content_format=ContentFormat.OCTET_STREAM
    )
    assert created.code == Code.CREATED
    assert created.location_path == ("upload", "3000")
    assert app.requests[-1].payload == body
    echoed = await client.request(
        remote, Code.POST, ("echo",), payload=BIG, content_format=ContentFormat.OCTET_STREAM
    )
    assert echoed.payload == BIG  # Block1 up and Block2 down in one exchange


async def test_client_observe_acks_after_consume(
    served: tuple[CoapEndpoint, App, int], client: CoapClient
) -> None:
    endpoint, app, port = served
    watch = await client.observe((HOST, port), ("obs",))
    first = await anext(watch)
    assert first.payload == b'{"pending":0}'
    assert first.observe is not None
    observation = await app.observations.get()

    delivery = asyncio.create_task(observation.notify(b'{"n":1}'))
    await asyncio.sleep(0.1)
    assert not delivery.done()  # not ACKed until the consumer takes it
    assert (await anext(watch)).payload == b'{"n":1}'
    assert await delivery

    large = bytes(i % 200 for i in range(3000))
    delivery = asyncio.create_task(observation.notify(large, content_format=42))
    await asyncio.sleep(0.1)
    assert not delivery.done()
    message = await anext(watch)
    assert message.payload == large
    assert message.content_format == 42
    assert await delivery

    await watch.cancel()
    assert await observation.wait_cancelled() == "deregistered"
    assert not endpoint.observations
    assert [m async for m in watch] == []


async def test_unconsumed_notification_is_not_delivered(client: CoapClient) -> None:
    app = App()
    endpoint = CoapEndpoint(app, params=FASTER)
    await endpoint.start(HOST, 0)
    try:
        watch = await client.observe(endpoint.address, ("obs",))
        observation = await app.observations.get()
        # Nobody takes the notification: the server retransmits, then gives up (RFC 7641 §4.5).
        assert not await observation.notify(b'{"n":1}')
        assert observation.cancel_reason == "timeout"
        await watch.cancel()
    finally:
        await endpoint.stop()


# -- robustness ----------------------------------------------------------------------------


class RawPeer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait(data)


async def test_malformed_datagrams_are_ignored_or_reset(
    served: tuple[CoapEndpoint, App, int], client: CoapClient
) -> None:
    _, _, port = served
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_datagram_endpoint(RawPeer, remote_addr=(HOST, port))
    try:
        # Fixed junk: random bytes could form a valid CON (1 in ~30) and draw an answer first.
        for junk in (b"", b"\x40", b"\xff\xff\xff\xff\xff", bytes(range(200)), b"\x48\x01\x12"):
            transport.sendto(junk)
        transport.sendto(b"\x40\x01\x12\x34\xf0")  # CON with a reserved option nibble
        async with asyncio.timeout(2):
            rst = decode(await peer.received.get())
        assert (rst.mtype, rst.code, rst.mid) == (MessageType.RST, 0, 0x1234)
        get = Message(
            MessageType.CON,
            Code.GET,
            0x99,
            b"\x01",
            string_options(OptionNumber.URI_PATH, ["echo"]),
        )
        transport.sendto(encode(get))
        transport.sendto(encode(get))  # duplicate: the same answer again
        async with asyncio.timeout(2):
            answers = [await peer.received.get(), await peer.received.get()]
        assert answers[0] == answers[1]
        assert decode(answers[0]).payload == b"hello"
    finally:
        transport.close()
    response = await client.request((HOST, port), Code.GET, ("echo",))
    assert response.payload == b"hello"


def test_endpoint_survives_gone_client_under_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        app = App()
        endpoint = CoapEndpoint(app, params=FASTER)
        await endpoint.start(HOST, 0)
        port = endpoint.address[1]
        try:
            gone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            gone.bind((HOST, 0))
            register = Message(
                MessageType.CON,
                Code.GET,
                1,
                b"\x07",
                ((OptionNumber.OBSERVE, b""), *string_options(OptionNumber.URI_PATH, ["obs"])),
            )
            gone.sendto(encode(register), (HOST, port))
            async with asyncio.timeout(2):
                observation = await app.observations.get()
            gone.close()  # the client goes away; the notification meets ICMP port unreachable
            notified = await observation.notify(b"{}", confirmable=False)
            assert notified
            assert not await observation.notify(b"{}")
            async with CoapClient(params=FAST) as coap:
                response = await coap.request((HOST, port), Code.GET, ("echo",))
            assert response.payload == b"hello"
        finally:
            await endpoint.stop()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())
