# SPDX-License-Identifier: Apache-2.0
"""Message and report intake (TS 29.538 8.2 MSGS_MSGDelivery; TS 23.554 8.3.2-8.3.6).

`accept` resolves the recipient, decides the acknowledgement (forwarded, stored, failed),
commits the message with its delivery and only then answers. (originator, msgId) makes a
repeat an idempotent re-acknowledgement. `accept_report` correlates a report with the message
it is about and queues it toward the original sender.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence

from msgin5g.core.message import (
    GROUP,
    TOPIC,
    UE,
    Acceptance,
    AckStatus,
    Address,
    Delivery,
    DeliveryKind,
    Message,
    Priority,
    Report,
    ReportStatus,
)
from msgin5g.core.retry import ExpiryPolicy
from msgin5g.core.routing import Route, Rule, Unroutable, resolve
from msgin5g.observability import Metrics
from msgin5g.ports import MessageRecord, MessageStore, NewDelivery, Outcome, Renderer
from msgin5g.services.quotas import UNDECIDED, StoredMessageQuota

log = logging.getLogger(__name__)

_FORWARDED = AckStatus.FORWARDED
_STORED = AckStatus.STORED
_FAILED = AckStatus.FAILED
_MESSAGE = DeliveryKind.MESSAGE
# Shared answers of the hot path (Acceptance is immutable).
_ACCEPTED_FORWARDED = Acceptance(_FORWARDED)
_ACCEPTED_STORED = Acceptance(_STORED)


def _outcome(status: AckStatus) -> str:
    """The `msgin5g_messages_total` outcome of `status` (by identity: an Enum hashes in
    Python code on 3.11, a dict keyed by members costs a call per message)."""
    if status is _STORED:
        return "stored"
    return "accepted" if status is _FORWARDED else "failed"


class MessageService:
    """Accepts messages and reports; the store commits before any acknowledgement."""

    def __init__(
        self,
        store: MessageStore,
        submit: Callable[[Sequence[Delivery]], None],
        renderer: Renderer,
        rules: dict[str, Sequence[Rule]],
        metrics: Metrics,
        *,
        clock: Callable[[], float],
        expiry: ExpiryPolicy | None = None,
        idempotency_window: float = 86_400.0,
        recent_limit: int = 100_000,
        segmenter: Callable[[Message], Sequence[Message]] | None = None,
        homed_elsewhere: Callable[[Address], bool] | None = None,
        relayed_rules: dict[str, Sequence[Rule]] | None = None,
        quota: StoredMessageQuota | None = None,
    ) -> None:
        self._store = store
        self._submit = submit
        self._renderer = renderer
        self._rules = rules
        self._metrics = metrics
        self._clock = clock
        self._expiry = expiry or ExpiryPolicy()
        self._idempotency_window = idempotency_window
        self._recent: OrderedDict[tuple[str, str], Acceptance] = OrderedDict()
        self._recent_limit = recent_limit
        # Cuts a message into one message per segment for its recipient (TS 23.554 8.5.2).
        self._segmenter = segmenter
        # Bounds what waits for one UE (ue.max_stored_messages, ADR 0020).
        self._quota = quota
        # Interconnection (TS 23.554 8.7.5, ADR 0013): a message whose originator is a peer
        # server's user came from that peer and resolves with `relayed_rules` (this server's
        # own recipients only), so it never crosses a second server-to-server hop.
        self._homed_elsewhere = homed_elsewhere
        self._relayed_rules = relayed_rules if relayed_rules is not None else rules
        self._counted = {
            outcome: metrics.counter("msgin5g_messages_total", outcome=outcome)
            for outcome in ("accepted", "stored", "failed", "duplicate")
        }

    # messages ----------------------------------------------------------------------------------

    async def accept(self, message: Message) -> Acceptance:
        """Accept one message; the returned Acceptance is durable when this returns."""
        relayed = self._homed_elsewhere is not None and self._homed_elsewhere(message.originator)
        # A peer forwards one copy per member of a group it expands, all with the sender's
        # (oriAddr, msgId): for relayed messages the recipient is part of the identity.
        origin_key = (
            f"{message.originator.key}>{message.recipient.key}"
            if relayed
            else message.originator.key
        )
        key = (origin_key, message.message_id)
        known = self._recent.get(key)
        if known is not None:
            self._counted["duplicate"].value += 1
            return known
        now = self._clock()
        acceptance = self._decide(message, now, relayed)
        expires_at = self._expiry.message_expiry(now, message.store_and_forward, message.expires_at)
        deliveries: list[NewDelivery] = []
        if acceptance.status is not _FAILED:
            parts = self._segmenter(message) if self._segmenter is not None else (message,)
            if len(parts) == 1:  # the common case, kept lean
                deliveries.append(
                    NewDelivery(
                        kind=_MESSAGE,
                        recipient=message.recipient,
                        body=self._renderer.message(parts[0]),
                        priority=message.priority,
                        expires_at=expires_at,
                        origin=message.originator,
                        message_id=message.message_id,
                        wants_report=message.wants_report,
                    )
                )
            else:
                deliveries.extend(
                    NewDelivery(
                        kind=DeliveryKind.MESSAGE,
                        recipient=message.recipient,
                        body=self._renderer.message(part),
                        priority=message.priority,
                        expires_at=expires_at,
                        origin=message.originator,
                        message_id=message.message_id,
                        # Segments expire together and go in order, so if any fails the last
                        # one does: only it owes the failure report, which is then sent once.
                        wants_report=message.wants_report and part is parts[-1],
                        segment_id=part.segment.segment_id if part.segment else None,
                        segment_number=(part.segment.number or 0) if part.segment else 0,
                    )
                    for part in parts
                )
        quota = self._quota if deliveries and message.recipient.kind == UE else None
        if quota is not None:
            refusal = quota.try_reserve(message.recipient, len(deliveries))
            if refusal is UNDECIDED:
                refusal = await quota.reserve(message.recipient, len(deliveries))
            if isinstance(refusal, str):
                acceptance = Acceptance(AckStatus.FAILED, refusal)
                deliveries = []
                quota = None
        record = MessageRecord(
            origin=message.originator,
            message_id=message.message_id,
            recipient=message.recipient,
            acceptance=acceptance,
            wants_report=message.wants_report,
            report_received=False,
            keep_until=max(expires_at, now + self._idempotency_window),
        )
        created: list[Delivery] = []
        try:
            previous, created = await self._store.accept(record, deliveries)
        finally:
            if quota is not None:  # settled on every exit, a failed commit included
                quota.settle(message.recipient, len(deliveries), committed=bool(created))
        if previous is not None and relayed and previous.recipient != message.recipient:
            # Another member's copy of a message the peer fanned out (see `key` above).
            if acceptance.status is not AckStatus.FAILED:
                self._submit(await self._store.add_deliveries_once(deliveries))
            self._remember(key, acceptance)
            self._counted[_outcome(acceptance.status)].value += 1
            return acceptance
        if previous is not None:
            self._remember(key, previous.acceptance)
            self._counted["duplicate"].value += 1
            return previous.acceptance
        self._remember(key, acceptance)
        if created:
            self._submit(created)
        outcome = _outcome(acceptance.status)
        self._counted[outcome].value += 1
        if log.isEnabledFor(logging.DEBUG) or acceptance.status is _FAILED:
            log.log(
                logging.INFO if acceptance.status is _FAILED else logging.DEBUG,
                "message %s",
                outcome,
                extra={
                    "msgId": message.message_id,
                    "originator": message.originator.key,
                    "recipient": message.recipient.key,
                    "cause": acceptance.failure_cause,
                },
            )
        return acceptance

    def _decide(self, message: Message, now: float, relayed: bool) -> Acceptance:
        if message.expires_at is not None and message.expires_at <= now:
            return Acceptance(AckStatus.FAILED, "EXPIRED: exprTime is already in the past")
        route = resolve(message.recipient, self._relayed_rules if relayed else self._rules)
        if isinstance(route, Unroutable):
            return Acceptance(AckStatus.FAILED, route.cause)
        assert isinstance(route, Route)
        if route.reachable:
            return _ACCEPTED_FORWARDED
        if message.store_and_forward:
            return _ACCEPTED_STORED
        return Acceptance(
            AckStatus.FAILED,
            "RECIPIENT_UNREACHABLE: recipient is not reachable and stoAndFwInd is false",
        )

    def _remember(self, key: tuple[str, str], acceptance: Acceptance) -> None:
        self._recent[key] = acceptance
        if len(self._recent) > self._recent_limit:
            self._recent.popitem(last=False)

    # reports -------------------------------------------------------------------------------------

    async def accept_report(self, report: Report) -> Acceptance:
        """Correlate `report` with its message and queue it toward the original sender."""
        record = await self._store.find_message(report.recipient, report.message_id)
        failure = self._check_report(report, record, self._homed_elsewhere)
        if failure is not None:
            self._metrics.inc("msgin5g_reports_total", outcome="refused")
            log.info(
                "report refused",
                extra={
                    "msgId": report.message_id,
                    "reporter": report.reporter.key,
                    "recipient": report.recipient.key,
                    "cause": failure,
                },
            )
            return Acceptance(AckStatus.FAILED, failure)
        assert record is not None
        created = await self._store.accept_report(
            report.recipient,
            report.message_id,
            self._report_delivery(report),
            # One report per member, also for the members of a peer's group or topic that
            # share one relayed record here.
            per_member=record.recipient.kind in (GROUP, TOPIC)
            or (self._homed_elsewhere is not None and self._homed_elsewhere(record.origin)),
        )
        if created is None:
            self._metrics.inc("msgin5g_reports_total", outcome="duplicate")
            return Acceptance(AckStatus.FORWARDED)
        self._submit([created])
        self._metrics.inc("msgin5g_reports_total", outcome="accepted")
        return Acceptance(AckStatus.FORWARDED)

    @staticmethod
    def _check_report(
        report: Report,
        record: MessageRecord | None,
        homed_elsewhere: Callable[[Address], bool] | None,
    ) -> str | None:
        if record is None:
            return (
                f"UNKNOWN_MESSAGE: no message {report.message_id!r} from"
                f" {report.recipient.key} is known"
            )
        # A message a peer forwarded may have reached several members here under one record;
        # the peer that holds the original checks the reporter again.
        relayed = homed_elsewhere is not None and homed_elsewhere(record.origin)
        if (
            record.recipient != report.reporter
            and record.recipient.kind not in (GROUP, TOPIC)
            and not relayed
        ):
            return (
                f"NOT_A_RECIPIENT: {report.reporter.key} was not sent message {report.message_id!r}"
            )
        if not record.wants_report:
            return "REPORT_NOT_REQUESTED: the sender did not ask for a delivery status report"
        return None

    def _report_delivery(self, report: Report) -> NewDelivery:
        return NewDelivery(
            kind=DeliveryKind.REPORT,
            recipient=report.recipient,
            body=self._renderer.report(report),
            priority=Priority.HIGH,
            expires_at=self._clock() + self._expiry.report_ttl,
            origin=report.reporter,
            message_id=report.message_id,
            wants_report=False,
        )

    def failure_report(
        self, delivery: Delivery, outcome: Outcome, cause: str
    ) -> NewDelivery | None:
        """The REPT_DELY_FAILED report owed to the originator of a failed or expired message."""
        if delivery.kind is not DeliveryKind.MESSAGE or not delivery.wants_report:
            return None
        del outcome  # the cause text says which
        return self._report_delivery(
            Report(
                reporter=delivery.recipient,
                recipient=delivery.origin,
                message_id=delivery.message_id,
                status=ReportStatus.FAILED.value,
                failure_cause=cause,
            )
        )
