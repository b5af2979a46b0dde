# SPDX-License-Identifier: Apache-2.0
"""Shard leases in PostgreSQL (ADR 0018): each of `shards` shards is held by at most one live
instance, renewed every heartbeat and lost `ttl` seconds after the holder stops renewing.

Two tables next to the store's, created here if missing: `cluster_instances` (one row per
instance, its last heartbeat) and `cluster_shards` (one row per shard: owner, expiry). Times
are the database's (`now()`), so instances need no synchronised clocks; locally a lease is
trusted only until `ttl - margin` after the renewal was sent, before the database lets
another instance take it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg

from msgin5g.cluster.shards import fair_share

log = logging.getLogger(__name__)

_TABLES = """
CREATE TABLE IF NOT EXISTS cluster_instances (
    instance_id text PRIMARY KEY,
    heartbeat_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS cluster_shards (
    shard integer PRIMARY KEY,
    owner text,
    expires_at timestamptz NOT NULL DEFAULT '-infinity'
);
"""

_LOCK_KEY = 0x6D7367696E3567  # "msgin5g": serialises the CREATE TABLEs of starting instances


class ShardLeases:
    """This instance's shard leases; `beat()` renews, claims its fair share and releases the
    excess once `drained(shard)` says no hand-over of that shard is in flight."""

    def __init__(
        self,
        url: str,
        schema: str,
        instance_id: str,
        *,
        shards: int,
        ttl: float,
        on_gained: Callable[[frozenset[int]], Awaitable[None]],
        drained: Callable[[int], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._schema = schema
        self.instance_id = instance_id
        self.shards = shards
        self._ttl = ttl
        self._margin = min(1.0, ttl / 4)
        self._on_gained = on_gained
        self._drained = drained
        self._clock = clock
        self._conn: asyncpg.Connection[asyncpg.Record] | None = None
        self._held: set[int] = set()
        self._releasing: set[int] = set()
        self._valid_until = 0.0
        self._owners: dict[int, str] = {}
        self.live_instances = 0

    async def open(self) -> None:
        """Connect and create the lease tables (the store has created the schema)."""
        self._conn = await asyncpg.connect(
            self._url,
            server_settings={"search_path": self._schema, "application_name": "msgin5g-cluster"},
        )
        async with self._conn.transaction():
            await self._conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            await self._conn.execute(_TABLES)
            await self._conn.execute(
                "INSERT INTO cluster_shards (shard) SELECT generate_series(0, $1::int - 1)"
                " ON CONFLICT DO NOTHING",
                self.shards,
            )
            count = await self._conn.fetchval("SELECT count(*) FROM cluster_shards")
        if count != self.shards:
            log.warning(
                "cluster_shards has %s rows but cluster.shards is %s: every instance must use"
                " the same shard count",
                count,
                self.shards,
            )

    async def close(self) -> None:
        """Give every lease back at once (a clean stop) and leave the instance table."""
        conn, self._conn = self._conn, None
        self._held.clear()
        self._valid_until = 0.0
        if conn is None:
            return
        try:
            await conn.execute(
                "UPDATE cluster_shards SET owner=NULL, expires_at='-infinity' WHERE owner=$1",
                self.instance_id,
            )
            await conn.execute(
                "DELETE FROM cluster_instances WHERE instance_id=$1", self.instance_id
            )
        finally:
            await conn.close()

    # queries ---------------------------------------------------------------------------------

    def holds(self, shard: int) -> bool:
        """True while this instance may run the lanes of `shard`."""
        return (
            shard in self._held
            and shard not in self._releasing
            and self._clock() < self._valid_until
        )

    def owner_of(self, shard: int) -> str | None:
        """The instance holding `shard` at the last heartbeat, if any."""
        return self._owners.get(shard)

    @property
    def held(self) -> frozenset[int]:
        return frozenset(s for s in self._held if self.holds(s))

    # heartbeat -------------------------------------------------------------------------------

    async def beat(self) -> None:
        """One heartbeat: renew, release the drained excess, claim up to the fair share."""
        conn = self._conn
        if conn is None:
            return
        sent = self._clock()
        was_valid = sent < self._valid_until
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO cluster_instances VALUES ($1, now()) ON CONFLICT (instance_id)"
                " DO UPDATE SET heartbeat_at=now()",
                self.instance_id,
            )
            live = await conn.fetchval(
                "SELECT count(*) FROM cluster_instances"
                " WHERE heartbeat_at > now() - make_interval(secs => $1)",
                self._ttl,
            )
            rows = await conn.fetch(
                "UPDATE cluster_shards SET expires_at=now() + make_interval(secs => $2)"
                " WHERE owner=$1 AND expires_at > now() RETURNING shard",
                self.instance_id,
                self._ttl,
            )
        renewed = {r[0] for r in rows}
        lost = self._held - renewed
        if lost:
            log.warning("shard leases lost", extra={"shards": sorted(lost)})
        self._held = renewed
        self._releasing &= renewed
        self._valid_until = sent + self._ttl - self._margin
        self.live_instances = int(live or 1)
        target = fair_share(self.shards, self.live_instances)
        await self._release_excess(conn, target)
        gained = await self._claim(conn, target, sent)
        if not was_valid:
            gained |= renewed  # lanes stopped while the leases were in doubt: reload them
        rows = await conn.fetch("SELECT shard, owner FROM cluster_shards WHERE expires_at > now()")
        self._owners = {r[0]: r[1] for r in rows if r[1] is not None}
        if gained:
            log.info(
                "shard leases gained",
                extra={"shards": len(gained), "held": len(self._held), "live": live},
            )
            await self._on_gained(frozenset(gained))

    async def _release_excess(self, conn: asyncpg.Connection[asyncpg.Record], target: int) -> None:
        excess = len(self._held) - target
        if excess > len(self._releasing):
            keep = sorted(self._held - self._releasing)
            self._releasing.update(keep[len(keep) - (excess - len(self._releasing)) :])
        elif excess <= 0:
            self._releasing.clear()
        ready = [s for s in self._releasing if self._drained(s)]
        if not ready:
            return
        await conn.execute(
            "UPDATE cluster_shards SET owner=NULL, expires_at='-infinity'"
            " WHERE owner=$1 AND shard = ANY($2::int[])",
            self.instance_id,
            ready,
        )
        self._held.difference_update(ready)
        self._releasing.difference_update(ready)
        log.info("shard leases released", extra={"shards": len(ready), "held": len(self._held)})

    async def _claim(
        self, conn: asyncpg.Connection[asyncpg.Record], target: int, sent: float
    ) -> set[int]:
        want = target - len(self._held)
        if want <= 0:
            return set()
        rows = await conn.fetch(
            "UPDATE cluster_shards SET owner=$1, expires_at=now() + make_interval(secs => $2)"
            " WHERE shard IN (SELECT shard FROM cluster_shards WHERE owner IS NULL"
            " OR expires_at <= now() ORDER BY shard LIMIT $3 FOR UPDATE SKIP LOCKED)"
            " RETURNING shard",
            self.instance_id,
            self._ttl,
            want,
        )
        claimed = {r[0] for r in rows}
        self._held |= claimed
        return claimed
