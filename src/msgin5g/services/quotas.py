# SPDX-License-Identifier: Apache-2.0
"""Per-recipient stored-message quota (TS 23.554 8.3.2 store and forward; issue 6 limits).

A UE that never comes back must not fill the store for everyone else: at most `limit`
deliveries wait for one recipient. The count comes from the store (`MessageStore.pending_count`)
and is cached in memory so the hot path stays O(1): the cache is read from the store the first
time a recipient is seen (so a restart starts from the real depth), grows by what is accepted,
and is re-read when it says the limit is near or when it is older than `refresh_s` (deliveries
shrink the queue, fan-out may grow it); while it is below half the limit, only after 12 times
`refresh_s`, so that many UEs with a few messages each do not cost a count query per
message. Reservations are taken before the commit and returned when the commit fails or the
message was a duplicate, so concurrent senders cannot overshoot.
A refusal happens at acceptance only: nothing already acknowledged is ever dropped (ADR 0020).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from msgin5g.core.message import Address
from msgin5g.ports import MessageStore

QUOTA_CAUSE = "STORAGE_QUOTA_EXCEEDED"


class Undecided:
    """`StoredMessageQuota.try_reserve`'s answer when only `reserve` can decide."""

    __slots__ = ()


UNDECIDED = Undecided()


class _Count:
    __slots__ = ("checked_at", "in_flight", "stored")

    def __init__(self, stored: int, checked_at: float) -> None:
        self.stored = stored
        """Committed deliveries as last read from the store, plus those committed since."""
        self.in_flight = 0
        """Reserved but not yet committed (or given back)."""
        self.checked_at = checked_at


class StoredMessageQuota:
    """Admission of new deliveries for one recipient; `limit` <= 0 turns the quota off."""

    def __init__(
        self,
        store: MessageStore,
        limit: int,
        *,
        clock: Callable[[], float],
        refresh_s: float = 5.0,
        max_tracked: int = 1_000_000,
    ) -> None:
        self._store = store
        self._limit = limit
        self._clock = clock
        self._refresh_s = refresh_s
        self._max_tracked = max_tracked
        self._counts: OrderedDict[str, _Count] = OrderedDict()  # O(1) oldest-first eviction

    @property
    def limit(self) -> int:
        return self._limit

    def try_reserve(self, recipient: Address, count: int) -> str | Undecided | None:
        """`reserve` from the cached count alone, without an await (the hot path): UNDECIDED
        when the store's count has to be read first, then call `reserve`."""
        if self._limit <= 0:
            return None
        entry = self._counts.get(recipient.key)
        if entry is None:
            return UNDECIDED
        wanted = entry.stored + entry.in_flight + count
        if wanted > self._limit or self._clock() - entry.checked_at > (
            self._refresh_s if wanted * 2 > self._limit else self._refresh_s * 12
        ):
            return UNDECIDED
        entry.in_flight += count
        return None

    async def reserve(self, recipient: Address, count: int) -> str | None:
        """Reserve room for `count` deliveries to `recipient`.

        Returns None when granted (then `settle` must follow), else the failureCause for a
        DELY_FAILED acknowledgement.
        """
        decided = self.try_reserve(recipient, count)
        if not isinstance(decided, Undecided):
            return decided
        now = self._clock()
        key = recipient.key
        stored = await self._store.pending_count(recipient)
        entry = self._counts.get(key)  # another accept may have come in meanwhile
        if entry is None:
            if len(self._counts) >= self._max_tracked:
                self._counts.popitem(last=False)
            entry = self._counts[key] = _Count(stored, now)
        else:
            entry.stored = stored
            entry.checked_at = now
        if entry.stored + entry.in_flight + count > self._limit:
            return (
                f"{QUOTA_CAUSE}: {recipient.value!r} has {entry.stored + entry.in_flight}"
                f" stored deliveries (limit {self._limit})"
            )
        entry.in_flight += count
        return None

    def settle(self, recipient: Address, count: int, *, committed: bool) -> None:
        """End a reservation: `committed` deliveries now count as stored, others are given back."""
        if self._limit <= 0:
            return
        entry = self._counts.get(recipient.key)
        if entry is None:
            return
        entry.in_flight = max(0, entry.in_flight - count)
        if committed:
            entry.stored += count
