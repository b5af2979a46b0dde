# SPDX-License-Identifier: Apache-2.0
"""TopicRegistry and TopicFanOut (TS 23.554 8.8) over the real SQLite store, with a fake clock
and a notifier that records what it was asked to send."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import msgspec
import pytest

from msgin5g.core.errors import Forbidden, InvalidRequest, NotFound
from msgin5g.core.message import Address, Delivery, DeliveryKind, Priority
from msgin5g.ports import SendResult, TopicChange, TopicListWatch
from msgin5g.services.topics import TopicFanOut, TopicRegistry
from msgin5g.storage.sqlite import SqliteStore

AS1 = Address("AS", "as-1")
UE1 = Address("UE", "ue-1")
PEER = Address("AS", "peer")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Notes:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list[tuple[str, TopicChange]]]] = []

    def notify(self, watch: TopicListWatch, changes: Sequence[tuple[str, TopicChange]]) -> None:
        self.sent.append((watch.subscription_id, list(changes)))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "s.sqlite3", clock=lambda: 1_000.0)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def registry(store: SqliteStore, clock: Clock, notes: Notes) -> TopicRegistry:
    ids = itertools.count(1)
    return TopicRegistry(
        store, notes, clock=clock, new_id=lambda: f"w{next(ids)}", default_ttl=100, max_ttl=1000
    )


async def test_created_on_first_subscriber_deleted_on_last(store: SqliteStore) -> None:
    clock, notes = Clock(), Notes()
    topics = registry(store, clock, notes)
    watch = await topics.add_watch(PEER, "http://peer/cb", None)
    assert watch.expires_at == 1_100.0
    assert notes.sent == []  # no topic yet: nothing to announce

    assert await topics.subscribe(AS1, ["a", "b"], None) == 1_100.0
    assert await topics.subscribe(UE1, ["a"], 5_000.0) == 2_000.0  # capped by max_ttl
    assert notes.sent == [("w1", [("a", TopicChange.CREATED), ("b", TopicChange.CREATED)])]

    await topics.unsubscribe(AS1, ["a", "b"])
    assert notes.sent[-1] == ("w1", [("b", TopicChange.DELETED)])
    await topics.unsubscribe(UE1, ["a"])
    assert notes.sent[-1] == ("w1", [("a", TopicChange.DELETED)])
    assert topics.topics() == []

    # A new topic-list subscriber hears the existing topics at once.
    await topics.subscribe(UE1, ["c"], None)
    second = await topics.add_watch(PEER, "http://peer/cb2", None)
    assert notes.sent[-1] == (second.subscription_id, [("c", TopicChange.CREATED)])


async def test_expired_subscribers_stop_counting_and_are_swept(store: SqliteStore) -> None:
    clock, notes = Clock(), Notes()
    topics = registry(store, clock, notes)
    await topics.add_watch(PEER, "http://peer/cb", 5_000.0)
    await topics.subscribe(AS1, ["a"], 1_010.0)
    await topics.subscribe(UE1, ["a"], 1_050.0)
    clock.now = 1_020.0
    assert topics.subscribers("a") == (UE1,)  # filtered before any sweep
    clock.now = 1_060.0
    assert topics.subscribers("a") == ()
    await topics.sweep()
    assert notes.sent[-1] == ("w1", [("a", TopicChange.DELETED)])
    reloaded = registry(store, clock, Notes())
    await reloaded.load()
    assert reloaded.topics() == []
    assert reloaded.watch("w1") is not None


async def test_subscriptions_survive_a_restart(store: SqliteStore) -> None:
    clock = Clock()
    topics = registry(store, clock, Notes())
    await topics.subscribe(AS1, ["a"], None)
    watch = await topics.add_watch(PEER, "http://peer/cb", None)
    again = registry(store, clock, Notes())
    await again.load()
    assert again.subscribers("a") == (AS1,)
    assert again.watch(watch.subscription_id) == watch


async def test_refusals(store: SqliteStore) -> None:
    clock = Clock()
    topics = registry(store, clock, Notes())
    with pytest.raises(InvalidRequest):
        await topics.subscribe(Address("GROUP", "g"), ["a"], None)
    with pytest.raises(InvalidRequest):
        await topics.subscribe(AS1, ["a"], 999.0)
    with pytest.raises(NotFound):
        await topics.remove_watch("nope", PEER)
    watch = await topics.add_watch(PEER, "http://peer/cb", None)
    with pytest.raises(Forbidden):
        await topics.remove_watch(watch.subscription_id, AS1)
    await topics.remove_watch(watch.subscription_id, PEER)
    with pytest.raises(NotFound):
        await topics.remove_watch(watch.subscription_id, PEER)


async def test_fan_out_reaches_current_subscribers_once(store: SqliteStore) -> None:
    clock = Clock()
    topics = registry(store, clock, Notes())
    await topics.subscribe(AS1, ["a"], None)
    await topics.subscribe(UE1, ["a"], 1_005.0)
    submitted: list[Delivery] = []
    fan = TopicFanOut(topics, store, submitted.extend, chunk=1)
    body = msgspec.json.encode(
        {
            "oriAddr": {"addrType": "AS", "addr": "pub"},
            "destAddr": {"addrType": "TOPIC", "addr": "a"},
        }
    )
    delivery = Delivery(
        delivery_id=1,
        kind=DeliveryKind.MESSAGE,
        recipient=Address("TOPIC", "a"),
        body=body,
        priority=Priority.MIDDLE,
        expires_at=2_000.0,
        origin=Address("AS", "pub"),
        message_id="m1",
        wants_report=True,
    )
    clock.now = 1_010.0  # UE1's subscription has expired
    assert (await fan.send(delivery)).result is SendResult.DELIVERED
    assert [d.recipient for d in submitted] == [AS1]
    assert msgspec.json.decode(submitted[0].body)["destAddr"] == {"addrType": "AS", "addr": "as-1"}
    await fan.send(delivery)  # a resumed fan-out queues nobody twice
    assert len(submitted) == 1

    await topics.unsubscribe(AS1, ["a"])
    outcome = await fan.send(delivery)
    assert outcome.result is SendResult.REJECTED
    assert outcome.detail.startswith("NO_SUBSCRIBERS")
