# SPDX-License-Identifier: Apache-2.0
"""Gateways and the server authenticate toward each other (ADR 0015), all real processes:
the MQTT gateway gets a token from the server's built-in issuer, registers its UEs and sends a
device's message with it; the server gets its own token and presents it on msgg-n3gdelivery,
where the gateway checks it against the server's /oauth2/jwks. Callers without a token are
refused on both sides."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import aiomqtt
import httpx
import pytest

from msgin5g.security.passwords import hash_secret
from tests.gateways.procs import GatewayProcess
from tests.support.mosquitto import Mosquitto
from tests.support.procs import Receiver, ServerProcess

pytestmark = pytest.mark.e2e

AS_SECRET = "as-secret-0123456789abcdef"
GW_SECRET = "gw-secret-0123456789abcdef"
SRV_SECRET = "srv-secret-0123456789abcdef"
UE = "dev-1"


def server_config(path: Path, server: ServerProcess, secret_file: Path) -> Path:
    secret_file.write_text(SRV_SECRET)
    path.write_text(
        f"""
[auth]
mode = "builtin"
token_url = "{server.url}/oauth2/token"
client_id = "srv"
client_secret_file = "{secret_file}"

[[auth.clients]]
client_id = "as1"
role = "AS"
as_svc_ids = ["as1"]
secret_hash = "{hash_secret(AS_SECRET)}"

[[auth.clients]]
client_id = "gw1"
role = "GATEWAY"
addresses = ["UE:dev-*"]
secret_hash = "{hash_secret(GW_SECRET)}"

[[auth.clients]]
client_id = "srv"
role = "PEER"
secret_hash = "{hash_secret(SRV_SECRET)}"
"""
    )
    return path


async def eventually_in(get: object, needle: str, within: float = 15.0) -> None:
    async with asyncio.timeout(within):
        while needle not in get():  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_gateway_and_server_authenticate_both_ways(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "srv-data")
    server.env = {
        "MSGIN5G_CONFIG": str(server_config(tmp_path / "srv.toml", server, tmp_path / "srv.key"))
    }
    await asyncio.to_thread(server.start)
    receiver = Receiver(tmp_path / "as.jsonl", "h1").start()
    broker = Mosquitto(tmp_path / "broker").start()
    (tmp_path / "gw.key").write_text(GW_SECRET)
    gateway = GatewayProcess(
        "mqtt",
        [
            "--server", server.url,
            "--broker", f"127.0.0.1:{broker.port}",
            "--ue", UE,
            "--token-url", f"{server.url}/oauth2/token",
            "--token-client-id", "gw1",
            "--token-secret-file", str(tmp_path / "gw.key"),
            "--auth-jwks", f"{server.url}/oauth2/jwks",
            "--auth-client", "srv",
        ],
        tmp_path / "gw-data",
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            token = await http.post(
                "/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=("as1", AS_SECRET),
            )
            assert token.status_code == 200, token.text
            as_auth = {"authorization": f"Bearer {token.json()['access_token']}"}
            registered = await http.post(
                "/msgs-asregistration/v1/registrations",
                json={"asSvcId": "as1", "targetUri": receiver.url},
                headers=as_auth,
            )
            assert registered.status_code == 201, registered.text
            await asyncio.to_thread(gateway.start)
            await eventually_in(gateway.log, "UEs registered with the server")

            # Uplink: device -> gateway -> (gateway's token) server -> AS.
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier="dev-e2e") as dev:
                await dev.subscribe(f"msgin5g/{UE}/down", qos=1)
                up = {
                    "msgType": "MSG",
                    "destAddr": {"addrType": "AS", "addr": "as1"},
                    "msgId": uuid.uuid4().hex,
                    "payload": "from the device",
                }
                await dev.publish(f"msgin5g/{UE}/up", json.dumps(up), qos=1)
                (got,) = await asyncio.to_thread(receiver.wait_for, 1, 15.0)
                assert got["body"]["oriAddr"] == {"addrType": "UE", "addr": UE}  # type: ignore[index]

                # Downlink: AS -> server -> (server's token) gateway -> device.
                sent = {
                    "oriAddr": {"addrType": "AS", "addr": "as1"},
                    "destAddr": {"addrType": "UE", "addr": UE},
                    "msgId": uuid.uuid4().hex,
                    "payload": "to the device",
                    "stoAndFwInd": True,
                }
                ack = await http.post(
                    "/msgs-msgdelivery/v1/deliver-as-message", json=sent, headers=as_auth
                )
                assert ack.status_code == 200, ack.text
                async with asyncio.timeout(15):
                    got_down = await anext(aiter(dev.messages))
                assert isinstance(got_down.payload, bytes)
                down = json.loads(got_down.payload)
                assert down["msgId"] == sent["msgId"]

        # Without a token, the gateway's msgg API refuses (and a token of an AS client too).
        async with httpx.AsyncClient(base_url=gateway.url) as gw_http:
            body = {**sent, "msgId": "x"}
            bare = await gw_http.post("/msgg-n3gdelivery/v1/deliver-message", json=body)
            assert bare.status_code == 401
            as_token = await gw_http.post(
                "/msgg-n3gdelivery/v1/deliver-message", json=body, headers=as_auth
            )
            assert as_token.status_code == 403
    finally:
        gateway.stop()
        broker.stop()
        receiver.stop()
        server.stop()
    assert GW_SECRET not in gateway.log()
    assert SRV_SECRET not in server.log()
