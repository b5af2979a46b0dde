# SPDX-License-Identifier: Apache-2.0
"""libcoap's coap-client as an independent MSGin5G UE against a real server process (DESIGN
2.3): register, observe, receive an AS message (block-wise when large), answer an IMDN that
reaches the AS, send a message that reaches the AS. coap-client exits 0 even on 4.xx, so the
tests read its -v 6 trace."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_coap_endpoint import COAP_CLIENT
from tests.support.procs import Receiver, ServerProcess, free_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(COAP_CLIENT is None, reason="libcoap coap-client missing"),
]

DELIVER = "/msgs-msgdelivery/v1/deliver-as-message"
REGISTER = "/msgs-asregistration/v1/registrations"


@pytest.fixture
def ue_server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data", env={"MSGIN5G_UE_ACK_TIMEOUT_S": "0.5"}).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Receiver]:
    # h2c: the h1 receiver meets a known flake of the outbound client (WriteError on the
    # h2c preface is not taken as "speaks HTTP/1.1 only"), reported to the lead.
    receiver = Receiver(tmp_path / "as.jsonl", "h2c").start()
    try:
        yield receiver
    finally:
        receiver.stop()


def _uri(server: ServerProcess, path: str) -> str:
    return f"coap://127.0.0.1:{server.coap_port}/msgin5g/v1/{path}"


async def coap(*args: str) -> str:
    """One coap-client request with a -v 6 trace; returns the trace."""
    assert COAP_CLIENT is not None
    process = await asyncio.create_subprocess_exec(
        COAP_CLIENT,
        "-v",
        "6",
        "-B",
        "5",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(15):
        out, _ = await process.communicate()
    assert process.returncode == 0
    return out.decode(errors="replace")


async def post(server: ServerProcess, path: str, body: dict[str, Any], *extra: str) -> str:
    return await coap("-m", "post", "-t", "50", *extra, "-e", json.dumps(body), _uri(server, path))


class Observer:
    """coap-client observing a UE's inbox for `seconds`: its trace grows in `text`, the bodies
    it received (whole, after Block2 reassembly) are appended to the file `out`."""

    def __init__(
        self, server: ServerProcess, ue: str, seconds: int, out: Path, port: int = 0
    ) -> None:
        self.out = out
        self.args = (
            *(("-p", str(port)) if port else ()),
            "-m",
            "get",
            "-s",
            str(seconds),
            "-o",
            str(out),
            _uri(server, f"ues/{ue}/inbox"),
        )
        self.text = ""
        self.process: asyncio.subprocess.Process | None = None
        self.reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Observer:
        assert COAP_CLIENT is not None
        self.process = await asyncio.create_subprocess_exec(
            COAP_CLIENT,
            "-v",
            "6",
            "-B",
            "5",
            *self.args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self.reader = asyncio.create_task(self._read())
        await self.wait_for('{"pending":')
        return self

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        while chunk := await self.process.stdout.read(4096):
            self.text += chunk.decode(errors="replace")

    def received(self) -> str:
        return self.out.read_text() if self.out.exists() else ""

    async def wait_for(self, needle: str, within: float = 10.0) -> None:
        """Until `needle` is in the received bodies (or, before any, in the trace)."""
        for _ in range(int(within / 0.05)):
            if needle in self.received() or needle in self.text:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{needle!r} not received; trace:\n{self.text}")

    def notifications(self) -> list[dict[str, Any]]:
        """The MSG/IMDN bodies received, in order."""
        text = self.received()
        decoder = json.JSONDecoder()
        found: list[dict[str, Any]] = []
        at = 0
        while at < len(text):
            body, at = decoder.raw_decode(text, at)
            if "msgType" in body:
                found.append(body)
        return found

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.terminate()
        await self.process.wait()
        if self.reader is not None:
            await self.reader


async def register_ue(server: ServerProcess, ue: str, **extra: Any) -> str:
    trace = await post(server, "registrations", {"msgType": "REG", "ueSvcId": ue, **extra})
    assert "2.01" in trace
    match = re.search(r'"regId":"([^"]+)"', trace)
    assert match
    assert f"Location-Path:{match.group(1)}" in trace
    return match.group(1)


@pytest.fixture
async def http(ue_server: ServerProcess, app: Receiver) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=ue_server.url, http1=False, http2=True, timeout=10
    ) as client:
        registered = await client.post(REGISTER, json={"asSvcId": "as-1", "targetUri": app.url})
        assert registered.status_code == 201
        yield client


def as_message(ue: str, payload: str, **extra: Any) -> dict[str, Any]:
    return {
        "oriAddr": {"addrType": "AS", "addr": "as-1"},
        "destAddr": {"addrType": "UE", "addr": ue},
        "msgId": str(uuid.uuid4()),
        "payload": payload,
        "stoAndFwInd": True,
        **extra,
    }


async def test_coap_client_as_ue_receives_reports_and_sends(
    ue_server: ServerProcess, app: Receiver, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    await register_ue(ue_server, "ue-1")
    async with Observer(ue_server, "ue-1", 8, tmp_path / "inbox.out") as observer:
        sent = as_message("ue-1", "hello ue ✓", delivStReqInd=True, appId="meter")
        ack = (await http.post(DELIVER, json=sent)).json()
        assert "status" not in ack  # the UE observes: forwarded at once
        await observer.wait_for(sent["msgId"])
    (got,) = [n for n in observer.notifications() if n.get("msgId") == sent["msgId"]]
    assert got == {
        "msgType": "MSG",
        "oriAddr": sent["oriAddr"],
        "destAddr": sent["destAddr"],
        "msgId": sent["msgId"],
        "appId": "meter",
        "delivStReqInd": True,
        "payload": "hello ue ✓",
    }

    imdn = {
        "msgType": "IMDN",
        "oriAddr": {"addrType": "UE", "addr": "ue-1"},
        "destAddr": {"addrType": "AS", "addr": "as-1"},
        "msgId": sent["msgId"],
        "delivSt": "REPT_DELY_SUCCESS",
    }
    trace = await post(ue_server, "reports", imdn)
    assert "2.04" in trace
    (report,) = await asyncio.to_thread(app.wait_for, 1)
    assert report["path"] == "/cb/deliver-report"
    assert report["body"] == {k: v for k, v in imdn.items() if k != "msgType"}

    uplink = {
        "msgType": "MSG",
        "oriAddr": {"addrType": "UE", "addr": "ue-1"},
        "destAddr": {"addrType": "AS", "addr": "as-1"},
        "msgId": "ue-msg-1",
        "payload": "reading=42",
        "delivStReqInd": True,
    }
    trace = await post(ue_server, "messages", uplink)
    assert "2.04" in trace
    assert '{"msgType":"MSGRESP","msgId":"ue-msg-1"}' in trace
    got_all = await asyncio.to_thread(app.wait_for, 2)
    assert got_all[1]["path"] == "/cb/deliver-message"
    assert got_all[1]["body"] == {k: v for k, v in uplink.items() if k != "msgType"}


async def test_coap_client_stored_items_in_priority_order_and_large_ones_blockwise(
    ue_server: ServerProcess, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    await register_ue(ue_server, "ue-2", maxSegSize=3000)
    big = "".join(f"{i:04d}-" for i in range(1000))  # 5,000 octets: 2 segments of <= 3000
    bodies = [
        as_message("ue-2", "low", priority="LOW"),
        as_message("ue-2", big, priority="MIDDLE"),
        as_message("ue-2", "high", priority="HIGH"),
    ]
    for body in bodies:
        assert (await http.post(DELIVER, json=body)).json()["status"] == "DELY_STORED"
    async with Observer(ue_server, "ue-2", 10, tmp_path / "inbox.out") as observer:
        await observer.wait_for('"payload":"low"')
    got = observer.notifications()
    assert '{"pending":4}' in observer.text
    payloads = [n["payload"] for n in got]
    assert payloads[0] == "high"
    assert payloads[-1] == "low"
    segments = got[1:3]
    assert [s["segParams"]["segNumb"] for s in segments] == [1, 2]
    assert segments[1]["segParams"]["lastSegFlag"] is True
    assert "".join(s["payload"] for s in segments) == big
    assert "Block2" in observer.text  # each segment notification was over one block


async def test_coap_client_errors_in_the_trace(ue_server: ServerProcess) -> None:
    trace = await post(ue_server, "messages", {"msgType": "NOPE"})
    assert "4.00" in trace
    assert '"cause":"MANDATORY_IE_INCORRECT"' in trace
    trace = await coap("-m", "post", "-t", "0", "-e", "x", _uri(ue_server, "messages"))
    assert "4.15" in trace
    trace = await coap("-m", "get", _uri(ue_server, "ues/nobody/inbox"))
    assert "4.04" in trace
    trace = await coap("-m", "delete", _uri(ue_server, "registrations/nope"))
    assert "4.04" in trace
    reg_id = await register_ue(ue_server, "ue-3")
    trace = await coap("-m", "delete", _uri(ue_server, f"registrations/{reg_id}"))
    assert "2.02" in trace


async def test_coap_client_blockwise_upload_reaches_the_as(
    ue_server: ServerProcess, app: Receiver, http: httpx.AsyncClient
) -> None:
    await register_ue(ue_server, "ue-4")
    text = "z" * 1800
    body = {
        "msgType": "MSG",
        "oriAddr": {"addrType": "UE", "addr": "ue-4"},
        "destAddr": {"addrType": "AS", "addr": "as-1"},
        "msgId": "ue-big-1",
        "payload": text,
    }
    trace = await post(ue_server, "messages", body, "-b", "512")
    assert "Block1" in trace
    assert '{"msgType":"MSGRESP","msgId":"ue-big-1"}' in trace
    (got,) = await asyncio.to_thread(app.wait_for, 1)
    assert got["body"]["payload"] == text  # type: ignore[index]


def notification_ids(trace: str) -> list[int]:
    """The message ids of the Confirmable notifications in a coap-client -v 6 trace."""
    return [int(mid, 16) for mid in re.findall(r"v:1 t:CON c:2\.05 i:([0-9a-f]{4})", trace, re.I)]


async def test_message_ids_continue_across_kill_9_for_the_same_ue_endpoint(
    tmp_path: Path, app: Receiver
) -> None:
    """RFC 7252 §4.4 across a restart: coap-client keeps its port (-p), as a UE keeps its
    address, and after kill -9 and a restart the server goes on past the ids it sent there
    instead of starting afresh at a random one the UE may have seen moments ago (ADR 0006)."""
    ue_port = free_port(socket.SOCK_DGRAM)
    server = ServerProcess(tmp_path / "data", env={"MSGIN5G_UE_ACK_TIMEOUT_S": "0.5"}).start()
    traces: list[str] = []
    try:
        await register_ue(server, "ue-1")
        for round_ in range(2):
            if round_:
                server.kill9()
                server = ServerProcess(
                    server.data_dir,
                    env=server.env,
                    http_port=server.http_port,
                    coap_port=server.coap_port,
                ).start()
            observer = Observer(server, "ue-1", 20, tmp_path / f"inbox-{round_}.out", ue_port)
            async with (
                observer,
                httpx.AsyncClient(base_url=server.url, http2=True, http1=False) as http,
            ):
                registered = await http.post(
                    REGISTER, json={"asSvcId": "as-1", "targetUri": app.url}
                )
                assert registered.status_code in (200, 201)
                sent = [as_message("ue-1", f"round {round_} #{n}") for n in range(5)]
                for message in sent:
                    assert (await http.post(DELIVER, json=message)).status_code == 200
                for message in sent:
                    await observer.wait_for(message["msgId"])
            traces.append(observer.text)
    finally:
        server.stop()
    before, after = (notification_ids(trace) for trace in traces)
    assert len(before) >= 5
    assert len(after) >= 5
    assert not set(after) & set(before), "an id repeated to the UE within EXCHANGE_LIFETIME"
    assert 0 < (after[0] - before[-1]) % 0x10000 <= 1024, (before, after)
