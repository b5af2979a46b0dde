# SPDX-License-Identifier: Apache-2.0
"""The MessageStore contract, run against every backend (STYLE 3.6). Today: SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from msgin5g.core.message import (
    Acceptance,
    AckStatus,
    Address,
    AsRegistration,
    DeliveryKind,
    Priority,
)
from msgin5g.ports import (
    MessageRecord,
    MessageStore,
    NewDelivery,
    Outcome,
    TopicListWatch,
    TopicSubscriber,
)
from msgin5g.storage.sqlite import SqliteStore

A = Address("AS", "app-a")
B = Address("AS", "app-b")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqliteStore]:
    backend = SqliteStore(tmp_path / "s.sqlite3", clock=FakeClock())
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


def record(msg_id: str, status: AckStatus = AckStatus.FORWARDED) -> MessageRecord:
    return MessageRecord(
        origin=A,
        message_id=msg_id,
        recipient=B,
        acceptance=Acceptance(status),
        wants_report=True,
        report_received=False,
        keep_until=5_000.0,
    )


def delivery(
    msg_id: str, priority: Priority = Priority.MIDDLE, expires: float = 2_000.0
) -> NewDelivery:
    return NewDelivery(
        kind=DeliveryKind.MESSAGE,
        recipient=B,
        body=b'{"msgId":"' + msg_id.encode() + b'"}',
        priority=priority,
        expires_at=expires,
        origin=A,
        message_id=msg_id,
        wants_report=True,
    )


async def test_accept_is_idempotent(store: MessageStore) -> None:
    previous, created = await store.accept(record("m1", AckStatus.STORED), [delivery("m1")])
    assert previous is None
    assert [d.message_id for d in created] == ["m1"]
    again, none = await store.accept(record("m1"), [delivery("m1")])
    assert none == []
    assert again is not None
    assert again.acceptance == Acceptance(AckStatus.STORED)
    assert len(await store.pending(B, [], 10)) == 1


async def test_pending_orders_by_priority_then_age_and_excludes(store: MessageStore) -> None:
    await store.accept(record("low"), [delivery("low", Priority.LOW)])
    await store.accept(record("mid"), [delivery("mid")])
    await store.accept(record("high"), [delivery("high", Priority.HIGH)])
    await store.accept(record("mid2"), [delivery("mid2")])
    got = await store.pending(B, [], 10)
    assert [d.message_id for d in got] == ["high", "mid", "mid2", "low"]
    rest = await store.pending(B, [got[0].delivery_id], 2)
    assert [d.message_id for d in rest] == ["mid", "mid2"]
    assert await store.recipients_with_pending() == [B]


async def test_finish_removes_and_queues_follow_up_once(store: MessageStore) -> None:
    _, (d,) = await store.accept(record("m1"), [delivery("m1")])
    report = NewDelivery(DeliveryKind.REPORT, A, b"{}", Priority.HIGH, 9_000.0, B, "m1", False)
    created = await store.finish(d, Outcome.FAILED, report)
    assert created is not None
    assert created.recipient == A
    assert await store.finish(d, Outcome.FAILED, report) is None, "a second finish is a no-op"
    assert await store.pending(B, [], 10) == []


async def test_report_is_accepted_once(store: MessageStore) -> None:
    await store.accept(record("m1"), [delivery("m1")])
    report = NewDelivery(DeliveryKind.REPORT, A, b"{}", Priority.HIGH, 9_000.0, B, "m1", False)
    assert await store.accept_report(A, "m1", report) is not None
    assert await store.accept_report(A, "m1", report) is None
    found = await store.find_message(A, "m1")
    assert found is not None
    assert found.report_received


async def test_expire_skips_in_flight_and_purge_forgets(store: MessageStore) -> None:
    _, (d1,) = await store.accept(record("m1"), [delivery("m1", expires=1_500.0)])
    _, (d2,) = await store.accept(record("m2"), [delivery("m2", expires=1_500.0)])
    await store.accept(record("m3"), [delivery("m3", expires=3_000.0)])
    expired = await store.expire(2_000.0, 10, [d2.delivery_id])
    assert [d.delivery_id for d in expired] == [d1.delivery_id]
    assert (await store.stats(2_000.0))[0] == 2
    assert await store.purge_messages(6_000.0) == 3
    assert await store.find_message(A, "m1") is None


async def test_as_registration_update_keeps_id(store: MessageStore) -> None:
    first = await store.save_as_registration(AsRegistration("r1", "app-b", None, "http://x/"))
    second = await store.save_as_registration(AsRegistration("r2", "app-b", "app", "http://y/"))
    assert second.registration_id == first.registration_id == "r1"
    (loaded,) = await store.load_as_registrations()
    assert loaded.target_uri == "http://y/"
    assert await store.delete_as_registration("r1") is not None
    assert await store.delete_as_registration("r1") is None


async def test_data_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    first = SqliteStore(path, clock=FakeClock())
    await first.open()
    await first.accept(record("m1"), [delivery("m1")])
    await first.close()
    second = SqliteStore(path, clock=FakeClock())
    await second.open()
    try:
        assert [d.message_id for d in await second.pending(B, [], 10)] == ["m1"]
    finally:
        await second.close()


async def test_topic_subscriptions_and_topiclist_watches(store: MessageStore) -> None:
    ue = Address("UE", "ue-1")
    await store.save_topic_subscriptions(
        [TopicSubscriber("a", A, 1_500.0), TopicSubscriber("a", ue, 1_600.0)]
    )
    await store.save_topic_subscriptions([TopicSubscriber("a", A, 1_900.0)])  # refreshed
    got = sorted(await store.load_topic_subscriptions(), key=lambda t: t.subscriber.key)
    assert got == [TopicSubscriber("a", A, 1_900.0), TopicSubscriber("a", ue, 1_600.0)]
    await store.delete_topic_subscriptions([TopicSubscriber("a", A, 0.0)])
    assert await store.load_topic_subscriptions() == [TopicSubscriber("a", ue, 1_600.0)]

    watch = TopicListWatch("w1", B, "http://peer/cb", 2_000.0)
    await store.save_topiclist_watch(watch)
    assert await store.load_topiclist_watches() == [watch]
    assert await store.delete_topiclist_watch("w1") is True
    assert await store.delete_topiclist_watch("w1") is False
    assert await store.load_topiclist_watches() == []
