# SPDX-License-Identifier: Apache-2.0
"""The stored-message quota reads a UE's queue depth from the store once, then again only when
the limit is near or the count is old: far below the limit, 12 times `refresh_s` (ADR 0020)."""

from __future__ import annotations

from typing import Any, cast

from msgin5g.core.message import UE, Address
from msgin5g.ports import MessageStore
from msgin5g.services.quotas import StoredMessageQuota

U = Address(UE, "ue-1")


class Depths:
    """The one store query the quota makes, with a depth the test sets."""

    def __init__(self) -> None:
        self.depth = 0
        self.queries = 0

    async def pending_count(self, _recipient: Address) -> int:
        self.queries += 1
        return self.depth


async def test_far_below_the_limit_the_count_is_read_rarely() -> None:
    now = [0.0]
    store = Depths()
    quota = StoredMessageQuota(cast(MessageStore, store), 100, clock=lambda: now[0], refresh_s=5.0)
    for second in range(0, 59, 2):  # 30 messages in 58 s
        now[0] = float(second)
        assert await quota.reserve(U, 1) is None
        quota.settle(U, 1, committed=True)
    assert store.queries == 1
    now[0] = 61.0  # older than 12 x 5 s: read again
    assert await quota.reserve(U, 1) is None
    assert store.queries == 2


async def test_near_the_limit_the_count_follows_the_store_within_refresh_s() -> None:
    now = [0.0]
    store = Depths()
    store.depth = 60  # more than half of the limit is waiting
    quota = StoredMessageQuota(cast(MessageStore, store), 100, clock=lambda: now[0], refresh_s=5.0)
    assert await quota.reserve(U, 1) is None
    quota.settle(U, 1, committed=True)
    store.depth = 100  # fan-out filled the queue meanwhile
    now[0] = 6.0
    refusal: Any = await quota.reserve(U, 1)
    assert store.queries == 2
    assert refusal is not None
    assert refusal.startswith("STORAGE_QUOTA_EXCEEDED")
