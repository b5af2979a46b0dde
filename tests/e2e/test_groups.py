# SPDX-License-Identifier: Apache-2.0
"""Group messaging (TS 23.554 8.7.4): one message to a group of mixed members (a CoAP UE, a
UE behind a gateway, an AS) reaches each over its own path, and the sender gets one report
per member."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from msgin5g.coap import TransmissionParameters
from msgin5g.sdk import UeClient
from tests.support.procs import Receiver, ServerProcess

pytestmark = pytest.mark.e2e

FAST = TransmissionParameters(ack_timeout=0.3, exchange_lifetime=10.0, non_lifetime=10.0)
GROUPS = "/ext-groups/v1/groups"


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[dict[str, Receiver]]:
    started = {
        "sender": Receiver(tmp_path / "sender.jsonl", "h2c").start(),
        "member_as": Receiver(tmp_path / "member.jsonl", "h1").start(),
        "gateway": Receiver(tmp_path / "gw.jsonl", "h1").start(),
    }
    try:
        yield started
    finally:
        for r in started.values():
            r.stop()


def address(kind: str, value: str) -> dict[str, str]:
    return {"addrType": kind, "addr": value}


async def test_group_message_reaches_every_member_and_each_reports(
    server: ServerProcess, receivers: dict[str, Receiver]
) -> None:
    sender, member_as, gateway = receivers["sender"], receivers["member_as"], receivers["gateway"]
    async with httpx.AsyncClient(base_url=server.url, http1=False, http2=True) as http:
        for as_id, target in (("sender", sender.url), ("member-as", member_as.url)):
            r = await http.post(
                "/msgs-asregistration/v1/registrations",
                json={"asSvcId": as_id, "targetUri": target},
            )
            assert r.status_code == 201
        r = await http.post(
            "/ext-gwueregistration/v1/registrations",
            json={
                "gwType": "L3G",
                "gwApiRoot": f"http://127.0.0.1:{gateway.port}",
                "ueSvcIds": ["ue-sms"],
            },
        )
        assert r.status_code == 201
        async with UeClient(f"coap://127.0.0.1:{server.coap_port}", "ue-coap", params=FAST) as ue:
            await ue.register()
            inbox = ue.inbox()
            async with asyncio.timeout(10):
                assert await anext(inbox) == {"pending": 0}
            members = [
                address("UE", "ue-coap"),
                address("UE", "ue-sms"),
                address("AS", "member-as"),
            ]
            r = await http.put(f"{GROUPS}/g1", json={"members": members})
            assert r.status_code == 201
            assert r.headers["location"].endswith(f"{GROUPS}/g1")
            assert (await http.get(f"{GROUPS}/g1")).json() == {"groupId": "g1", "members": members}

            ack = await http.post(
                "/msgs-msgdelivery/v1/deliver-as-message",
                json={
                    "oriAddr": address("AS", "sender"),
                    "destAddr": address("GROUP", "g1"),
                    "msgId": "grp-1",
                    "payload": "to everyone",
                    "stoAndFwInd": True,
                    "delivStReqInd": True,
                },
            )
            assert ack.json() == {"oriAddr": address("AS", "sender"), "msgId": "grp-1"}

            async with asyncio.timeout(10):
                got = await anext(inbox)
            assert got["msgType"] == "MSG"
            assert got["payload"] == "to everyone"
            assert got["destAddr"] == address("UE", "ue-coap")
            await ue.report(got["oriAddr"], got["msgId"])

            (gw_msg,) = await asyncio.to_thread(gateway.wait_for, 1)
            assert gw_msg["path"] == "/msgg-l3gdelivery/v1/deliver-message"
            assert gw_msg["body"]["destAddr"] == address("UE", "ue-sms")
            (as_msg,) = await asyncio.to_thread(member_as.wait_for, 1)
            assert as_msg["body"]["destAddr"] == address("AS", "member-as")
            assert as_msg["body"]["payload"] == "to everyone"

            # The gateway and the member AS report too (each once; a repeat is absorbed).
            for reporter in (address("UE", "ue-sms"), address("AS", "member-as")):
                report = {
                    "oriAddr": reporter,
                    "destAddr": address("AS", "sender"),
                    "msgId": "grp-1",
                    "delivSt": "REPT_DELY_SUCCESS",
                }
                for _ in range(2):
                    r = await http.post("/msgs-msgdelivery/v1/deliver-report", json=report)
                    assert r.status_code == 200
                    assert "status" not in r.json()

            reports = await asyncio.to_thread(sender.wait_for, 3)
            await asyncio.sleep(0.5)
            reports = sender.received()
            reporters = sorted(r["body"]["oriAddr"]["addr"] for r in reports)  # type: ignore[index]
            assert reporters == ["member-as", "ue-coap", "ue-sms"], reports
            assert {r["path"] for r in reports} == {"/cb/deliver-report"}


def test_group_crud_and_limits(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url) as http:
        members = [address("UE", f"ue-{i}") for i in range(3)]
        assert http.put(f"{GROUPS}/g", json={"members": members}).status_code == 201
        assert http.put(f"{GROUPS}/g", json={"members": members[:1]}).status_code == 200
        assert http.get(f"{GROUPS}/g").json()["members"] == members[:1]
        nested = http.put(f"{GROUPS}/h", json={"members": [address("GROUP", "g")]})
        assert nested.status_code == 400
        assert nested.json()["invalidParams"][0]["param"] == "/members"
        missing = http.put(f"{GROUPS}/h", json={})
        assert missing.status_code == 400
        assert missing.json()["cause"] == "MANDATORY_IE_MISSING"
        assert http.delete(f"{GROUPS}/g").status_code == 204
        assert http.delete(f"{GROUPS}/g").status_code == 404
        assert http.get(f"{GROUPS}/g").status_code == 404
        unknown = http.post(
            "/msgs-msgdelivery/v1/deliver-as-message",
            json={
                "oriAddr": address("AS", "a"),
                "destAddr": address("GROUP", "g"),
                "msgId": "m",
                "stoAndFwInd": True,
            },
        ).json()
        assert unknown["status"] == "DELY_FAILED"
        assert "UNKNOWN_RECIPIENT" in unknown["failureCause"]


def test_too_large_group_is_refused(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", env={"MSGIN5G_GROUPS_MAX_MEMBERS": "5"}).start()
    try:
        members: list[dict[str, Any]] = [address("UE", f"ue-{i}") for i in range(6)]
        r = httpx.put(f"{server.url}{GROUPS}/big", json={"members": members})
        assert r.status_code == 400
        assert "at most 5" in r.json()["detail"]
    finally:
        server.stop()


def test_large_group_fans_out_without_blocking_other_traffic(
    server: ServerProcess, tmp_path: Path
) -> None:
    app = Receiver(tmp_path / "app.jsonl", "h2c").start()
    try:
        with httpx.Client(base_url=server.url, http1=False, http2=True, timeout=10) as http:
            http.post(
                "/msgs-asregistration/v1/registrations",
                json={"asSvcId": "app", "targetUri": app.url},
            ).raise_for_status()
            # 5,000 members behind a gateway that is down: the fan-out queues 5,000 deliveries.
            http.post(
                "/ext-gwueregistration/v1/registrations",
                json={
                    "gwType": "N3G",
                    "gwApiRoot": "http://127.0.0.1:9",
                    "ueSvcIds": [f"dev-{i}" for i in range(5000)],
                },
            ).raise_for_status()
            members = [address("UE", f"dev-{i}") for i in range(5000)]
            assert http.put(f"{GROUPS}/big", json={"members": members}).status_code == 201
            body = {
                "oriAddr": address("AS", "sender"),
                "destAddr": address("GROUP", "big"),
                "msgId": "big-1",
                "payload": "x",
                "stoAndFwInd": True,
            }
            assert (
                http.post("/msgs-msgdelivery/v1/deliver-as-message", json=body).status_code == 200
            )
            # Meanwhile an ordinary message is accepted and delivered promptly.
            started = time.monotonic()
            single = dict(body, destAddr=address("AS", "app"), msgId="single-1")
            assert (
                http.post("/msgs-msgdelivery/v1/deliver-as-message", json=single).status_code == 200
            )
            app.wait_for(1, timeout=5)
            assert time.monotonic() - started < 3
            deadline = time.monotonic() + 20
            depth = 0.0
            while time.monotonic() < deadline:
                text = http.get("/metrics").text
                found = re.search(r"^msgin5g_store_depth (\S+)$", text, re.MULTILINE)
                assert found is not None
                depth = float(found.group(1))
                if depth == 5000:  # all 5,000 queued and the group's own one finished
                    break
                time.sleep(0.2)
            assert depth == 5000, "one queued delivery per member, the group's own one finished"
    finally:
        app.stop()
