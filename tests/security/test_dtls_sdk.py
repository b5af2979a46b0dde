# SPDX-License-Identifier: Apache-2.0
"""The SDK's UeClient and `msgin5g ue` over coaps:// (DTLS-PSK) against a real server process:
both directions with a 10 kB segmented message, a wrong key fails the handshake, and an
identity cannot register another UE (ADR 0016)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from msgin5g.coap import TransmissionParameters
from msgin5g.coap.dtls_client import DtlsHandshakeError
from msgin5g.sdk import AsClient, SdkError, UeClient
from tests.security.test_dtls_ue import UES, DtlsServer, start_server
from tests.support.procs import Receiver

pytestmark = pytest.mark.e2e

FAST = TransmissionParameters(ack_timeout=0.3, exchange_lifetime=10.0, non_lifetime=10.0)
TEN_KB = "".join(f"{i:04d}é" for i in range(1700))
Json = dict[str, Any]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[DtlsServer]:
    proc = start_server(tmp_path)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def as_app(server: DtlsServer, tmp_path: Path) -> AsyncIterator[tuple[AsClient, Receiver]]:
    receiver = Receiver(tmp_path / "as.jsonl", "h2c").start()
    try:
        async with AsClient(server.url, "as-1") as app:
            await app.register(target_uri=receiver.url)
            yield app, receiver
    finally:
        receiver.stop()


def coaps(server: DtlsServer) -> str:
    return f"coaps://127.0.0.1:{server.coaps_port}"


def psk(identity: str) -> tuple[str, bytes]:
    return identity, UES[identity][0].encode()


async def take(inbox: AsyncIterator[Json], count: int, within: float = 10.0) -> list[Json]:
    out: list[Json] = []
    async with asyncio.timeout(within):
        while len(out) < count:
            out.append(await anext(inbox))
    return out


async def test_ue_client_over_dtls_both_directions(
    server: DtlsServer, as_app: tuple[AsClient, Receiver]
) -> None:
    app, receiver = as_app
    async with UeClient(coaps(server), "ue-1", params=FAST, psk=psk("dev-1")) as ue:
        await ue.register()
        inbox = ue.inbox()
        assert await take(inbox, 1) == [{"pending": 0}]
        await app.send("UE:ue-1", TEN_KB, msg_id="down-1")
        (msg,) = await take(inbox, 1)
        assert msg["msgId"] == "down-1"
        assert msg["payload"] == TEN_KB
        await ue.send("AS:as-1", "up over dtls", msg_id="up-1")
    (got,) = await asyncio.to_thread(receiver.wait_for, 1)
    assert got["body"] == {
        "oriAddr": {"addrType": "UE", "addr": "ue-1"},
        "destAddr": {"addrType": "AS", "addr": "as-1"},
        "msgId": "up-1",
        "payload": "up over dtls",
    }


async def test_ue_client_wrong_key_and_foreign_ue(server: DtlsServer) -> None:
    with pytest.raises(DtlsHandshakeError):
        async with UeClient(coaps(server), "ue-1", psk=("dev-1", b"wrong")):
            pass
    async with UeClient(coaps(server), "ue-1", params=FAST, psk=psk("dev-2")) as ue:
        with pytest.raises(SdkError) as refused:
            await ue.register()
    assert refused.value.code == "4.03"
    assert refused.value.body["cause"] == "NOT_OWNER"


def test_ue_client_needs_psk_and_coaps_together() -> None:
    with pytest.raises(ValueError, match="needs psk"):
        UeClient("coaps://127.0.0.1:5684", "ue-1")
    with pytest.raises(ValueError, match="needs a coaps"):
        UeClient("coap://127.0.0.1:5683", "ue-1", psk=("dev-1", b"k"))


async def test_msgin5g_ue_command_over_dtls(
    server: DtlsServer, as_app: tuple[AsClient, Receiver], tmp_path: Path
) -> None:
    app, _ = as_app
    key_file = tmp_path / "dev-1.key"
    key_file.write_text(UES["dev-1"][0] + "\n")
    command = [
        sys.executable, "-m", "msgin5g.cli.main", "ue", "--server", coaps(server), "--id", "ue-1",
        "--psk-identity", "dev-1", "--psk-key-file", str(key_file), "--count", "1",
        "--seconds", "15",
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None
    async with asyncio.timeout(15):
        while b'"pending"' not in await process.stdout.readline():
            pass
        await app.send("UE:ue-1", "to the simulator", msg_id="cli-1")
        out, err = await process.communicate()
    assert process.returncode == 0, err
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert any(line.get("msgId") == "cli-1" for line in lines), lines
