# SPDX-License-Identifier: Apache-2.0
"""Ports: the small Protocols the services need, in domain types only (STYLE 3.5)."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from typing import Protocol

import msgspec

from msgin5g.core.message import (
    Acceptance,
    Address,
    AsRegistration,
    Delivery,
    DeliveryKind,
    Message,
    Priority,
    Report,
    UeRegistration,
)


class Clock(Protocol):
    """Wall-clock time in epoch seconds; injected so expiry tests never sleep."""

    def now(self) -> float: ...


class NewDelivery(msgspec.Struct, frozen=True, gc=False):
    """A delivery to create; the store assigns `delivery_id`."""

    kind: DeliveryKind
    recipient: Address
    body: bytes
    priority: Priority
    expires_at: float
    origin: Address
    message_id: str
    wants_report: bool
    segment_id: str | None = None
    """Set on a segment sent to a UE: the store keeps a copy for segment recovery (SEGREC)
    until SEGCONFIR or `expires_at`."""
    segment_number: int = 0


class UplinkSegment(msgspec.Struct, frozen=True, gc=False):
    """One segment of a UE-originated message, kept until its message is reassembled."""

    origin: Address
    segment_id: str
    number: int
    total: int | None
    last: bool
    body: bytes
    """The segment as a core `Message`, serialised by the service (opaque to the store)."""
    expires_at: float


class MessageRecord(msgspec.Struct, frozen=True, gc=False):
    """What the store remembers of an accepted message, for idempotency and report routing."""

    origin: Address
    message_id: str
    recipient: Address
    acceptance: Acceptance
    wants_report: bool
    report_received: bool
    keep_until: float


class TopicSubscriber(msgspec.Struct, frozen=True, gc=False):
    """One subscriber (a UE or an AS) of one Messaging Topic, until `expires_at` (TS 23.554
    8.8.1)."""

    topic: str
    subscriber: Address
    expires_at: float


class TopicListWatch(msgspec.Struct, frozen=True, gc=False):
    """A topic-list subscription (TS 29.538 MSGS_TopiclistEvent): `origin` is told at
    `notification_uri` when a topic appears or disappears, until `expires_at`."""

    subscription_id: str
    origin: Address
    notification_uri: str
    expires_at: float


class Outcome(enum.Enum):
    """How a delivery left the queue."""

    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"


class MessageStore(Protocol):
    """Durable record of accepted messages, reports and queued deliveries.

    Every method that returns has committed: a caller may acknowledge its sender afterwards.
    """

    async def accept(
        self, record: MessageRecord, deliveries: Sequence[NewDelivery]
    ) -> tuple[MessageRecord | None, list[Delivery]]:
        """Store a new message and its deliveries atomically.

        Returns (previous, []) without writing when (origin, message_id) is already known,
        else (None, the created deliveries).
        """
        ...

    async def find_message(self, origin: Address, message_id: str) -> MessageRecord | None: ...

    async def accept_report(
        self, origin: Address, message_id: str, delivery: NewDelivery, *, per_member: bool = False
    ) -> Delivery | None:
        """Record that the report on (origin, message_id) arrived and queue its forwarding.

        Returns None, writing nothing, when a report for that message was already accepted
        (with `per_member`, a report from that issuer: group messages get one per member).
        """
        ...

    async def add_deliveries_once(self, deliveries: Sequence[NewDelivery]) -> list[Delivery]:
        """Add those deliveries whose (origin, msgId, recipient) has none queued yet."""
        ...

    async def save_group(self, group_id: str, members: Sequence[Address]) -> bool: ...

    async def delete_group(self, group_id: str) -> bool: ...

    async def load_groups(self) -> dict[str, tuple[Address, ...]]: ...

    # Messaging Topics (TS 23.554 8.8, TS 29.538 MSGS_TopiclistEvent)
    async def save_topic_subscriptions(self, subscriptions: Sequence[TopicSubscriber]) -> None:
        """Insert or refresh (new expiry) each (topic, subscriber)."""
        ...

    async def delete_topic_subscriptions(self, subscriptions: Sequence[TopicSubscriber]) -> None:
        """Remove each (topic, subscriber); the expiry is ignored."""
        ...

    async def load_topic_subscriptions(self) -> list[TopicSubscriber]: ...

    async def save_topiclist_watch(self, watch: TopicListWatch) -> None: ...

    async def delete_topiclist_watch(self, subscription_id: str) -> bool: ...

    async def load_topiclist_watches(self) -> list[TopicListWatch]: ...

    async def finish(
        self, delivery: Delivery, outcome: Outcome, follow_up: NewDelivery | None
    ) -> Delivery | None:
        """Remove a delivery that reached `outcome`; queue `follow_up` (a report) atomically."""
        ...

    async def record_attempt(self, delivery_id: int, attempts: int) -> None: ...

    async def pending(
        self, recipient: Address, exclude: Sequence[int], limit: int
    ) -> list[Delivery]:
        """Queued deliveries for `recipient`, highest priority then oldest first."""
        ...

    async def recipients_with_work_after(self, after_id: int) -> tuple[list[Address], int]:
        """Recipients of the deliveries with ids above `after_id`, and the highest such id
        (`after_id` when there is none): the work stored since an earlier look (ADR 0018)."""
        ...

    async def recipients_with_pending(self, after: str = "", limit: int = 0) -> list[Address]:
        """Recipients with queued work; with `limit`, a page of those whose key sorts after
        `after`, in key order (the restart scan pages through a million of them)."""
        ...

    async def add_deliveries(self, deliveries: Sequence[NewDelivery]) -> list[Delivery]: ...

    async def expire(
        self,
        now: float,
        limit: int,
        exclude: Sequence[int],
        spare: Callable[[Address], bool] | None = None,
        spare_until: float = -math.inf,
    ) -> list[Delivery]:
        """Remove up to `limit` deliveries whose expiry passed, except those in `exclude`
        (being handed over right now) and, while they expired after `spare_until`, those whose
        recipient `spare` names (another instance may be handing them over); returns what was
        removed."""
        ...

    async def purge_messages(self, now: float) -> int:
        """Forget idempotency records past `keep_until`; returns how many were removed."""
        ...

    async def stats(self, now: float) -> tuple[int, float]:
        """(number of queued deliveries, age in seconds of the oldest)."""
        ...

    # AS registrations (TS 29.538 8.1)
    async def save_as_registration(self, registration: AsRegistration) -> AsRegistration:
        """Insert or update by `as_service_id`; an update keeps the existing registration id."""
        ...

    async def delete_as_registration(self, registration_id: str) -> AsRegistration | None: ...

    async def load_as_registrations(self) -> list[AsRegistration]: ...

    async def pending_count(self, recipient: Address) -> int:
        """How many deliveries are queued for `recipient`."""
        ...

    # MSGin5G UE registrations (TS 23.554 8.2.1 / 8.2.2)
    async def save_ue_registration(self, registration: UeRegistration) -> UeRegistration | None:
        """Insert, replacing any registration of the same `ue_service_id`; returns the one
        replaced."""
        ...

    async def delete_ue_registration(self, registration_id: str) -> UeRegistration | None: ...

    async def load_ue_registrations(self) -> list[UeRegistration]: ...

    async def find_ue_registrations(self, ue_service_ids: Sequence[str]) -> list[UeRegistration]:
        """The current registrations of those of `ue_service_ids` that have one."""
        ...

    # Segmentation (TS 23.554 8.5)
    async def resend_segments(self, segment_id: str, numbers: Sequence[int]) -> list[Delivery]:
        """Queue again the kept copies of the given segments of `segment_id` (SEGREC)."""
        ...

    async def forget_segments(self, segment_id: str) -> int:
        """Drop the kept copies of `segment_id` (SEGCONFIR); returns how many."""
        ...

    async def add_uplink_segment(self, segment: UplinkSegment) -> list[UplinkSegment]:
        """Keep `segment` (a repeat is ignored); returns every segment of its set so far."""
        ...

    async def drop_uplink_segments(self, origin: Address, segment_id: str) -> None: ...

    async def expired_uplink_segments(self, now: float) -> list[UplinkSegment]:
        """The first kept segment of each set whose reassembly time ran out."""
        ...


class SendResult(enum.Enum):
    """What a transport made of one hand-over attempt."""

    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"


class SendOutcome(msgspec.Struct, frozen=True, gc=False):
    result: SendResult
    detail: str = ""


class Transport(Protocol):
    """Hands one delivery to its recipient over one path (AS callback, CoAP, gateway)."""

    async def send(self, delivery: Delivery) -> SendOutcome: ...


class TopicChange(enum.Enum):
    """TS 29.538 UpdateStatus of a Messaging Topic."""

    CREATED = "CREATED"
    DELETED = "DELETED"


class TopicListNotifier(Protocol):
    """Tells a topic-list subscriber what changed; never blocks the caller (it queues)."""

    def notify(self, watch: TopicListWatch, changes: Sequence[tuple[str, TopicChange]]) -> None: ...


class TopicListSource(Protocol):
    """A peer server's topic list (TS 29.538 MSGS_TopiclistEvent, consumer side)."""

    async def subscribe(self, peer: str, notification_uri: str) -> tuple[str, float]:
        """Subscribe to `peer`'s topic list; returns (the subscription's URI, its expiry).
        Raises on any failure."""
        ...

    async def unsubscribe(self, peer: str, subscription: str) -> None: ...


class Renderer(Protocol):
    """Turns domain objects into the wire bodies queued for recipients (TS 29.538 shapes)."""

    def message(self, message: Message) -> bytes: ...

    def report(self, report: Report) -> bytes: ...
