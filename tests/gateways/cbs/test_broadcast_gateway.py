# SPDX-License-Identifier: Apache-2.0
"""The Broadcast Message Gateway in-process against the CBC simulator as a real HTTP peer.

Every gateway response is validated against the official TS29538_MSGG_BGDelivery.yaml (and
every successful request too) by the client's event hook.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from msgin5g.gateways.cbs import pages
from msgin5g.gateways.cbs.cbc_sim import CbcSimulator
from msgin5g.gateways.cbs.gateway import (
    BroadcastGateway,
    BroadcastGatewaySettings,
    CbcScope,
)
from msgin5g.gateways.common import GatewaySettings
from msgin5g.wire.common import Address
from tests.support import oas_msgg

URL = "/msgg-bgdelivery/v1/deliver-message"
ORI = {"addrType": "AS", "addr": "as-1"}
CELLS = ((262, 1, 100, 7), (262, 1, 100, 8))


@pytest.fixture
async def cbc() -> AsyncIterator[CbcSimulator]:
    sim = await CbcSimulator().start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
async def gateway(tmp_path: Path, cbc: CbcSimulator) -> AsyncIterator[BroadcastGateway]:
    settings = BroadcastGatewaySettings(
        gateway=GatewaySettings(
            gw_type="N3G",
            server_url="http://127.0.0.1:9",
            data_dir=tmp_path / "bmg",
            request_timeout=2.0,
        ),
        cbc_url=cbc.url,
        areas={"city": CbcScope(CELLS), "country": CbcScope()},
        default_area="country",
        cbe_name="test-cbe",
        repetition_period=5,
        num_of_bcast=3,
        message_ids=(1000, 1002),
    )
    settings.validate()
    gw = BroadcastGateway(settings)
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


@pytest.fixture
async def client(gateway: BroadcastGateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bmg.test", event_hooks=oas_msgg.EVENT_HOOKS
    ) as c:
        yield c


def _text(body: dict[str, Any]) -> str:
    encoded = body["smscb_message"]["payload"]["payload_encoded"]
    return pages.decode(encoded["dcs"], [bytes.fromhex(p["data"]) for p in encoded["pages"]])


async def test_broadcast_reaches_the_cbc_with_scope_and_pages(
    client: httpx.AsyncClient, cbc: CbcSimulator
) -> None:
    response = await client.post(
        URL,
        json={
            "oriAddr": ORI,
            "destAddr": {"addrType": "BC", "addr": "city"},
            "msgId": "m-1",
            "payload": "Flood warning: leave the river banks now.",
            "priority": "HIGH",
            "delivStReqInd": True,
        },
    )
    assert response.status_code == 204
    assert len(cbc.accepted) == 1
    body = cbc.accepted[0]
    assert body["cbe_name"] == "test-cbe"
    assert body["category"] == "high_priority"
    assert body["repetition_period"] == 5
    assert body["num_of_bcast"] == 3
    assert body["scope"] == {
        "scope_cell_list": {
            "cgi": [
                {"mcc": 262, "mnc": 1, "lac": 100, "ci": 7},
                {"mcc": 262, "mnc": 1, "lac": 100, "ci": 8},
            ]
        }
    }
    assert body["smscb_message"]["message_id"] == 1000
    assert body["smscb_message"]["payload"]["payload_encoded"]["dcs"] == pages.DCS_GSM7
    assert _text(body) == "Flood warning: leave the river banks now."
    assert cbc.rejected == []


async def test_default_area_long_text_and_priorities(
    client: httpx.AsyncClient, cbc: CbcSimulator
) -> None:
    long_text = "".join(f"line {i} of a long broadcast. " for i in range(40))
    assert 93 * 5 < len(long_text) < 93 * 15
    response = await client.post(URL, json={"oriAddr": ORI, "msgId": "m-2", "payload": long_text})
    assert response.status_code == 204
    body = cbc.accepted[-1]
    assert body["scope"] == {"scope_plmn": {}}
    assert body["category"] == "normal"
    encoded = body["smscb_message"]["payload"]["payload_encoded"]
    assert len(encoded["pages"]) == -(-len(long_text) // 93)
    assert all(len(p["data"]) == 2 * pages.PAGE_OCTETS for p in encoded["pages"])
    assert _text(body) == long_text

    low = {"oriAddr": ORI, "msgId": "m-3", "payload": "x", "priority": "LOW"}
    assert (await client.post(URL, json=low)).status_code == 204
    assert cbc.accepted[-1]["category"] == "background"


async def test_ucs2(client: httpx.AsyncClient, cbc: CbcSimulator) -> None:
    text = "Внимание! 注意 😀 " * 6
    response = await client.post(
        URL,
        json={
            "oriAddr": ORI,
            "destAddr": {"addrType": "BC", "addr": "country"},
            "msgId": "m-u",
            "payload": text,
        },
    )
    assert response.status_code == 204
    encoded = cbc.accepted[-1]["smscb_message"]["payload"]["payload_encoded"]
    assert encoded["dcs"] == pages.DCS_UCS2
    assert len(encoded["pages"]) > 1
    assert _text(cbc.accepted[-1]) == text


async def test_unknown_area_is_404(client: httpx.AsyncClient, cbc: CbcSimulator) -> None:
    response = await client.post(
        URL,
        json={
            "oriAddr": ORI,
            "destAddr": {"addrType": "BC", "addr": "atlantis"},
            "msgId": "m-4",
            "payload": "x",
        },
    )
    assert response.status_code == 404
    assert response.json()["cause"] == "TARGET_NOT_FOUND"
    assert cbc.accepted == []


async def test_bad_bodies(client: httpx.AsyncClient, cbc: CbcSimulator) -> None:
    no_payload = await client.post(URL, json={"oriAddr": ORI, "msgId": "m-5"})
    assert no_payload.status_code == 400
    assert no_payload.json()["invalidParams"][0]["param"] == "/payload"
    too_long = await client.post(URL, json={"oriAddr": ORI, "msgId": "m-6", "payload": "a" * 1396})
    assert too_long.status_code == 413
    missing = await client.post(URL, json={"msgId": "m-7", "payload": "x"})
    assert missing.status_code == 400
    assert missing.json()["cause"] == "MANDATORY_IE_MISSING"
    null = await client.post(URL, json={"oriAddr": ORI, "msgId": "m-8", "appId": None})
    assert null.status_code == 400
    assert cbc.accepted == []


async def test_cbc_down_503_then_success(
    client: httpx.AsyncClient, cbc: CbcSimulator, gateway: BroadcastGateway
) -> None:
    await cbc.stop()
    message = {"oriAddr": ORI, "msgId": "m-down", "payload": "retry me"}
    response = await client.post(URL, json=message)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["cause"] == "SERVICE_UNAVAILABLE"
    await cbc.start()  # the same port again
    assert (await client.post(URL, json=message)).status_code == 204
    assert len(cbc.accepted) == 1
    # the message kept the message_id it was given on the first attempt
    assert cbc.accepted[0]["smscb_message"]["message_id"] == 1000
    assert gateway.counters.value("down", "retried") >= 1


async def test_idempotent_repeat(client: httpx.AsyncClient, cbc: CbcSimulator) -> None:
    message = {"oriAddr": ORI, "msgId": "m-once", "payload": "only once"}
    first, second = await asyncio.gather(
        client.post(URL, json=message), client.post(URL, json=message)
    )
    assert (first.status_code, second.status_code) == (204, 204)
    assert (await client.post(URL, json=message)).status_code == 204
    assert len(cbc.accepted) == 1
    other = {"oriAddr": {"addrType": "AS", "addr": "as-2"}, "msgId": "m-once", "payload": "y"}
    assert (await client.post(URL, json=other)).status_code == 204
    assert len(cbc.accepted) == 2


async def test_message_ids_persist_wrap_and_withdraw(
    client: httpx.AsyncClient, cbc: CbcSimulator, gateway: BroadcastGateway
) -> None:
    for i in range(4):  # the range is 1000..1002: the fourth reuses 1000
        body = {"oriAddr": ORI, "msgId": f"w-{i}", "payload": f"n{i}"}
        assert (await client.post(URL, json=body)).status_code == 204
    ids = [b["smscb_message"]["message_id"] for b in cbc.accepted]
    assert ids == [1000, 1001, 1002, 1000]
    assert cbc.deleted == [1000]  # the CBC still had it (409): withdrawn, then posted again
    assert _text(cbc.messages[1000]) == "n3"
    rows = gateway.db.query("SELECT msg_id, message_id, state FROM broadcasts ORDER BY seq")
    assert rows == [
        ("w-0", 1000, "superseded"),
        ("w-1", 1001, "accepted"),
        ("w-2", 1002, "accepted"),
        ("w-3", 1000, "accepted"),
    ]
    assert await gateway.withdraw(Address("AS", "as-1"), "w-1")
    assert 1001 not in cbc.messages
    assert not await gateway.withdraw(Address("AS", "as-1"), "nope")
    assert not await gateway.withdraw(Address("AS", "as-1"), "w-0")  # 1000 is w-3's now
    assert not await gateway.withdraw(Address("AS", "as-1"), "w-1")  # already withdrawn
    assert 1000 in cbc.messages
    # a repeat of a superseded or withdrawn message is acknowledged, not broadcast again
    count = len(cbc.accepted)
    for msg_id in ("w-0", "w-1"):
        body = {"oriAddr": ORI, "msgId": msg_id, "payload": "again"}
        assert (await client.post(URL, json=body)).status_code == 204
    assert len(cbc.accepted) == count


async def test_wrong_paths_are_problems(client: httpx.AsyncClient) -> None:
    assert (await client.get(URL)).status_code == 405
    assert (await client.post("/msgg-bgdelivery/v1/deliver-report", json={})).status_code == 404
    assert (await client.get("/healthz")).status_code == 200
