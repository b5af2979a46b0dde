# SPDX-License-Identifier: Apache-2.0
"""Resuming stored work at start runs in the background (issue 7: ready in seconds with a
million stored messages), without letting new messages overtake the stored ones."""

from __future__ import annotations

import time

from msgin5g.core.message import AS, Acceptance, AckStatus, Address, DeliveryKind, Priority
from msgin5g.ports import MessageRecord, NewDelivery, Transport
from msgin5g.storage.sqlite import SqliteStore
from tests.unit.services.test_dispatch import A, B, Recorder, dispatcher, put, store, until

__all__ = ["store"]  # the fixture


async def test_a_message_submitted_while_resuming_waits_for_the_stored_ones(
    store: SqliteStore,
) -> None:
    for n in range(3):
        await put(store, f"old{n}")
    new = await put(store, "new")  # committed; handed to the dispatcher just after start
    b = Recorder()
    d = dispatcher(store, {B.key: b})
    await d.start()
    d.submit(new)  # before the background scan reached B
    await until(lambda: len(b.delivered) == 4)
    await d.stop()
    assert b.delivered == ["old0", "old1", "old2", "new"]


async def test_the_scan_pages_through_every_recipient(store: SqliteStore) -> None:
    recipients = [Address(AS, f"as-{n:03d}") for n in range(25)]
    for r in recipients:
        expires = time.time() + 60
        await store.accept(
            MessageRecord(A, r.value, r, Acceptance(AckStatus.STORED), False, False, expires),
            [
                NewDelivery(
                    DeliveryKind.MESSAGE, r, b"{}", Priority.MIDDLE, expires, A, r.value, False
                )
            ],
        )
    pages = [await store.recipients_with_pending("", 10)]
    while len(pages[-1]) == 10:
        pages.append(await store.recipients_with_pending(pages[-1][-1].key, 10))
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [r for p in pages for r in p] == recipients
    assert await store.recipients_with_pending() == recipients
    recorders = {r.key: Recorder() for r in recipients}
    routes: dict[str, Transport] = dict(recorders)
    d = dispatcher(store, routes, resume_page=7)
    await d.start()
    await until(lambda: all(rec.delivered for rec in recorders.values()))
    await d.stop()
    assert [rec.delivered for rec in recorders.values()] == [[r.value] for r in recipients]
