# SPDX-License-Identifier: Apache-2.0
"""Rows and array statements of the PostgreSQL store (ADR 0017): the one-statement insert of
deliveries and the one-statement group commit of a batch of accepts, both taking delivery ids
from the `delivery_ids` sequence as they run. `postgres.py` holds the store itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from msgin5g.core.message import (
    Delivery,
)
from msgin5g.ports import MessageRecord, NewDelivery
from msgin5g.storage import rows as parse

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn = PoolConnectionProxy[asyncpg.Record]

DELIVERY_COLUMNS = (
    "id, kind, recipient, body, priority, expires_at, origin, message_id, wants_report, attempts"
)
MESSAGE_COLUMNS = (
    "origin, message_id, recipient, ack_status, ack_cause, wants_report, report_received,"
    " keep_until"
)
UE_COLUMNS = (
    "registration_id, ue_service_id, max_segment_size, comm_avail, trig_info,"
    " gateway_type, gateway_api_root"
)
UPLINK_COLUMNS = "origin, segment_id, number, total, last, body, expires_at"

_DELIVERY_ARRAYS = (
    "recipient text, kind text, priority smallint, body bytea, origin text, message_id text,"
    " wants_report boolean, expires_at float8, created_at float8"
)
_SEGMENT_ARRAYS = (
    "segment_id text, number integer, recipient text, kind text, priority smallint,"
    " body bytea, origin text, message_id text, wants_report boolean, expires_at float8"
)
_KEEP = (
    "INSERT INTO kept_segments (segment_id, number, recipient, kind, priority, body, origin,"
    " message_id, wants_report, expires_at) SELECT s.segment_id, s.number, s.recipient, s.kind,"
    " s.priority, s.body, s.origin, s.message_id, s.wants_report, s.expires_at FROM {source}"
    " ON CONFLICT (segment_id, number) DO UPDATE SET recipient=excluded.recipient,"
    " kind=excluded.kind, priority=excluded.priority, body=excluded.body,"
    " origin=excluded.origin, message_id=excluded.message_id,"
    " wants_report=excluded.wants_report, expires_at=excluded.expires_at"
)
_INSERT_DELIVERIES = (
    "INSERT INTO deliveries (id, recipient, kind, priority, body, origin, message_id,"
    " wants_report, expires_at, created_at) SELECT ids.id, d.recipient, d.kind, d.priority,"
    " d.body, d.origin, d.message_id, d.wants_report, d.expires_at, d.created_at FROM {source}"
    " JOIN ids USING (n)"
)
# One id per delivery row, in row order: nextval runs row by row, so ids ascend with `n`, and
# the ids of a statement come after those of every statement that committed before it
# started, on any instance: the queue order (priority, id) is the order of acceptance.
_IDS = (
    "ids AS MATERIALIZED (SELECT n, nextval('delivery_ids') AS id"
    " FROM generate_series(1, cardinality(${first}::text[])) AS n)"
)


def _unnest(first: int, columns: str, *extra: str, ordinality: bool = False) -> str:
    """`unnest($first::type[], ...) AS alias(name, ...)` for a column list "name type, ..."."""
    pairs = [c.strip().split(" ") for c in columns.split(",")] + [e.split(" ") for e in extra]
    arrays = ", ".join(f"${first + i}::{t}[]" for i, (_n, t) in enumerate(pairs))
    names = [n for n, _t in pairs] + (["n"] if ordinality else [])
    suffix = " WITH ORDINALITY" if ordinality else ""
    return f"unnest({arrays}){suffix} AS {{alias}}({', '.join(names)})"


# Deliveries ($1..$9) and their kept segment copies ($10..$19) in one statement; returns the
# ids given to the deliveries, in row order.
INSERT = (
    "WITH "
    + _IDS.format(first=1)
    + ", kept AS ("
    + _KEEP.format(source=_unnest(10, _SEGMENT_ARRAYS).format(alias="s"))
    + "), ins AS ("
    + _INSERT_DELIVERIES.format(
        source=_unnest(1, _DELIVERY_ARRAYS, ordinality=True).format(alias="d")
    )
    + ") SELECT id FROM ids ORDER BY n"
)

_OWNER = ("owner_origin text", "owner_id text")

# A batch of accepts in one statement: the messages ($1..$7) with ON CONFLICT DO NOTHING, and
# only for those inserted, their deliveries ($8..$18) and kept segments ($19..$30), each row
# tagged with the key of its accept (`owner_origin`, `owner_id`). Returns the inserted keys
# (kind 0) and the ids of the delivery rows (kind 1, in row order; the rows of a known key
# leave theirs unused).
ACCEPT = (
    "WITH m AS (INSERT INTO messages (origin, message_id, recipient, ack_status, ack_cause,"
    " wants_report, keep_until) SELECT * FROM unnest($1::text[], $2::text[], $3::text[],"
    " $4::text[], $5::text[], $6::boolean[], $7::float8[]) ON CONFLICT DO NOTHING"
    " RETURNING origin, message_id), "
    + _IDS.format(first=8)
    + ", d AS ("
    + _INSERT_DELIVERIES.format(
        source=_unnest(8, _DELIVERY_ARRAYS, *_OWNER, ordinality=True).format(alias="d")
    )
    + " WHERE (d.owner_origin, d.owner_id) IN (SELECT origin, message_id FROM m)), k AS ("
    + _KEEP.format(
        source=_unnest(19, _SEGMENT_ARRAYS, *_OWNER).format(alias="s")
        + " WHERE (s.owner_origin, s.owner_id) IN (SELECT origin, message_id FROM m)"
    )
    + ") SELECT 0, origin, message_id, NULL::bigint, NULL::bigint FROM m"
    " UNION ALL SELECT 1, NULL, NULL, id, n FROM ids"
)

FIND_MESSAGES = (
    f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE (origin, message_id) IN"
    " (SELECT * FROM unnest($1::text[], $2::text[]))"
)


def delivery_arrays(items: Sequence[NewDelivery], created: Sequence[float]) -> list[list[Any]]:
    return [
        [d.recipient.key for d in items],
        [d.kind.value for d in items],
        [int(d.priority) for d in items],
        [d.body for d in items],
        [d.origin.key for d in items],
        [d.message_id for d in items],
        [d.wants_report for d in items],
        [d.expires_at for d in items],
        list(created),
    ]


def segment_arrays(items: Sequence[NewDelivery]) -> list[list[Any]]:
    return [
        [d.segment_id for d in items],
        [d.segment_number for d in items],
        [d.recipient.key for d in items],
        [d.kind.value for d in items],
        [int(d.priority) for d in items],
        [d.body for d in items],
        [d.origin.key for d in items],
        [d.message_id for d in items],
        [d.wants_report for d in items],
        [d.expires_at for d in items],
    ]


def kept_copies(
    pairs: Sequence[tuple[tuple[str, str], NewDelivery]],
) -> list[tuple[tuple[str, str], NewDelivery]]:
    """One (owner, segment) per (segment id, number), the last winning like INSERT OR
    REPLACE, in key order so concurrent statements lock rows in the same order."""
    kept = {(d.segment_id or "", d.segment_number): (o, d) for o, d in pairs if d.segment_id}
    return [kept[k] for k in sorted(kept)]


async def insert(conn: Conn, items: Sequence[NewDelivery], now: float) -> list[Delivery]:
    """Insert `items` in order, with ascending fresh ids, and keep a copy of each downlink
    segment for SEGREC; one statement."""
    if not items:
        return []
    kept = [d for _o, d in kept_copies([(("", ""), d) for d in items])]
    rows = await conn.fetch(
        INSERT, *delivery_arrays(items, [now] * len(items)), *segment_arrays(kept)
    )
    return [parse.created(r[0], d) for r, d in zip(rows, items, strict=True)]


class Accept:
    """A queued `accept`, waiting for the next group commit."""

    __slots__ = ("deliveries", "future", "now", "record")

    def __init__(
        self,
        record: MessageRecord,
        deliveries: Sequence[NewDelivery],
        now: float,
        future: asyncio.Future[tuple[MessageRecord | None, list[Delivery]]],
    ) -> None:
        self.record = record
        self.deliveries = deliveries
        self.now = now
        self.future = future

    @property
    def key(self) -> tuple[str, str]:
        return self.record.origin.key, self.record.message_id


async def accept_all(conn: Conn, items: Sequence[Accept]) -> list[list[Delivery] | None]:
    """Commit a batch of accepts with one statement (its own transaction); returns per accept
    the deliveries it created, or None where its key was known: the first accept of a key, in
    arrival order, wins, and the others answer with the stored record (`find_records`)."""
    first: dict[tuple[str, str], int] = {}
    for index, item in enumerate(items):
        first.setdefault(item.key, index)
    # Messages in key order: two statements in flight lock index entries in the same order.
    records = [items[first[k]].record for k in sorted(first)]
    # Deliveries of every candidate in arrival order, ids ascending: the queue keeps that order.
    candidates = sorted(first.values())
    pairs = [(items[i].key, d) for i in candidates for d in items[i].deliveries]
    deliveries = [d for _o, d in pairs]
    now = [items[i].now for i in candidates for _d in items[i].deliveries]
    kept = kept_copies(pairs)
    rows = await conn.fetch(
        ACCEPT,
        [r.origin.key for r in records],
        [r.message_id for r in records],
        [r.recipient.key for r in records],
        [r.acceptance.status.value for r in records],
        [r.acceptance.failure_cause for r in records],
        [r.wants_report for r in records],
        [r.keep_until for r in records],
        *delivery_arrays(deliveries, now),
        [o[0] for o, _d in pairs],
        [o[1] for o, _d in pairs],
        *segment_arrays([d for _o, d in kept]),
        [o[0] for o, _d in kept],
        [o[1] for o, _d in kept],
    )
    inserted = {(r[1], r[2]) for r in rows if r[0] == 0}
    taken = [r[3] for r in sorted((r for r in rows if r[0] == 1), key=lambda r: r[4])]
    made: dict[int, list[Delivery]] = {}
    position = 0
    for i in candidates:
        count = len(items[i].deliveries)
        if items[i].key in inserted:
            made[i] = [
                parse.created(taken[position + j], items[i].deliveries[j]) for j in range(count)
            ]
        position += count
    return [made.get(i) for i in range(len(items))]


async def find_records(
    conn: Conn, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], MessageRecord]:
    """The stored records of (origin key, message id) pairs. Run after `accept_all` returned,
    they are committed (ours, or those ON CONFLICT waited for): a plain read sees them."""
    found = await conn.fetch(FIND_MESSAGES, [k[0] for k in keys], [k[1] for k in keys])
    return {(r[0], r[1]): parse.record(r) for r in found}


def count(status: str) -> int:
    """Rows affected, from a command status such as "DELETE 3" or "INSERT 0 1"."""
    return int(status.rsplit(" ", 1)[-1])
