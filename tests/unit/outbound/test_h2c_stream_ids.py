# SPDX-License-Identifier: Apache-2.0
"""The lean h2c client after its connection's last stream id (RFC 9113 5.1.1: client stream
ids are odd and end at 2**31 - 1, so one connection carries about 1.07 billion requests, two
and a half days at 5,000 per second): the next request goes over a new connection and the
used-up one closes once its answers are in. Before, every request failed from then on and the
deliveries to that AS or gateway were retried without end. Against a real h2c receiver."""

from __future__ import annotations

import asyncio
from pathlib import Path

from msgin5g.outbound.h2c import H2cClient
from msgin5g.outbound.http_client import HttpClientPool
from tests.support.procs import Receiver


async def test_a_used_up_connection_is_replaced(tmp_path: Path) -> None:
    receiver = Receiver(tmp_path / "cb.jsonl", "h2c").start()
    pool = HttpClientPool(timeout=5)
    client = H2cClient(receiver.url.removesuffix("/cb"), pool, timeout=5)
    try:
        assert (await client.post("/cb", b'{"n":0}'))[0] == 204
        first = client._conn
        assert first is not None
        first.h2.highest_outbound_stream_id = 2**31 - 5  # two stream ids left
        for n in range(1, 6):
            status, _ = await client.post("/cb", b'{"n":%d}' % n)
            assert status == 204, n
        assert first.exhausted
        assert client._conn is not first
        async with asyncio.timeout(5):
            while not first.closed:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        got = await asyncio.to_thread(receiver.wait_for, 6)
        assert sorted(c["body"]["n"] for c in got) == list(range(6))  # type: ignore[index]
    finally:
        await client.aclose()
        await pool.aclose()
        receiver.stop()


async def test_a_busy_connection_remembers_a_bounded_number_of_closed_streams(
    tmp_path: Path,
) -> None:
    """h2 keeps how each closed stream ended: 65,536 of them by default, about 11 MiB per
    connection that carried that many requests. Ours keep the last 8,192."""
    receiver = Receiver(tmp_path / "cb.jsonl", "h2c").start()
    pool = HttpClientPool(timeout=10)
    client = H2cClient(receiver.url.removesuffix("/cb"), pool, timeout=10)
    gate = asyncio.Semaphore(64)

    async def one(n: int) -> int:
        async with gate:
            status, _ = await client.post("/cb", b'{"n":%d}' % n)
            return status

    try:
        statuses = await asyncio.gather(*(one(n) for n in range(9_000)))
        assert set(statuses) == {204}
        conn = client._conn
        assert conn is not None
        assert conn.h2.highest_outbound_stream_id == 2 * 9_000 - 1  # all on this connection
        assert len(conn.h2._closed_streams) == 8_192
    finally:
        await client.aclose()
        await pool.aclose()
        receiver.stop()
