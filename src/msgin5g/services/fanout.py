# SPDX-License-Identifier: Apache-2.0
"""Expanding one stored delivery into one delivery per recipient (groups, topics).

The expansion runs in the lane of the group or topic, in chunks that each commit on their own,
so a large fan-out never holds the loop for long; `add_deliveries_once` skips recipients that
already have the message queued, so a fan-out a crash interrupted resumes without doubles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec

from msgin5g.core.message import PEER, Address, Delivery
from msgin5g.ports import MessageStore, NewDelivery

_decode_body = msgspec.json.Decoder(dict[str, object]).decode
_encode = msgspec.json.Encoder().encode


async def fan_out(
    delivery: Delivery,
    recipients: Sequence[Address],
    store: MessageStore,
    submit: Callable[[Sequence[Delivery]], None],
    *,
    chunk: int,
) -> int:
    """Queue `delivery` once per recipient (body `destAddr` set to it, except for a peer
    server, which gets the group or topic address to expand itself); returns how many were
    newly queued."""
    body = _decode_body(delivery.body)
    original = body["destAddr"]
    queued = 0
    for start in range(0, len(recipients), chunk):
        items = []
        for recipient in recipients[start : start + chunk]:
            if recipient.kind == PEER:
                body["destAddr"] = original
            else:
                body["destAddr"] = {"addrType": recipient.kind, "addr": recipient.value}
            items.append(
                NewDelivery(
                    kind=delivery.kind,
                    recipient=recipient,
                    body=_encode(body),
                    priority=delivery.priority,
                    expires_at=delivery.expires_at,
                    origin=delivery.origin,
                    message_id=delivery.message_id,
                    wants_report=delivery.wants_report,
                )
            )
        created = await store.add_deliveries_once(items)
        submit(created)
        queued += len(created)
    return queued
