# SPDX-License-Identifier: Apache-2.0
"""The MQTT gateway (N3G) in-process against a private Mosquitto (Debian's, own config, free
port) with independent devices: aiomqtt clients of their own and the mosquitto_pub /
mosquitto_sub command-line clients. The msgg-n3gdelivery API is called through the ASGI app;
every answer is checked against the official TS29538_MSGG_N3GDelivery.yaml.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from msgin5g.gateways.common import GatewaySettings
from msgin5g.gateways.mqtt.gateway import MqttGateway, MqttGatewaySettings
from tests.gateways.conftest import FakeServer, eventually
from tests.support import oas
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto_pub") is None, reason="needs Debian mosquitto-clients"
)

DEVICE = "dev-1"
N3G_FILE = "TS29538_MSGG_N3GDelivery.yaml"
DELIVER = "/msgg-n3gdelivery/v1/deliver-message"
REPORT = "/msgg-n3gdelivery/v1/deliver-report"


def validate(response: httpx.Response) -> None:
    openapi = oas.load(N3G_FILE)
    openapi.validate_response(oas.mock_request(response.request), oas.mock_response(response))
    if response.status_code >= 400:
        oas.validate_problem(response)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path / "broker").start()
    try:
        yield mosquitto
    finally:
        mosquitto.stop()


def make_settings(tmp_path: Path, broker: Mosquitto, server: FakeServer) -> MqttGatewaySettings:
    return MqttGatewaySettings(
        gateway=GatewaySettings(
            gw_type="N3G",
            server_url=server.url,
            http="127.0.0.1:18182",
            data_dir=tmp_path / "gw",
            retry_initial=0.05,
            retry_max=0.3,
        ),
        broker_host="127.0.0.1",
        broker_port=broker.port,
        ues=(DEVICE,),
        client_id=f"gw-{tmp_path.name}",
        publish_timeout=2.0,
        reconnect_min=0.05,
        reconnect_max=0.3,
    )


@asynccontextmanager
async def running(settings: MqttGatewaySettings) -> AsyncIterator[MqttGateway]:
    gateway = MqttGateway(settings)
    await gateway.start()
    try:
        async with asyncio.timeout(10):
            await gateway.connected.wait()
        yield gateway
    finally:
        await gateway.stop()


def client(gateway: MqttGateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway.app), base_url="http://127.0.0.1:18182"
    )


@asynccontextmanager
async def device(
    broker: Mosquitto, ue: str = DEVICE, *, persistent: bool = False, subscribe: bool = True
) -> AsyncIterator[aiomqtt.Client]:
    """A device of our own making: an aiomqtt client subscribed to its down topic."""
    async with aiomqtt.Client(
        "127.0.0.1",
        broker.port,
        identifier=f"device-{ue}",
        clean_session=not persistent,
        protocol=aiomqtt.ProtocolVersion.V311,
    ) as mqtt:
        if subscribe:
            await mqtt.subscribe(f"msgin5g/{ue}/down", qos=1)
        yield mqtt


async def next_message(mqtt: aiomqtt.Client, within: float = 5.0) -> aiomqtt.Message:
    async with asyncio.timeout(within):
        return await anext(aiter(mqtt.messages))


def message(ue: str = DEVICE, payload: str = "bonjour ✓") -> Any:
    return {
        "oriAddr": {"addrType": "AS", "addr": "app-1"},
        "destAddr": {"addrType": "UE", "addr": ue},
        "msgId": uuid.uuid4().hex,
        "appId": "meter",
        "delivStReqInd": True,
        "payload": payload,
        "segInd": False,
    }


def mosquitto_pub(broker: Mosquitto, topic: str, payload: str, *extra: str) -> None:
    subprocess.run(
        [
            "mosquitto_pub",
            "-h",
            "127.0.0.1",
            "-p",
            str(broker.port),
            "-q",
            "1",
            "-t",
            topic,
            "-m",
            payload,
            *extra,
        ],
        check=True,
        timeout=10,
    )


async def test_message_and_report_reach_the_device_as_json_objects(
    tmp_path: Path, broker: Mosquitto, fake_server: FakeServer
) -> None:
    async with (
        running(make_settings(tmp_path, broker, fake_server)) as gw,
        client(gw) as http,
        device(broker) as dev,
    ):
        body = message()
        response = await http.post(DELIVER, json=body)
        validate(response)
        assert response.status_code == 204
        got = await next_message(dev)
        assert got.qos == 1
        assert isinstance(got.payload, bytes)
        assert got.payload.startswith(b'{"msgType":"MSG",')
        assert json.loads(got.payload) == {"msgType": "MSG", **body}

        report = {
            "oriAddr": {"addrType": "AS", "addr": "app-1"},
            "destAddr": {"addrType": "UE", "addr": DEVICE},
            "msgId": "up-1",
            "delivSt": "REPT_DELY_SUCCESS",
        }
        response = await http.post(REPORT, json=report)
        validate(response)
        assert response.status_code == 204
        got = await next_message(dev)
        assert json.loads(got.payload) == {"msgType": "IMDN", **report}

        unknown = await http.post(DELIVER, json=message(ue="nobody"))
        validate(unknown)
        assert unknown.status_code == 404
        bad = await http.post(DELIVER, json={"destAddr": {"addrType": "UE", "addr": DEVICE}})
        validate(bad)
        assert bad.status_code == 400
    assert gw.counters.value("down", "submitted") == 2


async def test_offline_device_gets_the_message_as_published_when_it_comes_back(
    tmp_path: Path, broker: Mosquitto, fake_server: FakeServer
) -> None:
    async with device(broker, persistent=True):
        pass  # the device has a persistent session with its QoS 1 subscription, then leaves
    observer = await asyncio.create_subprocess_exec(
        *[
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            str(broker.port),
            "-q",
            "1",
            "-C",
            "1",
            "-t",
            f"msgin5g/{DEVICE}/down",
        ],
        stdout=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(0.3)  # mosquitto_sub has subscribed
    async with running(make_settings(tmp_path, broker, fake_server)) as gw, client(gw) as http:
        body = message(payload="while you were away")
        assert (await http.post(DELIVER, json=body)).status_code == 204
    async with asyncio.timeout(10):
        published, _ = await observer.communicate()
    async with device(broker, persistent=True, subscribe=False) as dev:
        got = await next_message(dev)
    assert got.payload == published.rstrip(b"\n")
    assert json.loads(got.payload) == {"msgType": "MSG", **body}


async def test_acknowledged_message_survives_a_broker_restart(
    tmp_path: Path, broker: Mosquitto, fake_server: FakeServer
) -> None:
    async with device(broker, persistent=True):
        pass
    async with running(make_settings(tmp_path, broker, fake_server)) as gw, client(gw) as http:
        body = message(payload="kept by the broker")
        assert (await http.post(DELIVER, json=body)).status_code == 204
        await asyncio.to_thread(broker.restart)
        async with asyncio.timeout(10):
            await gw.connected.wait()
        async with device(broker, persistent=True, subscribe=False) as dev:
            got = await next_message(dev)
    assert json.loads(got.payload)["msgId"] == body["msgId"]


async def test_broker_down_answers_503_and_the_gateway_reconnects(
    tmp_path: Path, broker: Mosquitto, fake_server: FakeServer
) -> None:
    async with running(make_settings(tmp_path, broker, fake_server)) as gw, client(gw) as http:
        await asyncio.to_thread(broker.stop)
        response = await http.post(DELIVER, json=message())
        validate(response)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        await asyncio.to_thread(broker.start)
        async with asyncio.timeout(10):
            await gw.connected.wait()
        async with device(broker) as dev:
            body = message(payload="after the restart")
            assert (await http.post(DELIVER, json=body)).status_code == 204
            got = await next_message(dev)
    assert json.loads(got.payload)["payload"] == "after the restart"


async def test_device_msg_and_imdn_go_up_to_the_server(
    tmp_path: Path, broker: Mosquitto, fake_server: FakeServer
) -> None:
    async with running(make_settings(tmp_path, broker, fake_server)) as gw:
        up = f"msgin5g/{DEVICE}/up"
        msg = {
            "msgType": "MSG",
            "destAddr": {"addrType": "AS", "addr": "app-1"},
            "msgId": "dev-msg-1",
            "appId": "meter",
            "payload": "temp=21.5",
            "delivStReqInd": True,
        }
        await asyncio.to_thread(mosquitto_pub, broker, up, json.dumps(msg))
        imdn = {
            "msgType": "IMDN",
            "destAddr": {"addrType": "AS", "addr": "app-1"},
            "msgId": "as-msg-7",
            "delivSt": "REPT_DELY_SUCCESS",
        }
        await asyncio.to_thread(mosquitto_pub, broker, up, json.dumps(imdn))
        spoof = {**msg, "msgId": "spoof", "oriAddr": {"addrType": "UE", "addr": "other"}}
        await asyncio.to_thread(mosquitto_pub, broker, up, json.dumps(spoof))
        await asyncio.to_thread(mosquitto_pub, broker, up, "not json")
        await fake_server.wait_for(
            lambda: (
                bool(fake_server.bodies("/deliver-ue-message"))
                and bool(fake_server.bodies("/deliver-report"))
            )
        )
        await asyncio.sleep(0.2)
        assert gw.counters.value("up", "failed") == 2
    (sent,) = fake_server.bodies("/msgs-msgdelivery/v1/deliver-ue-message")
    assert sent == {
        "oriAddr": {"addrType": "UE", "addr": DEVICE},
        "destAddr": msg["destAddr"],
        "msgId": "dev-msg-1",
        "stoAndFwInd": False,
        "appId": "meter",
        "delivStReqInd": True,
        "payload": "temp=21.5",
    }
    (report,) = fake_server.bodies("/msgs-msgdelivery/v1/deliver-report")
    assert report == {
        "oriAddr": {"addrType": "UE", "addr": DEVICE},
        "destAddr": imdn["destAddr"],
        "msgId": "as-msg-7",
        "delivSt": "REPT_DELY_SUCCESS",
    }


async def test_device_announces_itself_registers_and_leaves(
    tmp_path: Path, broker: Mosquitto, fake_server: FakeServer
) -> None:
    async with running(make_settings(tmp_path, broker, fake_server)) as gw, client(gw) as http:
        assert (await http.post(DELIVER, json=message(ue="dev-9"))).status_code == 404
        await asyncio.to_thread(mosquitto_pub, broker, "msgin5g/dev-9/status", "online", "-r")
        await fake_server.wait_for(
            lambda: any("dev-9" in b["ueSvcIds"] for b in fake_server.bodies("/registrations"))
        )
        assert gw.devices["dev-9"] == "device"
        async with device(broker, "dev-9") as dev:
            assert (await http.post(DELIVER, json=message(ue="dev-9"))).status_code == 204
            await next_message(dev)
        await asyncio.to_thread(mosquitto_pub, broker, "msgin5g/dev-9/status", "", "-r")
        await fake_server.wait_for(
            lambda: any(
                m == "DELETE" and p.endswith("/reg-dev-9") for m, p, _ in fake_server.requests
            )
        )
        assert "dev-9" not in gw.devices
        assert DEVICE in gw.devices  # static devices stay


async def test_uplink_sent_while_the_gateway_was_away_is_not_lost(
    tmp_path: Path, broker: Mosquitto, fake_server: FakeServer
) -> None:
    settings = make_settings(tmp_path, broker, fake_server)
    async with running(settings):
        pass  # the gateway's persistent session now holds its subscriptions
    msg = {"msgType": "MSG", "destAddr": {"addrType": "AS", "addr": "a"}, "msgId": "away-1"}
    await asyncio.to_thread(mosquitto_pub, broker, f"msgin5g/{DEVICE}/up", json.dumps(msg))
    async with running(settings):
        await fake_server.wait_for(lambda: bool(fake_server.bodies("/deliver-ue-message")))
    assert fake_server.bodies("/deliver-ue-message")[0]["msgId"] == "away-1"


async def test_uplink_is_retried_while_the_server_is_down(
    tmp_path: Path, broker: Mosquitto, fake_server: FakeServer
) -> None:
    async with running(make_settings(tmp_path, broker, fake_server)) as gw:
        await fake_server.stop()
        msg = {"msgType": "MSG", "destAddr": {"addrType": "AS", "addr": "a"}, "msgId": "late-1"}
        await asyncio.to_thread(mosquitto_pub, broker, f"msgin5g/{DEVICE}/up", json.dumps(msg))
        async with asyncio.timeout(5):
            await eventually(lambda: gw.counters.value("up", "retried") >= 2)
        await fake_server.start()
        await fake_server.wait_for(lambda: bool(fake_server.bodies("/deliver-ue-message")))
        async with asyncio.timeout(5):
            await gw.server.drained()
    assert fake_server.bodies("/deliver-ue-message")[0]["msgId"] == "late-1"
