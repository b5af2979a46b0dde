# SPDX-License-Identifier: Apache-2.0
"""The endpoint's message-layer behaviour driven by datagrams in, datagrams out (no socket)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from msgin5g.coap import (
    BlockOption,
    CoapEndpoint,
    CoapRequest,
    CoapResponse,
    Code,
    EndpointConfig,
    Message,
    MessageType,
    Observation,
    OptionNumber,
    TransmissionParameters,
    decode,
    encode,
)
from msgin5g.coap.message import encode_uint, string_options

CLIENT = ("192.0.2.1", 40000)
FAST = TransmissionParameters(ack_timeout=0.01, exchange_lifetime=5.0, non_lifetime=5.0)


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[Message] = []

    def sendto(self, data: bytes, addr: Any) -> None:
        assert addr == CLIENT
        self.sent.append(decode(data))

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5683) if name == "sockname" else default


class Handler:
    def __init__(self) -> None:
        self.requests: list[CoapRequest] = []
        self.delay = 0.0
        self.observation: Observation | None = None

    async def handle(self, request: CoapRequest) -> CoapResponse:
        self.requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if request.path == ("boom",):
            raise RuntimeError("handler bug")
        if request.wants_observation:
            self.observation = request.accept_observation()
        return CoapResponse(Code.CONTENT, request.payload or b"ok", content_format=0)


@pytest.fixture
async def setup() -> Any:
    handler = Handler()
    endpoint = CoapEndpoint(handler, params=FAST, config=EndpointConfig(max_body_size=2000))
    transport = FakeTransport()
    endpoint.connection_made(transport)  # type: ignore[arg-type]
    yield endpoint, handler, transport
    await endpoint.stop()


def request(
    mid: int,
    path: tuple[str, ...] = ("echo",),
    *,
    code: int = Code.GET,
    mtype: MessageType = MessageType.CON,
    token: bytes = b"t1",
    options: tuple[tuple[int, bytes], ...] = (),
    payload: bytes = b"",
) -> bytes:
    opts = (*string_options(OptionNumber.URI_PATH, path), *options)
    return encode(Message(mtype, code, mid, token, opts, payload))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_piggybacked_response_and_duplicate_gets_cached_reply(setup: Any) -> None:
    endpoint, handler, transport = setup
    endpoint.datagram_received(request(10, payload=b"hi", code=Code.POST), CLIENT)
    await settle()
    assert len(transport.sent) == 1
    ack = transport.sent[0]
    assert (ack.mtype, ack.code, ack.mid, ack.token, ack.payload) == (
        MessageType.ACK, Code.CONTENT, 10, b"t1", b"hi",
    )  # fmt: skip
    endpoint.datagram_received(request(10, payload=b"hi", code=Code.POST), CLIENT)
    await settle()
    assert transport.sent[1] == ack
    assert len(handler.requests) == 1


async def test_slow_handler_gets_empty_ack_then_separate_response(setup: Any) -> None:
    endpoint, handler, transport = setup
    handler.delay = 0.05
    endpoint.datagram_received(request(11), CLIENT)
    await asyncio.sleep(0.02)
    assert transport.sent[0] == Message(MessageType.ACK, 0, 11)
    await asyncio.sleep(0.05)
    separate = transport.sent[1]
    assert separate.mtype == MessageType.CON
    assert separate.code == Code.CONTENT
    assert separate.token == b"t1"
    endpoint.datagram_received(encode(Message(MessageType.ACK, 0, separate.mid)), CLIENT)
    await settle()
    assert not endpoint._tasks


async def test_each_slow_request_gets_its_empty_ack_at_its_own_deadline() -> None:
    """One timer serves every request in progress (the early-ACK sweep): a request that
    answered in time gets no empty ACK, a later slow one gets it at its own deadline."""

    class Mixed:
        async def handle(self, request: CoapRequest) -> CoapResponse:
            if request.path == ("slow",):
                await asyncio.sleep(0.5)
            return CoapResponse(Code.CONTENT, b"ok")

    params = TransmissionParameters(ack_timeout=0.4, exchange_lifetime=5.0, non_lifetime=5.0)
    endpoint = CoapEndpoint(Mixed(), params=params)  # piggyback delay: ack_timeout / 2
    transport = FakeTransport()
    endpoint.connection_made(transport)  # type: ignore[arg-type]
    try:
        endpoint.datagram_received(request(20, ("fast",)), CLIENT)
        await asyncio.sleep(0.1)
        endpoint.datagram_received(request(21, ("slow",), token=b"t2"), CLIENT)
        await asyncio.sleep(0.15)  # past the fast one's deadline (0.2), before the slow one's
        assert [(m.mtype, m.code, m.mid) for m in transport.sent] == [
            (MessageType.ACK, Code.CONTENT, 20)
        ]
        await asyncio.sleep(0.1)  # past the slow one's deadline (0.3)
        assert transport.sent[1] == Message(MessageType.ACK, 0, 21)
        await asyncio.sleep(0.35)  # it answers at 0.6
        separate = transport.sent[2]
        assert (separate.mtype, separate.code, separate.token) == (
            MessageType.CON, Code.CONTENT, b"t2",
        )  # fmt: skip
        assert len(transport.sent) == 3
        assert not endpoint._early  # nothing left waiting
        assert endpoint._early_timer is None
    finally:
        await endpoint.stop()


async def test_handler_exception_becomes_5_00(setup: Any) -> None:
    endpoint, _, transport = setup
    endpoint.datagram_received(request(12, ("boom",)), CLIENT)
    await settle()
    assert transport.sent[0].code == Code.INTERNAL_SERVER_ERROR


async def test_bad_input(setup: Any) -> None:
    endpoint, handler, transport = setup
    endpoint.datagram_received(request(13, options=((9, b"x"),)), CLIENT)  # unknown critical
    endpoint.datagram_received(request(14, options=((OptionNumber.URI_PATH, b"\xff"),)), CLIENT)
    endpoint.datagram_received(b"\x40\x01\x00\x0f\xf0", CLIENT)  # malformed CON -> RST
    endpoint.datagram_received(b"\x50\x01\x00\x10\xf0", CLIENT)  # malformed NON -> ignored
    endpoint.datagram_received(b"\x01\x02", CLIENT)
    endpoint.datagram_received(encode(Message(MessageType.CON, 0, 16)), CLIENT)  # ping -> RST
    await settle()
    assert [(m.mtype, m.code, m.mid) for m in transport.sent] == [
        (MessageType.ACK, Code.BAD_OPTION, 13),
        (MessageType.ACK, Code.BAD_OPTION, 14),
        (MessageType.RST, 0, 15),
        (MessageType.RST, 0, 16),
    ]
    assert not handler.requests


async def test_block1_through_the_endpoint(setup: Any) -> None:
    endpoint, handler, transport = setup

    def block(mid: int, num: int, more: bool, data: bytes) -> bytes:
        opt = ((OptionNumber.BLOCK1, BlockOption(num, more, 2).encode()),)
        return request(mid, code=Code.POST, options=opt, payload=data)

    endpoint.datagram_received(block(20, 0, True, b"a" * 64), CLIENT)
    endpoint.datagram_received(block(21, 1, True, b"b" * 64), CLIENT)
    endpoint.datagram_received(block(22, 2, False, b"c"), CLIENT)
    endpoint.datagram_received(block(23, 5, False, b"c"), CLIENT)
    endpoint.datagram_received(block(24, 0, False, b"x" * 2001), CLIENT)
    await settle()
    codes = [m.code for m in transport.sent]
    assert codes[:2] == [Code.CONTINUE, Code.CONTINUE]
    assert transport.sent[0].block1 == BlockOption(0, True, 2)
    assert Code.REQUEST_ENTITY_INCOMPLETE in codes
    too_large = next(m for m in transport.sent if m.code == Code.REQUEST_ENTITY_TOO_LARGE)
    assert too_large.size1 == 2000
    final = next(m for m in transport.sent if m.mid == 22)
    assert final.block1 == BlockOption(2, False, 2)
    assert handler.requests[0].payload == b"a" * 64 + b"b" * 64 + b"c"


async def test_large_response_goes_block_wise(setup: Any) -> None:
    endpoint, _, transport = setup
    endpoint.datagram_received(request(30, code=Code.POST, payload=b"x" * 1500), CLIENT)
    await settle()
    first = transport.sent[0]
    assert first.block2 == BlockOption(0, True, 6)
    assert first.size2 == 1500
    follow = ((OptionNumber.BLOCK2, BlockOption(1, False, 6).encode()),)
    endpoint.datagram_received(request(31, code=Code.POST, options=follow), CLIENT)
    await settle()
    second = transport.sent[1]
    assert second.block2 == BlockOption(1, False, 6)
    assert second.etag == first.etag
    assert len(first.payload) + len(second.payload) == 1500


async def register(
    endpoint: CoapEndpoint, handler: Handler, transport: FakeTransport
) -> Observation:
    endpoint.datagram_received(
        request(40, ("obs",), options=((OptionNumber.OBSERVE, b""),)), CLIENT
    )
    await settle()
    assert transport.sent[-1].observe is not None
    assert handler.observation is not None
    return handler.observation


async def test_notification_without_ack_times_out_and_cancels(setup: Any) -> None:
    endpoint, handler, transport = setup
    observation = await register(endpoint, handler, transport)
    assert not await observation.notify(b"{}")
    notifications = [m for m in transport.sent if m.mtype == MessageType.CON]
    assert len(notifications) == 1 + FAST.max_retransmit
    assert len({m.mid for m in notifications}) == 1
    assert observation.cancel_reason == "timeout"
    assert await observation.notify(b"{}") is False


async def test_notification_ack_rst_and_sequence(setup: Any) -> None:
    endpoint, handler, transport = setup
    observation = await register(endpoint, handler, transport)
    seen: list[str | None] = []
    observation.add_cancel_callback(lambda o: seen.append(o.cancel_reason))

    async def answer(mtype: MessageType) -> None:
        for _ in range(100):
            if transport.sent[-1].mtype == MessageType.CON:
                break
            await asyncio.sleep(0)
        endpoint.datagram_received(encode(Message(mtype, 0, transport.sent[-1].mid)), CLIENT)

    sequence: list[int] = []
    for _ in range(2):
        acker = asyncio.create_task(answer(MessageType.ACK))
        assert await observation.notify(b'{"a":1}')
        await acker
        last = transport.sent[-1]
        assert last.observe is not None
        sequence.append(last.observe)
    assert sequence[1] == sequence[0] + 1
    rst = asyncio.create_task(answer(MessageType.RST))
    assert not await observation.notify(b'{"a":2}')
    await rst
    assert await observation.wait_cancelled() == "reset"
    await settle()
    assert seen == ["reset"]
    assert not endpoint.observations


async def test_block2_notification_counts_when_acked_and_fetched(setup: Any) -> None:
    endpoint, handler, transport = setup
    observation = await register(endpoint, handler, transport)
    body = b"n" * 2500
    task = asyncio.create_task(observation.notify(body))
    await settle()
    first = transport.sent[-1]
    assert first.block2 == BlockOption(0, True, 6)
    assert first.observe is not None
    assert len(encode(first)) <= 1152
    endpoint.datagram_received(encode(Message(MessageType.ACK, 0, first.mid)), CLIENT)
    await settle()
    assert not task.done()
    for mid, num in ((50, 1), (51, 2)):
        opt = ((OptionNumber.BLOCK2, BlockOption(num, False, 6).encode()),)
        endpoint.datagram_received(request(mid, ("obs",), token=b"t9", options=opt), CLIENT)
    assert await task
    got = first.payload + transport.sent[-2].payload + transport.sent[-1].payload
    assert got == body
    assert transport.sent[-1].etag == first.etag


async def test_deregistration_and_rejected_registration(setup: Any) -> None:
    endpoint, handler, transport = setup
    observation = await register(endpoint, handler, transport)
    opt = ((OptionNumber.OBSERVE, encode_uint(1)),)
    endpoint.datagram_received(request(60, ("obs",), options=opt), CLIENT)
    assert await observation.wait_cancelled() == "deregistered"
    await settle()
    assert transport.sent[-1].observe is None  # answered as a plain GET
    endpoint.datagram_received(
        request(61, ("boom",), options=((OptionNumber.OBSERVE, b""),)), CLIENT
    )
    await settle()
    assert transport.sent[-1].code == Code.INTERNAL_SERVER_ERROR


async def test_stop_ends_observations(setup: Any) -> None:
    endpoint, handler, transport = setup
    observation = await register(endpoint, handler, transport)
    pending = asyncio.create_task(observation.notify(b"{}"))
    await settle()
    await endpoint.stop()
    assert await pending is False
    assert observation.cancel_reason == "stopped"


async def test_error_notification_ends_observation(setup: Any) -> None:
    endpoint, handler, transport = setup
    observation = await register(endpoint, handler, transport)
    assert await observation.notify(b"gone", code=Code.NOT_FOUND, confirmable=False)
    assert transport.sent[-1].mtype == MessageType.NON
    assert observation.cancel_reason == "ended"
    assert not endpoint.observations


def test_block_szx_is_validated() -> None:
    with pytest.raises(ValueError, match="block_szx"):
        CoapEndpoint(Handler(), config=EndpointConfig(block_szx=7))
