# SPDX-License-Identifier: Apache-2.0
"""Deferred queue indexing in the embedded store (ADR 0022): new deliveries stay out of the
queue index until a fold marks them in bulk, and nothing a reader sees depends on when that
happens: not a UE's stored work, its order, its count, nor what a killed process left."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from msgin5g.core.message import Acceptance, AckStatus, Address, DeliveryKind, Priority
from msgin5g.ports import MessageRecord, NewDelivery, Outcome
from msgin5g.storage.deferred_index import DeferredQueueIndex
from msgin5g.storage.sqlite import MIGRATIONS, SqliteStore

AS_A = Address("AS", "app-a")
UES = [Address("UE", f"ue-{n}") for n in range(5)]
PRIORITIES = (Priority.LOW, Priority.MIDDLE, Priority.HIGH)


def clock() -> float:
    return 1_000.0


async def _accept(store: SqliteStore, n: int) -> None:
    """Message `m{n}` to UES[n % 5] with a priority that cycles."""
    ue, priority = UES[n % len(UES)], PRIORITIES[n % 3]
    stored = Acceptance(AckStatus.STORED)
    record = MessageRecord(AS_A, f"m{n}", ue, stored, False, False, 9_000.0)
    item = NewDelivery(DeliveryKind.MESSAGE, ue, b"{}", priority, 5_000.0, AS_A, f"m{n}", False)
    await store.accept(record, [item])


def _unindexed(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM deliveries WHERE indexed=0").fetchone()[0])


async def _queues(store: SqliteStore) -> dict[str, tuple[int, list[str]]]:
    """Every UE's depth and stored work in queue order, as the dispatcher and quota see it."""
    out = {}
    for ue in UES:
        work = await store.pending(ue, [], 1_000)
        out[ue.value] = (await store.pending_count(ue), [d.message_id for d in work])
    return out


async def test_readers_see_the_same_queues_folded_or_not(tmp_path: Path) -> None:
    """The same deliveries, and the same deliveries finished, on a store that never folds and
    on one that folds every 4 ids: equal queues, equal depths, at every step."""
    never = SqliteStore(tmp_path / "never.sqlite3", clock=clock, fold_rows=1 << 30)
    often = SqliteStore(tmp_path / "often.sqlite3", clock=clock, fold_rows=4)
    await never.open()
    await often.open()
    try:
        for n in range(30):
            await asyncio.gather(_accept(never, n), _accept(often, n))
            if n % 7 == 6:  # deliver the head of one UE's queue on both
                ue = UES[n % len(UES)]
                for store in (never, often):
                    (head,) = await store.pending(ue, [], 1)
                    await store.finish(head, Outcome.DELIVERED, None)
            assert await _queues(never) == await _queues(often)
        assert _unindexed(tmp_path / "never.sqlite3") > 20
        assert _unindexed(tmp_path / "often.sqlite3") < 5
        # what the metrics show (msgin5g_store_queue_*)
        assert (never.folds, never.unindexed) == (0, _unindexed(tmp_path / "never.sqlite3"))
        assert often.folds >= 6
        assert often.fold_seconds > 0
        assert often.unindexed == _unindexed(tmp_path / "often.sqlite3")
        queues = await _queues(often)
        assert sum(depth for depth, _ in queues.values()) == 30 - 4
        # priority first (HIGH=0), then age; exclude and limit apply across both kinds of rows
        ue0 = await often.pending(UES[0], [], 100)
        assert [(d.priority, d.delivery_id) for d in ue0] == sorted(
            (d.priority, d.delivery_id) for d in ue0
        )
        rest = await often.pending(UES[0], [ue0[0].delivery_id], 2)
        assert [d.message_id for d in rest] == [d.message_id for d in ue0[1:3]]
        page = await never.recipients_with_pending("", 2)
        assert page == UES[:2]
        assert await never.recipients_with_pending(UES[1].key, 0) == UES[2:]
    finally:
        await never.close()
        await often.close()


async def test_what_a_killed_process_left_unindexed_is_found_after_a_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.sqlite3"
    killed = SqliteStore(path, clock=clock, fold_rows=1 << 30, checkpoint_interval=3600)
    await killed.open()
    for n in range(20):
        await _accept(killed, n)
    before = await _queues(killed)
    assert _unindexed(path) == 20
    # no close: the process is gone with its rows out of the index and its memory lost
    restarted = SqliteStore(path, clock=clock, fold_rows=1 << 30)
    await restarted.open()
    try:
        assert _unindexed(path) == 0
        assert await _queues(restarted) == before
        assert await restarted.recipients_with_pending() == UES
    finally:
        await restarted.close()


async def test_a_clean_close_folds_and_the_queue_query_uses_the_index(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = SqliteStore(path, clock=clock)
    await store.open()
    for n in range(10):
        await _accept(store, n)
    assert _unindexed(path) == 10
    await store.close()
    assert _unindexed(path) == 0
    with sqlite3.connect(path) as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM deliveries WHERE recipient=? AND indexed=1"
            " ORDER BY priority, id LIMIT 10",
            ("UE:ue-1",),
        ).fetchall()
    assert "USING INDEX deliveries_queue" in " ".join(str(row[-1]) for row in plan)


async def test_a_store_of_the_previous_schema_keeps_its_queues(tmp_path: Path) -> None:
    """Schema 5 had one full queue index: after the migration its rows count as indexed."""
    path = tmp_path / "s.sqlite3"
    with sqlite3.connect(path, isolation_level=None) as conn:
        for version in range(1, 6):
            conn.executescript(MIGRATIONS[version])
        conn.execute("PRAGMA user_version=5")
        conn.executemany(
            "INSERT INTO deliveries (id, recipient, kind, priority, body, origin, message_id,"
            " wants_report, expires_at, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                (n, "UE:ue-1", "message", 2 - n % 3, b"{}", "AS:app-a", f"old{n}", 0, 5e3, 1e3)
                for n in range(1, 7)
            ],
        )
    store = SqliteStore(path, clock=clock)
    await store.open()
    try:
        work = await store.pending(UES[1], [], 10)
        assert [d.message_id for d in work] == ["old2", "old5", "old1", "old4", "old3", "old6"]
        await _accept(store, 1)  # to ue-1, MIDDLE: after the older MIDDLE ones
        work = await store.pending(UES[1], [], 10)
        assert [d.message_id for d in work][2:5] == ["old1", "old4", "m1"]
        assert await store.pending_count(UES[1]) == 7
    finally:
        await store.close()


def test_the_bookkeeping_forgets_a_rolled_back_transaction() -> None:
    index = DeferredQueueIndex(through=10, fold_rows=100)
    index.begin()
    index.inserted(11, "UE:a")
    index.rollback()
    assert index.count("UE:a") == 0
    index.begin()
    index.inserted(12, "UE:a")
    index.inserted(13, "UE:a")
    index.inserted(14, "UE:b")
    index.deleted(9)  # an indexed row: nothing to forget here
    index.commit()
    assert (index.count("UE:a"), index.count("UE:b"), len(index)) == (2, 1, 3)
    index.begin()
    index.deleted(12)
    index.folded(13)
    index.inserted(15, "UE:b")  # after the fold, in the same transaction: still unindexed
    index.commit()
    assert (index.count("UE:a"), index.count("UE:b"), index.through) == (0, 2, 13)
    assert index.recipients() == ["UE:b"]
    assert not index.due(112)
    assert index.due(113)
