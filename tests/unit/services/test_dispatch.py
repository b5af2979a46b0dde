# SPDX-License-Identifier: Apache-2.0
"""The store-and-forward worker over a real SQLite store and a recording transport."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from msgin5g.core.message import (
    AS,
    Acceptance,
    AckStatus,
    Address,
    Delivery,
    DeliveryKind,
    Priority,
)
from msgin5g.core.retry import RetryPolicy
from msgin5g.observability import Metrics
from msgin5g.ports import MessageRecord, NewDelivery, Outcome, SendOutcome, SendResult, Transport
from msgin5g.services.dispatch import Dispatcher
from msgin5g.storage.sqlite import SqliteStore

A = Address(AS, "app-a")
B = Address(AS, "app-b")


class Recorder:
    """A transport whose answers the test scripts; records every attempt."""

    def __init__(self) -> None:
        self.answers: list[SendResult] = []
        self.attempts: list[str] = []
        self.delivered: list[str] = []

    async def send(self, delivery: Delivery) -> SendOutcome:
        self.attempts.append(delivery.message_id)
        result = self.answers.pop(0) if self.answers else SendResult.DELIVERED
        if result is SendResult.DELIVERED:
            self.delivered.append(delivery.message_id)
        return SendOutcome(result, "scripted")


def failure_report(d: Delivery, outcome: Outcome, cause: str) -> NewDelivery | None:
    if d.kind is DeliveryKind.REPORT or not d.wants_report:
        return None
    return NewDelivery(
        DeliveryKind.REPORT,
        d.origin,
        cause.encode(),
        Priority.HIGH,
        time.time() + 60,
        d.recipient,
        d.message_id,
        False,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "d.sqlite3", clock=time.time)
    await s.open()
    yield s
    await s.close()


async def put(
    store: SqliteStore, msg_id: str, priority: Priority = Priority.MIDDLE, expires_in: float = 60.0
) -> list[Delivery]:
    _, created = await store.accept(
        MessageRecord(A, msg_id, B, Acceptance(AckStatus.STORED), True, False, time.time() + 99),
        [
            NewDelivery(
                DeliveryKind.MESSAGE, B, b"{}", priority, time.time() + expires_in, A, msg_id, True
            )
        ],
    )
    return created


def dispatcher(store: SqliteStore, routes: dict[str, Transport], **kw: object) -> Dispatcher:
    return Dispatcher(
        store,
        lambda a: routes.get(a.key),
        failure_report,
        Metrics(),
        clock=time.time,
        retry=RetryPolicy(initial=0.02, maximum=0.05),
        sweep_interval=0.02,
        **kw,  # type: ignore[arg-type]
    )


async def until(predicate: object, limit: float = 5.0) -> None:
    """Poll `predicate` (the dispatcher works in background tasks) for up to `limit` s."""
    async with asyncio.timeout(limit):
        while not predicate():  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_delivers_in_priority_order_and_empties_the_store(store: SqliteStore) -> None:
    b = Recorder()
    for msg_id, prio in [("low", Priority.LOW), ("mid", Priority.MIDDLE), ("high", Priority.HIGH)]:
        await put(store, msg_id, prio)
    d = dispatcher(store, {B.key: b})
    await d.start()  # resumes stored work from the store
    await until(lambda: len(b.delivered) == 3)
    await d.stop()
    assert b.delivered == ["high", "mid", "low"]
    assert (await store.stats(time.time()))[0] == 0


async def test_retry_backs_off_then_delivers(store: SqliteStore) -> None:
    b = Recorder()
    b.answers = [SendResult.RETRY, SendResult.RETRY]
    d = dispatcher(store, {B.key: b})
    await d.start()
    d.submit(await put(store, "m1"))
    await until(lambda: b.delivered == ["m1"])
    await d.stop()
    assert b.attempts == ["m1", "m1", "m1"]


async def test_rejection_queues_a_failure_report_to_the_originator(store: SqliteStore) -> None:
    a, b = Recorder(), Recorder()
    b.answers = [SendResult.REJECTED]
    d = dispatcher(store, {A.key: a, B.key: b})
    await d.start()
    d.submit(await put(store, "m1"))
    await until(lambda: a.delivered == ["m1"])
    await d.stop()


async def test_expiry_reports_failure(store: SqliteStore) -> None:
    a = Recorder()
    d = dispatcher(store, {A.key: a})  # B has no transport: parked, the message waits
    await d.start()
    d.submit(await put(store, "m1", expires_in=0.1))
    await until(lambda: a.delivered == ["m1"])
    await d.stop()


async def test_parked_recipient_is_woken(store: SqliteStore) -> None:
    routes: dict[str, Transport] = {}
    d = dispatcher(store, routes)
    await d.start()
    d.submit(await put(store, "m1"))
    await asyncio.sleep(0.1)
    assert not d.reachable(B)
    b = Recorder()
    routes[B.key] = b
    d.wake(B)
    await until(lambda: b.delivered == ["m1"])
    await d.stop()


async def test_queue_beyond_the_memory_buffer_pages_from_the_store(store: SqliteStore) -> None:
    b = Recorder()
    routes: dict[str, Transport] = {}
    d = dispatcher(store, routes, buffer_limit=8)
    await d.start()
    ids = [f"m{i:03d}" for i in range(50)]
    for msg_id in ids:
        d.submit(await put(store, msg_id))
    routes[B.key] = b
    d.wake(B)
    await until(lambda: len(b.delivered) == 50)
    await d.stop()
    assert b.delivered == ids, "order kept and nothing twice"
