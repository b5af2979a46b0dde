# SPDX-License-Identifier: Apache-2.0
"""Rows to core values, shared by the SQLite and the PostgreSQL store: both select the same
columns in the same order (`deliveries`, `messages`, `uplink_segments`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from msgin5g.core.message import Acceptance, AckStatus, Address, Delivery, DeliveryKind, Priority
from msgin5g.ports import MessageRecord, NewDelivery, UplinkSegment


class Row(Protocol):
    """A result row by column position: sqlite3's tuple or asyncpg's Record."""

    def __getitem__(self, index: int, /) -> Any: ...


def delivery(row: Row) -> Delivery:
    """id, kind, recipient, body, priority, expires_at, origin, message_id, wants_report,
    attempts."""
    return Delivery(
        delivery_id=row[0],
        kind=DeliveryKind(row[1]),
        recipient=Address.from_key(row[2]),
        body=row[3],
        priority=Priority(row[4]),
        expires_at=row[5],
        origin=Address.from_key(row[6]),
        message_id=row[7],
        wants_report=bool(row[8]),
        attempts=row[9],
    )


def spared(row: Row, spare: Callable[[Address], bool] | None, spare_until: float) -> bool:
    """A `delivery` row the expiry sweep leaves for now: its recipient is one `spare` names
    and it expired after `spare_until` (`MessageStore.expire`)."""
    if spare is None or row[5] <= spare_until:
        return False
    return spare(Address.from_key(row[2]))


def record(row: Row) -> MessageRecord:
    """origin, message_id, recipient, status, failure_cause, wants_report, report_received,
    keep_until."""
    return MessageRecord(
        origin=Address.from_key(row[0]),
        message_id=row[1],
        recipient=Address.from_key(row[2]),
        acceptance=Acceptance(AckStatus(row[3]), row[4]),
        wants_report=bool(row[5]),
        report_received=bool(row[6]),
        keep_until=row[7],
    )


def uplink(row: Row) -> UplinkSegment:
    """origin, segment_id, number, total, last, body, expires_at."""
    return UplinkSegment(
        origin=Address.from_key(row[0]),
        segment_id=row[1],
        number=row[2],
        total=row[3],
        last=bool(row[4]),
        body=row[5],
        expires_at=row[6],
    )


def created(delivery_id: int, item: NewDelivery) -> Delivery:
    """The Delivery a store just inserted for `item` under `delivery_id`."""
    return Delivery(
        delivery_id=delivery_id,
        kind=item.kind,
        recipient=item.recipient,
        body=item.body,
        priority=item.priority,
        expires_at=item.expires_at,
        origin=item.origin,
        message_id=item.message_id,
        wants_report=item.wants_report,
    )
