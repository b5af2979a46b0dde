# SPDX-License-Identifier: Apache-2.0
"""The SMS gateway (L3G) in-process, against the SMSC simulator over real SMPP on 127.0.0.1.

The msgg-l3gdelivery API is called through the ASGI app (no port); the uplink goes over real
HTTP to `FakeServer` (tests/gateways/conftest.py). Every HTTP answer is checked against the
official TS29538_MSGG_L3GDelivery.yaml.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from msgin5g.gateways.common import GatewaySettings
from msgin5g.gateways.sms.encoding import DATA_CODING_DEFAULT, DATA_CODING_UCS2
from msgin5g.gateways.sms.gateway import SmsGateway, SmsGatewaySettings
from msgin5g.gateways.sms.smpp_session import SmppConfig
from msgin5g.gateways.sms.smsc_sim import SmscSimulator
from msgin5g.wire.common import Address
from tests.gateways.conftest import FakeServer, eventually
from tests.support import oas

SYSTEM_ID, PASSWORD = "gw", "s3cret"
UE, MSISDN = "ue-1", "491700000001"
UE_FAIL, MSISDN_FAIL = "ue-fail", "499990000001"
AS_ID = "app-1"
L3G_FILE = "TS29538_MSGG_L3GDelivery.yaml"
DELIVER = "/msgg-l3gdelivery/v1/deliver-message"
REPORT = "/msgg-l3gdelivery/v1/deliver-report"


def validate(response: httpx.Response) -> None:
    """The answer conforms to the official L3G file (and errors are ProblemDetails)."""
    openapi = oas.load(L3G_FILE)
    openapi.validate_response(oas.mock_request(response.request), oas.mock_response(response))
    if response.status_code >= 400:
        oas.validate_problem(response)


@pytest.fixture
async def sim() -> AsyncIterator[SmscSimulator]:
    simulator = SmscSimulator(
        system_id=SYSTEM_ID, password=PASSWORD, receipt_delay=0.01, fail_prefix="4999"
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


def make_settings(
    tmp_path: Path, sim: SmscSimulator, server: FakeServer, **overrides: Any
) -> SmsGatewaySettings:
    smpp = SmppConfig(
        host="127.0.0.1",
        port=sim.port,
        system_id=SYSTEM_ID,
        password=overrides.pop("password", PASSWORD),
        response_timeout=2.0,
        reconnect_min=0.05,
        reconnect_max=0.3,
        bind_wait=2.0,
        window=overrides.pop("window", 10),
    )
    return SmsGatewaySettings(
        gateway=GatewaySettings(
            gw_type="L3G",
            server_url=server.url,
            http="127.0.0.1:18181",
            data_dir=tmp_path / "gw",
            retry_initial=0.05,
            retry_max=0.3,
        ),
        smpp=smpp,
        ues={UE: MSISDN, UE_FAIL: MSISDN_FAIL},
        mo_to=Address("AS", AS_ID),
        binds=overrides.pop("binds", 2),
        sweep_interval=0.05,
        **overrides,
    )


@asynccontextmanager
async def running(settings: SmsGatewaySettings) -> AsyncIterator[SmsGateway]:
    gateway = SmsGateway(settings)
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()


def client(gateway: SmsGateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway.app), base_url="http://127.0.0.1:18181"
    )


def message(text: str, *, report: bool = True, ue: str = UE, msg_id: str | None = None) -> Any:
    return {
        "oriAddr": {"addrType": "AS", "addr": "sender-as"},
        "destAddr": {"addrType": "UE", "addr": ue},
        "msgId": msg_id or uuid.uuid4().hex,
        "appId": "meter",
        "delivStReqInd": report,
        "payload": text,
    }


async def deliver(http: httpx.AsyncClient, body: Any) -> httpx.Response:
    response = await http.post(DELIVER, json=body)
    validate(response)
    return response


async def test_long_message_goes_in_parts_each_receipted_and_one_report(
    tmp_path: Path, sim: SmscSimulator, fake_server: FakeServer
) -> None:
    text = "The quick brown fox jumps over the lazy dog {0} [] ~ € " * 8  # GSM 7-bit, > 153
    async with running(make_settings(tmp_path, sim, fake_server)) as gw, client(gw) as http:
        body = message(text)
        response = await deliver(http, body)
        assert response.status_code == 204
        assert response.content == b""
        await fake_server.wait_for(lambda: bool(fake_server.bodies("/deliver-report")))
        await asyncio.sleep(0.2)  # nothing more may follow
    parts = [r for r in sim.received if r.destination_addr == MSISDN]
    assert len(parts) >= 3
    assert {p.data_coding for p in parts} == {DATA_CODING_DEFAULT}
    assert all(p.concat is not None and p.concat.total == len(parts) for p in parts)
    assert len({p.concat.reference for p in parts if p.concat}) == 1
    assert sorted(p.concat.sequence for p in parts if p.concat) == list(range(1, len(parts) + 1))
    assert "".join(p.text for p in sorted(parts, key=lambda p: p.concat.sequence)) == text  # type: ignore[union-attr]
    assert all(p.registered_delivery == 1 for p in parts)
    assert sim.receipts_sent == len(parts)
    assert fake_server.bodies("/msgs-msgdelivery/v1/deliver-report") == [
        {
            "oriAddr": {"addrType": "UE", "addr": UE},
            "destAddr": body["oriAddr"],
            "msgId": body["msgId"],
            "delivSt": "REPT_DELY_SUCCESS",
        }
    ]
    assert gw.counters.value("down", "delivered") == 1


async def test_ucs2_message_and_failed_receipt_give_failed_report(
    tmp_path: Path, sim: SmscSimulator, fake_server: FakeServer
) -> None:
    text = "Привет, мир! 你好 ✓ " * 6
    async with running(make_settings(tmp_path, sim, fake_server)) as gw, client(gw) as http:
        body = message(text, ue=UE_FAIL)
        assert (await deliver(http, body)).status_code == 204
        await fake_server.wait_for(lambda: bool(fake_server.bodies("/deliver-report")))
    parts = [r for r in sim.received if r.destination_addr == MSISDN_FAIL]
    assert len(parts) > 1
    assert {p.data_coding for p in parts} == {DATA_CODING_UCS2}
    (report,) = fake_server.bodies("/deliver-report")
    assert report["delivSt"] == "REPT_DELY_FAILED"
    assert report["failureCause"] == "UNDELIV"
    assert report["oriAddr"] == {"addrType": "UE", "addr": UE_FAIL}
    assert gw.counters.value("down", "failed") == 1


async def test_without_report_no_receipt_is_asked_and_nothing_is_reported(
    tmp_path: Path, sim: SmscSimulator, fake_server: FakeServer
) -> None:
    async with running(make_settings(tmp_path, sim, fake_server)) as gw, client(gw) as http:
        assert (await deliver(http, message("hello", report=False))).status_code == 204
        async with asyncio.timeout(5):
            await gw.idle()
        await asyncio.sleep(0.1)
    (part,) = sim.received
    assert part.registered_delivery == 0
    assert part.text == "hello"
    assert not fake_server.bodies("/deliver-report")
    assert gw.counters.value("down", "submitted") == 1


async def test_errors_are_problem_details_per_the_official_file(
    tmp_path: Path, sim: SmscSimulator, fake_server: FakeServer
) -> None:
    settings = make_settings(tmp_path, sim, fake_server)
    async with running(settings) as gw, client(gw) as http:
        unknown = await deliver(http, message("x", ue="nobody"))
        assert unknown.status_code == 404
        assert unknown.json()["cause"] == "TARGET_NOT_FOUND"
        not_ue = message("x")
        not_ue["destAddr"]["addrType"] = "AS"
        assert (await deliver(http, not_ue)).status_code == 404
        missing = message("x")
        del missing["msgId"]
        bad = await deliver(http, missing)
        assert bad.status_code == 400
        assert bad.json()["invalidParams"][0]["param"] == "/msgId"
        wrong_type = await http.post(DELIVER, content=b"{}", headers={"content-type": "text/plain"})
        validate(wrong_type)
        assert wrong_type.status_code == 415
        too_long = await deliver(http, message("x" * 160 * 256))
        assert too_long.status_code == 413
        report = await http.post(
            REPORT,
            json={
                "oriAddr": {"addrType": "AS", "addr": AS_ID},
                "destAddr": {"addrType": "UE", "addr": "nobody"},
                "msgId": "m1",
                "delivSt": "REPT_DELY_SUCCESS",
            },
        )
        validate(report)
        assert report.status_code == 404
        health = await http.get("/healthz")
        assert health.status_code == 200
        metrics = (await http.get("/metrics")).text
        assert 'msgin5g_http_requests_total{operation="l3g.message",status="404"} 2' in metrics
    assert sim.received == []


async def test_duplicate_is_acknowledged_again_and_sent_once(
    tmp_path: Path, sim: SmscSimulator, fake_server: FakeServer
) -> None:
    async with running(make_settings(tmp_path, sim, fake_server)) as gw, client(gw) as http:
        body = message("only once")
        assert (await deliver(http, body)).status_code == 204
        assert (await deliver(http, body)).status_code == 204
        await fake_server.wait_for(lambda: bool(fake_server.bodies("/deliver-report")))
        assert (await deliver(http, body)).status_code == 204
        await asyncio.sleep(0.2)
    assert len(sim.received) == 1
    assert len(fake_server.bodies("/deliver-report")) == 1


async def test_refused_bind_is_a_clear_error_and_is_retried(
    tmp_path: Path, sim: SmscSimulator, fake_server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "msgin5g.gateways.sms.gateway")
    settings = make_settings(tmp_path, sim, fake_server, password="wrong", binds=1)
    async with running(settings) as gw, client(gw) as http:
        assert (await deliver(http, message("queued while unbound"))).status_code == 204
        async with asyncio.timeout(5):
            await eventually(lambda: len(sim.binds) >= 3)
        assert sim.received == []
        refused = [r for r in caplog.records if "refused the bind" in r.getMessage()]
        assert refused
        assert "ESME_RINVPASWD" in refused[0].__dict__["reason"]
        sim.password = "wrong"  # the operator fixes the SMSC side: the next retry binds
        await fake_server.wait_for(lambda: bool(fake_server.bodies("/deliver-report")))
    assert [r.text for r in sim.received] == ["queued while unbound"]
    assert {b.status for b in sim.binds} >= {0x0E, 0x00}


async def test_throttled_submits_are_retried_until_accepted(
    tmp_path: Path, fake_server: FakeServer
) -> None:
    sim = SmscSimulator(system_id=SYSTEM_ID, password=PASSWORD, throttle=20)
    await sim.start()
    try:
        settings = make_settings(tmp_path, sim, fake_server, binds=1)
        async with running(settings) as gw, client(gw) as http:
            for i in range(60):
                assert (await deliver(http, message(f"m{i}"))).status_code == 204
            await fake_server.wait_for(
                lambda: len(fake_server.bodies("/deliver-report")) == 60, within=20
            )
    finally:
        await sim.stop()
    assert sim.throttled > 0
    assert sorted(r.text for r in sim.received) == sorted(f"m{i}" for i in range(60))
    reports = fake_server.bodies("/deliver-report")
    assert {r["delivSt"] for r in reports} == {"REPT_DELY_SUCCESS"}


async def test_receipts_map_back_to_the_message_after_a_gateway_restart(
    tmp_path: Path, fake_server: FakeServer
) -> None:
    sim = SmscSimulator(system_id=SYSTEM_ID, password=PASSWORD, receipt_delay=0.8)
    await sim.start()
    try:
        settings = make_settings(tmp_path, sim, fake_server)
        text = "restart me " * 30
        async with running(settings) as gw, client(gw) as http:
            body = message(text)
            assert (await deliver(http, body)).status_code == 204
            await fake_server.wait_for(lambda: gw.counters.value("down", "submitted") == 1)
        # stopped before any receipt; the SMSC keeps them for the next bind
        assert not fake_server.bodies("/deliver-report")
        async with running(settings) as gw2:
            await fake_server.wait_for(lambda: bool(fake_server.bodies("/deliver-report")))
            assert gw2.pending_downlink == 0
    finally:
        await sim.stop()
    (report,) = fake_server.bodies("/deliver-report")
    assert report["msgId"] == body["msgId"]
    assert report["delivSt"] == "REPT_DELY_SUCCESS"
    assert len(sim.received) == 3  # nothing was submitted twice


async def test_acknowledged_message_survives_a_restart_while_the_smsc_is_down(
    tmp_path: Path, fake_server: FakeServer
) -> None:
    sim = SmscSimulator(system_id=SYSTEM_ID, password=PASSWORD)
    await sim.start()
    port = sim.port
    await sim.stop()
    settings = make_settings(tmp_path, sim, fake_server)
    async with running(settings) as gw, client(gw) as http:
        assert (await deliver(http, message("kept"))).status_code == 204
        assert gw.pending_downlink == 1
    sim = SmscSimulator(port=port, system_id=SYSTEM_ID, password=PASSWORD)
    await sim.start()
    try:
        async with running(settings):
            await fake_server.wait_for(lambda: bool(fake_server.bodies("/deliver-report")))
    finally:
        await sim.stop()
    assert [r.text for r in sim.received] == ["kept"]


async def test_smsc_restart_the_gateway_rebinds_and_goes_on(
    tmp_path: Path, sim: SmscSimulator, fake_server: FakeServer
) -> None:
    async with running(make_settings(tmp_path, sim, fake_server)) as gw, client(gw) as http:
        assert (await deliver(http, message("before"))).status_code == 204
        await fake_server.wait_for(lambda: len(fake_server.bodies("/deliver-report")) == 1)
        await sim.stop()
        assert (await deliver(http, message("during"))).status_code == 204
        await asyncio.sleep(0.3)
        await sim.start()
        assert (await deliver(http, message("after"))).status_code == 204
        await fake_server.wait_for(lambda: len(fake_server.bodies("/deliver-report")) == 3)
    assert sorted(r.text for r in sim.received) == ["after", "before", "during"]


async def test_mo_single_and_concatenated_become_deliver_ue_message(
    tmp_path: Path, sim: SmscSimulator, fake_server: FakeServer
) -> None:
    long_text = "Concatenated MO from a legacy UE, äöü, " * 8
    async with running(make_settings(tmp_path, sim, fake_server)):
        async with asyncio.timeout(5):
            assert await sim.inject_mo(MSISDN, "1234", "short one") == [0]
            statuses = await sim.inject_mo(
                "+" + MSISDN, "1234", long_text, reference=7, order=lambda p: p[::-1]
            )
            assert set(statuses) == {0}
            assert await sim.inject_mo("4900000", "1234", "from a stranger") == [0]
        await fake_server.wait_for(lambda: len(fake_server.bodies("/deliver-ue-message")) == 2)
    got = fake_server.bodies("/msgs-msgdelivery/v1/deliver-ue-message")
    assert [m["payload"] for m in got] == ["short one", long_text]
    for m in got:
        assert m["oriAddr"] == {"addrType": "UE", "addr": UE}
        assert m["destAddr"] == {"addrType": "AS", "addr": AS_ID}
        assert m["stoAndFwInd"] is True
    assert [m["msgId"] for m in got] == sorted({m["msgId"] for m in got})  # two, ascending
    assert {uuid.UUID(m["msgId"]).version for m in got} == {7}  # time-ordered (ADR 0024)


async def test_mo_is_retried_while_the_server_is_down(
    tmp_path: Path, sim: SmscSimulator, fake_server: FakeServer
) -> None:
    settings = make_settings(tmp_path, sim, fake_server)
    async with running(settings) as gw:
        await fake_server.wait_for(lambda: bool(fake_server.bodies("/registrations")))
        await fake_server.stop()
        async with asyncio.timeout(5):
            assert await sim.inject_mo(MSISDN, "1234", "while down") == [0]
        await asyncio.sleep(0.5)
        assert gw.counters.value("up", "retried") >= 1
        fake_server.status = 503
        await fake_server.start()
        await fake_server.wait_for(lambda: bool(fake_server.bodies("/deliver-ue-message")))
        fake_server.status = None
        before = len(fake_server.bodies("/deliver-ue-message"))
        await fake_server.wait_for(
            lambda: len(fake_server.bodies("/deliver-ue-message")) > before, within=5
        )
        async with asyncio.timeout(5):
            await gw.server.drained()
    assert fake_server.bodies("/deliver-ue-message")[-1]["payload"] == "while down"


async def test_partial_mo_survives_a_restart(
    tmp_path: Path, sim: SmscSimulator, fake_server: FakeServer
) -> None:
    text = "Parts across a restart. " * 10
    settings = make_settings(tmp_path, sim, fake_server)
    async with running(settings):
        async with asyncio.timeout(5):
            assert await sim.inject_mo(MSISDN, "1234", text, reference=9, order=lambda p: p[:1])
    async with running(settings):
        async with asyncio.timeout(5):
            assert await sim.inject_mo(MSISDN, "1234", text, reference=9, order=lambda p: p[1:])
        await fake_server.wait_for(lambda: bool(fake_server.bodies("/deliver-ue-message")))
    assert [m["payload"] for m in fake_server.bodies("/deliver-ue-message")] == [text]


async def test_report_from_the_server_is_logged_and_sent_as_sms(
    tmp_path: Path,
    sim: SmscSimulator,
    fake_server: FakeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "msgin5g.gateways.sms.gateway")
    settings = make_settings(tmp_path, sim, fake_server, report_sms=True)
    async with running(settings) as gw, client(gw) as http:
        response = await http.post(
            REPORT,
            json={
                "oriAddr": {"addrType": "AS", "addr": AS_ID},
                "destAddr": {"addrType": "UE", "addr": UE},
                "msgId": "mo-1",
                "delivSt": "REPT_DELY_FAILED",
                "failureCause": "EXPIRED",
            },
        )
        validate(response)
        assert response.status_code == 204
        await sim.wait_for(lambda: bool(sim.received))
    assert [r.text for r in sim.received] == ["MSGin5G report mo-1: not delivered (EXPIRED)"]
    assert any(
        r.getMessage() == "delivery report for UE-originated message"
        and r.__dict__["msg_id"] == "mo-1"
        for r in caplog.records
    )


async def test_static_ues_are_registered_with_the_server(
    tmp_path: Path, sim: SmscSimulator, fake_server: FakeServer
) -> None:
    async with running(make_settings(tmp_path, sim, fake_server)) as gw:
        async with asyncio.timeout(5):
            await gw.registrar.registered.wait()
    (registration,) = fake_server.bodies("/ext-gwueregistration/v1/registrations")
    assert registration == {
        "gwType": "L3G",
        "gwApiRoot": "http://127.0.0.1:18181",
        "ueSvcIds": sorted([UE, UE_FAIL]),
    }
    assert gw.registrar.registration_ids == {UE: f"reg-{UE}", UE_FAIL: f"reg-{UE_FAIL}"}


async def test_registration_is_retried_while_the_server_has_no_such_api(
    tmp_path: Path, sim: SmscSimulator, fake_server: FakeServer
) -> None:
    fake_server.status = 404
    async with running(make_settings(tmp_path, sim, fake_server)) as gw:
        await fake_server.wait_for(lambda: len(fake_server.bodies("/registrations")) >= 3)
        assert not gw.registrar.registered.is_set()
        fake_server.status = None
        async with asyncio.timeout(5):
            await gw.registrar.registered.wait()


def segment(body: Any, number: int, total: int, text: str) -> Any:
    return {
        **body,
        "payload": text,
        "segInd": True,
        "segParams": {
            "segId": "seg-" + body["msgId"],
            "segNumb": number,
            "totalSegCount": total,
            "lastSegFlag": number == total,
        },
    }


async def test_segments_are_joined_into_one_sms_message_with_one_report(
    tmp_path: Path, sim: SmscSimulator, fake_server: FakeServer
) -> None:
    pieces = ["First segment, ", "second segment, ", "and the last one."]
    async with running(make_settings(tmp_path, sim, fake_server)) as gw, client(gw) as http:
        body = message("")
        for number in (3, 1, 1, 2):  # out of order, one repeated
            response = await deliver(http, segment(body, number, 3, pieces[number - 1]))
            assert response.status_code == 204
        await fake_server.wait_for(lambda: bool(fake_server.bodies("/deliver-report")))
        bad = await deliver(http, segment(message(""), 4, 3, "x"))
        assert bad.status_code == 400
    assert "".join(r.text for r in sim.received) == "".join(pieces)
    (report,) = fake_server.bodies("/deliver-report")
    assert report["msgId"] == body["msgId"]
    assert report["delivSt"] == "REPT_DELY_SUCCESS"


async def test_incomplete_segments_fail_with_a_report(
    tmp_path: Path, sim: SmscSimulator, fake_server: FakeServer
) -> None:
    settings = make_settings(tmp_path, sim, fake_server, reassembly_timeout=0.2)
    async with running(settings) as gw, client(gw) as http:
        body = message("")
        assert (await deliver(http, segment(body, 1, 2, "only half"))).status_code == 204
        await fake_server.wait_for(lambda: bool(fake_server.bodies("/deliver-report")))
    assert sim.received == []
    (report,) = fake_server.bodies("/deliver-report")
    assert report["delivSt"] == "REPT_DELY_FAILED"
    assert report["failureCause"] == "SEGMENT_REASSEMBLY_TIMEOUT"
