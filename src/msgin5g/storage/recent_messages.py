# SPDX-License-Identifier: Apache-2.0
"""Messages committed to the SQLite store but not yet moved into its `messages` table
(ADR 0023).

`messages` is keyed by (originator, msgId), the key of idempotent acceptance (TS 29.538
5.2.2.2: a repeated msgId gets its first answer). A thousand UEs, or an AS with random
msgIds, put each new message at its own place of that key's B-tree, so every commit rewrote
a page per message. A new message row is appended to `recent_messages` instead (in rowid
order, no index) and a fold later moves all of them at once, sorted by key.

This module holds what the store needs in memory meanwhile: the key of every row in
`recent_messages` and its rowid, so a repeated msgId is still recognised and a record still
found at once. Changes are logged per transaction and applied only at its commit.
"""

from __future__ import annotations

Key = tuple[str, str]
"""(originator key, msgId)."""


class RecentMessages:
    """The keys of `recent_messages` and their rowids."""

    __slots__ = ("_committed", "_moved", "_next", "_pending", "_removed", "fold_rows")

    def __init__(self, fold_rows: int) -> None:
        self.fold_rows = fold_rows
        self._committed: dict[Key, int] = {}
        self._next = 1
        self._pending: dict[Key, int] = {}
        self._removed: set[Key] = set()
        self._moved = False

    # one transaction's changes -----------------------------------------------------------

    def begin(self) -> None:
        self._pending.clear()
        self._removed.clear()
        self._moved = False

    def take(self, key: Key) -> int:
        """The rowid for a row with `key` going into `recent_messages` now."""
        rowid = self._next
        self._next = rowid + 1
        self._pending[key] = rowid
        self._removed.discard(key)
        return rowid

    def removed(self, key: Key) -> None:
        """The row with `key` was deleted from `recent_messages`."""
        self._pending.pop(key, None)
        self._removed.add(key)

    def moved_all(self) -> None:
        """Every row of `recent_messages` went into `messages`."""
        self._pending.clear()
        self._removed.clear()
        self._moved = True

    def commit(self) -> None:
        committed = self._committed
        if self._moved:
            committed.clear()
        for key in self._removed:
            committed.pop(key, None)
        committed.update(self._pending)
        self.begin()

    def rollback(self) -> None:
        self.begin()

    # what readers need ---------------------------------------------------------------------

    def find(self, key: Key) -> int | None:
        """The rowid of `key` in `recent_messages`, as the current transaction sees it; None
        when it is not there (it may be in `messages`)."""
        rowid = self._pending.get(key)
        if rowid is not None:
            return rowid
        if self._moved or key in self._removed:
            return None
        return self._committed.get(key)

    def due(self) -> bool:
        """Enough rows wait for the next fold to be worth its pass."""
        return len(self._committed) >= self.fold_rows

    def __len__(self) -> int:
        return len(self._committed)
