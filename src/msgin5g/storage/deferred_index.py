# SPDX-License-Identifier: Apache-2.0
"""Deliveries committed to the SQLite store but not yet in its queue index (ADR 0022).

A delivery row is inserted with `indexed=0`, outside the partial index on (recipient,
priority, id) that finds a recipient's stored work; a fold later marks all such rows at once.
Inserted one commit at a time, 1,000 recipients put their entries at 1,000 places of that
index and every commit rewrites a page per recipient; folded thousands at a time, a page
takes all its new entries in one write.

This module holds what the store needs in memory meanwhile: which committed rows are not
indexed and for whom, so a recipient's queue depth and its stored work stay exact. Changes
are logged per transaction and applied only at its commit (a rolled-back insert or delete
leaves no trace here).
"""

from __future__ import annotations


class DeferredQueueIndex:
    """The unindexed deliveries by id and their count by recipient key."""

    __slots__ = ("_count", "_deleted", "_folded", "_inserted", "_recipient", "fold_rows", "through")

    def __init__(self, through: int, fold_rows: int) -> None:
        self.through = through
        """Every delivery id up to this one is in the queue index (a row above may be too)."""
        self.fold_rows = fold_rows
        self._recipient: dict[int, str] = {}
        self._count: dict[str, int] = {}
        self._inserted: list[tuple[int, str]] = []
        self._deleted: list[int] = []
        self._folded: int | None = None

    # one transaction's changes -----------------------------------------------------------

    def begin(self) -> None:
        self._inserted.clear()
        self._deleted.clear()
        self._folded = None

    def inserted(self, delivery_id: int, recipient_key: str) -> None:
        """A row went in unindexed."""
        self._inserted.append((delivery_id, recipient_key))

    def deleted(self, delivery_id: int) -> None:
        """A row was deleted (indexed or not)."""
        self._deleted.append(delivery_id)

    def folded(self, through: int) -> None:
        """Every row up to `through` is in the queue index now."""
        self._folded = through

    def commit(self) -> None:
        recipient, count = self._recipient, self._count
        for delivery_id, key in self._inserted:
            recipient[delivery_id] = key
            count[key] = count.get(key, 0) + 1
        for delivery_id in self._deleted:
            gone = recipient.pop(delivery_id, None)
            if gone is not None:
                self._uncount(gone)
        if self._folded is not None:
            self.through = max(self.through, self._folded)
            for delivery_id in [i for i in recipient if i <= self._folded]:
                self._uncount(recipient.pop(delivery_id))
        self.begin()

    def rollback(self) -> None:
        self.begin()

    def _uncount(self, key: str) -> None:
        left = self._count[key] - 1
        if left:
            self._count[key] = left
        else:
            del self._count[key]

    # what readers need ---------------------------------------------------------------------

    def count(self, recipient_key: str) -> int:
        """Committed unindexed deliveries to `recipient_key`."""
        return self._count.get(recipient_key, 0)

    def recipients(self) -> list[str]:
        """The recipient keys with unindexed deliveries."""
        return list(self._count)

    def due(self, last_id: int) -> bool:
        """Enough ids went out since the last fold for the next to be worth its pass. By ids
        rather than unindexed rows: a reader looks for a recipient's unindexed rows among
        all ids above `through`, the rows indexed at once (fan-out) and deleted ones too."""
        return last_id - self.through >= self.fold_rows

    def __len__(self) -> int:
        return len(self._recipient)
