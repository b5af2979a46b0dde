# SPDX-License-Identifier: Apache-2.0
"""End to end over real processes: `msgin5g gateway sms|mqtt`, the real `msgin5g server`, an
AS callback receiver, and on the far side the SMSC simulator over SMPP or a private Mosquitto
with an independent MQTT device.

The downlink tests (AS -> server -> gateway -> UE) need the server's Non-MSGin5G UE
registration API (DESIGN 2.5); they are skipped while the server answers 404 on it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from msgin5g.gateways.sms.smsc_sim import SmscSimulator
from tests.gateways.conftest import eventually
from tests.gateways.procs import PASSWORD, SYSTEM_ID, GatewayProcess
from tests.support.mosquitto import Mosquitto
from tests.support.procs import Receiver, ServerProcess

pytestmark = pytest.mark.e2e

UE, MSISDN = "ue-1", "491700000001"
AS_ID = "app-1"
REGISTER_AS = "/msgs-asregistration/v1/registrations"
REGISTER_UE = "/ext-gwueregistration/v1/registrations"


@functools.cache
def registration_api_missing() -> bool:
    """In-process probe: does the server route POST /ext-gwueregistration/v1/registrations?"""
    from msgin5g.bootstrap import ServerApp
    from msgin5g.settings import load

    async def probe() -> int:
        with tempfile.TemporaryDirectory() as data_dir:
            app = ServerApp(load(None, {"server": {"data_dir": data_dir}}, environ={})).app
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://probe") as http:
                body = {"gwType": "L3G", "gwApiRoot": "http://127.0.0.1:1", "ueSvcIds": ["p"]}
                return (await http.post(REGISTER_UE, json=body)).status_code

    return asyncio.run(probe()) == 404


needs_registration_api = pytest.mark.skipif(
    registration_api_missing(),
    reason="the server has no Non-MSGin5G UE registration API yet (DESIGN 2.5)",
)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    as_receiver = Receiver(tmp_path / "as.jsonl", "h1").start()
    try:
        yield as_receiver
    finally:
        as_receiver.stop()


@pytest.fixture
async def smsc() -> AsyncIterator[SmscSimulator]:
    simulator = SmscSimulator(system_id=SYSTEM_ID, password=PASSWORD, receipt_delay=0.05)
    await simulator.start()
    yield simulator
    await simulator.stop()


def register_as(server: ServerProcess, receiver: Receiver) -> None:
    response = httpx.post(
        server.url + REGISTER_AS, json={"asSvcId": AS_ID, "targetUri": receiver.url}
    )
    assert response.status_code == 201, response.text


async def start(process: GatewayProcess) -> GatewayProcess:
    return await asyncio.to_thread(process.start)


def sms_gateway(tmp_path: Path, server: ServerProcess, smsc: SmscSimulator) -> GatewayProcess:
    return GatewayProcess(
        "sms",
        [
            "--server", server.url,
            "--smsc", f"127.0.0.1:{smsc.port}",
            "--system-id", SYSTEM_ID,
            "--password", PASSWORD,
            "--ue", f"{UE}={MSISDN}",
            "--mo-to", f"as:{AS_ID}",
        ],
        tmp_path / "sms-gw",
    )  # fmt: skip


def mqtt_gateway(tmp_path: Path, server: ServerProcess, broker: Mosquitto) -> GatewayProcess:
    return GatewayProcess(
        "mqtt",
        ["--server", server.url, "--broker", f"127.0.0.1:{broker.port}", "--ue", UE],
        tmp_path / "mqtt-gw",
    )


async def test_mo_sms_single_and_concatenated_reach_the_as(
    tmp_path: Path, server: ServerProcess, receiver: Receiver, smsc: SmscSimulator
) -> None:
    register_as(server, receiver)
    gateway = await start(sms_gateway(tmp_path, server, smsc))
    long_text = "A concatenated MO SMS through the real server, ünïcødé ✓ " * 5
    try:
        async with asyncio.timeout(10):
            assert await smsc.inject_mo(MSISDN, "12345", "hello AS") == [0]
            assert set(await smsc.inject_mo(MSISDN, "12345", long_text, reference=3)) == {0}
        got = await asyncio.to_thread(receiver.wait_for, 2, 15.0)
    finally:
        await asyncio.to_thread(gateway.stop)
    bodies: list[Any] = [g["body"] for g in got]
    assert [g["path"] for g in got] == ["/cb/deliver-message"] * 2
    assert sorted(b["payload"] for b in bodies) == sorted(["hello AS", long_text])
    for body in bodies:
        assert body["oriAddr"] == {"addrType": "UE", "addr": UE}
        assert body["destAddr"] == {"addrType": "AS", "addr": AS_ID}
    assert "Traceback" not in gateway.log()
    assert "does not speak h2c" not in gateway.log()  # the uplink went over h2c


async def test_acknowledged_message_survives_kill_9_of_the_gateway(
    tmp_path: Path, server: ServerProcess
) -> None:
    smsc = SmscSimulator(system_id=SYSTEM_ID, password=PASSWORD)
    await smsc.start()
    port = smsc.port
    await smsc.stop()  # the SMSC is down: the message can only be in the gateway's store
    gateway = await start(sms_gateway(tmp_path, server, smsc))
    try:
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            body = as_message(UE, "survives kill -9")
            response = await http.post("/msgg-l3gdelivery/v1/deliver-message", json=body)
        assert response.status_code == 204
        gateway.kill9()
        smsc = SmscSimulator(port=port, system_id=SYSTEM_ID, password=PASSWORD)
        await smsc.start()
        gateway.proc = None
        await start(gateway)
        async with asyncio.timeout(15):
            await smsc.wait_for(lambda: bool(smsc.received))
    finally:
        await asyncio.to_thread(gateway.stop)
        await smsc.stop()
    assert [r.text for r in smsc.received] == ["survives kill -9"]


async def test_mqtt_device_message_reaches_the_as(
    tmp_path: Path, server: ServerProcess, receiver: Receiver
) -> None:
    register_as(server, receiver)
    broker = Mosquitto(tmp_path / "broker").start()
    gateway = await start(mqtt_gateway(tmp_path, server, broker))
    try:
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="device-e2e") as dev:
            msg = {
                "msgType": "MSG",
                "destAddr": {"addrType": "AS", "addr": AS_ID},
                "msgId": uuid.uuid4().hex,
                "payload": "from an MQTT device",
            }
            await dev.publish(f"msgin5g/{UE}/up", json.dumps(msg), qos=1)
        (got,) = await asyncio.to_thread(receiver.wait_for, 1, 15.0)
    finally:
        gateway.stop()
        broker.stop()
    assert got["body"]["oriAddr"] == {"addrType": "UE", "addr": UE}  # type: ignore[index]
    assert got["body"]["payload"] == "from an MQTT device"  # type: ignore[index]


def as_message(destination: str, text: str) -> dict[str, Any]:
    return {
        "oriAddr": {"addrType": "AS", "addr": AS_ID},
        "destAddr": {"addrType": "UE", "addr": destination},
        "msgId": uuid.uuid4().hex,
        "payload": text,
        "stoAndFwInd": True,
        "delivStReqInd": True,
    }


async def wait_registered(server: ServerProcess, gateway: GatewayProcess) -> None:
    """The gateway logs each successful registration; wait for the first."""
    async with asyncio.timeout(15):
        await eventually(lambda: "UEs registered with the server" in gateway.log(), 0.05)


@needs_registration_api
async def test_as_message_reaches_the_legacy_ue_and_its_report_comes_back(
    tmp_path: Path, server: ServerProcess, receiver: Receiver, smsc: SmscSimulator
) -> None:
    register_as(server, receiver)
    gateway = await start(sms_gateway(tmp_path, server, smsc))
    text = "From the AS to a legacy UE over SMS, in several parts. " * 4
    try:
        await wait_registered(server, gateway)
        sent = as_message(UE, text)
        async with httpx.AsyncClient(base_url=server.url) as http:
            ack = await http.post("/msgs-msgdelivery/v1/deliver-as-message", json=sent)
        assert ack.status_code == 200, ack.text
        assert ack.json().get("status") in (None, "DELY_STORED")
        (report,) = await asyncio.to_thread(receiver.wait_for, 1, 20.0)
    finally:
        await asyncio.to_thread(gateway.stop)
    parts = sorted(smsc.received, key=lambda r: r.concat.sequence if r.concat else 0)
    assert "".join(p.text for p in parts) == text
    assert {p.destination_addr for p in parts} == {MSISDN}
    assert report["path"] == "/cb/deliver-report"
    assert report["body"] == {
        "oriAddr": {"addrType": "UE", "addr": UE},
        "destAddr": {"addrType": "AS", "addr": AS_ID},
        "msgId": sent["msgId"],
        "delivSt": "REPT_DELY_SUCCESS",
    }


@needs_registration_api
async def test_as_message_reaches_the_mqtt_device_and_its_imdn_comes_back(
    tmp_path: Path, server: ServerProcess, receiver: Receiver
) -> None:
    register_as(server, receiver)
    broker = Mosquitto(tmp_path / "broker").start()
    gateway = await start(mqtt_gateway(tmp_path, server, broker))
    try:
        await wait_registered(server, gateway)
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="device-e2e") as dev:
            await dev.subscribe(f"msgin5g/{UE}/down", qos=1)
            sent = as_message(UE, "to the MQTT device")
            async with httpx.AsyncClient(base_url=server.url) as http:
                ack = await http.post("/msgs-msgdelivery/v1/deliver-as-message", json=sent)
            assert ack.status_code == 200, ack.text
            async with asyncio.timeout(15):
                got = await anext(aiter(dev.messages))
            assert isinstance(got.payload, bytes)
            down = json.loads(got.payload)
            assert down["msgType"] == "MSG"
            assert down["msgId"] == sent["msgId"]
            assert down["payload"] == "to the MQTT device"
            imdn = {
                "msgType": "IMDN",
                "destAddr": sent["oriAddr"],
                "msgId": sent["msgId"],
                "delivSt": "REPT_DELY_SUCCESS",
            }
            await dev.publish(f"msgin5g/{UE}/up", json.dumps(imdn), qos=1)
        (report,) = await asyncio.to_thread(receiver.wait_for, 1, 15.0)
    finally:
        gateway.stop()
        broker.stop()
    assert report["path"] == "/cb/deliver-report"
    assert report["body"]["msgId"] == sent["msgId"]  # type: ignore[index]


def test_add_gateway_parser_hooks_into_the_main_parser() -> None:
    import argparse

    from msgin5g.cli.gateway import add_gateway_parser

    parser = argparse.ArgumentParser(prog="msgin5g")
    add_gateway_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        ["gateway", "mqtt", "--server", "http://127.0.0.1:8080", "--broker", "127.0.0.1:1883",
         "--ue", "a", "--ue", "b"]
    )  # fmt: skip
    assert args.gateway == "mqtt"
    assert args.ue == ["a", "b"]
    assert callable(args.run)


def test_the_cli_refuses_bad_arguments(tmp_path: Path) -> None:
    from msgin5g.cli.gateway import main

    base = ["--server", "http://127.0.0.1:1", "--data-dir", str(tmp_path)]
    sms = ["sms", *base, "--smsc", "127.0.0.1:2775", "--system-id", "a", "--password", "b"]
    assert main([*sms, "--ue", "no-msisdn", "--mo-to", "as:x"]) == 2
    assert main([*sms, "--ue", "u=1", "--mo-to", "nowhere"]) == 2
    assert main([*sms, "--ue", "u=1", "--mo-to", "as:x", "--http", "0.0.0.0:1"]) == 2
    assert main(["mqtt", *base, "--broker", "nohost"]) == 2
