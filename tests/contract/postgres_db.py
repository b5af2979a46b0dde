# SPDX-License-Identifier: Apache-2.0
"""A throw-away PostgreSQL schema per test on the local server (127.0.0.1:5432, trust auth).

`MSGIN5G_TEST_PG_URL` points the tests at another server. An unreachable server fails the
tests that need it: the PostgreSQL store is part of the product, not an optional extra.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg

PG_URL = os.environ.get("MSGIN5G_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def new_schema_name() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


async def drop_schema(name: str) -> None:
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    finally:
        await conn.close()


async def schema_exists(name: str) -> bool:
    conn = await asyncpg.connect(PG_URL)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname=$1", name))
    finally:
        await conn.close()


def drop_schema_sync(name: str) -> None:
    asyncio.run(drop_schema(name))
