# SPDX-License-Identifier: Apache-2.0
"""Delivery to MSGin5G UEs over MSGin5G-1: notifications on the UE's inbox (DESIGN 2.3).

A UE receives by observing `GET /msgin5g/v1/ues/{ueSvcId}/inbox` (RFC 7641). `UeInbox` keeps
the current observation of each UE; `transport_for` gives the dispatcher a `Transport` only
while the UE observes, so the UE's lane parks otherwise and is woken (`on_observing`) when
the UE observes again. Each delivery is one Confirmable notification; the dispatcher's window
of 1 per UE keeps one outstanding at a time, in order. A delivery counts as handed over only
when `Observation.notify` returns True (the UE ACKed it, and fetched every block of a
block-wise one); anything else is a RETRY and the item stays stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from msgin5g.coap import Code, ContentFormat, Observation
from msgin5g.core.message import UE, Address, Delivery, DeliveryKind
from msgin5g.ports import SendOutcome, SendResult, Transport

log = logging.getLogger(__name__)

_TAGS = {
    DeliveryKind.MESSAGE: b'{"msgType":"MSG"',
    DeliveryKind.REPORT: b'{"msgType":"IMDN"',
}


def notification_body(delivery: Delivery) -> bytes:
    """The notification payload: the queued wire JSON object with `msgType` first.

    `delivery.body` is a JSON object rendered by `api.translate.WireRenderer` (compact, never
    empty), so the message type is spliced in front of its first member.
    """
    tag = _TAGS[delivery.kind]
    body = delivery.body
    if len(body) > 2 and body[:1] == b"{":
        return tag + b"," + body[1:]
    return tag + b"}"


class UeInbox:
    """The current inbox observation of each UE, and the transports that notify them."""

    def __init__(self, on_observing: Callable[[Address], None]) -> None:
        self._on_observing = on_observing
        self._observations: dict[str, Observation] = {}
        self._transports: dict[str, UeTransport] = {}

    def __len__(self) -> int:
        return len(self._observations)

    def attach(self, ue_service_id: str, observation: Observation) -> None:
        """Make `observation` the UE's inbox observation, ending an older one, and wake the
        UE's lane so stored and unacknowledged items go out."""
        previous = self._observations.get(ue_service_id)
        self._observations[ue_service_id] = observation
        observation.add_cancel_callback(lambda ended: self._detach(ue_service_id, ended))
        if previous is not None and previous is not observation:
            previous.cancel()
        log.info(
            "UE observing",
            extra={"ueSvcId": ue_service_id, "remote": str(observation.remote)},
        )
        self._on_observing(Address(UE, ue_service_id))

    async def end(self, ue_service_id: str) -> None:
        """End the UE's observation because it de-registered: a final 4.04 notification
        (RFC 7641 §3.2, non-confirmable) tells the client its observation is over."""
        observation = self._observations.pop(ue_service_id, None)
        self._transports.pop(ue_service_id, None)
        if observation is not None and not observation.cancelled:
            await observation.notify(
                b'{"cause":"TARGET_NOT_FOUND","detail":"the UE de-registered"}',
                content_format=ContentFormat.JSON,
                confirmable=False,
                code=Code.NOT_FOUND,
            )
        if observation is not None:
            observation.cancel()  # ended already, unless the 4.04 could not be sent

    def observing(self, ue_service_id: str) -> bool:
        observation = self._observations.get(ue_service_id)
        return observation is not None and not observation.cancelled

    def current(self, ue_service_id: str) -> Observation | None:
        observation = self._observations.get(ue_service_id)
        return None if observation is None or observation.cancelled else observation

    def transport_for(self, ue_service_id: str) -> Transport | None:
        """A transport while the UE observes its inbox, else None (the lane parks)."""
        if not self.observing(ue_service_id):
            return None
        transport = self._transports.get(ue_service_id)
        if transport is None:
            transport = self._transports[ue_service_id] = UeTransport(self, ue_service_id)
        return transport

    def _detach(self, ue_service_id: str, observation: Observation) -> None:
        if self._observations.get(ue_service_id) is observation:
            del self._observations[ue_service_id]
            self._transports.pop(ue_service_id, None)
            log.info(
                "UE stopped observing",
                extra={"ueSvcId": ue_service_id, "reason": observation.cancel_reason},
            )


class UeTransport:
    """`Transport` for one UE: notifies its current inbox observation."""

    def __init__(self, inbox: UeInbox, ue_service_id: str) -> None:
        self._inbox = inbox
        self._ue = ue_service_id

    async def send(self, delivery: Delivery) -> SendOutcome:
        body = notification_body(delivery)
        observation = self._inbox.current(self._ue)
        while observation is not None:
            if await self._notify(observation, body):
                return SendOutcome(SendResult.DELIVERED)
            newer = self._inbox.current(self._ue)
            if newer is None or newer is observation:
                return SendOutcome(
                    SendResult.RETRY,
                    f"notification not acknowledged ({observation.cancel_reason or 'no ACK'})",
                )
            observation = newer  # the UE observes again: hand the item over there at once
        return SendOutcome(SendResult.RETRY, "the UE is not observing its inbox")

    @staticmethod
    async def _notify(observation: Observation, body: bytes) -> bool:
        """One Confirmable notification; False as soon as the observation ends under it (the
        endpoint stops the notification then: no task or watcher per notification)."""
        return await observation.notify(body, content_format=ContentFormat.JSON, confirmable=True)
