# SPDX-License-Identifier: Apache-2.0
"""End to end over real processes: AS A -> server -> AS B and B's report -> A (DESIGN 2.2).

A receives on the standard library's HTTP/1.1-only server, B on an HTTP/2-only (h2c) server,
so both halves of the server's outbound client are exercised.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.procs import Receiver, ServerProcess, free_port

pytestmark = pytest.mark.e2e

DELIVER = "/msgs-msgdelivery/v1/deliver-as-message"
REPORT = "/msgs-msgdelivery/v1/deliver-report"
REGISTER = "/msgs-asregistration/v1/registrations"


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[tuple[Receiver, Receiver]]:
    a = Receiver(tmp_path / "a.jsonl", "h1").start()
    b = Receiver(tmp_path / "b.jsonl", "h2c").start()
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def client(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, http1=False, http2=True, timeout=10)


def register(http: httpx.Client, as_id: str, target: str | None) -> None:
    body: dict[str, object] = {"asSvcId": as_id}
    if target:
        body["targetUri"] = target
    assert http.post(REGISTER, json=body).status_code == 201


def message(
    src: str, dst: str, *, report: bool = True, store: bool = True, expiry: datetime | None = None
) -> dict[str, object]:
    body: dict[str, object] = {
        "oriAddr": {"addrType": "AS", "addr": src},
        "destAddr": {"addrType": "AS", "addr": dst},
        "msgId": str(uuid.uuid4()),
        "appId": "meter",
        "payload": "reading=42;ünïcødé ✓",
        "stoAndFwInd": store,
        "delivStReqInd": report,
    }
    if expiry is not None:
        body["stoAndFwParams"] = {"exprTime": expiry.isoformat()}
    return body


def test_message_reaches_b_and_b_report_reaches_a(
    server: ServerProcess, receivers: tuple[Receiver, Receiver]
) -> None:
    a, b = receivers
    with client(server) as http:
        register(http, "app-a", a.url)
        register(http, "app-b", b.url)
        sent = message("app-a", "app-b")
        ack = http.post(DELIVER, json=sent)
        assert ack.status_code == 200
        assert ack.json() == {"oriAddr": sent["oriAddr"], "msgId": sent["msgId"]}

        (got,) = b.wait_for(1)
        assert got["path"] == "/cb/deliver-message"
        assert got["http_version"] == "2"
        assert got["body"] == {
            "oriAddr": sent["oriAddr"],
            "destAddr": sent["destAddr"],
            "msgId": sent["msgId"],
            "appId": "meter",
            "delivStReqInd": True,
            "payload": sent["payload"],
        }

        report = {
            "oriAddr": sent["destAddr"],
            "destAddr": sent["oriAddr"],
            "msgId": sent["msgId"],
            "delivSt": "REPT_DELY_SUCCESS",
        }
        assert http.post(REPORT, json=report).json() == {
            "oriAddr": sent["destAddr"],
            "msgId": sent["msgId"],
        }
        (got_report,) = a.wait_for(1)
        assert got_report["path"] == "/cb/deliver-report"
        assert got_report["http_version"] == "1.1"
        assert got_report["body"] == report

        # B answers A the other way round: HTTP/1.1 toward A's receiver.
        reply = message("app-b", "app-a", report=False)
        assert http.post(DELIVER, json=reply).status_code == 200
        got_a = a.wait_for(2)
        assert got_a[1]["path"] == "/cb/deliver-message"
        assert got_a[1]["body"]["msgId"] == reply["msgId"]  # type: ignore[index]
    time.sleep(0.3)
    assert len(b.received()) == 1, "B must receive its message exactly once"


def test_receiver_that_is_down_gets_messages_after_it_comes_back(
    server: ServerProcess, tmp_path: Path
) -> None:
    port = free_port()
    b = Receiver(tmp_path / "b.jsonl", "h2c", port=port)
    with client(server) as http:
        register(http, "app-b", b.url)
        first = message("app-a", "app-b", report=False)
        http.post(DELIVER, json=first).raise_for_status()
        time.sleep(0.5)  # the server has tried and failed: B is known to be down now
        second = message("app-a", "app-b", report=False)
        ack = http.post(DELIVER, json=second).json()
        assert ack["status"] == "DELY_STORED"
        not_stored = message("app-a", "app-b", report=False, store=False)
        refused = http.post(DELIVER, json=not_stored).json()
        assert refused["status"] == "DELY_FAILED"
        assert "RECIPIENT_UNREACHABLE" in refused["failureCause"]

        b.start()
        try:
            got = b.wait_for(2)
            time.sleep(0.5)
            ids = [g["body"]["msgId"] for g in b.received()]  # type: ignore[index]
            assert sorted(ids) == sorted([first["msgId"], second["msgId"]])
            assert {g["body"]["msgId"] for g in got} == set(ids)  # type: ignore[index]
        finally:
            b.stop()


def test_expired_message_produces_failure_report(server: ServerProcess, tmp_path: Path) -> None:
    a = Receiver(tmp_path / "a.jsonl", "h1").start()
    try:
        with client(server) as http:
            register(http, "app-a", a.url)
            register(http, "app-b", f"http://127.0.0.1:{free_port()}/down")
            sent = message("app-a", "app-b", expiry=datetime.now(UTC) + timedelta(seconds=1.5))
            http.post(DELIVER, json=sent).raise_for_status()
            (got,) = a.wait_for(1, timeout=15)
        assert got["path"] == "/cb/deliver-report"
        body = got["body"]
        assert isinstance(body, dict)
        assert body["delivSt"] == "REPT_DELY_FAILED"
        assert body["msgId"] == sent["msgId"]
        assert body["oriAddr"] == sent["destAddr"]
        assert body["destAddr"] == sent["oriAddr"]
        assert "EXPIRED" in body["failureCause"]
    finally:
        a.stop()


def test_receiver_refusing_with_4xx_fails_the_message_with_a_report(
    server: ServerProcess, tmp_path: Path
) -> None:
    a = Receiver(tmp_path / "a.jsonl", "h1").start()
    b = Receiver(tmp_path / "b.jsonl", "h1", status=403).start()
    try:
        with client(server) as http:
            register(http, "app-a", a.url)
            register(http, "app-b", b.url)
            sent = message("app-a", "app-b")
            http.post(DELIVER, json=sent).raise_for_status()
            (got,) = a.wait_for(1)
        assert got["body"]["delivSt"] == "REPT_DELY_FAILED"  # type: ignore[index]
        assert "403" in got["body"]["failureCause"]  # type: ignore[index]
        assert len(b.received()) == 1
    finally:
        a.stop()
        b.stop()


def test_repeated_msg_id_is_acknowledged_again_and_delivered_once(
    server: ServerProcess, receivers: tuple[Receiver, Receiver]
) -> None:
    _a, b = receivers
    with client(server) as http:
        register(http, "app-b", b.url)
        sent = message("app-a", "app-b", report=False)
        first = http.post(DELIVER, json=sent).json()
        second = http.post(DELIVER, json=sent).json()
        assert first == second
        b.wait_for(1)
        time.sleep(0.5)
    assert len(b.received()) == 1
