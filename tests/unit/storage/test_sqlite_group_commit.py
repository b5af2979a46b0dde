# SPDX-License-Identifier: Apache-2.0
"""Group commit in the embedded store: a lone write commits on the next loop turn; under load
(the last commit held several writes) a commit waits one turn more, so that the writes of the
requests read meanwhile join it. Nothing waits longer, and a close commits what waits."""

from __future__ import annotations

import asyncio
from pathlib import Path

from msgin5g.core.message import Acceptance, AckStatus, Address
from msgin5g.ports import MessageRecord
from msgin5g.storage.sqlite import SqliteStore

AS_A, UE = Address("AS", "app-a"), Address("UE", "ue-1")


def _record(n: int) -> MessageRecord:
    return MessageRecord(AS_A, f"m{n:04d}", UE, Acceptance(AckStatus.STORED), False, False, 9e9)


async def _turns(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_writes_of_the_next_turn_join_a_commit_under_load(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3", clock=lambda: 1_000.0)
    await store.open()
    try:
        # A write's task runs, its commit runs on the next turn, the task wakes on the third.
        lone = asyncio.ensure_future(store.accept(_record(0), []))
        await _turns(3)
        assert lone.done()  # idle: no waiting
        base = store.commits
        first = [asyncio.ensure_future(store.accept(_record(n), [])) for n in (1, 2)]
        await _turns(3)
        assert all(f.done() for f in first)  # the last commit held one write: no waiting
        assert store.commits == base + 1
        # Under load now: two writes this turn, two the next; one commit takes all four.
        burst = [asyncio.ensure_future(store.accept(_record(n), [])) for n in (3, 4)]
        await _turns(1)
        burst += [asyncio.ensure_future(store.accept(_record(n), [])) for n in (5, 6)]
        await asyncio.gather(*burst)
        assert store.commits == base + 2
        assert [await f for f in burst] == [(None, [])] * 4
    finally:
        await store.close()


async def test_close_commits_a_lingering_flush(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = SqliteStore(path, clock=lambda: 1_000.0)
    await store.open()
    await asyncio.gather(*(store.accept(_record(n), []) for n in (1, 2)))  # now under load
    # Without the checkpoint thread, close() has nothing to wait for: it runs before the
    # lingering flush does.
    assert store._checkpointer is not None
    store._stop_checkpoints.set()
    store._checkpointer.join()
    store._checkpointer = None
    waiting = [asyncio.ensure_future(store.accept(_record(n), [])) for n in (3, 4)]
    await _turns(1)  # their flush is scheduled, and would linger for a turn: close first
    assert store._pending
    await store.close()
    assert [await f for f in waiting] == [(None, [])] * 2
    again = SqliteStore(path, clock=lambda: 1_000.0)
    await again.open()
    try:
        assert await again.find_message(AS_A, "m0004") is not None
    finally:
        await again.close()
