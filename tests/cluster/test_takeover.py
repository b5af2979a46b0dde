# SPDX-License-Identifier: Apache-2.0
"""kill -9 of one of three instances while senders run (ADR 0018): every acknowledged message
still reaches its AS once the survivors take the dead instance's shards over. Duplicates are
allowed (a hand-over in flight at the kill is repeated) and counted, never losses."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from msgin5g.cluster.shards import shard_of
from tests.cluster.cluster_procs import Cluster
from tests.contract.postgres_db import PG_URL
from tests.support.procs import Receiver, ServerProcess

pytestmark = pytest.mark.e2e

SHARDS = 64
APPS = ("app-b", "app-c")


def _owner(schema: str, recipient_key: str) -> str | None:
    async def query() -> str | None:
        conn = await asyncpg.connect(PG_URL)
        try:
            owner: str | None = await conn.fetchval(
                f"SELECT owner FROM {schema}.cluster_shards WHERE shard=$1 AND expires_at > now()",
                shard_of(recipient_key, SHARDS),
            )
            return owner
        finally:
            await conn.close()

    return asyncio.run(query())


def _held_by(schema: str, instance: str) -> int:
    async def query() -> int:
        conn = await asyncpg.connect(PG_URL)
        try:
            return int(
                await conn.fetchval(
                    f"SELECT count(*) FROM {schema}.cluster_shards"
                    " WHERE owner=$1 AND expires_at > now()",
                    instance,
                )
            )
        finally:
            await conn.close()

    return asyncio.run(query())


def test_kill9_of_one_instance_loses_no_acknowledged_message(
    cluster: Cluster, tmp_path: Path
) -> None:
    servers = [cluster.start_instance() for _ in range(3)]
    receivers = {app: Receiver(tmp_path / f"{app}.jsonl", "h2c").start() for app in APPS}
    try:
        for app, receiver in receivers.items():
            r = httpx.post(
                f"{servers[0].url}/msgs-asregistration/v1/registrations",
                json={"asSvcId": app, "targetUri": receiver.url},
            )
            assert r.status_code == 201, r.text
        time.sleep(2.5)  # registrations seen everywhere, shards balanced over the three
        victim_id = _owner(cluster.schema, "AS:app-b")
        assert victim_id in ("i0", "i1", "i2")
        victim = servers[int(victim_id[1])]
        acked: list[tuple[str, str]] = []
        stop = threading.Event()

        def sender(worker: int, server: ServerProcess) -> None:
            with httpx.Client(base_url=server.url, http1=False, http2=True, timeout=5) as http:
                n = 0
                while not stop.is_set():
                    app = APPS[n % len(APPS)]
                    msg_id = f"w{worker}-{n}-{uuid.uuid4().hex[:6]}"
                    n += 1
                    try:
                        r = http.post(
                            "/msgs-msgdelivery/v1/deliver-as-message",
                            json={
                                "oriAddr": {"addrType": "AS", "addr": f"sender-{worker}"},
                                "destAddr": {"addrType": "AS", "addr": app},
                                "msgId": msg_id,
                                "payload": msg_id,
                                "stoAndFwInd": True,
                            },
                        )
                    except httpx.HTTPError:
                        return  # this sender's instance died
                    if r.status_code == 200 and r.json().get("status") != "DELY_FAILED":
                        acked.append((app, msg_id))

        threads = [
            threading.Thread(target=sender, args=(i, server), daemon=True)
            for i, server in enumerate(servers)
        ]
        for t in threads:
            t.start()
        time.sleep(2.0)
        victim.kill9()
        killed_at = time.monotonic()
        time.sleep(2.0)
        stop.set()
        for t in threads:
            t.join(10)
        assert len(acked) > 100, "the senders barely ran"

        # Every acknowledged message arrives (the survivors took the victim's shards over).
        deadline = time.monotonic() + 30
        missing: set[tuple[str, str]] = set(acked)
        while missing and time.monotonic() < deadline:
            got = {
                (app, str(r["body"]["msgId"]))  # type: ignore[index]
                for app, receiver in receivers.items()
                for r in receiver.received()
            }
            missing = set(acked) - got
            time.sleep(0.2)
        assert not missing, f"{len(missing)} acknowledged messages lost: {sorted(missing)[:5]}"
        took_over = time.monotonic() - killed_at
        assert _held_by(cluster.schema, victim_id) == 0
        survivors_hold = sum(
            _held_by(cluster.schema, f"i{i}") for i in range(3) if f"i{i}" != victim_id
        )
        assert survivors_hold == SHARDS
        counts = collections.Counter(
            (app, str(r["body"]["msgId"]))  # type: ignore[index]
            for app, receiver in receivers.items()
            for r in receiver.received()
        )
        duplicates = sum(c - 1 for c in counts.values())
        print(
            f"\nacked={len(acked)} delivered={len(counts)} duplicates={duplicates}"
            f" all delivered {took_over:.1f}s after the kill"
        )
        assert set(counts) >= set(acked)
    finally:
        for receiver in receivers.values():
            receiver.stop()
