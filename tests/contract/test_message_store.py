# SPDX-License-Identifier: Apache-2.0
"""The MessageStore contract, run against every backend (STYLE 3.6): the embedded SQLite store,
with its queue index folded rarely and after every commit (ADR 0022), and the PostgreSQL store
(a fresh schema per test on 127.0.0.1:5432, dropped afterwards)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from msgin5g.core.errors import StorageFailure
from msgin5g.core.message import (
    Acceptance,
    AckStatus,
    Address,
    AsRegistration,
    DeliveryKind,
    Priority,
    UeRegistration,
)
from msgin5g.ports import (
    MessageRecord,
    MessageStore,
    NewDelivery,
    Outcome,
    TopicListWatch,
    TopicSubscriber,
    UplinkSegment,
)
from msgin5g.storage.pg_schema import SCHEMA_VERSION
from msgin5g.storage.postgres import PostgresStore
from msgin5g.storage.sqlite import SqliteStore
from tests.contract.postgres_db import PG_URL, drop_schema, new_schema_name
from tests.support.procs import free_port

A = Address("AS", "app-a")
B = Address("AS", "app-b")

Store = SqliteStore | PostgresStore
Opener = Callable[[], Awaitable[Store]]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "sqlite-folding", "postgresql"])
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens stores on one backend's storage (a file, or a fresh PostgreSQL schema); each
    call gives a new instance on the same data. All are closed, the schema dropped, after."""
    opened: list[Store] = []
    schema = new_schema_name()

    async def opener() -> Store:
        backend: Store
        if request.param == "sqlite":  # every row stays out of the queue index (ADR 0022)
            backend = SqliteStore(tmp_path / "s.sqlite3", clock=FakeClock())
        elif request.param == "sqlite-folding":  # a fold after every commit: rows of both kinds
            backend = SqliteStore(tmp_path / "s.sqlite3", clock=FakeClock(), fold_rows=1)
        else:
            backend = PostgresStore(PG_URL, clock=FakeClock(), schema=schema, pool_size=4)
        await backend.open()
        opened.append(backend)
        return backend

    try:
        yield opener
    finally:
        for backend in opened:
            await backend.close()
        if request.param == "postgresql":
            await drop_schema(schema)


@pytest.fixture
async def store(open_store: Opener) -> Store:
    return await open_store()


@pytest.fixture
async def pg_store() -> AsyncIterator[PostgresStore]:
    """For the PostgreSQL-only cases: a store in a fresh schema, dropped after."""
    schema = new_schema_name()
    backend = PostgresStore(PG_URL, clock=FakeClock(), schema=schema)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()
        await drop_schema(schema)


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


async def test_recipients_with_work_after_an_id(store: MessageStore) -> None:
    assert await store.recipients_with_work_after(0) == ([], 0)
    _, (d1,) = await store.accept(record("m1"), [delivery("m1")])
    _, (d2,) = await store.accept(record("m2"), [delivery("m2")])
    recipients, top = await store.recipients_with_work_after(0)
    assert (recipients, top) == ([B], d2.delivery_id)
    assert await store.recipients_with_work_after(d2.delivery_id) == ([], d2.delivery_id)
    assert await store.recipients_with_work_after(d1.delivery_id) == ([B], d2.delivery_id)


async def test_expire_spares_what_another_instance_may_be_handing_over(
    store: MessageStore,
) -> None:
    _, (recent,) = await store.accept(record("m1"), [delivery("m1", expires=1_900.0)])
    _, (old,) = await store.accept(record("m2"), [delivery("m2", expires=1_000.0)])
    asked: list[Address] = []

    def elsewhere(recipient: Address) -> bool:
        asked.append(recipient)
        return True

    # Both expired by 2,000, but only the one expired before 1,500 is past the grace.
    expired = await store.expire(2_000.0, 10, [], elsewhere, 1_500.0)
    assert [d.delivery_id for d in expired] == [old.delivery_id]
    assert asked == [B]
    assert await store.expire(2_000.0, 10, [], lambda _r: False, 1_500.0) == [recent]


async def test_as_registration_update_keeps_id(store: MessageStore) -> None:
    first = await store.save_as_registration(AsRegistration("r1", "app-b", None, "http://x/"))
    second = await store.save_as_registration(AsRegistration("r2", "app-b", "app", "http://y/"))
    assert second.registration_id == first.registration_id == "r1"
    (loaded,) = await store.load_as_registrations()
    assert loaded.target_uri == "http://y/"
    assert await store.delete_as_registration("r1") is not None
    assert await store.delete_as_registration("r1") is None


async def test_data_survives_reopen(open_store: Opener) -> None:
    first = await open_store()
    await first.accept(record("m1"), [delivery("m1")])
    await first.close()
    second = await open_store()
    assert [d.message_id for d in await second.pending(B, [], 10)] == ["m1"]
    _, (d,) = await second.accept(record("m2"), [delivery("m2")])
    assert d.delivery_id > (await second.pending(B, [], 1))[0].delivery_id, "ids never reused"


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


async def test_concurrent_accepts_group_commit_and_first_of_a_key_wins(store: Store) -> None:
    ids = [f"c{i}" for i in range(200)]
    results = await asyncio.gather(
        *(store.accept(record(i), [delivery(i)]) for i in ids),
        *(store.accept(record("dup", AckStatus.STORED), [delivery("dup")]) for _ in range(5)),
    )
    assert all(previous is None and len(created) == 1 for previous, created in results[:200])
    dup = results[200:]
    assert [len(created) for _p, created in dup] == [1, 0, 0, 0, 0], "first of a key wins"
    assert all(p is not None and p.acceptance.status is AckStatus.STORED for p, _c in dup[1:])
    assert store.committed_ops >= 205
    assert store.commits < 205 / 2, "concurrent accepts share transactions"
    queued = await store.pending(B, [], 1_000)
    assert len(queued) == 201
    assert len({d.delivery_id for d in queued}) == 201
    assert [d.message_id for d in queued][:200] == ids, "queue order is arrival order"
    assert await store.pending_count(B) == 201


async def test_accept_report_per_member_once_per_issuer(store: Store) -> None:
    await store.accept(record("g1"), [delivery("g1")])
    members = [Address("UE", f"ue-{i}") for i in range(3)]

    def report(issuer: Address) -> NewDelivery:
        return NewDelivery(
            DeliveryKind.REPORT, A, b"{}", Priority.HIGH, 9_000.0, issuer, "g1", False
        )

    for member in members:
        assert await store.accept_report(A, "g1", report(member), per_member=True) is not None
    again = await store.accept_report(A, "g1", report(members[0]), per_member=True)
    assert again is None
    assert await store.pending_count(A) == 3


async def test_add_deliveries_once_skips_queued_recipients(store: Store) -> None:
    members = [Address("UE", f"ue-{i}") for i in range(4)]

    def to(member: Address) -> NewDelivery:
        return NewDelivery(
            DeliveryKind.MESSAGE, member, b"x", Priority.MIDDLE, 2_000.0, A, "g", False
        )

    first = await store.add_deliveries_once([to(m) for m in members[:2]])
    assert [d.recipient for d in first] == members[:2]
    second = await store.add_deliveries_once([to(m) for m in members])
    assert [d.recipient for d in second] == members[2:]
    assert await store.add_deliveries_once([to(members[0]), to(members[0])]) == []
    plain = await store.add_deliveries([to(members[0])])
    assert len(plain) == 1, "add_deliveries does not deduplicate"


async def test_add_deliveries_once_skips_a_recipient_accept_queued(store: Store) -> None:
    """A peer's copy for a member whose own copy was accepted first (ADR 0013)."""
    ue = Address("UE", "ue-9")
    item = NewDelivery(DeliveryKind.MESSAGE, ue, b"x", Priority.MIDDLE, 2_000.0, A, "g", False)
    stored = Acceptance(AckStatus.STORED)
    await store.accept(MessageRecord(A, "g", ue, stored, False, False, 5_000.0), [item])
    assert await store.add_deliveries_once([item]) == []
    assert await store.pending_count(ue) == 1


async def test_record_attempt_stats_and_recipients(store: Store) -> None:
    assert await store.stats(1_000.0) == (0, 0.0)
    _, (d,) = await store.accept(record("m1"), [delivery("m1")])
    await store.record_attempt(d.delivery_id, 3)
    (queued,) = await store.pending(B, [], 10)
    assert queued.attempts == 3
    count, oldest = await store.stats(1_010.0)
    assert (count, oldest) == (1, 10.0)
    assert await store.finish(queued, Outcome.DELIVERED, None) is None
    assert await store.recipients_with_pending() == []
    assert await store.stats(1_010.0) == (0, 0.0)


async def test_groups(store: Store) -> None:
    members = (Address("UE", "u1"), Address("AS", "a1"))
    assert await store.save_group("g1", members) is True
    assert await store.save_group("g1", members[:1]) is False, "a replace is not a create"
    assert await store.save_group("g2", ()) is True
    assert await store.load_groups() == {"g1": members[:1], "g2": ()}
    assert await store.delete_group("g1") is True
    assert await store.delete_group("g1") is False
    assert await store.load_groups() == {"g2": ()}


async def test_ue_registration_replaces_by_service_id(store: Store) -> None:
    first = UeRegistration("r1", "ue-1", 512, b'{"a":1}', None)
    assert await store.save_ue_registration(first) is None
    second = UeRegistration("r2", "ue-1", None, None, b"{}", "L3G", "http://gw")
    assert await store.save_ue_registration(second) == first
    assert await store.load_ue_registrations() == [second]
    assert await store.delete_ue_registration("r1") is None
    assert await store.delete_ue_registration("r2") == second
    assert await store.load_ue_registrations() == []


async def test_ue_registrations_found_by_service_id(store: Store) -> None:
    registrations = [UeRegistration(f"r{n}", f"ue-{n}", None, None, None) for n in range(1200)]
    for registration in registrations:
        await store.save_ue_registration(registration)
    wanted = [f"ue-{n}" for n in range(0, 1200, 2)] + ["ue-none", "ue-0"]  # past one chunk
    found = await store.find_ue_registrations(wanted)
    assert sorted(found, key=lambda r: r.registration_id) == sorted(
        registrations[::2], key=lambda r: r.registration_id
    )
    assert await store.find_ue_registrations([]) == []


async def test_downlink_segments_are_kept_for_resend_until_forgotten(store: Store) -> None:
    ue = Address("UE", "ue-1")

    def seg(n: int) -> NewDelivery:
        return NewDelivery(
            DeliveryKind.MESSAGE, ue, f"part{n}".encode(), Priority.MIDDLE, 2_000.0, A, "s1",
            True, segment_id="seg-1", segment_number=n,
        )  # fmt: skip

    _, created = await store.accept(record("s1"), [seg(1), seg(2), seg(3)])
    assert [d.body for d in created] == [b"part1", b"part2", b"part3"]
    for d in created:
        await store.finish(d, Outcome.DELIVERED, None)
    again = await store.resend_segments("seg-1", [3, 1, 3])
    assert [d.body for d in again] == [b"part1", b"part3"]
    assert [d.body for d in await store.pending(ue, [], 10)] == [b"part1", b"part3"]
    assert await store.resend_segments("seg-1", []) == []
    assert await store.forget_segments("seg-1") == 3
    assert await store.resend_segments("seg-1", [1]) == []
    # kept copies also go when their expiry passes
    await store.add_deliveries([seg(1)])
    await store.purge_messages(2_000.0)
    assert await store.resend_segments("seg-1", [1]) == []


async def test_uplink_segments_collect_and_expire(store: Store) -> None:
    ue = Address("UE", "ue-1")

    def seg(n: int, expires: float = 1_060.0) -> UplinkSegment:
        return UplinkSegment(
            ue, "up-1", n, 3 if n == 1 else None, n == 3, f"b{n}".encode(), expires
        )

    assert [s.number for s in await store.add_uplink_segment(seg(2))] == [2]
    assert [s.number for s in await store.add_uplink_segment(seg(1))] == [1, 2]
    assert [s.number for s in await store.add_uplink_segment(seg(1))] == [1, 2], "a repeat"
    other = UplinkSegment(ue, "up-2", 1, None, False, b"o", 2_000.0)
    await store.add_uplink_segment(other)
    assert await store.expired_uplink_segments(1_000.0) == []
    assert await store.expired_uplink_segments(1_060.0) == [seg(1)]
    await store.drop_uplink_segments(ue, "up-1")
    assert await store.expired_uplink_segments(1_060.0) == []
    assert await store.expired_uplink_segments(2_000.0) == [other]


async def test_closed_store_fails_cleanly(open_store: Opener) -> None:
    backend = await open_store()
    await backend.close()
    with pytest.raises(StorageFailure):
        await backend.accept(record("m1"), [delivery("m1")])
    with pytest.raises(StorageFailure):
        await backend.pending(B, [], 10)


async def test_postgres_instances_opening_at_once_share_one_schema() -> None:
    """Two servers starting together on one database: migrations run once, both work."""
    schema = new_schema_name()
    stores = [PostgresStore(PG_URL, clock=FakeClock(), schema=schema) for _ in range(3)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        first, second, _third = stores
        await first.accept(record("m1"), [delivery("m1")])
        previous, created = await second.accept(record("m1"), [delivery("m1")])
        assert previous is not None
        assert created == []
        assert [d.message_id for d in await second.pending(B, [], 10)] == ["m1"]
        conn = await asyncpg.connect(PG_URL)
        try:
            versions = await conn.fetch(f"SELECT version FROM {schema}.schema_version")
        finally:
            await conn.close()
        assert [v[0] for v in versions] == list(range(1, SCHEMA_VERSION + 1))
    finally:
        for s in stores:
            await s.close()
        await drop_schema(schema)


async def test_postgres_unreachable_or_bad_schema_fails_with_a_clear_error() -> None:
    url = f"postgresql://postgres:s3cret@127.0.0.1:{free_port()}/postgres"
    with pytest.raises(StorageFailure, match="cannot connect") as info:
        await PostgresStore(url, clock=FakeClock()).open()
    assert "s3cret" not in str(info.value)
    with pytest.raises(ValueError, match="schema"):
        PostgresStore(PG_URL, clock=FakeClock(), schema="x; DROP TABLE y")


async def test_postgres_refuses_a_newer_schema() -> None:
    schema = new_schema_name()
    store = PostgresStore(PG_URL, clock=FakeClock(), schema=schema)
    try:
        await store.open()
        await store.close()
        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(f"INSERT INTO {schema}.schema_version (version) VALUES (999)")
        finally:
            await conn.close()
        with pytest.raises(StorageFailure, match="newer than this release"):
            await PostgresStore(PG_URL, clock=FakeClock(), schema=schema).open()
    finally:
        await drop_schema(schema)


async def test_postgres_a_row_the_database_refuses_fails_alone(pg_store: PostgresStore) -> None:
    """PostgreSQL text cannot hold NUL: that accept fails, its batch-mates still commit."""
    results = await asyncio.gather(
        *(pg_store.accept(record(f"ok{i}"), [delivery(f"ok{i}")]) for i in range(5)),
        pg_store.accept(record("bad\x00"), [delivery("bad\x00")]),
        return_exceptions=True,
    )
    assert isinstance(results[5], StorageFailure)
    assert all(isinstance(r, tuple) and r[0] is None for r in results[:5])
    assert len(await pg_store.pending(B, [], 10)) == 5


async def test_concurrent_writes_share_transactions_and_keep_their_order(store: Store) -> None:
    _, created = await store.accept(record("m1"), [delivery("m1")])
    (d,) = created
    before = store.commits
    await asyncio.gather(*(store.record_attempt(d.delivery_id, n) for n in range(1, 101)))
    assert store.commits - before < 50, "concurrent writes share transactions"
    (queued,) = await store.pending(B, [], 10)
    assert queued.attempts == 100, "writes apply in the order they were made"


async def test_postgres_queue_order_is_acceptance_order_across_instances() -> None:
    """A sender's messages through two instances queue in the order they were acknowledged."""
    schema = new_schema_name()
    first, second = (PostgresStore(PG_URL, clock=FakeClock(), schema=schema) for _ in range(2))
    try:
        await first.open()
        await second.open()
        for n, instance in enumerate([first, second, first, second, first]):
            await instance.accept(record(f"m{n}"), [delivery(f"m{n}")])
        got = await second.pending(B, [], 10)
        assert [d.message_id for d in got] == [f"m{n}" for n in range(5)]
    finally:
        await first.close()
        await second.close()
        await drop_schema(schema)


async def test_a_failed_message_without_deliveries_is_remembered(store: Store) -> None:
    failed = MessageRecord(A, "f1", B, Acceptance(AckStatus.FAILED, "X"), False, False, 5_000.0)
    assert await store.accept(failed, []) == (None, [])
    previous, created = await store.accept(record("f1"), [delivery("f1")])
    assert previous == failed
    assert created == []
    assert await store.pending(B, [], 10) == []
