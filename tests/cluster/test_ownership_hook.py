# SPDX-License-Identifier: Apache-2.0
"""The dispatcher's ownership hook (ADR 0018) over a real SQLite store: work for a recipient
owned elsewhere rings the owner's doorbell instead of running here; a lane whose lease moves
on stops and leaves the rest in the store; reloading it later delivers the rest, in order and
nothing twice. Also the shard arithmetic every instance must agree on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from msgin5g.cluster.shards import fair_share, shard_of
from msgin5g.core.message import (
    AS,
    Acceptance,
    AckStatus,
    Address,
    Delivery,
    DeliveryKind,
    Priority,
)
from msgin5g.observability import Metrics
from msgin5g.ports import MessageRecord, NewDelivery, Outcome, SendOutcome, SendResult
from msgin5g.services.dispatch import Dispatcher
from msgin5g.settings import SettingsError, load
from msgin5g.storage.sqlite import SqliteStore

A = Address(AS, "app-a")
B = Address(AS, "app-b")


class Owner:
    """The cluster node's side of the hook, scripted: which recipients are ours."""

    def __init__(self) -> None:
        self.ours: set[str] = set()
        self.rung: list[tuple[str, str | None]] = []
        self.remote_reachable: bool | None = None

    def owns(self, recipient: Address) -> bool:
        return recipient.key in self.ours

    def hand_off(self, recipient: Address, token: str | None = None) -> None:
        self.rung.append((recipient.key, token))

    def reachable(self, recipient: Address) -> bool | None:
        return self.remote_reachable

    def handled_elsewhere(self, recipient: Address) -> bool:
        return recipient.key not in self.ours


class Slow:
    """A transport that takes 20 ms per hand-over and records what it delivered."""

    def __init__(self) -> None:
        self.delivered: list[str] = []

    async def send(self, delivery: Delivery) -> SendOutcome:
        await asyncio.sleep(0.02)
        self.delivered.append(delivery.message_id)
        return SendOutcome(SendResult.DELIVERED)


def no_report(d: Delivery, outcome: Outcome, cause: str) -> NewDelivery | None:
    return None


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "d.sqlite3", clock=time.time)
    await s.open()
    yield s
    await s.close()


async def put(store: SqliteStore, msg_id: str) -> list[Delivery]:
    _, created = await store.accept(
        MessageRecord(A, msg_id, B, Acceptance(AckStatus.STORED), False, False, time.time() + 99),
        [
            NewDelivery(
                DeliveryKind.MESSAGE, B, b"{}", Priority.MIDDLE, time.time() + 60, A, msg_id, False
            )
        ],
    )
    return created


async def until(predicate: object, limit: float = 5.0) -> None:
    async with asyncio.timeout(limit):
        while not predicate():  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def dispatcher(store: SqliteStore, transport: Slow, owner: Owner) -> Dispatcher:
    return Dispatcher(
        store,
        lambda a: transport if a == B else None,
        no_report,
        Metrics(),
        clock=time.time,
        ownership=owner,
    )


async def test_work_owned_elsewhere_rings_the_owner_and_stays_stored(store: SqliteStore) -> None:
    owner, b = Owner(), Slow()
    await put(store, "old")
    d = dispatcher(store, b, owner)
    await d.start()  # not ours: not resumed here
    first = await put(store, "m1")
    second = await put(store, "m2")
    d.submit([*first, *second])
    d.wake(B)
    await asyncio.sleep(0.1)
    assert b.delivered == []
    # One doorbell per recipient per batch: the owner reads all its stored work anyway.
    assert owner.rung == [(B.key, f"d{first[0].delivery_id}"), (B.key, None)]
    assert await store.pending_count(B) == 3
    owner.remote_reachable = False  # e.g. a UE observing nowhere
    assert not d.reachable(B)
    owner.remote_reachable = None  # judged here: B has a transport
    assert d.reachable(B)
    await d.stop()


async def test_a_lane_stops_when_its_lease_moves_and_resumes_in_order(store: SqliteStore) -> None:
    owner, b = Owner(), Slow()
    owner.ours.add(B.key)
    d = dispatcher(store, b, owner)
    await d.start()
    ids = [f"m{i:02d}" for i in range(30)]
    for msg_id in ids:
        d.submit(await put(store, msg_id))
    await until(lambda: len(b.delivered) >= 5)
    owner.ours.clear()  # the lease moved on
    await until(lambda: not d.busy(lambda r: r == B))
    stopped_at = len(b.delivered)
    await asyncio.sleep(0.1)
    assert len(b.delivered) == stopped_at < 30, "the lane kept going without its lease"
    assert not d.active(B)
    owner.ours.add(B.key)  # it came back (or another instance took it over)
    d.reload(B)
    await until(lambda: len(b.delivered) == 30)
    await d.stop()
    assert b.delivered == ids, "in order and nothing twice"


def test_shards_are_stable_and_shared_fairly() -> None:
    # Every instance and release must put a recipient in the same shard: pinned values.
    assert shard_of("AS:app-b", 64) == 15
    assert [shard_of(f"UE:ue-{n}", 64) for n in range(3)] == [38, 54, 47]
    spread = {shard_of(f"AS:app-{n}", 64) for n in range(1000)}
    assert len(spread) == 64
    assert [fair_share(64, n) for n in (0, 1, 2, 3, 64, 100)] == [64, 64, 32, 22, 1, 1]


def test_cluster_settings_need_postgresql_and_sane_timers() -> None:
    with pytest.raises(SettingsError, match="needs the PostgreSQL store"):
        load(environ={"MSGIN5G_CLUSTER_NATS_URL": "nats://127.0.0.1:4222"})
    with pytest.raises(SettingsError, match="twice"):
        load(
            environ={
                "MSGIN5G_STORE_URL": "postgresql://u@h/db",
                "MSGIN5G_CLUSTER_NATS_URL": "nats://127.0.0.1:4222",
                "MSGIN5G_CLUSTER_LEASE_TTL_S": "1",
            }
        )
    settings = load(
        environ={
            "MSGIN5G_STORE_URL": "postgresql://u@h/db",
            "MSGIN5G_CLUSTER_NATS_URL": "nats://user:pa55word@127.0.0.1:4222",
            "MSGIN5G_CLUSTER_SHARDS": "128",
        }
    )
    assert settings.cluster.shards == 128
    from msgin5g.settings import describe

    assert describe(settings)["cluster"]["nats_url"] == "nats://user:***@127.0.0.1:4222"
