# SPDX-License-Identifier: Apache-2.0
"""Forwarding to a peer MSGin5G Server (TS 23.554 8.7.5, MSGin5G-8; ADR 0013).

TS 29.538 Rel-18 defines no server-to-server message API (spec digest 9.6 gap 3), so a
server forwards through its peer's own MSGS_MSGDelivery operations: a message from an AS
goes to `deliver-as-message`, one from a UE to `deliver-ue-message`, a report to
`deliver-report`. The forwarded message keeps its originator, msgId and report request, asks
for store-and-forward with the delivery's remaining lifetime, and keeps the priority, so the
peer treats it as its own users would be treated.

The peer's `MessageDeliveryAck` decides the outcome: no status or DELY_STORED is a hand-over;
DELY_FAILED rejects the delivery (the sender gets a failure report if it asked). A topic copy
the peer has no subscriber for any more (NO_SUBSCRIBERS) is not a failure: the copy is dropped
and `on_stale(topic)` lets the caller forget that the peer has the topic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec

from msgin5g.core.message import AS, PEER, UE, Delivery, DeliveryKind
from msgin5g.outbound.h2c import H2cClient
from msgin5g.outbound.http_client import HttpClientPool, PeerUnavailable
from msgin5g.ports import SendOutcome, SendResult
from msgin5g.wire.common import StoreAndForwardParameters
from msgin5g.wire.msgg import GatewayMessageDelivery
from msgin5g.wire.msgs import ASMessageDelivery, MessageDeliveryAck, UEMessageDelivery

BASE = "/msgs-msgdelivery/v1"
DELY_FAILED = "DELY_FAILED"
_decode_message = msgspec.json.Decoder(GatewayMessageDelivery).decode
_decode_ack = msgspec.json.Decoder(MessageDeliveryAck).decode
_encode = msgspec.json.Encoder().encode


def forwarded_request(delivery: Delivery) -> tuple[str, bytes] | None:
    """The (path, body) that hands `delivery` to a peer server, None if it cannot."""
    if delivery.kind is DeliveryKind.REPORT:
        return f"{BASE}/deliver-report", delivery.body
    message = _decode_message(delivery.body)
    common: dict[str, Any] = {
        "oriAddr": message.oriAddr,
        "destAddr": message.destAddr,
        "msgId": message.msgId,
        "stoAndFwInd": True,
        "appId": message.appId,
        "delivStReqInd": message.delivStReqInd,
        "payload": message.payload,
        "segInd": message.segInd,
        "segParams": message.segParams,
        "stoAndFwParams": StoreAndForwardParameters(
            exprTime=datetime.fromtimestamp(delivery.expires_at, UTC)
        ),
    }
    if message.oriAddr.addrType == AS:
        body = ASMessageDelivery(**common, priority=delivery.priority.name)
        return f"{BASE}/deliver-as-message", _encode(body)
    if message.oriAddr.addrType == UE:
        return f"{BASE}/deliver-ue-message", _encode(UEMessageDelivery(**common))
    return None


class PeerDeliveryTransport:
    """`Transport` toward one peer server at `api_root`."""

    def __init__(
        self,
        pool: HttpClientPool,
        api_root: str,
        *,
        timeout: float = 10.0,
        on_stale: Callable[[str], None] | None = None,
    ) -> None:
        parts = urlsplit(api_root)
        self._prefix = parts.path.rstrip("/")
        self._client = H2cClient(f"{parts.scheme}://{parts.netloc}", pool, timeout=timeout)
        self._on_stale = on_stale

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, delivery: Delivery) -> SendOutcome:
        try:
            request = forwarded_request(delivery)
        except msgspec.DecodeError as exc:  # a stored body we wrote ourselves: should not happen
            return SendOutcome(SendResult.REJECTED, f"PEER_FORWARDING_FAILED: {exc}")
        if request is None:
            return SendOutcome(
                SendResult.REJECTED,
                f"PEER_FORWARDING_FAILED: cannot forward a message from {delivery.origin.key}",
            )
        path, body = request
        try:
            status, answer = await self._client.post(self._prefix + path, body)
        except PeerUnavailable as exc:
            return SendOutcome(SendResult.RETRY, f"peer server unavailable: {exc}")
        except asyncio.CancelledError:
            raise
        if status >= 500 or status in (408, 429):
            return SendOutcome(SendResult.RETRY, f"peer server answered HTTP {status}")
        if not 200 <= status < 300:
            return SendOutcome(
                SendResult.REJECTED, f"PEER_REJECTED: the peer server answered HTTP {status}"
            )
        try:
            ack = _decode_ack(answer)
        except msgspec.DecodeError:
            return SendOutcome(SendResult.DELIVERED)  # 2xx without an ack body: handed over
        if ack.status != DELY_FAILED:
            return SendOutcome(SendResult.DELIVERED)
        cause = ack.failureCause or "UNSPECIFIED"
        if delivery.recipient.kind == PEER and cause.startswith("NO_SUBSCRIBERS"):
            if self._on_stale is not None:
                self._on_stale(_decode_message(delivery.body).destAddr.addr)
            return SendOutcome(SendResult.DELIVERED, "the peer has no subscriber any more")
        return SendOutcome(SendResult.REJECTED, f"PEER_REJECTED: {cause}")
