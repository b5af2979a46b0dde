# SPDX-License-Identifier: Apache-2.0
"""The PostgreSQL store: the `MessageStore` port on asyncpg, the system of record beyond one
machine (DESIGN 3, issue 8; ADR 0017).

Same semantics as the embedded store (`storage/sqlite.py`, ADR 0003): every method returns
after its transaction committed, so a sender acknowledged afterwards survives kill -9 of the
server. Accepts, the hot path, are group-committed: those queued while a batch is in flight
commit together in the next one, as one statement of array parameters (`pg_rows.ACCEPT`).
The other writes are group-committed too: those queued meanwhile run in order in one
transaction, one batch at a time. Reads use any pooled connection.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import asyncpg

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
from msgin5g.storage import pg_rows as pg
from msgin5g.storage import rows as parse
from msgin5g.storage.pg_schema import SCHEMA_NAME, migrate

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn = PoolConnectionProxy[asyncpg.Record]

log = logging.getLogger(__name__)

T = TypeVar("T")

Future = asyncio.Future[Any]


class _Attempt(NamedTuple):
    """A queued `record_attempt`: a batch's attempts go in one UPDATE."""

    delivery_id: int
    attempts: int


class _Done(NamedTuple):
    """A queued `finish` without follow-up: a batch's go in one DELETE."""

    delivery_id: int


if TYPE_CHECKING:
    _Op = Callable[[Conn], Awaitable[Any]] | _Attempt | _Done

_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
"""What a failing database call raises: turned into StorageFailure (503) at this edge."""


class PostgresStore:
    """`MessageStore` on PostgreSQL through an asyncpg pool; tables live in `schema`
    (created and migrated at `open()`), so several stores can share one database."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float],
        schema: str = "public",
        pool_size: int = 10,
        max_batch: int = 1024,
        batches_in_flight: int = 2,
        command_timeout: float = 30.0,
    ) -> None:
        if not SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"invalid PostgreSQL schema name {schema!r}")
        self._url = url
        self._clock = clock
        self._schema = schema
        self._pool_size = max(2, pool_size)
        self._max_batch = max_batch
        self._batches_in_flight = max(1, min(batches_in_flight, self._pool_size - 1))
        self._command_timeout = command_timeout
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._queue: list[pg.Accept] = []
        self._flushing = 0
        self._ops: list[tuple[_Op, Future]] = []
        self._ops_flushing = False
        self._flushers: set[asyncio.Task[None]] = set()
        self.commits = 0
        self.committed_ops = 0

    # lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, then create or migrate the schema.

        Raises:
            StorageFailure: the database cannot be reached or refused the login or schema
                (the message never contains the password).
        """
        try:
            pool = await asyncpg.create_pool(
                self._url,
                min_size=1,
                max_size=self._pool_size,
                command_timeout=self._command_timeout,
                server_settings={"search_path": self._schema, "application_name": "msgin5g"},
                reset=_reset,
            )
        except (*_ERRORS, ValueError) as exc:
            raise StorageFailure(f"cannot connect to PostgreSQL: {_describe(exc)}") from None
        try:
            async with pool.acquire() as conn:
                await migrate(conn, self._schema)
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, _ERRORS):
                raise StorageFailure(f"cannot prepare PostgreSQL schema: {exc}") from exc
            raise
        self._pool = pool

    async def close(self) -> None:
        while self._flushers:
            await asyncio.gather(*self._flushers, return_exceptions=True)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    def _require(self) -> asyncpg.Pool[asyncpg.Record]:
        if self._pool is None:
            raise StorageFailure("store is closed")
        return self._pool

    async def _write(self, op: Callable[[Conn], Awaitable[T]]) -> T:
        """Queue `op` for the next group commit of writes; returns after its COMMIT.

        Raises:
            StorageFailure: the transaction did not commit (nothing of `op` is kept).
        """
        value: T = await self._enqueue(op)
        return value

    def _enqueue(self, op: _Op) -> Future:
        self._require()
        future: Future = asyncio.get_running_loop().create_future()
        self._ops.append((op, future))
        if not self._ops_flushing:
            self._ops_flushing = True
            self._spawn(self._flush_ops(), "msgin5g-pg-write-commit")
        return future

    async def _flush_ops(self) -> None:
        """Run queued writes batch after batch, each batch one transaction on one connection,
        in queue order (as the SQLite store does); one batch at a time, so two of our own
        transactions never wait on each other's row locks."""
        try:
            while self._ops:
                batch = self._ops[: self._max_batch]
                del self._ops[: self._max_batch]
                try:
                    await self._commit_ops(batch)
                finally:
                    _fail_ops(batch, StorageFailure("store write interrupted"))
        finally:
            self._ops_flushing = False  # no await since the empty-queue check

    async def _commit_ops(self, batch: list[tuple[_Op, Future]]) -> None:
        pool = self._pool
        if pool is None:
            _fail_ops(batch, StorageFailure("store is closed"))
            return
        # The hand-over bookkeeping of the dispatcher, many per batch when recipients are
        # retried, goes in two array statements first. Writes queued together are concurrent
        # calls with no order between them, and these commute with the rest of the batch.
        done = [op.delivery_id for op, _f in batch if isinstance(op, _Done)]
        tried = {op.delivery_id: op.attempts for op, _f in batch if isinstance(op, _Attempt)}
        try:
            async with pool.acquire() as conn, conn.transaction():
                if done:
                    await conn.execute("DELETE FROM deliveries WHERE id = ANY($1::bigint[])", done)
                if tried:
                    await conn.execute(
                        "UPDATE deliveries SET attempts=v.attempts FROM unnest($1::bigint[],"
                        " $2::integer[]) AS v(id, attempts) WHERE deliveries.id=v.id",
                        list(tried),
                        list(tried.values()),
                    )
                values = [
                    None if isinstance(op, _Attempt | _Done) else await op(conn)
                    for op, _future in batch
                ]
        except Exception as exc:
            if len(batch) == 1:
                log.error("store write failed", exc_info=exc)
                _fail_ops(batch, StorageFailure(f"store write failed: {exc}"))
                return
            for item in batch:  # each alone, so only the culprit fails
                await self._commit_ops([item])
            return
        self.commits += 1
        self.committed_ops += len(batch)
        for (_op, future), value in zip(batch, values, strict=True):
            if not future.done():
                future.set_result(value)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._flushers.add(task)
        task.add_done_callback(self._flushers.discard)

    async def _read(self, op: Callable[[Conn], Awaitable[T]]) -> T:
        pool = self._require()
        try:
            async with pool.acquire() as conn:
                return await op(conn)
        except StorageFailure:
            raise
        except Exception as exc:
            log.error("store read failed", exc_info=exc)
            raise StorageFailure(f"store read failed: {exc}") from exc

    # group commit ------------------------------------------------------------------------------

    async def accept(
        self, record: MessageRecord, deliveries: Sequence[NewDelivery]
    ) -> tuple[MessageRecord | None, list[Delivery]]:
        self._require()
        future: asyncio.Future[tuple[MessageRecord | None, list[Delivery]]] = (
            asyncio.get_running_loop().create_future()
        )
        self._queue.append(pg.Accept(record, deliveries, self._clock(), future))
        if self._flushing < self._batches_in_flight:
            self._flushing += 1
            self._spawn(self._flush(), "msgin5g-pg-accept-commit")
        return await future

    async def _flush(self) -> None:
        """Commit queued accepts batch after batch until the queue is empty. A task started by
        the first accept runs after the current loop iteration, so the accepts of concurrent
        requests ready in that iteration share its transaction."""
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    await self._commit_batch(batch)
                finally:
                    _fail(batch, StorageFailure("store write interrupted"))
        finally:
            # No await between the empty-queue check and this: an accept arriving later
            # sees the count drop and starts a new flusher.
            self._flushing -= 1

    async def _commit_batch(self, batch: list[pg.Accept]) -> None:
        pool = self._pool
        if pool is None:
            _fail(batch, StorageFailure("store is closed"))
            return
        try:
            async with pool.acquire() as conn:
                created = await pg.accept_all(conn, batch)
        except Exception as exc:
            if len(batch) == 1:
                log.error("store write failed", exc_info=exc)
                _fail(batch, StorageFailure(f"store write failed: {exc}"))
                return
            # Run each alone so only the culprit fails.
            for item in batch:
                await self._commit_batch([item])
            return
        self.commits += 1
        self.committed_ops += len(batch)
        known = sorted({i.key for i, made in zip(batch, created, strict=True) if made is None})
        previous: dict[tuple[str, str], MessageRecord] = {}
        lookup_failed: StorageFailure | None = None
        if known:
            # Committed already: if only this read fails, the new accepts still stand.
            try:
                async with pool.acquire() as conn:
                    previous = await pg.find_records(conn, known)
            except Exception as exc:
                log.error("store read failed", exc_info=exc)
                lookup_failed = StorageFailure(f"store read failed: {exc}")
        for item, made in zip(batch, created, strict=True):
            if item.future.done():
                continue
            if made is not None:
                item.future.set_result((None, made))
            elif lookup_failed is not None:
                item.future.set_exception(lookup_failed)
            else:
                item.future.set_result((previous.get(item.key), []))

    # messages ---------------------------------------------------------------------------------

    async def find_message(self, origin: Address, message_id: str) -> MessageRecord | None:
        async def op(conn: Conn) -> MessageRecord | None:
            row = await conn.fetchrow(
                f"SELECT {pg.MESSAGE_COLUMNS} FROM messages WHERE origin=$1 AND message_id=$2",
                origin.key,
                message_id,
            )
            return parse.record(row) if row else None

        return await self._read(op)

    async def accept_report(
        self, origin: Address, message_id: str, delivery: NewDelivery, *, per_member: bool = False
    ) -> Delivery | None:
        now = self._clock()

        async def op(conn: Conn) -> Delivery | None:
            if per_member:  # a group message: one report per member (the report's issuer)
                status = await conn.execute(
                    "INSERT INTO member_reports (origin, message_id, reporter) VALUES ($1,$2,$3)"
                    " ON CONFLICT DO NOTHING",
                    origin.key,
                    message_id,
                    delivery.origin.key,
                )
            else:
                status = await conn.execute(
                    "UPDATE messages SET report_received=true"
                    " WHERE origin=$1 AND message_id=$2 AND NOT report_received",
                    origin.key,
                    message_id,
                )
            if pg.count(status) == 0:
                return None
            (created,) = await pg.insert(conn, [delivery], now)
            return created

        return await self._write(op)

    async def add_deliveries_once(self, deliveries: Sequence[NewDelivery]) -> list[Delivery]:
        """Add the deliveries whose (origin, msgId, recipient) has none queued yet: a fan-out
        that restarts after a crash does not queue a member twice."""
        now = self._clock()
        messages = sorted({(d.origin.key, d.message_id) for d in deliveries})

        async def op(conn: Conn) -> list[Delivery]:
            # Another instance may fan the same message out: serialise per message.
            for origin, message_id in messages:
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                    f"fan-out:{origin}\n{message_id}",
                )
            rows = await conn.fetch(
                "SELECT DISTINCT recipient, origin, message_id FROM deliveries"
                " WHERE (recipient, origin, message_id) IN"
                " (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))",
                [d.recipient.key for d in deliveries],
                [d.origin.key for d in deliveries],
                [d.message_id for d in deliveries],
            )
            queued = {(r[0], r[1], r[2]) for r in rows}
            fresh = []
            for d in deliveries:
                key = (d.recipient.key, d.origin.key, d.message_id)
                if key not in queued:
                    queued.add(key)
                    fresh.append(d)
            return await pg.insert(conn, fresh, now)

        return await self._write(op)

    async def add_deliveries(self, deliveries: Sequence[NewDelivery]) -> list[Delivery]:
        now = self._clock()

        async def op(conn: Conn) -> list[Delivery]:
            return await pg.insert(conn, deliveries, now)

        return await self._write(op)

    async def finish(
        self, delivery: Delivery, outcome: Outcome, follow_up: NewDelivery | None
    ) -> Delivery | None:
        now = self._clock()

        if follow_up is None:
            await self._enqueue(_Done(delivery.delivery_id))
            return None

        async def op(conn: Conn) -> Delivery | None:
            status = await conn.execute("DELETE FROM deliveries WHERE id=$1", delivery.delivery_id)
            if pg.count(status) == 0:
                return None
            (created,) = await pg.insert(conn, [follow_up], now)
            return created

        return await self._write(op)

    async def record_attempt(self, delivery_id: int, attempts: int) -> None:
        await self._enqueue(_Attempt(delivery_id, attempts))

    async def pending(
        self, recipient: Address, exclude: Sequence[int], limit: int
    ) -> list[Delivery]:
        async def op(conn: Conn) -> list[Delivery]:
            rows = await conn.fetch(
                f"SELECT {pg.DELIVERY_COLUMNS} FROM deliveries WHERE recipient=$1"
                " AND NOT (id = ANY($2::bigint[])) ORDER BY priority, id LIMIT $3",
                recipient.key,
                list(exclude),
                limit,
            )
            return [parse.delivery(r) for r in rows]

        return await self._read(op)

    async def recipients_with_work_after(self, after_id: int) -> tuple[list[Address], int]:
        async def op(conn: Conn) -> tuple[list[Address], int]:
            rows = await conn.fetch(
                "SELECT recipient, max(id) FROM deliveries WHERE id>$1 GROUP BY recipient",
                after_id,
            )
            top = max((int(r[1]) for r in rows), default=after_id)
            return [Address.from_key(r[0]) for r in rows], top

        return await self._read(op)

    async def recipients_with_pending(self, after: str = "", limit: int = 0) -> list[Address]:
        async def op(conn: Conn) -> list[Address]:
            rows = await conn.fetch(
                "SELECT DISTINCT recipient FROM deliveries WHERE recipient>$1"
                " ORDER BY recipient LIMIT $2",
                after,
                limit or None,
            )
            return [Address.from_key(r[0]) for r in rows]

        return await self._read(op)

    async def expire(
        self,
        now: float,
        limit: int,
        exclude: Sequence[int],
        spare: Callable[[Address], bool] | None = None,
        spare_until: float = -math.inf,
    ) -> list[Delivery]:
        async def op(conn: Conn) -> list[Delivery]:
            # SKIP LOCKED: rows another transaction is finishing right now are left to it.
            if spare is None:
                rows = await conn.fetch(
                    "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries"
                    " WHERE expires_at<=$1 AND NOT (id = ANY($2::bigint[])) ORDER BY expires_at"
                    f" LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING {pg.DELIVERY_COLUMNS}",
                    now,
                    list(exclude),
                    limit,
                )
            else:  # which recipients to spare is known here only: read, choose, then lock
                # (spared rows stay unlocked for the instance running them; a wider look
                # than `limit` sees past those at the head of the queue)
                candidates = await conn.fetch(
                    f"SELECT {pg.DELIVERY_COLUMNS} FROM deliveries"
                    " WHERE expires_at<=$1 AND NOT (id = ANY($2::bigint[])) ORDER BY expires_at"
                    " LIMIT $3",
                    now,
                    list(exclude),
                    4 * limit,
                )
                chosen = [r[0] for r in candidates if not parse.spared(r, spare, spare_until)]
                rows = await conn.fetch(
                    "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries"
                    " WHERE id = ANY($1::bigint[]) FOR UPDATE SKIP LOCKED)"
                    f" RETURNING {pg.DELIVERY_COLUMNS}",
                    chosen[:limit],
                )
            return sorted(
                (parse.delivery(r) for r in rows), key=lambda d: (d.expires_at, d.delivery_id)
            )

        return await self._write(op)

    async def purge_messages(self, now: float) -> int:
        async def op(conn: Conn) -> int:
            await conn.execute("DELETE FROM kept_segments WHERE expires_at<=$1", now)
            return pg.count(await conn.execute("DELETE FROM messages WHERE keep_until<=$1", now))

        return await self._write(op)

    async def stats(self, now: float) -> tuple[int, float]:
        async def op(conn: Conn) -> tuple[int, float]:
            row = await conn.fetchrow("SELECT count(*), min(created_at) FROM deliveries")
            assert row is not None
            count, oldest = row[0], row[1]
            return int(count), (max(0.0, now - oldest) if oldest is not None else 0.0)

        return await self._read(op)

    async def pending_count(self, recipient: Address) -> int:
        async def op(conn: Conn) -> int:
            value = await conn.fetchval(
                "SELECT count(*) FROM deliveries WHERE recipient=$1", recipient.key
            )
            return int(value)

        return await self._read(op)

    # groups -----------------------------------------------------------------------------------

    async def save_group(self, group_id: str, members: Sequence[Address]) -> bool:
        """Create or replace a group; True when it was created."""
        keys = [m.key for m in members]

        async def op(conn: Conn) -> bool:
            # xmax is 0 on a freshly inserted row, set on one the upsert updated.
            created = await conn.fetchval(
                "INSERT INTO groups (group_id, members) VALUES ($1, $2) ON CONFLICT (group_id)"
                " DO UPDATE SET members=excluded.members RETURNING xmax = 0",
                group_id,
                keys,
            )
            return bool(created)

        return await self._write(op)

    async def delete_group(self, group_id: str) -> bool:
        async def op(conn: Conn) -> bool:
            return (
                pg.count(await conn.execute("DELETE FROM groups WHERE group_id=$1", group_id)) > 0
            )

        return await self._write(op)

    async def load_groups(self) -> dict[str, tuple[Address, ...]]:
        async def op(conn: Conn) -> dict[str, tuple[Address, ...]]:
            rows = await conn.fetch("SELECT group_id, members FROM groups")
            return {r[0]: tuple(Address.from_key(k) for k in r[1]) for r in rows}

        return await self._read(op)

    # topics -----------------------------------------------------------------------------------

    async def save_topic_subscriptions(self, subscriptions: Sequence[TopicSubscriber]) -> None:
        rows = [(t.topic, t.subscriber.key, t.expires_at) for t in subscriptions]

        async def op(conn: Conn) -> None:
            await conn.executemany(
                "INSERT INTO topic_subscriptions (topic, subscriber, expires_at)"
                " VALUES ($1,$2,$3) ON CONFLICT (topic, subscriber)"
                " DO UPDATE SET expires_at=excluded.expires_at",
                rows,
            )

        await self._write(op)

    async def delete_topic_subscriptions(self, subscriptions: Sequence[TopicSubscriber]) -> None:
        rows = [(t.topic, t.subscriber.key) for t in subscriptions]

        async def op(conn: Conn) -> None:
            await conn.executemany(
                "DELETE FROM topic_subscriptions WHERE topic=$1 AND subscriber=$2", rows
            )

        await self._write(op)

    async def load_topic_subscriptions(self) -> list[TopicSubscriber]:
        async def op(conn: Conn) -> list[TopicSubscriber]:
            rows = await conn.fetch("SELECT topic, subscriber, expires_at FROM topic_subscriptions")
            return [TopicSubscriber(r[0], Address.from_key(r[1]), r[2]) for r in rows]

        return await self._read(op)

    async def save_topiclist_watch(self, watch: TopicListWatch) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO topiclist_subscriptions (subscription_id, origin, notification_uri,"
                " expires_at) VALUES ($1,$2,$3,$4) ON CONFLICT (subscription_id) DO UPDATE SET"
                " origin=excluded.origin, notification_uri=excluded.notification_uri,"
                " expires_at=excluded.expires_at",
                watch.subscription_id,
                watch.origin.key,
                watch.notification_uri,
                watch.expires_at,
            )

        await self._write(op)

    async def delete_topiclist_watch(self, subscription_id: str) -> bool:
        async def op(conn: Conn) -> bool:
            status = await conn.execute(
                "DELETE FROM topiclist_subscriptions WHERE subscription_id=$1", subscription_id
            )
            return pg.count(status) > 0

        return await self._write(op)

    async def load_topiclist_watches(self) -> list[TopicListWatch]:
        async def op(conn: Conn) -> list[TopicListWatch]:
            rows = await conn.fetch(
                "SELECT subscription_id, origin, notification_uri, expires_at"
                " FROM topiclist_subscriptions"
            )
            return [TopicListWatch(r[0], Address.from_key(r[1]), r[2], r[3]) for r in rows]

        return await self._read(op)

    # AS registrations ---------------------------------------------------------------------------

    async def save_as_registration(self, registration: AsRegistration) -> AsRegistration:
        async def op(conn: Conn) -> AsRegistration:
            reg_id: str = await conn.fetchval(
                "INSERT INTO as_registrations (registration_id, as_service_id, app_id,"
                " target_uri, profile) VALUES ($1,$2,$3,$4,$5) ON CONFLICT (as_service_id)"
                " DO UPDATE SET app_id=excluded.app_id, target_uri=excluded.target_uri,"
                " profile=excluded.profile RETURNING registration_id",
                registration.registration_id,
                registration.as_service_id,
                registration.app_id,
                registration.target_uri,
                registration.profile_json,
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
        async def op(conn: Conn) -> AsRegistration | None:
            row = await conn.fetchrow(
                "DELETE FROM as_registrations WHERE registration_id=$1 RETURNING"
                " registration_id, as_service_id, app_id, target_uri, profile",
                registration_id,
            )
            return AsRegistration(*row) if row else None

        return await self._write(op)

    async def load_as_registrations(self) -> list[AsRegistration]:
        async def op(conn: Conn) -> list[AsRegistration]:
            rows = await conn.fetch(
                "SELECT registration_id, as_service_id, app_id, target_uri, profile"
                " FROM as_registrations"
            )
            return [AsRegistration(*r) for r in rows]

        return await self._read(op)

    # UE registrations ---------------------------------------------------------------------------

    async def save_ue_registration(self, registration: UeRegistration) -> UeRegistration | None:
        async def op(conn: Conn) -> UeRegistration | None:
            # Serialise registrations of one UE across connections and instances.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"ue:{registration.ue_service_id}",
            )
            old = await conn.fetchrow(
                f"DELETE FROM ue_registrations WHERE ue_service_id=$1 RETURNING {pg.UE_COLUMNS}",
                registration.ue_service_id,
            )
            await conn.execute(
                f"INSERT INTO ue_registrations ({pg.UE_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7)",
                registration.registration_id,
                registration.ue_service_id,
                registration.max_segment_size,
                registration.communication_availability,
                registration.triggering_info,
                registration.gateway_type,
                registration.gateway_api_root,
            )
            return UeRegistration(*old) if old else None

        return await self._write(op)

    async def delete_ue_registration(self, registration_id: str) -> UeRegistration | None:
        async def op(conn: Conn) -> UeRegistration | None:
            row = await conn.fetchrow(
                f"DELETE FROM ue_registrations WHERE registration_id=$1 RETURNING {pg.UE_COLUMNS}",
                registration_id,
            )
            return UeRegistration(*row) if row else None

        return await self._write(op)

    async def load_ue_registrations(self) -> list[UeRegistration]:
        async def op(conn: Conn) -> list[UeRegistration]:
            rows = await conn.fetch(f"SELECT {pg.UE_COLUMNS} FROM ue_registrations")
            return [UeRegistration(*r) for r in rows]

        return await self._read(op)

    async def find_ue_registrations(self, ue_service_ids: Sequence[str]) -> list[UeRegistration]:
        ids = list(dict.fromkeys(ue_service_ids))

        async def op(conn: Conn) -> list[UeRegistration]:
            rows = await conn.fetch(
                f"SELECT {pg.UE_COLUMNS} FROM ue_registrations WHERE ue_service_id = ANY($1)",
                ids,
            )
            return [UeRegistration(*r) for r in rows]

        return await self._read(op) if ids else []

    # segmentation -------------------------------------------------------------------------------

    async def resend_segments(self, segment_id: str, numbers: Sequence[int]) -> list[Delivery]:
        now = self._clock()
        wanted = sorted(set(numbers))

        async def op(conn: Conn) -> list[Delivery]:
            if not wanted:
                return []
            rows = await conn.fetch(
                "SELECT recipient, kind, priority, body, origin, message_id, wants_report,"
                " expires_at FROM kept_segments WHERE segment_id=$1"
                " AND number = ANY($2::integer[]) AND expires_at>$3 ORDER BY number",
                segment_id,
                wanted,
                now,
            )
            again = [
                NewDelivery(
                    kind=DeliveryKind(r[1]),
                    recipient=Address.from_key(r[0]),
                    body=r[3],
                    priority=Priority(r[2]),
                    expires_at=r[7],
                    origin=Address.from_key(r[4]),
                    message_id=r[5],
                    wants_report=r[6],
                )
                for r in rows
            ]
            return await pg.insert(conn, again, now)

        return await self._write(op)

    async def forget_segments(self, segment_id: str) -> int:
        async def op(conn: Conn) -> int:
            return pg.count(
                await conn.execute("DELETE FROM kept_segments WHERE segment_id=$1", segment_id)
            )

        return await self._write(op)

    async def add_uplink_segment(self, segment: UplinkSegment) -> list[UplinkSegment]:
        async def op(conn: Conn) -> list[UplinkSegment]:
            await conn.execute(
                f"INSERT INTO uplink_segments ({pg.UPLINK_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7)"
                " ON CONFLICT DO NOTHING",
                segment.origin.key,
                segment.segment_id,
                segment.number,
                segment.total,
                segment.last,
                segment.body,
                segment.expires_at,
            )
            rows = await conn.fetch(
                f"SELECT {pg.UPLINK_COLUMNS} FROM uplink_segments WHERE origin=$1"
                " AND segment_id=$2 ORDER BY number",
                segment.origin.key,
                segment.segment_id,
            )
            return [parse.uplink(r) for r in rows]

        return await self._write(op)

    async def drop_uplink_segments(self, origin: Address, segment_id: str) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "DELETE FROM uplink_segments WHERE origin=$1 AND segment_id=$2",
                origin.key,
                segment_id,
            )

        await self._write(op)

    async def expired_uplink_segments(self, now: float) -> list[UplinkSegment]:
        async def op(conn: Conn) -> list[UplinkSegment]:
            rows = await conn.fetch(
                f"SELECT {pg.UPLINK_COLUMNS} FROM uplink_segments u WHERE expires_at<=$1"
                " AND number=(SELECT min(number) FROM uplink_segments v"
                " WHERE v.origin=u.origin AND v.segment_id=u.segment_id) LIMIT 512",
                now,
            )
            return [parse.uplink(r) for r in rows]

        return await self._read(op)


async def _reset(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Pool release without asyncpg's reset query (one round trip per operation): the store
    keeps no session state (transaction-level advisory locks only; no LISTEN, cursors or SET),
    and asyncpg still rolls back an open transaction before calling this."""


def _fail_ops(batch: Sequence[tuple[object, Future]], exc: Exception) -> None:
    for _op, future in batch:
        if not future.done():
            future.set_exception(exc)


def _fail(batch: Sequence[pg.Accept], exc: Exception) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(exc)


def _describe(exc: BaseException) -> str:
    """A connection error without the DSN (it may carry the password)."""
    if isinstance(exc, ValueError):
        return "invalid store URL"
    return f"{type(exc).__name__}: {exc}"
