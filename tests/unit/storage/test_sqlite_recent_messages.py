# SPDX-License-Identifier: Apache-2.0
"""Recent messages in the embedded store (ADR 0023): a new message record is appended to
`recent_messages` and moved into `messages`, keyed by (originator, msgId), by a later fold.
Nothing a sender or a reader sees depends on where a record is: a repeated msgId gets its
first answer, a report finds its message once, expiry purges, and a killed process's recent
records are found after a restart."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from msgin5g.core.message import Acceptance, AckStatus, Address, DeliveryKind, Priority
from msgin5g.ports import MessageRecord, NewDelivery
from msgin5g.storage.recent_messages import RecentMessages
from msgin5g.storage.sqlite import MIGRATIONS, SqliteStore

AS_A = Address("AS", "app-a")
UES = [Address("UE", f"ue-{n}") for n in range(7)]
NEVER, ALWAYS = 1 << 30, 1
BOTH_WAYS = pytest.mark.parametrize(
    "fold_rows", [NEVER, ALWAYS], ids=["never-moving", "moving-after-every-commit"]
)


def clock() -> float:
    return 1_000.0


def _record(n: int, status: AckStatus = AckStatus.STORED, keep: float = 9_000.0) -> MessageRecord:
    """Message `m{n}` from UES[n % 7] to AS app-a."""
    return MessageRecord(UES[n % len(UES)], f"m{n}", AS_A, Acceptance(status), True, False, keep)


def _delivery(record: MessageRecord) -> NewDelivery:
    return NewDelivery(
        DeliveryKind.MESSAGE,
        record.recipient,
        b"{}",
        Priority.MIDDLE,
        5_000.0,
        record.origin,
        record.message_id,
        True,
    )


def _report(record: MessageRecord) -> NewDelivery:
    return NewDelivery(
        DeliveryKind.REPORT,
        record.origin,
        b"{}",
        Priority.MIDDLE,
        5_000.0,
        record.recipient,
        record.message_id,
        False,
    )


def _rows(path: Path) -> tuple[int, int]:
    """(rows in recent_messages, rows in messages)."""
    with sqlite3.connect(path) as conn:
        recent = conn.execute("SELECT COUNT(*) FROM recent_messages").fetchone()[0]
        keyed = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    return int(recent), int(keyed)


@BOTH_WAYS
async def test_a_repeated_msg_id_gets_its_first_answer_wherever_the_record_is(
    tmp_path: Path, fold_rows: int
) -> None:
    path = tmp_path / "s.sqlite3"
    store = SqliteStore(path, clock=clock, fold_rows=fold_rows)
    await store.open()

    async def accept_together(records: list[MessageRecord]) -> list[MessageRecord | None]:
        """Accept in one group commit; the first answers (None: a new message)."""
        results = await asyncio.gather(*(store.accept(r, [_delivery(r)]) for r in records))
        assert [len(created) for _, created in results] == [p is None for p, _ in results]
        return [previous for previous, _ in results]

    try:
        # a commit of several originators: the records go to recent_messages
        assert await accept_together([_record(n) for n in range(20)]) == [None] * 20
        if fold_rows == NEVER:
            assert _rows(path) == (20, 0)
        # repeats, alone (one originator per commit: straight to the key, or so it tries)
        again = _record(3, AckStatus.FORWARDED)
        assert await store.accept(again, [_delivery(again)]) == (_record(3), [])
        # ... among new messages of several originators, a key repeated within the commit too
        batch = [_record(n, AckStatus.FORWARDED) for n in (5, 20, 11, 21, 20)]
        first = [_record(5), None, _record(11), None, batch[1]]
        assert await accept_together(batch) == first
        # ... among new messages of their own originator
        single = [_record(28), _record(0, AckStatus.FORWARDED), _record(35), _record(35)]
        assert await accept_together(single) == [None, _record(0), None, _record(35)]
        # new messages of one originator alone go straight into the keyed table
        assert await accept_together([_record(42), _record(49)]) == [None, None]
        assert await store.find_message(UES[21 % 7], "m21") == batch[3]
        assert await store.find_message(UES[1], "m21") is None  # another originator
        assert await store.find_message(UES[0], "m49") == _record(49)
        assert (await store.stats(clock()))[0] == 26
        recent, keyed = _rows(path)
        assert recent + keyed == 26
        if fold_rows == NEVER:
            assert (recent, keyed) == (24, 2)
        assert (store.moves > 0) is (fold_rows == ALWAYS)
        assert store.recent_messages == recent  # msgin5g_store_recent_messages
    finally:
        await store.close()
    assert _rows(path) == (0, 26)  # a clean close moves every record


@BOTH_WAYS
async def test_a_report_finds_its_message_once_and_expiry_purges_it(
    tmp_path: Path, fold_rows: int
) -> None:
    path = tmp_path / "s.sqlite3"
    store = SqliteStore(path, clock=clock, fold_rows=fold_rows)
    await store.open()
    try:
        short, long = _record(1, keep=1_500.0), _record(2)
        await asyncio.gather(*(store.accept(r, [_delivery(r)]) for r in (short, long)))
        if fold_rows == NEVER:
            assert _rows(path) == (2, 0)
        assert await store.accept_report(AS_A, "m1", _report(short)) is None  # not its key
        assert await store.accept_report(short.origin, "m1", _report(short)) is not None
        assert await store.accept_report(short.origin, "m1", _report(short)) is None
        found = await store.find_message(short.origin, "m1")
        assert found is not None
        assert found.report_received
        assert await store.purge_messages(1_400.0) == 0
        assert await store.purge_messages(1_500.0) == 1
        assert await store.find_message(short.origin, "m1") is None
        assert await store.find_message(long.origin, "m2") == long
        # a purged key is a new message again
        previous, created = await store.accept(short, [_delivery(short)])
        assert (previous, len(created)) == (None, 1)
    finally:
        await store.close()


async def test_what_a_killed_process_left_recent_is_known_after_a_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.sqlite3"
    killed = SqliteStore(path, clock=clock, fold_rows=NEVER, checkpoint_interval=3600)
    await killed.open()
    records = [_record(n) for n in range(14)]  # several originators: all recent
    await asyncio.gather(*(killed.accept(r, [_delivery(r)]) for r in records))
    assert _rows(path) == (14, 0)
    # no close: the process is gone with its records recent and its memory lost
    restarted = SqliteStore(path, clock=clock, fold_rows=NEVER)
    await restarted.open()
    try:
        assert _rows(path) == (0, 14)
        assert await restarted.find_message(UES[4], "m4") == _record(4)
        previous, created = await restarted.accept(_record(9), [_delivery(_record(9))])
        assert (previous, created) == (_record(9), [])
    finally:
        await restarted.close()


async def test_a_store_of_the_previous_schema_keeps_its_messages(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with sqlite3.connect(path, isolation_level=None) as conn:
        for version in range(1, 7):
            conn.executescript(MIGRATIONS[version])
        conn.execute("PRAGMA user_version=6")
        conn.execute(
            "INSERT INTO messages (origin, message_id, recipient, ack_status, ack_cause,"
            " wants_report, keep_until) VALUES ('UE:ue-1','m1','AS:app-a','DELY_STORED',NULL,1,9e3)"
        )
    store = SqliteStore(path, clock=clock)
    await store.open()
    try:
        assert await store.find_message(UES[1], "m1") == _record(1)
        previous, _ = await store.accept(_record(1), [_delivery(_record(1))])
        assert previous == _record(1)
    finally:
        await store.close()


def test_the_bookkeeping_applies_a_transaction_only_at_its_commit() -> None:
    recent = RecentMessages(fold_rows=3)
    recent.begin()
    first = recent.take(("UE:a", "m1"))
    assert recent.find(("UE:a", "m1")) == first  # seen within its own transaction
    recent.rollback()
    assert recent.find(("UE:a", "m1")) is None
    recent.begin()
    a, b = recent.take(("UE:a", "m1")), recent.take(("UE:a", "m2"))
    assert a != b != first  # a rolled-back rowid is not reused
    recent.commit()
    assert (recent.find(("UE:a", "m1")), recent.find(("UE:a", "m2")), len(recent)) == (a, b, 2)
    recent.begin()
    recent.removed(("UE:a", "m1"))
    assert recent.find(("UE:a", "m1")) is None
    recent.rollback()
    assert recent.find(("UE:a", "m1")) == a
    recent.begin()
    recent.moved_all()
    assert recent.find(("UE:a", "m2")) is None
    c = recent.take(("UE:b", "m1"))  # after the move, in the same transaction: still recent
    recent.commit()
    assert (recent.find(("UE:a", "m2")), recent.find(("UE:b", "m1")), len(recent)) == (None, c, 1)
    assert not recent.due()
    recent.begin()
    recent.take(("UE:b", "m2"))
    recent.take(("UE:b", "m3"))
    recent.commit()
    assert recent.due()
