# SPDX-License-Identifier: Apache-2.0
"""The stored-message quota reads a UE's queue depth from the store once, then again only when
the limit is near or the count is old: far below the limit, 12 times `refresh_s` (ADR 0020)."""

from __future__ import annotations

from typing import Any, cast

from msgin5g.core.message import UE, Address
from msgin5g.ports import MessageStore
from msgin5g.services.quotas import UNDECIDED, StoredMessageQuota

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


async def test_the_cached_check_decides_only_what_the_cache_can_tell() -> None:
    """`try_reserve` (the await-free hot path) grants from a fresh cached count and leaves
    to `reserve` a UE it has not counted, a count that is old, and one near the limit."""
    now = [0.0]
    store = Depths()
    quota = StoredMessageQuota(cast(MessageStore, store), 10, clock=lambda: now[0], refresh_s=5.0)
    assert quota.try_reserve(U, 1) is UNDECIDED  # never counted: the store must tell
    assert store.queries == 0
    assert await quota.reserve(U, 1) is None
    quota.settle(U, 1, committed=True)
    for _ in range(3):  # 1 + 3 stored: below half of the limit, counted 0 s ago
        assert quota.try_reserve(U, 1) is None
        quota.settle(U, 1, committed=True)
    assert store.queries == 1
    assert quota.try_reserve(U, 2) is None  # 4 + 2 > half of 10: trusted for 5 s only
    quota.settle(U, 2, committed=True)
    now[0] = 6.0
    assert quota.try_reserve(U, 1) is UNDECIDED  # the count is older than 5 s there
    now[0] = 0.0
    assert quota.try_reserve(U, 5) is UNDECIDED  # 6 + 5 > 10: only the store can refuse
    store.depth = 10
    now[0] = 6.0
    refusal = await quota.reserve(U, 1)
    assert isinstance(refusal, str)
    assert refusal.startswith("STORAGE_QUOTA_EXCEEDED")
    assert quota.try_reserve(U, 1) is UNDECIDED  # over the limit: never granted from cache


async def test_a_quota_of_zero_grants_everything_without_counting() -> None:
    store = Depths()
    quota = StoredMessageQuota(cast(MessageStore, store), 0, clock=lambda: 0.0)
    assert quota.try_reserve(U, 1_000) is None
    assert store.queries == 0
