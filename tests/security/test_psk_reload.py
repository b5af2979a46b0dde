# SPDX-License-Identifier: Apache-2.0
"""A changed ue.psk_file is taken without a restart (ADR 0016): on SIGHUP against a real server
process, and by polling (PskWatch in process). A new identity can shake hands at once; a
removed or re-keyed one loses its session and cannot shake hands again; an invalid file
changes nothing and says why, without a key in the log."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from msgin5g.coap import TransmissionParameters
from msgin5g.coap.dtls_client import DtlsHandshakeError
from msgin5g.coap.dtls_keys import UePsk
from msgin5g.coap.psk_watch import PskWatch
from msgin5g.observability import Metrics
from msgin5g.sdk import UeClient
from tests.security.test_dtls_ue import UES, DtlsServer, start_server
from tests.support.procs import ServerProcess

FAST = TransmissionParameters(ack_timeout=0.3, exchange_lifetime=10.0, non_lifetime=10.0)


def psk_file(entries: dict[str, tuple[str, str]]) -> str:
    """identity -> (key text, ueSvcId) as the TOML of ue.psk_file."""
    return "".join(
        f'[[psk]]\nidentity = "{i}"\nkey = "{k}"\nue_svc_id = "{u}"\n\n'
        for i, (k, u) in entries.items()
    )


def reloads(server: DtlsServer, outcome: str) -> int:
    text = httpx.get(f"{server.url}/metrics").text
    found = re.search(rf'msgin5g_ue_psk_reloads_total{{outcome="{outcome}"}} (\d+)', text)
    return int(found.group(1)) if found else 0


async def reloaded(server: DtlsServer, outcome: str, count: int) -> None:
    async with asyncio.timeout(10):
        while await asyncio.to_thread(reloads, server, outcome) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def registers(server: DtlsServer, ue_svc_id: str, identity: str, key: str) -> None:
    uri = f"coaps://127.0.0.1:{server.coaps_port}"
    async with UeClient(uri, ue_svc_id, params=FAST, psk=(identity, key.encode())) as ue:
        await ue.register()


async def refused(server: DtlsServer, identity: str, key: str) -> None:
    with pytest.raises(DtlsHandshakeError):
        await registers(server, "nobody", identity, key)


async def test_sighup_takes_a_changed_psk_file(tmp_path: Path) -> None:
    server = start_server(tmp_path, MSGIN5G_UE_PSK_RELOAD_INTERVAL_S="0")  # SIGHUP only
    keys = tmp_path / "psks.toml"  # dev-1 and dev-2 (test_dtls_ue.UES)
    key_1, key_2 = UES["dev-1"][0], UES["dev-2"][0]
    try:
        uri = f"coaps://127.0.0.1:{server.coaps_port}"
        async with UeClient(uri, "ue-1", params=FAST, psk=("dev-1", key_1.encode())) as ue1:
            await ue1.register()
            inbox = ue1.inbox()
            assert await anext(inbox) == {"pending": 0}
            await refused(server, "dev-3", "key-3")  # not provisioned yet

            # dev-1 removed, dev-2 re-keyed, dev-3 added
            keys.write_text(psk_file({"dev-2": ("key-2b", "ue-2"), "dev-3": ("key-3", "ue-3")}))
            assert server.proc is not None
            server.proc.send_signal(signal.SIGHUP)
            await reloaded(server, "ok", 1)
            await registers(server, "ue-3", "dev-3", "key-3")
            await registers(server, "ue-2", "dev-2", "key-2b")
            await refused(server, "dev-2", key_2)
            await refused(server, "dev-1", key_1)

        # An invalid file: the keys in use stay, the error is logged without a key.
        too_long = "key-4-is-too-long-" + "x" * 40
        keys.write_text(psk_file({"dev-3": ("key-3", "ue-3"), "dev-4": (too_long, "ue-4")}))
        server.proc.send_signal(signal.SIGHUP)
        await reloaded(server, "failed", 1)
        await registers(server, "ue-3", "dev-3", "key-3")
    finally:
        server.stop()
    records = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    done = [r for r in records if r["msg"] == "PSK file reloaded"]
    assert len(done) == 1
    assert (done[0]["added"], done[0]["removed"], done[0]["changed"]) == (1, 1, 1)
    assert done[0]["sessions_ended"] >= 1  # dev-1's session, with its observation
    failed = [r for r in records if r["msg"].startswith("PSK file not reloaded")]
    assert len(failed) == 1
    assert "32 octets" in failed[0]["msg"]
    assert "key-4-is-too-long" not in server.log()


async def test_a_changed_file_is_noticed_by_polling(tmp_path: Path) -> None:
    keys = tmp_path / "psks.toml"
    keys.write_text(psk_file({"dev-1": ("key-1", "ue-1")}))
    taken: list[tuple[UePsk, ...]] = []
    metrics = Metrics()

    def apply(psks: tuple[UePsk, ...]) -> int:
        taken.append(psks)
        return 0

    watch = PskWatch(keys, (), apply, interval=0.05, metrics=metrics)
    await watch.start()
    try:
        await asyncio.sleep(0.2)
        assert taken == []  # unchanged: nothing read again
        keys.write_text(psk_file({"dev-1": ("key-1", "ue-1"), "dev-2": ("key-2", "ue-2")}))
        async with asyncio.timeout(5):
            while not taken:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert [p.identity for p in taken[0]] == ["dev-1", "dev-2"]
        assert watch.current == taken[0]
        replacement = tmp_path / "next.toml"  # a new file put in place (a new inode)
        replacement.write_text(psk_file({"dev-2": ("key-2", "ue-2")}))
        replacement.replace(keys)
        async with asyncio.timeout(5):
            while len(taken) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert [p.identity for p in watch.current] == ["dev-2"]
    finally:
        await watch.stop()


def test_sighup_without_a_psk_file_leaves_the_server_running(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        assert server.proc is not None
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while "nothing to reload" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "nothing to reload" in server.log()
        assert httpx.get(f"{server.url}/readyz").status_code == 200
    finally:
        assert server.stop() == 0
