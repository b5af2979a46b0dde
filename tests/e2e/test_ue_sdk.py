# SPDX-License-Identifier: Apache-2.0
"""The SDK (UeClient over CoAP, AsClient over h2c) and the `msgin5g ue` / `msgin5g as` commands
against a real server process: both directions with reports, store and forward across a UE
going offline and across kill -9, 10 kB messages segmented both ways, idempotent msgIds."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from msgin5g.coap import CoapClient, Code, TransmissionParameters
from msgin5g.sdk import AsClient, UeClient
from tests.support.procs import Receiver, ServerProcess, free_port

pytestmark = pytest.mark.e2e

FAST = TransmissionParameters(ack_timeout=0.3, exchange_lifetime=10.0, non_lifetime=10.0)
ENV = {"MSGIN5G_UE_ACK_TIMEOUT_S": "0.3", "MSGIN5G_UE_MAX_RETRANSMIT": "2"}
Json = dict[str, Any]
TEN_KB = "".join(f"{i:04d}é" for i in range(1700))  # 10,200 octets of UTF-8


@pytest.fixture
def ue_server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data", env=ENV).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    app = Receiver(tmp_path / "as.jsonl", "h2c").start()
    try:
        yield app
    finally:
        app.stop()


@pytest.fixture
async def as_app(ue_server: ServerProcess, receiver: Receiver) -> AsyncIterator[AsClient]:
    async with AsClient(ue_server.url, "as-1") as app:
        await app.register(target_uri=receiver.url)
        yield app


def coap_uri(server: ServerProcess) -> str:
    return f"coap://127.0.0.1:{server.coap_port}"


async def take(inbox: AsyncIterator[Json], count: int, within: float = 10.0) -> list[Json]:
    out: list[Json] = []
    async with asyncio.timeout(within):
        while len(out) < count:
            out.append(await anext(inbox))
    return out


async def callbacks(receiver: Receiver, count: int) -> list[dict[str, Any]]:
    return await asyncio.to_thread(receiver.wait_for, count)


async def test_both_directions_with_reports(
    ue_server: ServerProcess, receiver: Receiver, as_app: AsClient
) -> None:
    async with UeClient(coap_uri(ue_server), "ue-1", params=FAST) as ue:
        await ue.register()
        inbox = ue.inbox()
        assert await take(inbox, 1) == [{"pending": 0}]
        ack = await as_app.send("UE:ue-1", "to the ue", report=True, msg_id="a-1")
        assert ack == {"oriAddr": as_app.address, "msgId": "a-1"}
        (msg,) = await take(inbox, 1)
        assert msg["payload"] == "to the ue"
        assert msg["delivStReqInd"] is True
        assert await ue.report(msg["oriAddr"], msg["msgId"]) == {
            "msgType": "MSGRESP",
            "msgId": "a-1",
        }
        (report,) = await callbacks(receiver, 1)
        assert report["path"] == "/cb/deliver-report"
        assert report["body"] == {
            "oriAddr": ue.address,
            "destAddr": as_app.address,
            "msgId": "a-1",
            "delivSt": "REPT_DELY_SUCCESS",
        }

        resp = await ue.send("AS:as-1", "to the as", msg_id="u-1", report=True, app_id="meter")
        assert resp == {"msgType": "MSGRESP", "msgId": "u-1"}
        uplink = (await callbacks(receiver, 2))[1]
        assert uplink["path"] == "/cb/deliver-message"
        assert uplink["body"] == {
            "oriAddr": ue.address,
            "destAddr": as_app.address,
            "msgId": "u-1",
            "appId": "meter",
            "delivStReqInd": True,
            "payload": "to the as",
        }
        assert "status" not in await as_app.report("UE:ue-1", "u-1")
        (imdn,) = await take(inbox, 1)
        assert imdn["msgType"] == "IMDN"
        assert imdn["msgId"] == "u-1"
        assert imdn["oriAddr"] == as_app.address
        await inbox.aclose()


async def test_store_and_forward_across_a_ue_going_offline(
    ue_server: ServerProcess, as_app: AsClient
) -> None:
    async with UeClient(coap_uri(ue_server), "ue-1", params=FAST) as ue:
        await ue.register()
        inbox = ue.inbox()
        await take(inbox, 1)
        await as_app.send("UE:ue-1", "one", store=True)
        first = (await take(inbox, 1))[0]
        assert first["payload"] == "one"
        await inbox.aclose()  # deregisters the observation: the UE is offline now
    for text in ("two", "three"):
        ack = await as_app.send("UE:ue-1", text, store=True)
        assert ack["status"] == "DELY_STORED"
    # An observer that never acknowledges: the item is not handed over and stays stored.
    async with CoapClient(params=FAST) as silent:
        observation = await silent.observe(
            ("127.0.0.1", ue_server.coap_port), ("msgin5g", "v1", "ues", "ue-1", "inbox")
        )
        assert json.loads((await anext(observation)).payload) == {"pending": 2}
        await asyncio.sleep(0.5)  # a notification arrives and waits, unacknowledged
    async with UeClient(coap_uri(ue_server), "ue-1", params=FAST) as back:
        inbox = back.inbox()
        items = await take(inbox, 3)
        assert items[0] == {"pending": 2}
        assert [i["payload"] for i in items[1:]] == ["two", "three"]
        await inbox.aclose()
    # The SDK made the msgIds: time-ordered UUIDv7, ascending (ADR 0024).
    made = [first["msgId"], *(i["msgId"] for i in items[1:])]
    assert made == sorted(made)
    assert {uuid.UUID(m).version for m in made} == {7}


async def test_stored_messages_survive_kill9(tmp_path: Path, receiver: Receiver) -> None:
    data = tmp_path / "data"
    first = ServerProcess(data, env=ENV).start()
    try:
        async with AsClient(first.url, "as-1") as app:
            await app.register(target_uri=receiver.url)
            async with UeClient(coap_uri(first), "ue-1", params=FAST) as ue:
                await ue.register()
            acks = [
                await app.send("UE:ue-1", f"m{i}", store=True, priority=p, msg_id=f"k-{i}")
                for i, p in enumerate(["LOW", "HIGH", "MIDDLE"])
            ]
            assert {a["status"] for a in acks} == {"DELY_STORED"}
    finally:
        first.kill9()
    second = ServerProcess(data, env=ENV).start()
    try:
        async with AsClient(second.url, "as-1") as app:
            # The repeat is acknowledged as before and not queued again.
            assert (await app.send("UE:ue-1", "m0", store=True, msg_id="k-0"))[
                "status"
            ] == "DELY_STORED"
        async with UeClient(coap_uri(second), "ue-1", params=FAST) as ue:
            inbox = ue.inbox()  # the registration survived the crash too
            items = await take(inbox, 4)
            assert items[0] == {"pending": 3}
            assert [i["payload"] for i in items[1:]] == ["m1", "m2", "m0"]
            await inbox.aclose()
    finally:
        second.stop()


async def test_ten_kilobytes_segmented_both_ways(
    ue_server: ServerProcess, receiver: Receiver, as_app: AsClient
) -> None:
    async with UeClient(coap_uri(ue_server), "ue-1", params=FAST, max_segment_size=1500) as ue:
        await ue.register(max_segment_size=1024)
        inbox = ue.inbox()
        assert await take(inbox, 1) == [{"pending": 0}]
        await as_app.send("UE:ue-1", TEN_KB, msg_id="big-down", report=True)
        (whole,) = await take(inbox, 1)
        assert whole["payload"] == TEN_KB
        assert whole["msgId"] == "big-down"
        await ue.report(whole["oriAddr"], whole["msgId"])

        resp = await ue.send("AS:as-1", TEN_KB, msg_id="big-up", store=True)
        assert resp == {"msgType": "MSGRESP", "msgId": "big-up"}
        got = await callbacks(receiver, 2)
        messages = [g for g in got if g["path"] == "/cb/deliver-message"]
        assert len(messages) == 1
        assert messages[0]["body"]["payload"] == TEN_KB
        assert "segInd" not in messages[0]["body"]
        await inbox.aclose()


async def test_repeated_msg_ids_are_delivered_once(
    ue_server: ServerProcess, receiver: Receiver, as_app: AsClient
) -> None:
    async with UeClient(coap_uri(ue_server), "ue-1", params=FAST) as ue:
        await ue.register()
        first = await ue.send("AS:as-1", "once", msg_id="dup-1")
        assert await ue.send("AS:as-1", "once", msg_id="dup-1") == first
        inbox = ue.inbox()
        await take(inbox, 1)
        for _ in range(2):
            await as_app.send("UE:ue-1", "down once", msg_id="dup-2")
        await as_app.send("UE:ue-1", "after", msg_id="dup-3")
        items = await take(inbox, 2)
        assert [i["msgId"] for i in items] == ["dup-2", "dup-3"]
        await asyncio.sleep(0.3)
        assert [r["body"]["msgId"] for r in receiver.received()] == ["dup-1"]  # type: ignore[index]
        await inbox.aclose()


def _cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "msgin5g.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_cli_ue_and_as(ue_server: ServerProcess) -> None:
    port = free_port()
    receiver = _cli("as", "--http", f"127.0.0.1:{port}", "--server", ue_server.url, "--id", "as-9")
    try:
        async with AsClient(ue_server.url, "probe") as probe:
            for attempt in range(100):  # until `msgin5g as` registered
                ack = await probe.send("AS:as-9", "ping", msg_id=f"probe-{attempt}")
                if "UNKNOWN_RECIPIENT" not in ack.get("failureCause", ""):
                    break
                await asyncio.sleep(0.1)
        ue = _cli(
            "ue",
            "--server",
            coap_uri(ue_server),
            "--id",
            "ue-9",
            "--count",
            "1",
            "--seconds",
            "20",
            "--send",
            "AS:as-9",
            "--payload",
            "hello from cli",
            "--report",
        )
        async with AsClient(ue_server.url, "as-9") as app:
            for attempt in range(100):  # until `msgin5g ue` observes its inbox
                msg_id = f"c-{attempt}"
                ack = await app.send("UE:ue-9", "hello cli ue", report=True, msg_id=msg_id)
                if "status" not in ack:
                    break
                await asyncio.sleep(0.1)
        out, err = await asyncio.to_thread(ue.communicate, timeout=30)
        assert ue.returncode == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        assert lines[0]["msgType"] == "REG"
        assert lines[1]["msgType"] == "MSGRESP"
        received = [x for x in lines if x.get("msgType") == "MSG"]
        assert [x["payload"] for x in received] == ["hello cli ue"]
        assert lines[-1] == {"msgType": "MSGRESP", "msgId": msg_id}  # its automatic IMDN
        await asyncio.sleep(0.5)
    finally:
        receiver.terminate()
        got, _ = await asyncio.to_thread(receiver.communicate, timeout=10)
    events = [json.loads(line) for line in got.splitlines()]
    kinds = {(e["kind"], e["body"].get("payload"), e["body"]["msgId"]) for e in events}
    assert ("deliver-message", "hello from cli", lines[1]["msgId"]) in kinds
    assert ("deliver-report", None, msg_id) in kinds


async def test_partial_uplink_reassembly_survives_kill9(tmp_path: Path, receiver: Receiver) -> None:
    data = tmp_path / "data"
    parts = ["alpha-" * 50, "beta-" * 50, "gamma-" * 50]

    def segment(number: int) -> bytes:
        params: Json = {"segId": "s-9", "segNumb": number, "totalSegCount": 3}
        if number == 3:
            params["lastSegFlag"] = True
        body = {
            "msgType": "MSG",
            "oriAddr": {"addrType": "UE", "addr": "ue-1"},
            "destAddr": {"addrType": "AS", "addr": "as-1"},
            "msgId": "seg-up",
            "stoAndFwInd": True,
            "payload": parts[number - 1],
            "segInd": True,
            "segParams": params,
        }
        return json.dumps(body).encode()

    async def post(server: ServerProcess, number: int) -> Json:
        async with CoapClient(params=FAST) as client:
            response = await client.request(
                ("127.0.0.1", server.coap_port),
                Code.POST,
                ("msgin5g", "v1", "messages"),
                payload=segment(number),
                content_format=50,
            )
        answer: Json = json.loads(response.payload)
        return answer

    first = ServerProcess(data, env=ENV).start()
    try:
        async with AsClient(first.url, "as-1") as app:
            await app.register(target_uri=receiver.url)
        async with UeClient(coap_uri(first), "ue-1", params=FAST) as ue:
            await ue.register()
        assert await post(first, 1) == {"msgType": "MSGRESP", "msgId": "seg-up"}
        assert await post(first, 3) == {"msgType": "MSGRESP", "msgId": "seg-up"}
    finally:
        first.kill9()
    second = ServerProcess(data, env=ENV).start()
    try:
        assert await post(second, 2) == {"msgType": "MSGRESP", "msgId": "seg-up"}
        (got,) = await callbacks(receiver, 1)
        assert got["body"]["payload"] == "".join(parts)
        assert got["body"]["msgId"] == "seg-up"
    finally:
        second.stop()
