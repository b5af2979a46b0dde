# SPDX-License-Identifier: Apache-2.0
"""Benchmark: an instance's periodic rescan of stored work on PostgreSQL (ADR 0018).

Each instance looks for recipients with stored work every `cluster.rescan_s` (5 s), the safety
net for a lost doorbell. It first read every recipient with work each time (`SELECT DISTINCT
recipient`); now it reads the work stored since its scan before last (ids above a mark, one
index range), and all of it about once a minute. This script fills a fresh schema with N
deliveries (one recipient per `--per-recipient` of them, straight into the table, then
ANALYZE) and times, through the store's API, the full read and the read of the last 1,000
deliveries, with the Python side that turns rows into addresses included.

Usage: python scripts/bench/rescan.py [--deliveries 100000 1000000] [--store URL]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
import uuid

import asyncpg

from msgin5g.storage.postgres import PostgresStore

PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


async def median_ms(job: object, repeat: int) -> tuple[float, int]:
    times, found = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        recipients, _top = await job()  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1000)
        found = len(recipients)
    return statistics.median(times), found


async def run(url: str, sizes: list[int], per: int) -> None:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    store = PostgresStore(url, clock=time.time, schema=schema)
    await store.open()
    conn = await asyncpg.connect(url)
    print(f"# {platform.machine()}, Python {platform.python_version()}, {per} per recipient")
    print("| stored deliveries | recipients | full read ms | last 1,000 ms | ratio |")
    print("|---|---|---|---|---|")
    try:
        for total in sizes:
            await conn.execute(f"TRUNCATE {schema}.deliveries")
            await conn.execute(
                f"INSERT INTO {schema}.deliveries (id, recipient, kind, priority, body, origin,"
                " message_id, wants_report, expires_at, created_at)"
                f" SELECT n, 'UE:ue-' || (n / {per}), 'MSG', 1, '\\x00', 'AS:a', 'm' || n,"
                " false, 4e9, 0 FROM generate_series(1, $1) AS n",
                total,
            )
            await conn.execute(f"ANALYZE {schema}.deliveries")
            full, recipients = await median_ms(lambda: store.recipients_with_work_after(0), 3)
            recent, _ = await median_ms(
                lambda: store.recipients_with_work_after(total - 1000),  # noqa: B023
                20,
            )
            ratio = full / recent
            print(f"| {total:,} | {recipients:,} | {full:.1f} | {recent:.2f} | {ratio:.0f}x |")
    finally:
        await store.close()
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--per-recipient", type=int, default=1)
    parser.add_argument("--store", default=PG_URL, help="PostgreSQL URL (default: local)")
    args = parser.parse_args()
    asyncio.run(run(args.store, sorted(args.deliveries), args.per_recipient))


if __name__ == "__main__":
    main()
