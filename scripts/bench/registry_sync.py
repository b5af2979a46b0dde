# SPDX-License-Identifier: Apache-2.0
"""Benchmark: what another instance does when a UE registers at one (ADR 0018), on PostgreSQL.

Every committed UE registration change is announced on NATS with its ueSvcIds; each other
instance re-reads those UEs (`UeRegistry.refresh`). Before, each re-read the whole UE registry
(`UeRegistry.load`). This script fills a fresh schema with N registrations and times, in one
process against the same database, both kinds of work per change:

- whole: `UeRegistry.load()`, the previous behaviour, and still what a NATS reconnect or a
  change of more than `cluster.node.MAX_KEYS` UEs at once does;
- one key: `refresh([id])`, a UE registering;
- 1,000 keys: `refresh(ids)`, a gateway registering its UEs in one request.

Usage: python scripts/bench/registry_sync.py [--ues 1000 10000 100000 1000000] [--store URL]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from msgin5g.core.message import Address
from msgin5g.services.ue_registry import UeRegistry
from msgin5g.storage.postgres import PostgresStore

PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


async def timed(job: Callable[[], Awaitable[object]], repeat: int) -> float:
    """Median wall time of `job` in ms."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await job()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def fill(url: str, schema: str, total: int) -> None:
    """Registrations ue-0 .. ue-(total-1), written straight into the table (setup only)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            f"INSERT INTO {schema}.ue_registrations (registration_id, ue_service_id)"
            " SELECT 'r-' || n, 'ue-' || n FROM generate_series(0, $1 - 1) AS n"
            " ON CONFLICT DO NOTHING",
            total,
        )
        # What autovacuum does after such growth; without it the plans cached while the
        # table was small (a sequential scan) would stay (see docs/benchmarks.md).
        await conn.execute(f"ANALYZE {schema}.ue_registrations")
    finally:
        await conn.close()


async def run(url: str, sizes: list[int]) -> None:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    store = PostgresStore(url, clock=time.time, schema=schema)
    await store.open()

    def online(_address: Address) -> None:
        return None

    async def gone(_address: Address) -> None:
        return None

    registry = UeRegistry(store, on_registered=online, on_deregistered=gone)
    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print("| registered UEs | whole reload ms | refresh 1 key ms | refresh 1,000 keys ms |")
    print("|---|---|---|---|")
    try:
        for total in sizes:
            await fill(url, schema, total)
            rng = random.Random(total)
            whole = await timed(registry.load, 3 if total < 1_000_000 else 2)
            assert len(registry) == total

            async def one() -> None:
                await registry.refresh([f"ue-{rng.randrange(total)}"])  # noqa: B023

            async def thousand() -> None:
                await registry.refresh([f"ue-{rng.randrange(total)}" for _ in range(1000)])  # noqa: B023

            single = await timed(one, 50)
            many = await timed(thousand, 10)
            print(f"| {total:,} | {whole:.1f} | {single:.2f} | {many:.1f} |", flush=True)
    finally:
        await store.close()
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ues", type=int, nargs="+", default=[1000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--store", default=PG_URL, help="PostgreSQL URL (default: local)")
    args = parser.parse_args()
    asyncio.run(run(args.store, sorted(args.ues)))


if __name__ == "__main__":
    main()
