# SPDX-License-Identifier: Apache-2.0
"""Group messaging across every path (TS 23.554 8.7.4), with real peers: one message to a group
of a CoAP UE (the SDK over UDP), an SMS UE (the SMS gateway and the SMSC simulator over SMPP),
an MQTT UE (the MQTT gateway, a private Mosquitto and an independent device client) and an AS.
Every member receives it over its own path and the sender gets exactly one report per member."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import httpx
import pytest

from msgin5g.coap import TransmissionParameters
from msgin5g.gateways.sms.smsc_sim import SmscSimulator
from msgin5g.sdk import UeClient
from tests.gateways.conftest import eventually
from tests.gateways.procs import PASSWORD, SYSTEM_ID, GatewayProcess
from tests.support.mosquitto import Mosquitto
from tests.support.procs import Receiver, ServerProcess

pytestmark = pytest.mark.e2e

FAST = TransmissionParameters(ack_timeout=0.3, exchange_lifetime=10.0, non_lifetime=10.0)
MSISDN = "491700000042"


def address(kind: str, value: str) -> dict[str, str]:
    return {"addrType": kind, "addr": value}


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[dict[str, Receiver]]:
    started = {
        "sender": Receiver(tmp_path / "sender.jsonl", "h2c").start(),
        "member": Receiver(tmp_path / "member.jsonl", "h1").start(),
    }
    try:
        yield started
    finally:
        for r in started.values():
            r.stop()


async def test_group_of_coap_sms_mqtt_and_as_members_gets_one_report_per_member(
    tmp_path: Path, server: ServerProcess, receivers: dict[str, Receiver]
) -> None:
    sender, member = receivers["sender"], receivers["member"]
    smsc = SmscSimulator(system_id=SYSTEM_ID, password=PASSWORD, receipt_delay=0.05)
    await smsc.start()
    broker = Mosquitto(tmp_path / "broker").start()
    sms = GatewayProcess(
        "sms",
        [
            "--server", server.url,
            "--smsc", f"127.0.0.1:{smsc.port}",
            "--system-id", SYSTEM_ID,
            "--password", PASSWORD,
            "--ue", f"ue-sms={MSISDN}",
            "--mo-to", "as:sender",
        ],
        tmp_path / "sms-gw",
    )  # fmt: skip
    mqtt = GatewayProcess(
        "mqtt",
        ["--server", server.url, "--broker", f"127.0.0.1:{broker.port}", "--ue", "ue-mqtt"],
        tmp_path / "mqtt-gw",
    )
    gateways = (sms, mqtt)
    try:
        await asyncio.gather(*(asyncio.to_thread(g.start) for g in gateways))
        async with asyncio.timeout(15):
            for g in gateways:
                await eventually(lambda g=g: "UEs registered with the server" in g.log(), 0.05)
        async with (
            httpx.AsyncClient(base_url=server.url) as http,
            aiomqtt.Client("127.0.0.1", broker.port, identifier="device-grp") as device,
            UeClient(f"coap://127.0.0.1:{server.coap_port}", "ue-coap", params=FAST) as ue,
        ):
            for as_id, target in (("sender", sender.url), ("member-as", member.url)):
                r = await http.post(
                    "/msgs-asregistration/v1/registrations",
                    json={"asSvcId": as_id, "targetUri": target},
                )
                assert r.status_code == 201, r.text
            await device.subscribe("msgin5g/ue-mqtt/down", qos=1)
            await ue.register()
            inbox = ue.inbox()
            async with asyncio.timeout(10):
                assert await anext(inbox) == {"pending": 0}
            members = [
                address("UE", "ue-coap"),
                address("UE", "ue-sms"),
                address("UE", "ue-mqtt"),
                address("AS", "member-as"),
            ]
            r = await http.put("/ext-groups/v1/groups/everyone", json={"members": members})
            assert r.status_code == 201, r.text

            ack = await http.post(
                "/msgs-msgdelivery/v1/deliver-as-message",
                json={
                    "oriAddr": address("AS", "sender"),
                    "destAddr": address("GROUP", "everyone"),
                    "msgId": "mixed-1",
                    "payload": "to every path",
                    "stoAndFwInd": True,
                    "delivStReqInd": True,
                },
            )
            assert ack.json() == {"oriAddr": address("AS", "sender"), "msgId": "mixed-1"}

            # CoAP UE: the notification, then its IMDN.
            async with asyncio.timeout(10):
                got = await anext(inbox)
            assert (got["destAddr"], got["payload"]) == (address("UE", "ue-coap"), "to every path")
            await ue.report(got["oriAddr"], got["msgId"])
            # MQTT UE: the device reads the MSG from the broker and publishes its IMDN.
            async with asyncio.timeout(15):
                received = await anext(aiter(device.messages))
            assert isinstance(received.payload, bytes)
            down = json.loads(received.payload)
            assert (down["msgId"], down["payload"]) == ("mixed-1", "to every path")
            imdn = {
                "msgType": "IMDN",
                "destAddr": address("AS", "sender"),
                "msgId": "mixed-1",
                "delivSt": "REPT_DELY_SUCCESS",
            }
            await device.publish("msgin5g/ue-mqtt/up", json.dumps(imdn), qos=1)
            # AS member: the callback, then its report.
            (as_msg,) = await asyncio.to_thread(member.wait_for, 1)
            assert as_msg["body"]["destAddr"] == address("AS", "member-as")  # type: ignore[index]
            r = await http.post(
                "/msgs-msgdelivery/v1/deliver-report",
                json={
                    "oriAddr": address("AS", "member-as"),
                    "destAddr": address("AS", "sender"),
                    "msgId": "mixed-1",
                    "delivSt": "REPT_DELY_SUCCESS",
                },
            )
            assert "status" not in r.json(), r.text
            # SMS UE: the SMSC got the text; its delivery receipt becomes the UE's report.
            await asyncio.to_thread(sender.wait_for, 4, 20.0)
            await asyncio.sleep(0.5)
    finally:
        for g in gateways:
            await asyncio.to_thread(g.stop)
        broker.stop()
        await smsc.stop()
    assert [(s.destination_addr, s.text) for s in smsc.received] == [(MSISDN, "to every path")]
    reports = sender.received()
    assert {r["path"] for r in reports} == {"/cb/deliver-report"}
    reporters = sorted(r["body"]["oriAddr"]["addr"] for r in reports)  # type: ignore[index]
    assert reporters == ["member-as", "ue-coap", "ue-mqtt", "ue-sms"], reports
    assert {r["body"]["delivSt"] for r in reports} == {"REPT_DELY_SUCCESS"}  # type: ignore[index]
