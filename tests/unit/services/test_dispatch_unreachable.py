# SPDX-License-Identifier: Apache-2.0
"""Stored work for recipients that cannot be reached costs the dispatcher no lane (issue 7:
1,000,000 stored messages for UEs that are not observing); wake() still delivers it."""

from __future__ import annotations

import time

from msgin5g.ports import SendResult, Transport
from msgin5g.storage.sqlite import SqliteStore
from tests.unit.services.test_dispatch import B, Recorder, dispatcher, put, store, until

__all__ = ["store"]  # the fixture


async def test_start_makes_no_lane_for_an_unreachable_recipient(store: SqliteStore) -> None:
    for n in range(3):
        await put(store, f"m{n}")
    routes: dict[str, Transport] = {}
    d = dispatcher(store, routes)
    await d.start()
    assert d.lanes == 0
    b = Recorder()
    routes[B.key] = b  # the recipient becomes reachable
    d.wake(B)
    await until(lambda: len(b.delivered) == 3)
    await d.stop()
    assert b.delivered == ["m0", "m1", "m2"]
    assert (await store.stats(time.time()))[0] == 0


async def test_submit_to_an_unreachable_recipient_keeps_it_stored(store: SqliteStore) -> None:
    routes: dict[str, Transport] = {}
    d = dispatcher(store, routes)
    await d.start()
    for n in range(3):
        d.submit(await put(store, f"m{n}"))
    assert d.lanes == 0
    assert (await store.stats(time.time()))[0] == 3
    b = Recorder()
    routes[B.key] = b
    d.wake(B)
    await until(lambda: len(b.delivered) == 3)
    # once a lane exists, new work goes straight to it
    d.submit(await put(store, "m3"))
    await until(lambda: len(b.delivered) == 4)
    await d.stop()
    assert b.delivered == ["m0", "m1", "m2", "m3"]


async def test_a_recipient_that_went_away_leaves_no_lane(store: SqliteStore) -> None:
    b = Recorder()
    b.answers = [SendResult.RETRY]  # the lane backs off with m0 still queued ...
    routes: dict[str, Transport] = {B.key: b}
    d = dispatcher(store, routes)
    await d.start()
    d.submit(await put(store, "m0"))
    await until(lambda: b.attempts == ["m0"])
    del routes[B.key]  # ... and meanwhile the UE stopped observing: the lane parks
    await until(lambda: d.lanes == 0)
    assert (await store.stats(time.time()))[0] == 1  # m0 waits in the store
    routes[B.key] = b
    d.wake(B)
    await until(lambda: b.delivered == ["m0"])
    await d.stop()
