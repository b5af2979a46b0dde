# SPDX-License-Identifier: Apache-2.0
"""`msgin5g server --store postgresql://...`: a real server on the PostgreSQL store (ADR 0017)
delivers to an AS, and kill -9 mid-stream loses no acknowledged message (DESIGN 3); a bad or
unreachable store URL is refused, and its password never reaches the log."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from msgin5g.settings import SettingsError, describe, load
from tests.contract.postgres_db import drop_schema_sync, new_schema_name
from tests.support.procs import Receiver, ServerProcess, free_port

pytestmark = pytest.mark.e2e

PASSWORD = "not-checked-by-trust-auth"
URL = f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/postgres"


def _send(http: httpx.Client, msg_id: str, payload: str) -> httpx.Response:
    return http.post(
        "/msgs-msgdelivery/v1/deliver-as-message",
        json={
            "oriAddr": {"addrType": "AS", "addr": "app-a"},
            "destAddr": {"addrType": "AS", "addr": "app-b"},
            "msgId": msg_id,
            "payload": payload,
            "stoAndFwInd": True,
        },
    )


def _count_messages(schema: str) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(URL)
        try:
            return int(await conn.fetchval(f"SELECT count(*) FROM {schema}.messages"))
        finally:
            await conn.close()

    return asyncio.run(count())


def test_postgres_server_delivers_and_kill9_loses_no_acknowledged_message(
    tmp_path: Path,
) -> None:
    schema = new_schema_name()
    data = tmp_path / "data"
    b_port = free_port()
    env = {"MSGIN5G_STORE_SCHEMA": schema}
    server = ServerProcess(data, env=env, args=("--store", URL)).start()
    acked: list[str] = []
    stop = threading.Event()

    def sender(worker: int) -> None:
        with httpx.Client(base_url=server.url, http1=False, http2=True, timeout=5) as http:
            n = 0
            while not stop.is_set():
                msg_id = f"w{worker}-{n}-{uuid.uuid4().hex[:6]}"
                n += 1
                try:
                    response = _send(http, msg_id, f"n={n}")
                except httpx.HTTPError:
                    return  # the server died under us
                if response.status_code == 200:
                    assert response.json().get("status", "DELY_STORED") == "DELY_STORED"
                    acked.append(msg_id)

    try:
        # 1. Delivery works on PostgreSQL: an online AS gets every message once.
        online = Receiver(tmp_path / "online.jsonl", "h2c", port=b_port).start()
        try:
            httpx.post(
                f"{server.url}/msgs-asregistration/v1/registrations",
                json={"asSvcId": "app-b", "targetUri": online.url},
            ).raise_for_status()
            with httpx.Client(base_url=server.url, http1=False, http2=True, timeout=5) as http:
                first = [f"online-{i}" for i in range(20)]
                for msg_id in first:
                    assert _send(http, msg_id, msg_id).status_code == 200
                again = _send(http, first[0], "repeat")
                assert again.status_code == 200, "a repeated msgId is acknowledged again"
            got = online.wait_for(len(first), timeout=20)
            assert sorted(g["body"]["msgId"] for g in got) == sorted(first)  # type: ignore[index]
            assert {g["body"]["msgId"]: g["body"]["payload"] for g in got} == {  # type: ignore[index]
                m: m for m in first
            }
        finally:
            online.stop()
        assert not (data / "msgin5g.sqlite3").exists(), "the SQLite store was not used"

        # 2. The AS is gone: messages are stored; kill -9 while four senders are sending.
        threads = [threading.Thread(target=sender, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while len(acked) < 300 and time.monotonic() < deadline:
            time.sleep(0.02)
        server.kill9()
        stop.set()
        for t in threads:
            t.join(10)
        assert len(acked) >= 300
        snapshot = list(acked)
        assert _count_messages(schema) >= len(snapshot) + 20

        # 3. Restarted on the same database, the server delivers every acknowledged message.
        restarted = ServerProcess(
            data, env=env, args=("--store", URL), http_port=server.http_port
        ).start()
        b = Receiver(tmp_path / "b.jsonl", "h2c", port=b_port).start()
        try:
            b.wait_for(len(snapshot), timeout=40)
            time.sleep(1.0)
            ids = [g["body"]["msgId"] for g in b.received()]  # type: ignore[index]
            missing = set(snapshot) - set(ids)
            assert not missing, f"{len(missing)} acknowledged messages lost: {sorted(missing)[:5]}"
            duplicates = {i for i in ids if ids.count(i) > 1}
            assert not duplicates, f"delivered twice: {sorted(duplicates)[:5]}"
        finally:
            b.stop()
            restarted.stop()
        log = server.log() + restarted.log()
        assert PASSWORD not in log, "the store password reached the log"
        assert "postgres:***@127.0.0.1:5432/postgres" in log
    finally:
        stop.set()
        server.stop()
        drop_schema_sync(schema)


def _server_cli(tmp_path: Path, store: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "msgin5g.cli.main",
            "server",
            "--http",
            f"127.0.0.1:{free_port()}",
            "--coap",
            f"127.0.0.1:{free_port()}",
            "--data-dir",
            str(tmp_path / "data"),
            "--store",
            store,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_unreachable_or_wrong_store_url_is_refused_without_leaking_the_password(
    tmp_path: Path,
) -> None:
    down = _server_cli(tmp_path, f"postgresql://postgres:{PASSWORD}@127.0.0.1:{free_port()}/db")
    assert down.returncode == 1
    assert "cannot connect to PostgreSQL" in down.stderr
    assert PASSWORD not in down.stderr
    wrong = _server_cli(tmp_path, f"mysql://root:{PASSWORD}@127.0.0.1/db")
    assert wrong.returncode == 2
    assert "store.url (--store) must be empty or postgresql://" in wrong.stderr
    assert PASSWORD not in wrong.stderr


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/msg", "postgresql://app:***@db:5432/msg"),
        ("postgresql://app:s3/cr@t@db/msg", "postgresql://app:***@db/msg"),
        ("postgresql://app@db/msg?password=s3cret&sslmode=require", None),
        ("postgresql://app@db/msg", "postgresql://app@db/msg"),
    ],
)
def test_store_url_secret_is_masked_in_the_settings_log(url: str, shown: str | None) -> None:
    settings = load(environ={"MSGIN5G_STORE_URL": url, "MSGIN5G_STORE_SCHEMA": "tenant_a"})
    assert settings.store.url == url
    assert settings.store.schema == "tenant_a"
    logged = describe(settings)["store"]["url"]
    assert "s3" not in logged
    if shown is not None:
        assert logged == shown


def test_store_settings_are_validated() -> None:
    with pytest.raises(SettingsError, match=r"store\.schema"):
        load(environ={"MSGIN5G_STORE_SCHEMA": "Bad-Name"})
    with pytest.raises(SettingsError, match=r"store\.pool_size"):
        load(environ={"MSGIN5G_STORE_POOL_SIZE": "1"})
