# SPDX-License-Identifier: Apache-2.0
"""The PostgreSQL store's schema: numbered migrations recorded in `schema_version`.

`migrate` runs at `PostgresStore.open()` inside one transaction that holds an advisory lock
keyed by the schema name, so instances starting at the same time apply each migration once.
The tables mirror the embedded store's (ADR 0003); see ADR 0017.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import TYPE_CHECKING, Any

from msgin5g.core.errors import StorageFailure

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)

SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
"""Schema names the store accepts: plain lower-case identifiers, never quoted."""

MIGRATIONS: dict[int, str] = {
    1: """
    -- Delivery ids, taken in the statements that insert deliveries (pg_rows).
    CREATE SEQUENCE delivery_ids;
    CREATE TABLE messages (
        origin text NOT NULL,
        message_id text NOT NULL,
        recipient text NOT NULL,
        ack_status text,
        ack_cause text,
        wants_report boolean NOT NULL,
        report_received boolean NOT NULL DEFAULT false,
        keep_until double precision NOT NULL,
        PRIMARY KEY (origin, message_id)
    );
    CREATE INDEX messages_keep_until ON messages (keep_until);
    CREATE TABLE deliveries (
        id bigint PRIMARY KEY DEFAULT nextval('delivery_ids'),
        recipient text NOT NULL,
        kind text NOT NULL,
        priority smallint NOT NULL,
        body bytea NOT NULL,
        origin text NOT NULL,
        message_id text NOT NULL,
        wants_report boolean NOT NULL,
        expires_at double precision NOT NULL,
        created_at double precision NOT NULL,
        attempts integer NOT NULL DEFAULT 0
    );
    ALTER SEQUENCE delivery_ids OWNED BY deliveries.id;
    CREATE INDEX deliveries_queue ON deliveries (recipient, priority, id);
    CREATE INDEX deliveries_expiry ON deliveries (expires_at);
    CREATE INDEX deliveries_message ON deliveries (origin, message_id);
    CREATE TABLE as_registrations (
        registration_id text PRIMARY KEY,
        as_service_id text NOT NULL UNIQUE,
        app_id text,
        target_uri text,
        profile bytea
    );
    CREATE TABLE ue_registrations (
        registration_id text PRIMARY KEY,
        ue_service_id text NOT NULL UNIQUE,
        max_segment_size integer,
        comm_avail bytea,
        trig_info bytea,
        gateway_type text,
        gateway_api_root text
    );
    CREATE TABLE kept_segments (
        segment_id text NOT NULL,
        number integer NOT NULL,
        recipient text NOT NULL,
        kind text NOT NULL,
        priority smallint NOT NULL,
        body bytea NOT NULL,
        origin text NOT NULL,
        message_id text NOT NULL,
        wants_report boolean NOT NULL,
        expires_at double precision NOT NULL,
        PRIMARY KEY (segment_id, number)
    );
    CREATE INDEX kept_segments_expiry ON kept_segments (expires_at);
    CREATE TABLE uplink_segments (
        origin text NOT NULL,
        segment_id text NOT NULL,
        number integer NOT NULL,
        total integer,
        last boolean NOT NULL,
        body bytea NOT NULL,
        expires_at double precision NOT NULL,
        PRIMARY KEY (origin, segment_id, number)
    );
    CREATE INDEX uplink_segments_expiry ON uplink_segments (expires_at);
    CREATE TABLE groups (
        group_id text PRIMARY KEY,
        members text[] NOT NULL
    );
    CREATE TABLE member_reports (
        origin text NOT NULL,
        message_id text NOT NULL,
        reporter text NOT NULL,
        PRIMARY KEY (origin, message_id, reporter)
    );
    CREATE TABLE topic_subscriptions (
        topic text NOT NULL,
        subscriber text NOT NULL,
        expires_at double precision NOT NULL,
        PRIMARY KEY (topic, subscriber)
    );
    CREATE TABLE topiclist_subscriptions (
        subscription_id text PRIMARY KEY,
        origin text NOT NULL,
        notification_uri text NOT NULL,
        expires_at double precision NOT NULL
    );
    """,
}

SCHEMA_VERSION = max(MIGRATIONS)


def lock_key(schema: str) -> int:
    """The advisory-lock key (a signed 64-bit integer) that serialises migrations of `schema`."""
    digest = hashlib.blake2b(f"msgin5g-schema:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def migrate(conn: PoolConnectionProxy[Any], schema: str) -> int:
    """Create `schema` if needed and apply the missing migrations; returns the version reached.

    Raises:
        StorageFailure: the database holds a newer schema than this release knows.
    """
    if not SCHEMA_NAME.fullmatch(schema):
        raise StorageFailure(f"invalid PostgreSQL schema name {schema!r}")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key(schema))
        # Only when missing: CREATE SCHEMA needs the CREATE privilege on the database even
        # with IF NOT EXISTS, which a role given an existing schema may lack.
        if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname=$1", schema):
            await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(f"SET LOCAL search_path TO {schema}")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current: int = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
        if current > SCHEMA_VERSION:
            raise StorageFailure(
                f"the PostgreSQL schema {schema} is at version {current}, newer than this"
                f" release knows ({SCHEMA_VERSION})"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            await conn.execute(MIGRATIONS[version])
            await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
            log.info("store schema migrated", extra={"schema_version": version, "schema": schema})
    return SCHEMA_VERSION
