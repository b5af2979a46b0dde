# SPDX-License-Identifier: Apache-2.0
"""UeTransport over a real CoapEndpoint driven by datagrams: a notification waiting for its
ACK stops as soon as its observation ends (DESIGN 2.3; issue 7 made this one task per
notification, ended by the inbox instead of a watcher task)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.unit.coap.test_coap_endpoint_driver import CLIENT, FakeTransport, Handler, request

from msgin5g.coap import (
    CoapEndpoint,
    EndpointConfig,
    Message,
    MessageType,
    OptionNumber,
    TransmissionParameters,
    encode,
)
from msgin5g.core.message import AS, UE, Address, Delivery, DeliveryKind, Priority
from msgin5g.outbound.ue_coap import UeInbox
from msgin5g.ports import SendResult

SLOW = TransmissionParameters(ack_timeout=5.0, exchange_lifetime=60.0, non_lifetime=60.0)
UE_ID = "ue-1"
DELIVERY = Delivery(
    delivery_id=1,
    kind=DeliveryKind.MESSAGE,
    recipient=Address(UE, UE_ID),
    body=b'{"msgId":"m1"}',
    priority=Priority.MIDDLE,
    expires_at=time.time() + 60,
    origin=Address(AS, "as-1"),
    message_id="m1",
    wants_report=False,
)


@pytest.fixture
async def setup() -> AsyncIterator[tuple[CoapEndpoint, Handler, FakeTransport, UeInbox]]:
    handler = Handler()
    endpoint = CoapEndpoint(handler, params=SLOW, config=EndpointConfig())
    transport = FakeTransport()
    endpoint.connection_made(transport)  # type: ignore[arg-type]
    yield endpoint, handler, transport, UeInbox(lambda _address: None)
    await endpoint.stop()


async def observe(setup: Any, mid: int, token: bytes) -> None:
    endpoint, handler, _transport, inbox = setup
    handler.observation = None
    options = ((OptionNumber.OBSERVE, b""),)
    endpoint.datagram_received(request(mid, ("inbox",), options=options, token=token), CLIENT)
    async with asyncio.timeout(2):
        while handler.observation is None:  # noqa: ASYNC110
            await asyncio.sleep(0)
    inbox.attach(UE_ID, handler.observation)


async def notification(transport: FakeTransport, token: bytes) -> Message:
    async with asyncio.timeout(2):
        while True:
            for message in transport.sent:
                if message.mtype == MessageType.CON and message.token == token:
                    return message
            await asyncio.sleep(0.001)


async def test_observing_again_moves_the_unacknowledged_item_at_once(setup: Any) -> None:
    endpoint, _handler, transport, inbox = setup
    await observe(setup, 40, b"t1")
    ue = inbox.transport_for(UE_ID)
    assert ue is not None
    sending = asyncio.create_task(ue.send(DELIVERY))
    first = await notification(transport, b"t1")  # never ACKed: the UE restarted
    await observe(setup, 41, b"t2")  # the same UE observes again
    second = await notification(transport, b"t2")
    assert b'"msgId":"m1"' in second.payload
    assert second.payload == first.payload
    endpoint.datagram_received(encode(Message(MessageType.ACK, 0, second.mid)), CLIENT)
    async with asyncio.timeout(1):  # well before the old one's first retransmission (5 s)
        outcome = await sending
    assert outcome.result is SendResult.DELIVERED


async def test_observation_ending_gives_retry_at_once(setup: Any) -> None:
    endpoint, handler, transport, inbox = setup
    await observe(setup, 40, b"t1")
    ue = inbox.transport_for(UE_ID)
    assert ue is not None
    sending = asyncio.create_task(ue.send(DELIVERY))
    await notification(transport, b"t1")
    handler.observation.cancel()  # the UE is gone (e.g. it de-registered)
    async with asyncio.timeout(1):
        outcome = await sending
    assert outcome.result is SendResult.RETRY
    assert "cancelled" in outcome.detail
    assert inbox.transport_for(UE_ID) is None
    assert not endpoint._pending  # the notification is not retransmitted any more


async def test_cancelling_the_hand_over_is_not_swallowed(setup: Any) -> None:
    _endpoint, _handler, transport, inbox = setup
    await observe(setup, 40, b"t1")
    ue = inbox.transport_for(UE_ID)
    assert ue is not None
    sending = asyncio.create_task(ue.send(DELIVERY))
    await notification(transport, b"t1")
    sending.cancel()  # the dispatcher stops
    with pytest.raises(asyncio.CancelledError):
        await sending
    assert inbox.transport_for(UE_ID) is ue  # the observation itself lives on


async def test_deregistration_ends_the_unacknowledged_notification(setup: Any) -> None:
    _endpoint, _handler, transport, inbox = setup
    await observe(setup, 40, b"t1")
    ue = inbox.transport_for(UE_ID)
    assert ue is not None
    sending = asyncio.create_task(ue.send(DELIVERY))
    await notification(transport, b"t1")
    await inbox.end(UE_ID)  # the UE de-registered: final 4.04, observation over
    async with asyncio.timeout(1):
        outcome = await sending
    assert outcome.result is SendResult.RETRY
    assert inbox.transport_for(UE_ID) is None
