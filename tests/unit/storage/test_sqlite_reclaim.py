# SPDX-License-Identifier: Apache-2.0
"""The embedded store gives the space of delivered and expired messages back (issue 7,
ADR 0019): auto_vacuum=INCREMENTAL, and `reclaim` (queued by the checkpoint thread when enough
pages are free) shrinks the file."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from msgin5g.core.message import (
    Acceptance,
    AckStatus,
    Address,
    DeliveryKind,
    Priority,
)
from msgin5g.ports import MessageRecord, NewDelivery, Outcome
from msgin5g.storage.sqlite import SqliteStore

AS_A = Address("AS", "app-a")
COUNT = 2000
BODY = b"x" * 2000


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def _fill(store: SqliteStore, clock: Clock) -> None:
    jobs = []
    for n in range(COUNT):
        ue = Address("UE", f"ue-{n}")
        record = MessageRecord(
            AS_A, f"m{n}", ue, Acceptance(AckStatus.STORED, None), False, False, clock.now + 60
        )
        item = NewDelivery(
            DeliveryKind.MESSAGE, ue, BODY, Priority.MIDDLE, clock.now + 60, AS_A, f"m{n}", False
        )
        jobs.append(store.accept(record, [item]))
    await asyncio.gather(*jobs)


async def _drain(store: SqliteStore, clock: Clock, delivered: int) -> None:
    """Finish the first `delivered` messages as delivered, let the rest expire, purge."""
    for n in range(delivered):
        (page,) = [await store.pending(Address("UE", f"ue-{n}"), [], 1)]
        await store.finish(page[0], Outcome.DELIVERED, None)
    clock.now += 3600
    while await store.expire(clock.now, 500, []):
        pass
    await store.purge_messages(clock.now)


def _size(path: Path) -> int:
    return path.stat().st_size


async def test_reclaim_shrinks_the_file_after_delivery_and_expiry(tmp_path: Path) -> None:
    path, clock = tmp_path / "s.sqlite3", Clock()
    # no background reclamation: this test drives it
    store = SqliteStore(path, clock=clock, checkpoint_interval=3600, reclaim_threshold=1 << 30)
    await store.open()
    await _fill(store, clock)
    await store.close()
    full = _size(path)
    assert full > COUNT * len(BODY)

    store = SqliteStore(path, clock=clock, checkpoint_interval=3600, reclaim_threshold=1 << 30)
    await store.open()
    await _drain(store, clock, delivered=COUNT // 2)
    assert (await store.stats(clock.now))[0] == 0
    await store.close()
    assert _size(path) == full  # deleting alone frees pages inside the file, not on disk

    store = SqliteStore(path, clock=clock, checkpoint_interval=3600, reclaim_threshold=1 << 30)
    await store.open()
    released = 0
    while step := await store.reclaim():
        released += step
    assert released > 0
    await store.close()
    assert _size(path) < full // 5
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_checkpoint_thread_reclaims_by_itself(tmp_path: Path) -> None:
    path, clock = tmp_path / "s.sqlite3", Clock()
    store = SqliteStore(
        path, clock=clock, checkpoint_interval=0.05, reclaim_threshold=64, reclaim_pages=256
    )
    await store.open()
    try:
        await _fill(store, clock)
        await asyncio.sleep(0.3)  # checkpointed into the file
        full = _size(path)
        await _drain(store, clock, delivered=0)
        for _ in range(200):
            await asyncio.sleep(0.05)
            if _size(path) < full // 5:
                break
        assert _size(path) < full // 5
        # the store keeps working after its file shrank
        await _fill(store, clock)
        assert (await store.stats(clock.now))[0] == COUNT
    finally:
        await store.close()


async def test_a_file_made_without_incremental_vacuum_is_converted(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE legacy (v INTEGER)")
        conn.executemany("INSERT INTO legacy VALUES (?)", [(n,) for n in range(100)])
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    conn.close()
    store = SqliteStore(path, clock=Clock())
    await store.open()
    await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL
        assert conn.execute("SELECT COUNT(*) FROM legacy").fetchone()[0] == 100
    conn.close()


async def test_the_wal_stays_bounded_under_writes_that_never_pause(tmp_path: Path) -> None:
    """A passive checkpoint cannot reset the WAL while commits keep coming; the checkpoint
    thread then restarts it, so the WAL's size is bounded however long the load lasts (it
    grew without bound before: 1.1 GB after 150,000 messages at 8,000/s)."""
    path, clock = tmp_path / "s.sqlite3", Clock()
    wal = path.with_name(path.name + "-wal")
    limit = 1 << 20
    store = SqliteStore(path, clock=clock, checkpoint_interval=0.02, wal_limit=limit)
    await store.open()
    largest = 0
    try:
        loop = asyncio.get_running_loop()
        until = loop.time() + 2.0
        n = 0
        while loop.time() < until:  # one commit after another, many at once, as under load
            jobs = []
            for _ in range(8):
                n += 1
                ue = Address("UE", f"ue-{n % 500}")
                record = MessageRecord(
                    AS_A, f"w{n}", ue, Acceptance(AckStatus.STORED, None), False, False, 2e9
                )
                item = NewDelivery(
                    DeliveryKind.MESSAGE, ue, b"x" * 200, Priority.MIDDLE, 2e9, AS_A, f"w{n}", False
                )
                jobs.append(store.accept(record, [item]))
            await asyncio.gather(*jobs)
            if wal.exists():
                largest = max(largest, wal.stat().st_size)
        assert (await store.stats(clock.now))[0] == n  # nothing lost on the way
    finally:
        await store.close()
    # The file is cut back to `limit` at each restart, and grows by what one checkpoint
    # cycle lets through. Without the restarts, this load took it to 370 MiB.
    assert largest < 32 * limit, f"the WAL reached {largest:,} bytes"


async def test_a_reader_holding_the_wal_delays_commits_briefly_not_for_long(
    tmp_path: Path,
) -> None:
    """While the WAL is restarted the loop holds its commits; a reader that keeps an old
    snapshot open (another process reading the file) makes the restart give up after a
    moment and retry, so commits wait a fraction of a second, never the 5 s busy timeout."""
    path, clock = tmp_path / "s.sqlite3", Clock()
    store = SqliteStore(path, clock=clock, checkpoint_interval=0.02, wal_limit=1 << 16)
    await store.open()
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM messages").fetchone()  # a snapshot held open
        loop = asyncio.get_running_loop()
        slowest, n = 0.0, 0
        until = loop.time() + 1.5
        while loop.time() < until:
            n += 1
            ue = Address("UE", f"ue-{n}")
            record = MessageRecord(
                AS_A, f"r{n}", ue, Acceptance(AckStatus.STORED, None), False, False, 2e9
            )
            item = NewDelivery(
                DeliveryKind.MESSAGE, ue, BODY, Priority.MIDDLE, 2e9, AS_A, f"r{n}", False
            )
            started = loop.time()
            await store.accept(record, [item])
            slowest = max(slowest, loop.time() - started)
        assert slowest < 1.5, f"a commit waited {slowest:.2f} s"
        assert (await store.stats(clock.now))[0] == n
    finally:
        reader.execute("COMMIT")
        reader.close()
        await store.close()
