# SPDX-License-Identifier: Apache-2.0
"""Non-MSGin5G UEs registered by their gateway (TS 23.554 8.2.3; our extension, DESIGN 2.5):
the server routes UE-addressed messages and reports to the gateway's msgg API, stores while
the gateway is down, and takes the gateway's reports back to the AS."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.procs import Receiver, ServerProcess, free_port

pytestmark = pytest.mark.e2e

REG = "/ext-gwueregistration/v1/registrations"
DELIVER = "/msgs-msgdelivery/v1/deliver-as-message"


def as_message(dest_ue: str, *, report: bool = True) -> dict[str, object]:
    return {
        "oriAddr": {"addrType": "AS", "addr": "app-a"},
        "destAddr": {"addrType": "UE", "addr": dest_ue},
        "msgId": str(uuid.uuid4()),
        "payload": "meter read 42",
        "stoAndFwInd": True,
        "delivStReqInd": report,
    }


def test_gateway_ue_gets_messages_and_its_reports_reach_the_as(
    server: ServerProcess, tmp_path: Path
) -> None:
    gateway = Receiver(tmp_path / "gw.jsonl", "h1").start()
    app_a = Receiver(tmp_path / "a.jsonl", "h2c").start()
    gw_root = f"http://127.0.0.1:{gateway.port}"
    try:
        with httpx.Client(base_url=server.url, http1=False, http2=True, timeout=10) as http:
            http.post(
                "/msgs-asregistration/v1/registrations",
                json={"asSvcId": "app-a", "targetUri": app_a.url},
            ).raise_for_status()
            body = {"gwType": "L3G", "gwApiRoot": gw_root, "ueSvcIds": ["ue-sms-1", "ue-sms-2"]}
            first = http.post(REG, json=body)
            assert first.status_code == 201
            regs = first.json()["registrations"]
            assert [r["ueSvcId"] for r in regs] == ["ue-sms-1", "ue-sms-2"]
            again = http.post(REG, json=body).json()["registrations"]
            assert again == regs, "re-registering the same UEs by the same gateway is idempotent"

            sent = as_message("ue-sms-1")
            ack = http.post(DELIVER, json=sent).json()
            assert ack == {"oriAddr": sent["oriAddr"], "msgId": sent["msgId"]}
            (got,) = gateway.wait_for(1)
            assert got["path"] == "/msgg-l3gdelivery/v1/deliver-message"
            assert got["body"]["destAddr"] == {"addrType": "UE", "addr": "ue-sms-1"}  # type: ignore[index]
            assert got["body"]["payload"] == "meter read 42"  # type: ignore[index]

            # The gateway reports on behalf of its UE (UEODeliveryReport).
            report = {
                "oriAddr": {"addrType": "UE", "addr": "ue-sms-1"},
                "destAddr": sent["oriAddr"],
                "msgId": sent["msgId"],
                "delivSt": "REPT_DELY_SUCCESS",
            }
            assert http.post("/msgs-msgdelivery/v1/deliver-report", json=report).status_code == 200
            (got_report,) = app_a.wait_for(1)
            assert got_report["path"] == "/cb/deliver-report"
            assert got_report["body"] == report

            # The UE answers through its gateway (UEODelivery) and the AS reports back to it.
            reply = {
                "oriAddr": {"addrType": "UE", "addr": "ue-sms-2"},
                "destAddr": {"addrType": "AS", "addr": "app-a"},
                "msgId": "mo-1",
                "payload": "ack",
                "stoAndFwInd": True,
                "delivStReqInd": True,
            }
            http.post("/msgs-msgdelivery/v1/deliver-ue-message", json=reply).raise_for_status()
            app_a.wait_for(2)
            as_report = {
                "oriAddr": {"addrType": "AS", "addr": "app-a"},
                "destAddr": reply["oriAddr"],
                "msgId": "mo-1",
                "delivSt": "REPT_DELY_SUCCESS",
            }
            http.post("/msgs-msgdelivery/v1/deliver-report", json=as_report).raise_for_status()
            got_gw = gateway.wait_for(2)
            assert got_gw[1]["path"] == "/msgg-l3gdelivery/v1/deliver-report"
            assert got_gw[1]["body"] == as_report

            # Deregistration: 204, then the UE is unknown again.
            assert http.delete(f"{REG}/{regs[1]['registrationId']}").status_code == 204
            assert http.delete(f"{REG}/{regs[1]['registrationId']}").status_code == 404
            gone = http.post(DELIVER, json=as_message("ue-sms-2")).json()
            assert gone["status"] == "DELY_FAILED"
            assert "UNKNOWN_RECIPIENT" in gone["failureCause"]
    finally:
        gateway.stop()
        app_a.stop()


def test_gateway_that_is_down_makes_the_server_store_and_retry(
    server: ServerProcess, tmp_path: Path
) -> None:
    port = free_port()
    gateway = Receiver(tmp_path / "gw.jsonl", "h2c", port=port)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        http.post(
            REG,
            json={"gwType": "N3G", "gwApiRoot": f"http://127.0.0.1:{port}", "ueSvcIds": ["dev-1"]},
        ).raise_for_status()
        first = as_message("dev-1", report=False)
        http.post(DELIVER, json=first).raise_for_status()
        time.sleep(0.5)
        second = as_message("dev-1", report=False)
        assert http.post(DELIVER, json=second).json()["status"] == "DELY_STORED"
    gateway.start()
    try:
        got = gateway.wait_for(2)
        assert {g["path"] for g in got} == {"/msgg-n3gdelivery/v1/deliver-message"}
        assert [g["body"]["msgId"] for g in got] == [first["msgId"], second["msgId"]]  # type: ignore[index]
    finally:
        gateway.stop()


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"gwType": "XYZ", "gwApiRoot": "http://127.0.0.1:1", "ueSvcIds": ["u"]}, "/gwType"),
        ({"gwType": "L3G", "gwApiRoot": "ftp://x", "ueSvcIds": ["u"]}, "/gwApiRoot"),
        ({"gwType": "L3G", "gwApiRoot": "http://127.0.0.1:1", "ueSvcIds": []}, "/ueSvcIds"),
        ({"gwType": "L3G", "ueSvcIds": ["u"]}, "/gwApiRoot"),
    ],
)
def test_bad_registration_is_a_400_with_a_pointer(
    server: ServerProcess, body: dict[str, object], pointer: str
) -> None:
    response = httpx.post(f"{server.url}{REG}", json=body)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["invalidParams"][0]["param"] == pointer
