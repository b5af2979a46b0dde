# SPDX-License-Identifier: Apache-2.0
"""The embedded store: SQLite in WAL mode under `--data-dir` (DESIGN 3, ADR 0003).

Writes queued during one event-loop iteration commit together in one transaction (group
commit) on the loop thread; a method returns only after its transaction committed, so a
sender acknowledged afterwards survives kill -9. With synchronous=NORMAL a commit is a
write() to the WAL with no fsync; WAL checkpoints (the fsync) run in a background thread on
their own connection. Reads use the same connection between commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from msgin5g.core.errors import StorageFailure
from msgin5g.core.message import (
    Address,
    AsRegistration,
    Delivery,
    DeliveryKind,
    Priority,
    UeRegistration,
)
from msgin5g.ports import (
    MessageRecord,
    NewDelivery,
    Outcome,
    TopicListWatch,
    TopicSubscriber,
    UplinkSegment,
)
from msgin5g.storage import rows as parse
from msgin5g.storage.deferred_index import DeferredQueueIndex
from msgin5g.storage.recent_messages import RecentMessages

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION = 7

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE messages (
        origin TEXT NOT NULL,
        message_id TEXT NOT NULL,
        recipient TEXT NOT NULL,
        ack_status TEXT,
        ack_cause TEXT,
        wants_report INTEGER NOT NULL,
        report_received INTEGER NOT NULL DEFAULT 0,
        keep_until REAL NOT NULL,
        PRIMARY KEY (origin, message_id)
    ) WITHOUT ROWID;
    CREATE INDEX messages_keep_until ON messages (keep_until);
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- ids are never reused: a stale id is harmless
        recipient TEXT NOT NULL,
        kind TEXT NOT NULL,
        priority INTEGER NOT NULL,
        body BLOB NOT NULL,
        origin TEXT NOT NULL,
        message_id TEXT NOT NULL,
        wants_report INTEGER NOT NULL,
        expires_at REAL NOT NULL,
        created_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX deliveries_queue ON deliveries (recipient, priority, id);
    CREATE INDEX deliveries_expiry ON deliveries (expires_at);
    CREATE TABLE as_registrations (
        registration_id TEXT PRIMARY KEY,
        as_service_id TEXT NOT NULL UNIQUE,
        app_id TEXT,
        target_uri TEXT,
        profile BLOB
    );
    """,
    # MSGin5G-1 (issue 3): UE registrations, kept copies of segments sent to UEs (for SEGREC)
    # and segments of UE-originated messages waiting for reassembly.
    2: """
    CREATE TABLE ue_registrations (
        registration_id TEXT PRIMARY KEY,
        ue_service_id TEXT NOT NULL UNIQUE,
        max_segment_size INTEGER,
        comm_avail BLOB,
        trig_info BLOB
    );
    CREATE TABLE kept_segments (
        segment_id TEXT NOT NULL,
        number INTEGER NOT NULL,
        recipient TEXT NOT NULL,
        kind TEXT NOT NULL,
        priority INTEGER NOT NULL,
        body BLOB NOT NULL,
        origin TEXT NOT NULL,
        message_id TEXT NOT NULL,
        wants_report INTEGER NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (segment_id, number)
    ) WITHOUT ROWID;
    CREATE INDEX kept_segments_expiry ON kept_segments (expires_at);
    CREATE TABLE uplink_segments (
        origin TEXT NOT NULL,
        segment_id TEXT NOT NULL,
        number INTEGER NOT NULL,
        total INTEGER,
        last INTEGER NOT NULL,
        body BLOB NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (origin, segment_id, number)
    ) WITHOUT ROWID;
    CREATE INDEX uplink_segments_expiry ON uplink_segments (expires_at);
    """,
    # Non-MSGin5G UEs registered by their gateway (TS 23.554 8.2.3, DESIGN 2.5).
    3: """
    ALTER TABLE ue_registrations ADD COLUMN gateway_type TEXT;
    ALTER TABLE ue_registrations ADD COLUMN gateway_api_root TEXT;
    """,
    # Groups (the role SEAL group management plays, TS 23.554 8.7.4) and one report per member.
    4: """
    CREATE TABLE groups (
        group_id TEXT PRIMARY KEY,
        members BLOB NOT NULL
    );
    CREATE TABLE member_reports (
        origin TEXT NOT NULL,
        message_id TEXT NOT NULL,
        reporter TEXT NOT NULL,
        PRIMARY KEY (origin, message_id, reporter)
    ) WITHOUT ROWID;
    """,
    # Messaging Topics (TS 23.554 8.8): subscribers with their expiry, and the topic-list
    # subscriptions of MSGS_TopiclistEvent (TS 29.538).
    5: """
    CREATE TABLE topic_subscriptions (
        topic TEXT NOT NULL,
        subscriber TEXT NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (topic, subscriber)
    ) WITHOUT ROWID;
    CREATE TABLE topiclist_subscriptions (
        subscription_id TEXT PRIMARY KEY,
        origin TEXT NOT NULL,
        notification_uri TEXT NOT NULL,
        expires_at REAL NOT NULL
    );
    """,
    # Deferred queue indexing (ADR 0022): new rows come in with indexed=0, outside the queue
    # index, and are folded into it in bulk; `queue_indexed_through` says up to which id.
    6: """
    ALTER TABLE deliveries ADD COLUMN indexed INTEGER NOT NULL DEFAULT 1;
    DROP INDEX deliveries_queue;
    CREATE INDEX deliveries_queue ON deliveries (recipient, priority, id) WHERE indexed=1;
    CREATE TABLE store_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO store_meta (name, value)
        SELECT 'queue_indexed_through', COALESCE(MAX(id), 0) FROM deliveries;
    """,
    # Recent messages (ADR 0023): appended here in commit order, moved into `messages` (keyed
    # by originator and msgId) in bulk by the move.
    7: """
    CREATE TABLE recent_messages (
        id INTEGER PRIMARY KEY,
        origin TEXT NOT NULL,
        message_id TEXT NOT NULL,
        recipient TEXT NOT NULL,
        ack_status TEXT,
        ack_cause TEXT,
        wants_report INTEGER NOT NULL,
        report_received INTEGER NOT NULL DEFAULT 0,
        keep_until REAL NOT NULL
    );
    """,
}

_DELIVERY_COLUMNS = (
    "id, kind, recipient, body, priority, expires_at, origin, message_id, wants_report, attempts"
)


_INSERT_DELIVERY = (
    "INSERT INTO deliveries (id, recipient, kind, priority, body, origin, message_id,"
    " wants_report, expires_at, created_at, indexed) VALUES (?,?,?,?,?,?,?,?,?,?,0)"
)
_INSERT_DELIVERY_INDEXED = _INSERT_DELIVERY.replace(",0)", ",1)")
_FOLD_RETRY_S = 5.0
_FOLD_ROWS = 8192
"""Delivery ids between two folds (ADR 0022): a fold is one UPDATE of a few milliseconds;
fewer ids per fold paid more per message for its page writes, more saved nothing."""
_INSERT_MESSAGE = (
    "INSERT INTO recent_messages (id, origin, message_id, recipient, ack_status,"
    " ack_cause, wants_report, keep_until) VALUES (?,?,?,?,?,?,?,?)"
)
_INSERT_KEYED = (
    "INSERT OR IGNORE INTO messages (origin, message_id, recipient, ack_status,"
    " ack_cause, wants_report, keep_until) VALUES (?,?,?,?,?,?,?)"
)
_MESSAGE_COLUMNS = (
    "origin, message_id, recipient, ack_status, ack_cause, wants_report, report_received,"
    " keep_until"
)
_KNOWN_MESSAGE = "SELECT 1 FROM messages WHERE origin=? AND message_id=?"
_KEEP_SEGMENT = (
    "INSERT OR REPLACE INTO kept_segments (segment_id, number, recipient, kind, priority,"
    " body, origin, message_id, wants_report, expires_at) VALUES (?,?,?,?,?,?,?,?,?,?)"
)


class _Ids:
    """Delivery ids, handed out in memory: this process is the only writer of the file, and
    ids that a rolled-back batch used are simply skipped (AUTOINCREMENT never reuses)."""

    __slots__ = ("next",)

    def __init__(self, start: int) -> None:
        self.next = start

    def take(self) -> int:
        value = self.next
        self.next = value + 1
        return value


def _message_row(record: MessageRecord) -> tuple[Any, ...]:
    return (
        record.origin.key,
        record.message_id,
        record.recipient.key,
        record.acceptance.status._value_,  # `.value` runs Python code on 3.11
        record.acceptance.failure_cause,
        int(record.wants_report),
        record.keep_until,
    )


def _delivery_row(delivery_id: int, item: NewDelivery, now: float) -> tuple[Any, ...]:
    return (
        delivery_id,
        item.recipient.key,
        item.kind._value_,  # as above
        int(item.priority),
        item.body,
        item.origin.key,
        item.message_id,
        int(item.wants_report),
        item.expires_at,
        now,
    )


def _segment_row(item: NewDelivery) -> tuple[Any, ...]:
    return (
        item.segment_id,
        item.segment_number,
        item.recipient.key,
        item.kind.value,
        int(item.priority),
        item.body,
        item.origin.key,
        item.message_id,
        int(item.wants_report),
        item.expires_at,
    )


_DELETE_DELIVERY = "DELETE FROM deliveries WHERE id=?"


class _Accept:
    """A queued `accept`: the group commit inserts all of a batch's accepts with executemany."""

    __slots__ = ("deliveries", "now", "record")

    def __init__(self, record: MessageRecord, deliveries: Sequence[NewDelivery], now: float):
        self.record = record
        self.deliveries = deliveries
        self.now = now


class _Delete:
    """A queued `finish` with nothing to follow: the group commit deletes all of a batch's
    handed-over deliveries with one executemany."""

    __slots__ = ("delivery_id",)

    def __init__(self, delivery_id: int):
        self.delivery_id = delivery_id


_Op = Callable[[sqlite3.Connection], Any] | _Accept | _Delete


class _Conflict(Exception):
    """A batch of accepts met a known (originator, msgId): redo it one accept at a time."""


_RESTART_PATIENCE_MS = 200
"""The longest a WAL restart waits for readers while the loop holds its commits."""


class SqliteStore:
    """`MessageStore` on one SQLite file. `synchronous` is NORMAL (survives process crashes,
    the kill -9 promise) or FULL (also survives power loss, at a cost per commit)."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float],
        synchronous: str = "NORMAL",
        max_batch: int = 4096,
        checkpoint_interval: float = 1.0,
        reclaim_threshold: int = 1024,
        reclaim_pages: int = 1024,
        wal_limit: int = 64 << 20,
        fold_rows: int = _FOLD_ROWS,
    ) -> None:
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be NORMAL or FULL")
        self._path = path
        self._clock = clock
        self._synchronous = synchronous.upper()
        self._max_batch = max_batch
        self._checkpoint_interval = checkpoint_interval
        self._reclaim_threshold = reclaim_threshold
        self._reclaim_pages = reclaim_pages
        self._wal_limit = wal_limit
        self._reclaiming = False
        self._conn: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[tuple[_Op, asyncio.Future[Any]]] = []
        self._ids = _Ids(1)
        self._fold_rows = fold_rows
        self._unindexed = DeferredQueueIndex(0, fold_rows)
        self._recent = RecentMessages(fold_rows)
        self._folding = False
        self._fold_not_before = -math.inf
        self._flush_scheduled = False
        # Under load (the last group commit held several ops), a flush waits one more loop
        # turn, so that the requests read meanwhile join its commit.
        self._last_batch = 0
        self._lingered = False
        # Commits held while the checkpoint thread starts the WAL over (ADR 0019)
        self._commits_held = False
        self._hold_generation = 0
        self._held = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpoints = threading.Event()
        self.commits = 0
        self.committed_ops = 0
        self.folds = 0
        """Queue index folds committed (ADR 0022)."""
        self.fold_seconds = 0.0
        """Time the folds held the event loop, committed or not."""
        self.moves = 0
        """Moves of the recent messages committed (ADR 0023)."""
        self.move_seconds = 0.0
        """Time the moves held the event loop, committed or not."""

    # lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._loop = asyncio.get_running_loop()
        conn = self._connect()
        # Checkpoints (the only fsync of the WAL in NORMAL mode) run in their own thread so
        # they never stall the event loop.
        conn.execute("PRAGMA wal_autocheckpoint=0")
        _incremental_vacuum_on(conn)
        self._migrate(conn)
        last = conn.execute(
            "SELECT MAX(v) FROM (SELECT MAX(id) AS v FROM deliveries"
            " UNION ALL SELECT seq FROM sqlite_sequence WHERE name='deliveries')"
        ).fetchone()[0]
        self._ids = _Ids((last or 0) + 1)
        self._unindexed = DeferredQueueIndex(_fold_rest(conn, last or 0), self._fold_rows)
        self._recent = RecentMessages(self._fold_rows)
        self._conn = conn
        self._stop_checkpoints.clear()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_main, name="msgin5g-sqlite-checkpoint", daemon=True
        )
        self._checkpointer.start()

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._stop_checkpoints.set()
            await asyncio.to_thread(self._checkpointer.join)
            self._checkpointer = None
        self._commits_held = False
        if self._pending:
            self._commit_pending()
        if self._conn is not None:
            try:
                _fold_rest(self._conn, self._ids.next - 1)  # a quick next start
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                log.warning("no fold at close; the next start folds: %s", exc)
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.OperationalError as exc:  # a full disk: the WAL stays on disk
                log.warning(
                    "no checkpoint at close; the WAL is replayed at the next start: %s", exc
                )
            self._conn.close()
            self._conn = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=5000")
        # A large store keeps its index pages hot: 64 MiB of page cache, reads through mmap.
        conn.execute("PRAGMA cache_size=-65536")
        conn.execute("PRAGMA mmap_size=268435456")
        # When the WAL restarts, cut its file back to `wal_limit` (a burst may grow it).
        conn.execute(f"PRAGMA journal_size_limit={int(self._wal_limit)}")
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for target in range(version + 1, SCHEMA_VERSION + 1):
            conn.executescript(
                f"BEGIN IMMEDIATE;{MIGRATIONS[target]};PRAGMA user_version={target};COMMIT;"
            )
            log.info("store schema migrated", extra={"schema_version": target})

    def _checkpoint_main(self) -> None:
        conn = self._connect()
        try:
            page = conn.execute("PRAGMA page_size").fetchone()[0] + 24  # a WAL frame's size
            backoff, not_before = 0.0, 0.0  # after a restart a reader prevented
            while not self._stop_checkpoints.wait(self._checkpoint_interval):
                try:
                    frames = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
                    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
                except sqlite3.Error as exc:
                    log.warning("WAL checkpoint failed: %s", exc)
                    continue
                if self._loop is None:
                    continue
                if frames * page > self._wal_limit and time.monotonic() >= not_before:
                    if self._restart_wal(conn, self._loop):
                        backoff = 0.0
                    else:  # commits were held for nothing: hold them less often
                        backoff = min(30.0, max(2 * backoff, self._checkpoint_interval))
                        not_before = time.monotonic() + backoff
                if free >= self._reclaim_threshold:
                    with contextlib.suppress(RuntimeError):  # the loop is closing
                        self._loop.call_soon_threadsafe(self._queue_reclaim)
        finally:
            conn.close()

    def _restart_wal(self, conn: sqlite3.Connection, loop: asyncio.AbstractEventLoop) -> bool:
        """Make the next commit write the WAL from its start (ADR 0019). Under commits that
        never pause, a passive checkpoint never reaches the WAL's end, and only one that has
        lets a commit start the WAL over: it grew without bound (1.1 GB after 150,000
        messages at 8,000/s). A RESTART that waits for a gap between commits rarely got one
        (up to 0.6 s), and one run on the loop's connection stalls the loop for its fsync;
        so the loop holds its commits (it goes on serving; what it accepts waits for its
        commit) while this thread restarts the WAL, which cuts the file to `wal_limit`.
        False when it could not (a reader kept the WAL for `_RESTART_PATIENCE_MS`)."""
        self._held.clear()
        generation = self._hold_generation
        try:
            loop.call_soon_threadsafe(self._hold_commits, generation)
            if not self._held.wait(5.0):
                return False
            # Commits wait meanwhile: give up soon if a reader holds the WAL (and retry)
            conn.execute(f"PRAGMA busy_timeout={_RESTART_PATIENCE_MS}")
            try:
                busy = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()[0]
            finally:
                conn.execute("PRAGMA busy_timeout=5000")
            if busy:
                log.warning("the WAL was not restarted (a reader held it); trying again later")
                return False
            return True
        except sqlite3.Error as exc:
            log.warning("WAL restart failed: %s", exc)
            return False
        except RuntimeError:  # the loop is closing
            return False
        finally:
            self._hold_generation = generation + 1  # a late hold request is void
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._release_commits)

    def _hold_commits(self, generation: int) -> None:
        if generation == self._hold_generation and self._conn is not None:
            self._commits_held = True
            self._held.set()

    def _release_commits(self) -> None:
        if not self._commits_held:
            return
        self._commits_held = False
        if self._pending and not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    # reclamation (ADR 0019) ----------------------------------------------------------------

    def _queue_reclaim(self) -> None:
        if self._reclaiming or self._conn is None:
            return
        self._reclaiming = True
        self._write(self._reclaim_op).add_done_callback(self._reclaimed)

    def _reclaimed(self, fut: asyncio.Future[int]) -> None:
        self._reclaiming = False
        if not fut.cancelled() and fut.exception() is not None:
            log.warning("store reclamation failed: %s", fut.exception())

    def _reclaim_op(self, conn: sqlite3.Connection) -> int:
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        # sqlite3 steps this statement once, which releases one page: run it once per page.
        for _ in range(min(free, self._reclaim_pages)):
            conn.execute("PRAGMA incremental_vacuum(1)")
        return int(free - conn.execute("PRAGMA freelist_count").fetchone()[0])

    async def reclaim(self) -> int:
        """Give up to `reclaim_pages` free pages back to the file system (the file shrinks
        at the next checkpoint); returns the pages released. The checkpoint thread queues
        this whenever `reclaim_threshold` pages or more are free."""
        released: int = await self._write(self._reclaim_op)
        return released

    # group commit ------------------------------------------------------------------------------

    def _write(
        self, op: Callable[[sqlite3.Connection], T] | _Accept | _Delete
    ) -> asyncio.Future[T]:
        """Queue `op` for the next group commit; the future resolves once it is committed.

        Everything queued during one event-loop iteration commits in one transaction, run by
        a callback scheduled behind the requests that are already ready. Under load (the last
        commit held several ops) that callback waits one iteration more, so the ops of the
        requests read meanwhile join it: fewer, larger commits for one turn of latency.
        """
        if self._conn is None or self._loop is None:
            raise StorageFailure("store is closed")
        fut: asyncio.Future[T] = self._loop.create_future()
        self._pending.append((op, fut))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        if self._commits_held:  # `_release_commits` flushes what waits meanwhile
            self._flush_scheduled = False
            return
        if (
            self._last_batch > 1
            and not self._lingered
            and len(self._pending) < self._max_batch
            and self._loop is not None
        ):
            self._lingered = True
            self._loop.call_soon(self._flush)
            return
        self._commit_pending()

    def _commit_pending(self) -> None:
        self._lingered = False
        self._flush_scheduled = False
        self._last_batch = len(self._pending)
        conn = self._conn
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            if conn is None:
                for _op, fut in batch:
                    if not fut.done():
                        fut.set_exception(StorageFailure("store is closed"))
                continue
            _resolve_all(self._run_batch(conn, batch))
        if self._unindexed.due(self._ids.next - 1):
            self._queue_fold(self._fold_op)
        elif self._recent.due():  # never in the same commit: each holds the loop a while
            self._queue_fold(self._move_op)

    def _run_batch(
        self,
        conn: sqlite3.Connection,
        batch: list[tuple[_Op, asyncio.Future[Any]]],
    ) -> list[tuple[asyncio.Future[Any], bool, Any]]:
        accepts: list[tuple[_Accept, asyncio.Future[Any]]] = []
        deletes: list[tuple[_Delete, asyncio.Future[Any]]] = []
        others: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        for op, fut in batch:
            if isinstance(op, _Accept):
                accepts.append((op, fut))
            elif isinstance(op, _Delete):
                deletes.append((op, fut))
            else:
                others.append((op, fut))
        results: list[tuple[asyncio.Future[Any], bool, Any]] = []
        unindexed, recent = self._unindexed, self._recent
        try:
            unindexed.begin()
            recent.begin()
            conn.execute("BEGIN IMMEDIATE")
            if accepts:
                values = self._accept_all(conn, [op for op, _f in accepts])
                results.extend(
                    (fut, True, v) for (_op, fut), v in zip(accepts, values, strict=True)
                )
            if deletes:
                conn.executemany(_DELETE_DELIVERY, [(op.delivery_id,) for op, _f in deletes])
                for op, fut in deletes:
                    unindexed.deleted(op.delivery_id)
                    results.append((fut, True, None))
            for other, fut in others:
                results.append((fut, True, other(conn)))
            conn.execute("COMMIT")
            unindexed.commit()
            recent.commit()
            self.commits += 1
            self.committed_ops += len(batch)
            return results
        except Exception:
            unindexed.rollback()
            recent.rollback()
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        # A known key or a failing op: run each alone so only the culprit fails.
        results = []
        for item, fut in batch:
            try:
                unindexed.begin()
                recent.begin()
                conn.execute("BEGIN IMMEDIATE")
                value = self._run_one(conn, item)
                conn.execute("COMMIT")  # only a committed op is reported done
                unindexed.commit()
                recent.commit()
                results.append((fut, True, value))
            except Exception as exc:
                unindexed.rollback()
                recent.rollback()
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                log.error("store write failed", exc_info=exc)
                results.append((fut, False, StorageFailure(f"store write failed: {exc}")))
        self.commits += 1
        self.committed_ops += len(batch)
        return results

    def _run_one(self, conn: sqlite3.Connection, item: _Op) -> Any:
        if isinstance(item, _Accept):
            return self._accept_one(conn, item)
        if isinstance(item, _Delete):
            conn.execute(_DELETE_DELIVERY, (item.delivery_id,))
            self._unindexed.deleted(item.delivery_id)
            return None
        return item(conn)

    def _insert_delivery(
        self, conn: sqlite3.Connection, item: NewDelivery, now: float, *, indexed: bool = False
    ) -> Delivery:
        delivery_id = self._ids.take()
        row = _delivery_row(delivery_id, item, now)
        conn.execute(_INSERT_DELIVERY_INDEXED if indexed else _INSERT_DELIVERY, row)
        if not indexed:
            self._unindexed.inserted(delivery_id, row[1])
        if item.segment_id is not None:
            conn.execute(_KEEP_SEGMENT, _segment_row(item))
        return parse.created(delivery_id, item)

    # deferred queue indexing (ADR 0022) and recent messages (ADR 0023) -------------------

    def _queue_fold(self, op: Callable[[sqlite3.Connection], int]) -> None:
        """Queue the queue index's fold or the recent messages' move, one at a time."""
        if self._folding or self._conn is None or self._clock() < self._fold_not_before:
            return
        self._folding = True
        self._write(op).add_done_callback(functools.partial(self._folded, op == self._fold_op))

    def _folded(self, fold: bool, fut: asyncio.Future[int]) -> None:
        self._folding = False
        if not fut.cancelled() and fut.exception() is None:
            if fold:
                self.folds += 1
            else:
                self.moves += 1
        elif not fut.cancelled():
            # e.g. a full disk: readers stay exact meanwhile, so try again later, not at
            # every commit (a failing op sends its whole batch down the one-by-one path)
            self._fold_not_before = self._clock() + _FOLD_RETRY_S
            log.warning("store fold failed: %s", fut.exception())

    def _fold_op(self, conn: sqlite3.Connection) -> int:
        """Put every unindexed row so far into the queue index; returns how many."""
        started, through = time.perf_counter(), self._ids.next - 1
        try:
            marked = conn.execute(
                "UPDATE deliveries SET indexed=1 WHERE id>? AND indexed=0",
                (self._unindexed.through,),
            ).rowcount
            conn.execute(
                "UPDATE store_meta SET value=? WHERE name='queue_indexed_through'", (through,)
            )
        finally:
            self.fold_seconds += time.perf_counter() - started
        self._unindexed.folded(through)
        return int(marked)

    def _move_op(self, conn: sqlite3.Connection) -> int:
        """Move every recent message into `messages` (ADR 0023); returns how many."""
        started = time.perf_counter()
        try:
            moved = _move_recent(conn)
        finally:
            self.move_seconds += time.perf_counter() - started
        self._recent.moved_all()
        return moved

    @property
    def unindexed(self) -> int:
        """Committed deliveries waiting for the next fold."""
        return len(self._unindexed)

    @property
    def recent_messages(self) -> int:
        """Committed message records waiting for the next move."""
        return len(self._recent)

    def _read(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageFailure("store is closed")
        return self._conn

    # messages ---------------------------------------------------------------------------------

    async def accept(
        self, record: MessageRecord, deliveries: Sequence[NewDelivery]
    ) -> tuple[MessageRecord | None, list[Delivery]]:
        # The hot path: queued as data, inserted with executemany by the group commit.
        result: tuple[MessageRecord | None, list[Delivery]] = await self._write(
            _Accept(record, deliveries, self._clock())
        )
        return result

    def _accept_one(
        self, conn: sqlite3.Connection, item: _Accept
    ) -> tuple[MessageRecord | None, list[Delivery]]:
        record = item.record
        key = (record.origin.key, record.message_id)
        if self._known(conn, key):
            return self._find(conn, key), []
        conn.execute(_INSERT_MESSAGE, (self._recent.take(key), *_message_row(record)))
        return None, [self._insert_delivery(conn, d, item.now) for d in item.deliveries]

    def _insert_records(self, conn: sqlite3.Connection, items: list[_Accept]) -> None:
        """Insert the message records of a batch; raises _Conflict if any key was known.

        Records of one originator go straight into `messages`, where ordered msgIds land
        on the page the previous one did. Records of several originators land at as many
        places of the key, so they go to `recent_messages` for the next move (ADR 0023)."""
        recent = self._recent
        keys = [(item.record.origin.key, item.record.message_id) for item in items]
        first = keys[0][0]
        if all(key[0] == first for key in keys):
            if any(recent.find(key) is not None for key in keys):
                raise _Conflict
            before = conn.total_changes
            conn.executemany(_INSERT_KEYED, [_message_row(item.record) for item in items])
            if conn.total_changes - before != len(items):  # a known key, or one key twice
                raise _Conflict
            return
        rows = []
        for key, item in zip(keys, items, strict=True):
            if self._known(conn, key):  # also a key earlier in this batch
                raise _Conflict
            rows.append((recent.take(key), *_message_row(item.record)))
        conn.executemany(_INSERT_MESSAGE, rows)

    def _known(self, conn: sqlite3.Connection, key: tuple[str, str]) -> bool:
        """Whether a message with this (originator key, msgId) is stored."""
        return (
            self._recent.find(key) is not None
            or conn.execute(_KNOWN_MESSAGE, key).fetchone() is not None
        )

    def _accept_all(
        self, conn: sqlite3.Connection, items: list[_Accept]
    ) -> list[tuple[MessageRecord | None, list[Delivery]]]:
        """Insert every accept of a batch at once; raises _Conflict if any key was known."""
        self._insert_records(conn, items)
        ids = self._ids
        unindexed = self._unindexed
        rows: list[tuple[Any, ...]] = []
        segments: list[tuple[Any, ...]] = []
        results: list[tuple[MessageRecord | None, list[Delivery]]] = []
        for item in items:
            created = []
            for d in item.deliveries:
                delivery_id = ids.take()
                row = _delivery_row(delivery_id, d, item.now)
                rows.append(row)
                unindexed.inserted(delivery_id, row[1])
                if d.segment_id is not None:
                    segments.append(_segment_row(d))
                created.append(parse.created(delivery_id, d))
            results.append((None, created))
        conn.executemany(_INSERT_DELIVERY, rows)
        if segments:
            conn.executemany(_KEEP_SEGMENT, segments)
        return results

    async def find_message(self, origin: Address, message_id: str) -> MessageRecord | None:
        return self._find(self._read(), (origin.key, message_id))

    def _find(self, conn: sqlite3.Connection, key: tuple[str, str]) -> MessageRecord | None:
        rowid = self._recent.find(key)
        if rowid is not None:
            row = conn.execute(_FIND_RECENT, (rowid,)).fetchone()
        else:
            row = conn.execute(_FIND_MESSAGE, key).fetchone()
        return parse.record(row) if row else None

    async def accept_report(
        self, origin: Address, message_id: str, delivery: NewDelivery, *, per_member: bool = False
    ) -> Delivery | None:
        now = self._clock()

        def op(conn: sqlite3.Connection) -> Delivery | None:
            if per_member:  # a group message: one report per member (the report's issuer)
                cur = conn.execute(
                    "INSERT OR IGNORE INTO member_reports (origin, message_id, reporter)"
                    " VALUES (?,?,?)",
                    (origin.key, message_id, delivery.origin.key),
                )
            elif (rowid := self._recent.find((origin.key, message_id))) is not None:
                cur = conn.execute(
                    "UPDATE recent_messages SET report_received=1 WHERE id=? AND report_received=0",
                    (rowid,),
                )
            else:
                cur = conn.execute(
                    "UPDATE messages SET report_received=1"
                    " WHERE origin=? AND message_id=? AND report_received=0",
                    (origin.key, message_id),
                )
            if cur.rowcount == 0:
                return None
            return self._insert_delivery(conn, delivery, now)

        return await self._write(op)

    async def add_deliveries_once(self, deliveries: Sequence[NewDelivery]) -> list[Delivery]:
        """Add the deliveries whose (origin, msgId, recipient) has none queued yet: a fan-out
        that restarts after a crash does not queue a member twice."""
        now = self._clock()

        def op(conn: sqlite3.Connection) -> list[Delivery]:
            out = []
            for d in deliveries:
                key = d.recipient.key
                known = conn.execute(
                    "SELECT 1 FROM deliveries WHERE recipient=? AND indexed=1 AND origin=?"
                    " AND message_id=? LIMIT 1",
                    (key, d.origin.key, d.message_id),
                ).fetchone()
                if known is None and self._unindexed.count(key):
                    known = conn.execute(
                        "SELECT 1 FROM deliveries WHERE id>? AND indexed=0 AND recipient=?"
                        " AND origin=? AND message_id=? LIMIT 1",
                        (self._unindexed.through, key, d.origin.key, d.message_id),
                    ).fetchone()
                if known is None:  # indexed at once: a repeat later in this op must find it
                    out.append(self._insert_delivery(conn, d, now, indexed=True))
            return out

        return await self._write(op)

    # groups -----------------------------------------------------------------------------------

    async def save_group(self, group_id: str, members: Sequence[Address]) -> bool:
        """Create or replace a group; True when it was created."""
        encoded = "\n".join(m.key for m in members).encode()

        def op(conn: sqlite3.Connection) -> bool:
            existed = conn.execute("SELECT 1 FROM groups WHERE group_id=?", (group_id,)).fetchone()
            conn.execute(
                "INSERT INTO groups (group_id, members) VALUES (?,?)"
                " ON CONFLICT(group_id) DO UPDATE SET members=excluded.members",
                (group_id, encoded),
            )
            return existed is None

        return await self._write(op)

    async def delete_group(self, group_id: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM groups WHERE group_id=?", (group_id,)).rowcount > 0

        return await self._write(op)

    async def load_groups(self) -> dict[str, tuple[Address, ...]]:
        rows = self._read().execute("SELECT group_id, members FROM groups").fetchall()
        return {g: tuple(Address.from_key(k) for k in m.decode().split("\n") if k) for g, m in rows}

    # topics -----------------------------------------------------------------------------------

    async def save_topic_subscriptions(self, subscriptions: Sequence[TopicSubscriber]) -> None:
        rows = [(t.topic, t.subscriber.key, t.expires_at) for t in subscriptions]

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO topic_subscriptions (topic, subscriber, expires_at) VALUES (?,?,?)"
                " ON CONFLICT(topic, subscriber) DO UPDATE SET expires_at=excluded.expires_at",
                rows,
            )

        await self._write(op)

    async def delete_topic_subscriptions(self, subscriptions: Sequence[TopicSubscriber]) -> None:
        rows = [(t.topic, t.subscriber.key) for t in subscriptions]

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany("DELETE FROM topic_subscriptions WHERE topic=? AND subscriber=?", rows)

        await self._write(op)

    async def load_topic_subscriptions(self) -> list[TopicSubscriber]:
        rows = (
            self._read()
            .execute("SELECT topic, subscriber, expires_at FROM topic_subscriptions")
            .fetchall()
        )
        return [TopicSubscriber(t, Address.from_key(s), e) for t, s, e in rows]

    async def save_topiclist_watch(self, watch: TopicListWatch) -> None:
        row = (watch.subscription_id, watch.origin.key, watch.notification_uri, watch.expires_at)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO topiclist_subscriptions"
                " (subscription_id, origin, notification_uri, expires_at) VALUES (?,?,?,?)",
                row,
            )

        await self._write(op)

    async def delete_topiclist_watch(self, subscription_id: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "DELETE FROM topiclist_subscriptions WHERE subscription_id=?", (subscription_id,)
            )
            return cur.rowcount > 0

        return await self._write(op)

    async def load_topiclist_watches(self) -> list[TopicListWatch]:
        rows = (
            self._read()
            .execute(
                "SELECT subscription_id, origin, notification_uri, expires_at"
                " FROM topiclist_subscriptions"
            )
            .fetchall()
        )
        return [TopicListWatch(i, Address.from_key(o), u, e) for i, o, u, e in rows]

    async def finish(
        self, delivery: Delivery, outcome: Outcome, follow_up: NewDelivery | None
    ) -> Delivery | None:
        if follow_up is None:  # the hot path: a handed-over delivery, deleted in a batch
            await self._write(_Delete(delivery.delivery_id))
            return None
        now, report = self._clock(), follow_up

        def op(conn: sqlite3.Connection) -> Delivery | None:
            cur = conn.execute(_DELETE_DELIVERY, (delivery.delivery_id,))
            if cur.rowcount == 0:
                return None
            self._unindexed.deleted(delivery.delivery_id)
            return self._insert_delivery(conn, report, now)

        return await self._write(op)

    async def record_attempt(self, delivery_id: int, attempts: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE deliveries SET attempts=? WHERE id=?", (attempts, delivery_id))

        await self._write(op)

    async def pending(
        self, recipient: Address, exclude: Sequence[int], limit: int
    ) -> list[Delivery]:
        conn, key = self._read(), recipient.key
        if exclude:
            marks = ",".join("?" * len(exclude))
            rows = conn.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE recipient=? AND indexed=1"
                f" AND id NOT IN ({marks}) ORDER BY priority, id LIMIT ?",
                (key, *exclude, limit),
            ).fetchall()
        else:
            rows = conn.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE recipient=? AND indexed=1"
                " ORDER BY priority, id LIMIT ?",
                (key, limit),
            ).fetchall()
        if self._unindexed.count(key):  # the newest rows, not folded into the index yet
            skip = set(exclude)
            rows.extend(
                r
                for r in conn.execute(
                    f"SELECT {_DELIVERY_COLUMNS} FROM deliveries"
                    " WHERE id>? AND indexed=0 AND recipient=?",
                    (self._unindexed.through, key),
                )
                if r[0] not in skip
            )
            rows.sort(key=_queue_order)
            del rows[limit:]
        return [parse.delivery(r) for r in rows]

    async def recipients_with_work_after(self, after_id: int) -> tuple[list[Address], int]:
        rows = (
            self._read()
            .execute(
                "SELECT recipient, max(id) FROM deliveries WHERE id>? GROUP BY recipient",
                (after_id,),
            )
            .fetchall()
        )
        return [Address.from_key(r[0]) for r in rows], max((r[1] for r in rows), default=after_id)

    async def recipients_with_pending(self, after: str = "", limit: int = 0) -> list[Address]:
        rows = self._read().execute(
            "SELECT DISTINCT recipient FROM deliveries WHERE recipient>? AND indexed=1"
            " ORDER BY recipient LIMIT ?",
            (after, limit or -1),
        )
        keys = {r[0] for r in rows.fetchall()}
        keys.update(k for k in self._unindexed.recipients() if k > after)
        ordered = sorted(keys)
        return [Address.from_key(k) for k in (ordered[:limit] if limit else ordered)]

    async def expire(
        self,
        now: float,
        limit: int,
        exclude: Sequence[int],
        spare: Callable[[Address], bool] | None = None,
        spare_until: float = -math.inf,
    ) -> list[Delivery]:
        skip = set(exclude)

        def op(conn: sqlite3.Connection) -> list[Delivery]:
            rows = [
                r
                for r in conn.execute(
                    f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE expires_at<=?"
                    " ORDER BY expires_at LIMIT ?",
                    (now, limit + len(skip)),
                ).fetchall()
                if r[0] not in skip and not parse.spared(r, spare, spare_until)
            ][:limit]
            conn.executemany("DELETE FROM deliveries WHERE id=?", [(r[0],) for r in rows])
            for r in rows:
                self._unindexed.deleted(r[0])
            return [parse.delivery(r) for r in rows]

        return await self._write(op)

    async def add_deliveries(self, deliveries: Sequence[NewDelivery]) -> list[Delivery]:
        now = self._clock()

        def op(conn: sqlite3.Connection) -> list[Delivery]:
            return [self._insert_delivery(conn, d, now) for d in deliveries]

        return await self._write(op)

    async def purge_messages(self, now: float) -> int:
        def op(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM kept_segments WHERE expires_at<=?", (now,))
            gone = conn.execute(
                "DELETE FROM recent_messages WHERE keep_until<=? RETURNING origin, message_id",
                (now,),
            ).fetchall()
            for origin, message_id in gone:
                self._recent.removed((origin, message_id))
            purged = conn.execute("DELETE FROM messages WHERE keep_until<=?", (now,)).rowcount
            return len(gone) + int(purged)

        return await self._write(op)

    async def stats(self, now: float) -> tuple[int, float]:
        count, oldest = (
            self._read().execute("SELECT COUNT(*), MIN(created_at) FROM deliveries").fetchone()
        )
        return int(count), (max(0.0, now - oldest) if oldest is not None else 0.0)

    # AS registrations ---------------------------------------------------------------------------

    async def save_as_registration(self, registration: AsRegistration) -> AsRegistration:
        def op(conn: sqlite3.Connection) -> AsRegistration:
            row = conn.execute(
                "SELECT registration_id FROM as_registrations WHERE as_service_id=?",
                (registration.as_service_id,),
            ).fetchone()
            reg_id = row[0] if row else registration.registration_id
            conn.execute(
                "INSERT INTO as_registrations (registration_id, as_service_id, app_id,"
                " target_uri, profile) VALUES (?,?,?,?,?) ON CONFLICT(as_service_id) DO UPDATE"
                " SET app_id=excluded.app_id, target_uri=excluded.target_uri,"
                " profile=excluded.profile",
                (
                    reg_id,
                    registration.as_service_id,
                    registration.app_id,
                    registration.target_uri,
                    registration.profile_json,
                ),
            )
            return AsRegistration(
                registration_id=reg_id,
                as_service_id=registration.as_service_id,
                app_id=registration.app_id,
                target_uri=registration.target_uri,
                profile_json=registration.profile_json,
            )

        return await self._write(op)

    async def delete_as_registration(self, registration_id: str) -> AsRegistration | None:
        def op(conn: sqlite3.Connection) -> AsRegistration | None:
            row = conn.execute(
                "DELETE FROM as_registrations WHERE registration_id=? RETURNING"
                " registration_id, as_service_id, app_id, target_uri, profile",
                (registration_id,),
            ).fetchone()
            return AsRegistration(*row) if row else None

        return await self._write(op)

    async def load_as_registrations(self) -> list[AsRegistration]:
        rows = (
            self._read()
            .execute(
                "SELECT registration_id, as_service_id, app_id, target_uri, profile"
                " FROM as_registrations"
            )
            .fetchall()
        )
        return [AsRegistration(*r) for r in rows]

    async def pending_count(self, recipient: Address) -> int:
        row = (
            self._read()
            .execute(
                "SELECT COUNT(*) FROM deliveries WHERE recipient=? AND indexed=1",
                (recipient.key,),
            )
            .fetchone()
        )
        return int(row[0]) + self._unindexed.count(recipient.key)

    # UE registrations ---------------------------------------------------------------------------

    async def save_ue_registration(self, registration: UeRegistration) -> UeRegistration | None:
        def op(conn: sqlite3.Connection) -> UeRegistration | None:
            old = conn.execute(
                f"DELETE FROM ue_registrations WHERE ue_service_id=? RETURNING {_UE_COLUMNS}",
                (registration.ue_service_id,),
            ).fetchone()
            conn.execute(
                f"INSERT INTO ue_registrations ({_UE_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
                (
                    registration.registration_id,
                    registration.ue_service_id,
                    registration.max_segment_size,
                    registration.communication_availability,
                    registration.triggering_info,
                    registration.gateway_type,
                    registration.gateway_api_root,
                ),
            )
            return UeRegistration(*old) if old else None

        return await self._write(op)

    async def delete_ue_registration(self, registration_id: str) -> UeRegistration | None:
        def op(conn: sqlite3.Connection) -> UeRegistration | None:
            row = conn.execute(
                f"DELETE FROM ue_registrations WHERE registration_id=? RETURNING {_UE_COLUMNS}",
                (registration_id,),
            ).fetchone()
            return UeRegistration(*row) if row else None

        return await self._write(op)

    async def load_ue_registrations(self) -> list[UeRegistration]:
        rows = self._read().execute(f"SELECT {_UE_COLUMNS} FROM ue_registrations").fetchall()
        return [UeRegistration(*r) for r in rows]

    async def find_ue_registrations(self, ue_service_ids: Sequence[str]) -> list[UeRegistration]:
        conn = self._read()
        found: list[UeRegistration] = []
        ids = list(dict.fromkeys(ue_service_ids))
        for at in range(0, len(ids), 500):  # within SQLite's limit on bound parameters
            chunk = ids[at : at + 500]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT {_UE_COLUMNS} FROM ue_registrations WHERE ue_service_id IN ({marks})",
                chunk,
            ).fetchall()
            found.extend(UeRegistration(*r) for r in rows)
        return found

    # segmentation -------------------------------------------------------------------------------

    async def resend_segments(self, segment_id: str, numbers: Sequence[int]) -> list[Delivery]:
        now = self._clock()
        wanted = sorted(set(numbers))

        def op(conn: sqlite3.Connection) -> list[Delivery]:
            if not wanted:
                return []
            marks = ",".join("?" * len(wanted))
            rows = conn.execute(
                "SELECT recipient, kind, priority, body, origin, message_id, wants_report,"
                f" expires_at FROM kept_segments WHERE segment_id=? AND number IN ({marks})"
                " AND expires_at>? ORDER BY number",
                (segment_id, *wanted, now),
            ).fetchall()
            return [
                self._insert_delivery(
                    conn,
                    NewDelivery(
                        kind=DeliveryKind(r[1]),
                        recipient=Address.from_key(r[0]),
                        body=r[3],
                        priority=Priority(r[2]),
                        expires_at=r[7],
                        origin=Address.from_key(r[4]),
                        message_id=r[5],
                        wants_report=bool(r[6]),
                    ),
                    now,
                )
                for r in rows
            ]

        return await self._write(op)

    async def forget_segments(self, segment_id: str) -> int:
        def op(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM kept_segments WHERE segment_id=?", (segment_id,)
            ).rowcount

        return await self._write(op)

    async def add_uplink_segment(self, segment: UplinkSegment) -> list[UplinkSegment]:
        def op(conn: sqlite3.Connection) -> list[UplinkSegment]:
            conn.execute(
                f"INSERT OR IGNORE INTO uplink_segments ({_UPLINK_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
                (
                    segment.origin.key,
                    segment.segment_id,
                    segment.number,
                    segment.total,
                    int(segment.last),
                    segment.body,
                    segment.expires_at,
                ),
            )
            rows = conn.execute(
                f"SELECT {_UPLINK_COLUMNS} FROM uplink_segments WHERE origin=? AND segment_id=?"
                " ORDER BY number",
                (segment.origin.key, segment.segment_id),
            ).fetchall()
            return [parse.uplink(r) for r in rows]

        return await self._write(op)

    async def drop_uplink_segments(self, origin: Address, segment_id: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM uplink_segments WHERE origin=? AND segment_id=?",
                (origin.key, segment_id),
            )

        await self._write(op)

    async def expired_uplink_segments(self, now: float) -> list[UplinkSegment]:
        rows = (
            self._read()
            .execute(
                f"SELECT {_UPLINK_COLUMNS} FROM uplink_segments u WHERE expires_at<=? AND number="
                "(SELECT MIN(number) FROM uplink_segments v WHERE v.origin=u.origin"
                " AND v.segment_id=u.segment_id) LIMIT 512",
                (now,),
            )
            .fetchall()
        )
        return [parse.uplink(r) for r in rows]


_UE_COLUMNS = (
    "registration_id, ue_service_id, max_segment_size, comm_avail, trig_info,"
    " gateway_type, gateway_api_root"
)
_UPLINK_COLUMNS = "origin, segment_id, number, total, last, body, expires_at"


_FIND_MESSAGE = f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE origin=? AND message_id=?"
_FIND_RECENT = f"SELECT {_MESSAGE_COLUMNS} FROM recent_messages WHERE id=?"


def _move_recent(conn: sqlite3.Connection) -> int:
    """Move every row of `recent_messages` into `messages` in key order (ADR 0023), so that
    each page of its key takes all its new rows in one write; returns how many."""
    moved = conn.execute(
        f"INSERT INTO messages ({_MESSAGE_COLUMNS}) SELECT {_MESSAGE_COLUMNS}"
        " FROM recent_messages ORDER BY origin, message_id"
    ).rowcount
    conn.execute("DELETE FROM recent_messages")
    return int(moved)


def _incremental_vacuum_on(conn: sqlite3.Connection) -> None:
    """Store files use auto_vacuum=INCREMENTAL, so the pages of delivered and expired
    messages can go back to the file system (ADR 0019). A file made without it is rebuilt
    once (VACUUM; instant for a new, empty file)."""
    if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("VACUUM")
        log.info("store file switched to incremental vacuum")


def _queue_order(row: tuple[Any, ...]) -> tuple[int, int]:
    """(priority, id) of a `_DELIVERY_COLUMNS` row: the order of the queue index."""
    return row[4], row[0]


def _fold_rest(conn: sqlite3.Connection, last: int) -> int:
    """Fold every unindexed row up to `last` (ADR 0022) and move every recent message (ADR
    0023) in one transaction: at a clean close, and at open for what a killed process left;
    returns the id up to which every delivery is indexed."""
    row = conn.execute("SELECT value FROM store_meta WHERE name='queue_indexed_through'")
    through = int(row.fetchone()[0])
    conn.execute("BEGIN IMMEDIATE")
    try:
        folded = 0
        if last > through:
            folded = conn.execute(
                "UPDATE deliveries SET indexed=1 WHERE id>? AND indexed=0", (through,)
            ).rowcount
            conn.execute(
                "UPDATE store_meta SET value=? WHERE name='queue_indexed_through'", (last,)
            )
        moved = _move_recent(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    if folded or moved:
        log.info("store: rows folded", extra={"rows": folded, "messages": moved})
    return max(last, through)


def _resolve_all(results: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for fut, ok, value in results:
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
