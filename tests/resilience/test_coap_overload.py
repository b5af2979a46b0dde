# SPDX-License-Identifier: Apache-2.0
"""CoAP overload (issue 7; ADR 0020): a flood of MSGin5G-1 requests from many UDP clients at a
real server process. Beyond `ue.max_requests_in_progress` it answers 5.03 with Max-Age at once
(RFC 7252 5.9.3.4) instead of letting requests time out; nothing answered 5.03 was stored,
everything answered 2.04 was, and a well-behaved UE is served again right after the flood."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from msgin5g.coap import (
    CoapClient,
    CoapEndpoint,
    CoapRequest,
    CoapResponse,
    EndpointConfig,
    TransmissionParameters,
)
from msgin5g.coap.message import Code, MessageType, OptionNumber, decode, format_code
from tests.resilience.coapflood import Flood, get, post
from tests.support.procs import ServerProcess

MAX_AGE = 3
FAST = TransmissionParameters(ack_timeout=0.2, exchange_lifetime=10.0, non_lifetime=10.0)
SOCKETS = 40
PER_SOCKET = 50


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path / "data",
        env={
            "MSGIN5G_UE_MAX_REQUESTS_IN_PROGRESS": "8",
            "MSGIN5G_UE_OVERLOAD_MAX_AGE_S": str(MAX_AGE),
            "MSGIN5G_LOG_LEVEL": "WARNING",
        },
    ).start()
    try:
        yield proc
    finally:
        assert proc.stop() == 0


def exchange(port: int, data: bytes, timeout: float = 2.0) -> dict[str, object]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(data, ("127.0.0.1", port))
        answer = decode(sock.recv(2048))
    assert answer.mtype == MessageType.ACK
    return {
        "code": answer.code,
        "body": json.loads(answer.payload) if answer.payload else None,
        "max_age": answer.uint_option(OptionNumber.MAX_AGE),
    }


def message(msg_id: str) -> dict[str, object]:
    return {
        "msgType": "MSG",
        "oriAddr": {"addrType": "UE", "addr": "sender"},
        "destAddr": {"addrType": "UE", "addr": "sleeper"},
        "msgId": msg_id,
        "stoAndFwInd": True,
        "payload": "x" * 64,
    }


def test_flood_gets_503_with_max_age_and_the_server_recovers(server: ServerProcess) -> None:
    port = server.coap_port
    for ue in ("sender", "sleeper"):
        reg = exchange(port, post("registrations", {"msgType": "REG", "ueSvcId": ue}, 1, b"r"))
        assert reg["code"] == Code.CREATED, reg

    per_socket = [
        [post("messages", message(f"f-{s}-{i}"), i + 1, b"f") for i in range(PER_SOCKET)]
        for s in range(SOCKETS)
    ]
    flood = Flood(port)
    started = time.monotonic()
    flood.run(per_socket)
    elapsed = time.monotonic() - started
    codes = Counter(format_code(a.code) for a in flood.answers.values())
    # Every request was answered (none left to time out), with 2.04 or 5.03 only.
    assert len(flood.answers) == flood.total, (len(flood.answers), codes)
    assert set(codes) <= {"2.04", "5.03"}, codes
    assert codes["5.03"] > 0, f"never saturated: {codes}"
    for answer in flood.answers.values():
        if answer.code == Code.SERVICE_UNAVAILABLE:
            assert answer.uint_option(OptionNumber.MAX_AGE) == MAX_AGE
            assert json.loads(answer.payload)["cause"] == "NF_CONGESTION"
        else:
            assert "status" in json.loads(answer.payload)  # DELY_STORED, committed
    print(f"flood of {flood.total} requests in {elapsed:.2f}s: {dict(codes)}")

    # Recovered by itself: a well-behaved UE is served at once.
    after = exchange(port, post("messages", message("after-flood"), 9, b"w"))
    assert after["code"] == Code.CHANGED, after
    # Stored = exactly what was answered 2.04 (a 5.03 stored nothing), plus the one after.
    inbox = exchange(port, get("ues/sleeper/inbox", 10, b"i"))
    assert inbox["body"] == {"pending": codes["2.04"] + 1}, (inbox, codes)
    assert "Traceback" not in server.log()


class Gate:
    """A CoAP handler that holds every request until released; `boom` raises instead."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.two_waiting = asyncio.Event()
        self.entered = 0

    async def handle(self, request: CoapRequest) -> CoapResponse:
        self.entered += 1
        if self.entered == 2:
            self.two_waiting.set()
        if request.path == ("boom",):
            raise RuntimeError("handler bug")
        await self.open.wait()
        return CoapResponse(Code.CONTENT, b"done")


async def test_in_progress_cap_answers_503_at_once_and_frees_up() -> None:
    gate = Gate()
    endpoint = CoapEndpoint(
        gate,
        params=FAST,
        config=EndpointConfig(max_in_progress=2, overload_max_age=7, piggyback_delay=5.0),
    )
    await endpoint.start("127.0.0.1", 0)
    remote = endpoint.address
    try:
        async with CoapClient(params=FAST) as client:
            held = [
                asyncio.create_task(client.request(remote, Code.GET, ("slow", str(i))))
                for i in range(2)
            ]
            async with asyncio.timeout(5):
                await gate.two_waiting.wait()
            started = time.monotonic()
            refused = await client.request(remote, Code.GET, ("slow", "2"))
            assert refused.code == Code.SERVICE_UNAVAILABLE
            assert time.monotonic() - started < 0.5  # at once, not after a timeout
            assert refused.uint_option(OptionNumber.MAX_AGE) == 7
            assert json.loads(refused.payload)["cause"] == "NF_CONGESTION"
            assert endpoint.overloaded == 1
            gate.open.set()
            assert [(await t).code for t in held] == [Code.CONTENT, Code.CONTENT]
            # A failing handler gives its place back too (it answers 5.00, no leak).
            for _ in range(3):
                failed = await client.request(remote, Code.GET, ("boom",))
                assert failed.code == Code.INTERNAL_SERVER_ERROR
            answers = await asyncio.gather(
                *(client.request(remote, Code.GET, ("again", str(i))) for i in range(2))
            )
            assert [a.code for a in answers] == [Code.CONTENT, Code.CONTENT]
    finally:
        await endpoint.stop()
