# SPDX-License-Identifier: Apache-2.0
"""A full disk under --data-dir (issue 7; ADR 0020): the server refuses new messages with a
clear error (HTTP 503 ProblemDetails INSUFFICIENT_RESOURCES with Retry-After; CoAP 5.03 with
Max-Age), keeps every message it acknowledged, accepts again once space returns, and the store
passes SQLite's integrity check. The data dir is a small tmpfs mounted by the test (root)."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from msgin5g.coap.message import Code
from tests.resilience.coapflood import post
from tests.resilience.test_coap_overload import exchange
from tests.support.procs import Receiver, ServerProcess
from tests.support.tmpfs import small_tmpfs

DELIVER = "/msgs-msgdelivery/v1/deliver-as-message"
REGISTER = "/msgs-asregistration/v1/registrations"
PAYLOAD = "p" * 4096
BIG = "b" * 32768


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk", "4m") as mount:
        yield mount


def fill(mount: Path, leave: int) -> Path:
    """A filler file that leaves about `leave` bytes free on `mount`."""
    stat = os.statvfs(mount)
    free = stat.f_bavail * stat.f_frsize
    filler = mount / "filler"
    with filler.open("wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


def log_records(text: str) -> list[dict[str, str]]:
    """The server's JSON log lines."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def send(http: httpx.Client, msg_id: str, payload: str = PAYLOAD) -> httpx.Response:
    return http.post(
        DELIVER,
        json={
            "oriAddr": {"addrType": "AS", "addr": "sender"},
            "destAddr": {"addrType": "AS", "addr": "sink"},
            "msgId": msg_id,
            "stoAndFwInd": True,
            "payload": payload,
        },
    )


def test_full_disk_refuses_cleanly_and_loses_nothing(small_disk: Path, tmp_path: Path) -> None:
    receiver = Receiver(tmp_path / "sink.jsonl", "h2c")  # not started: the sink is down
    server = ServerProcess(small_disk, env={"MSGIN5G_LOG_LEVEL": "WARNING"}).start()
    acked: list[str] = []
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for as_id, target in (("sender", None), ("sink", receiver.url)):
                body = {"asSvcId": as_id, **({"targetUri": target} if target else {})}
                assert http.post(REGISTER, json=body).status_code == 201
            exchange(
                server.coap_port, post("registrations", {"msgType": "REG", "ueSvcId": "u"}, 1, b"r")
            )
            filler = fill(small_disk, 600_000)
            refused = None
            for i in range(2000):
                response = send(http, f"m-{i}")
                if response.status_code != 200:
                    refused = response
                    break
                assert response.json().get("status") in (None, "DELY_STORED"), response.text
                acked.append(f"m-{i}")
            assert refused is not None, "the disk never filled"
            assert acked, "nothing fitted before the disk was full"
            # The refusal is clear and says when to try again; nothing was acknowledged.
            assert refused.status_code == 503, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.headers["retry-after"]
            problem = refused.json()
            assert problem["cause"] == "INSUFFICIENT_RESOURCES", problem
            assert "full" in problem["detail"], problem
            print(f"{len(acked)} messages acknowledged before: {problem}")
            # Still full (a bigger body surely does not fit in what is left): refused again,
            # and over CoAP as 5.03 with Max-Age.
            assert send(http, "m-full", BIG).status_code == 503
            msg = {
                "msgType": "MSG",
                "oriAddr": {"addrType": "UE", "addr": "u"},
                "destAddr": {"addrType": "AS", "addr": "sink"},
                "msgId": "c-full",
                "stoAndFwInd": True,
                "payload": BIG,
            }
            coap = exchange(server.coap_port, post("messages", msg, 2, b"c"))
            assert coap["code"] == Code.SERVICE_UNAVAILABLE, coap
            assert coap["max_age"], coap
            assert coap["body"]["cause"] == "INSUFFICIENT_RESOURCES", coap  # type: ignore[index]

            # Retries toward the down sink keep failing to record their attempt meanwhile.
            time.sleep(1.0)

            # Space returns: accepted again without a restart.
            filler.unlink()
            after = send(http, "m-after")
            assert after.status_code == 200, after.text
            acked.append("m-after")
            assert http.get("/readyz").status_code == 200

        # The sink comes up: everything acknowledged arrives (and nothing refused does).
        receiver.start()
        got = receiver.wait_for(len(acked), timeout=60)
        delivered = {c["body"]["msgId"] for c in got}  # type: ignore[index]
        assert delivered == set(acked)
    finally:
        receiver.stop()
        assert server.stop() == 0, server.log()[-2000:]
    # The only errors logged are the refused commits themselves, each saying why.
    errors = [r for r in log_records(server.log()) if r["level"] in ("ERROR", "CRITICAL")]
    assert errors, "the refused commits were not logged"
    assert all("disk is full" in r.get("exc", "") for r in errors), errors
    with sqlite3.connect(f"file:{small_disk / 'msgin5g.sqlite3'}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
