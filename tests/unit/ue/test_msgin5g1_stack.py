# SPDX-License-Identifier: Apache-2.0
"""MSGin5G-1 through the real server stack in-process: the SDK's UeClient over loopback UDP
against ServerApp's CoAP endpoint, the AS side through the ASGI app (two stacks talking)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from msgin5g.bootstrap import ServerApp
from msgin5g.coap import CoapClient, Code, ContentFormat, TransmissionParameters
from msgin5g.coap.message import format_code
from msgin5g.sdk import AsClient, SdkError, UeClient
from msgin5g.settings import load

FAST = TransmissionParameters(ack_timeout=0.2, exchange_lifetime=10.0, non_lifetime=10.0)
BASE = ("msgin5g", "v1")
Json = dict[str, Any]


async def _start(tmp_path: Path, **ue: Any) -> ServerApp:
    settings = load(
        overrides={
            "server": {"data_dir": str(tmp_path / "data"), "coap": "127.0.0.1:0"},
            "delivery": {"retry_initial_s": 0.05, "retry_max_s": 0.2, "sweep_interval_s": 0.1},
            "ue": {"ack_timeout_s": 0.2, "max_retransmit": 2, **ue},
        },
        environ={},
    )
    app = ServerApp(settings)
    await app.start()
    return app


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerApp]:
    app = await _start(tmp_path, reassembly_timeout_s=0.5, max_body_bytes=16384)
    try:
        yield app
    finally:
        await app.stop()


def _uri(server: ServerApp) -> str:
    return f"coap://127.0.0.1:{server.coap.address[1]}"


@pytest.fixture
async def as_client(server: ServerApp) -> AsyncIterator[AsClient]:
    client = AsClient("http://testserver", "as-1")
    await client._http.aclose()
    client._http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=server.app), base_url="http://testserver"
    )
    async with client:
        await client.register()  # no targetUri: messages to it are stored
        yield client


@pytest.fixture
async def raw(server: ServerApp) -> AsyncIterator[CoapClient]:
    async with CoapClient(params=FAST) as client:
        yield client


async def _post(
    client: CoapClient, server: ServerApp, resource: str, payload: bytes, fmt: int | None = 50
) -> tuple[str, Json | None]:
    response = await client.request(
        ("127.0.0.1", server.coap.address[1]),
        Code.POST,
        (*BASE, resource),
        payload=payload,
        content_format=fmt,
    )
    body = json.loads(response.payload) if response.payload else None
    return format_code(response.code), body


async def _take(inbox: AsyncIterator[Json], count: int, within: float = 5.0) -> list[Json]:
    out: list[Json] = []
    async with asyncio.timeout(within):
        while len(out) < count:
            out.append(await anext(inbox))
    return out


# registration -----------------------------------------------------------------------------


async def test_register_replace_and_deregister(server: ServerApp, raw: CoapClient) -> None:
    remote = ("127.0.0.1", server.coap.address[1])
    body = b'{"msgType":"REG","ueSvcId":"ue-1","maxSegSize":512,"commAvail":{"every":"1h"}}'
    first = await raw.request(
        remote, Code.POST, (*BASE, "registrations"), payload=body, content_format=50
    )
    assert format_code(first.code) == "2.01"
    answer = json.loads(first.payload)
    assert answer["msgType"] == "REG"
    assert answer["ueSvcId"] == "ue-1"
    assert first.location_path == (*BASE, "registrations", answer["regId"])
    assert server.ue_registry.max_segment_size("ue-1") == 512

    second = await raw.request(remote, Code.POST, (*BASE, "registrations"), payload=body)
    new_id = json.loads(second.payload)["regId"]
    assert new_id != answer["regId"]
    stale = await raw.request(remote, Code.DELETE, (*BASE, "registrations", answer["regId"]))
    assert format_code(stale.code) == "4.04"
    assert server.ue_registry.get("ue-1") is not None
    gone = await raw.request(remote, Code.DELETE, (*BASE, "registrations", new_id))
    assert format_code(gone.code) == "2.02"
    assert server.ue_registry.get("ue-1") is None


@pytest.mark.parametrize(
    ("resource", "payload", "fmt", "code", "cause"),
    [
        ("registrations", b'{"msgType":"REG"', 50, "4.00", "INVALID_MSG_FORMAT"),
        ("registrations", b'{"msgType":"REG"}', 50, "4.00", "MANDATORY_IE_MISSING"),
        (
            "registrations",
            b'{"msgType":"HELLO","ueSvcId":"u"}',
            50,
            "4.00",
            "MANDATORY_IE_INCORRECT",
        ),
        (
            "registrations",
            b'{"msgType":"REG","ueSvcId":"u","maxSegSize":2}',
            50,
            "4.00",
            "OPTIONAL_IE_INCORRECT",
        ),
        ("messages", b"[]", 50, "4.00", "MANDATORY_IE_INCORRECT"),
        ("messages", b'{"msgType":"IMDN"}', 50, "4.00", "MANDATORY_IE_INCORRECT"),
        (
            "messages",
            b'{"msgType":"MSG","oriAddr":{"addrType":"UE","addr":"nobody"},'
            b'"destAddr":{"addrType":"AS","addr":"as-1"},"msgId":"m"}',
            50,
            "4.04",
            "TARGET_NOT_FOUND",
        ),
        (
            "messages",
            b'{"msgType":"MSG","oriAddr":{"addrType":"AS","addr":"a"},'
            b'"destAddr":{"addrType":"AS","addr":"as-1"},"msgId":"m"}',
            50,
            "4.00",
            "MANDATORY_IE_INCORRECT",
        ),
        ("reports", b'{"msgType":"MSG"}', 50, "4.00", "MANDATORY_IE_MISSING"),
        ("segments", b'{"msgType":"SEGREC","segId":"s"}', 50, "4.00", "MANDATORY_IE_MISSING"),
        (
            "segments",
            b'{"msgType":"SEGREC","segId":"s","missing":[1]}',
            50,
            "4.04",
            "TARGET_NOT_FOUND",
        ),
        ("messages", b"{}", 0, "4.15", "UNSUPPORTED_MEDIA_TYPE"),
    ],
)
async def test_bad_requests(
    server: ServerApp,
    raw: CoapClient,
    resource: str,
    payload: bytes,
    fmt: int,
    code: str,
    cause: str,
) -> None:
    got, body = await _post(raw, server, resource, payload, fmt)
    assert got == code
    assert body is not None
    assert body["cause"] == cause
    assert body["detail"]


async def test_paths_methods_and_size_limit(server: ServerApp, raw: CoapClient) -> None:
    remote = ("127.0.0.1", server.coap.address[1])
    assert format_code((await raw.request(remote, Code.GET, ("nowhere",))).code) == "4.04"
    assert format_code((await raw.request(remote, Code.GET, (*BASE, "x"))).code) == "4.04"
    put = await raw.request(remote, Code.PUT, (*BASE, "messages"))
    assert format_code(put.code) == "4.05"
    inbox = await raw.request(remote, Code.GET, (*BASE, "ues", "nobody", "inbox"))
    assert format_code(inbox.code) == "4.04"
    big = b'{"msgType":"MSG","payload":"' + b"x" * 20000 + b'"}'
    code, _ = await _post(raw, server, "messages", big)
    assert code == "4.13"


# messages -------------------------------------------------------------------------------


async def test_as_to_ue_status_follows_registration_and_observation(
    server: ServerApp, as_client: AsClient
) -> None:
    unknown = await as_client.send("UE:ue-1", "hi", store=True)
    assert unknown["status"] == "DELY_FAILED"
    assert "UNKNOWN_RECIPIENT" in unknown["failureCause"]
    async with UeClient(_uri(server), "ue-1", params=FAST) as ue:
        await ue.register()
        offline = await as_client.send("UE:ue-1", "no store", store=False)
        assert offline["status"] == "DELY_FAILED"
        stored = await as_client.send("UE:ue-1", "stored", store=True, report=True)
        assert stored["status"] == "DELY_STORED"
        inbox = ue.inbox()
        (pending, first) = await _take(inbox, 2)
        assert pending == {"pending": 1}
        assert first["msgType"] == "MSG"
        assert first["payload"] == "stored"
        assert first["oriAddr"] == {"addrType": "AS", "addr": "as-1"}
        assert first["delivStReqInd"] is True
        live = await as_client.send("UE:ue-1", "live")
        assert "status" not in live
        (second,) = await _take(inbox, 1)
        assert second["payload"] == "live"
        # The UE's IMDN goes back toward the AS (stored: it registered no targetUri).
        resp = await ue.report(first["oriAddr"], first["msgId"])
        assert resp == {"msgType": "MSGRESP", "msgId": first["msgId"]}
        again = await ue.report(first["oriAddr"], live["msgId"])
        assert again["status"] == "DELY_FAILED"
        assert "REPORT_NOT_REQUESTED" in again["failureCause"]
        await inbox.aclose()


async def test_ue_message_to_as_and_as_report_back_to_the_ue(
    server: ServerApp, as_client: AsClient
) -> None:
    async with UeClient(_uri(server), "ue-1", params=FAST) as ue:
        await ue.register()
        failed = await ue.send("AS:as-1", "no store")
        assert failed["status"] == "DELY_FAILED"
        resp = await ue.send("AS:as-1", "reading=1", msg_id="u-1", report=True, store=True)
        assert resp == {"msgType": "MSGRESP", "msgId": "u-1", "status": "DELY_STORED"}
        assert await ue.send("AS:as-1", "reading=1", msg_id="u-1", report=True) == resp
        ack = await as_client.report("UE:ue-1", "u-1")
        assert "status" not in ack
        inbox = ue.inbox()
        (_, imdn) = await _take(inbox, 2)
        assert imdn == {
            "msgType": "IMDN",
            "oriAddr": {"addrType": "AS", "addr": "as-1"},
            "destAddr": {"addrType": "UE", "addr": "ue-1"},
            "msgId": "u-1",
            "delivSt": "REPT_DELY_SUCCESS",
        }
        await inbox.aclose()


async def test_priority_order_of_stored_items(server: ServerApp, as_client: AsClient) -> None:
    async with UeClient(_uri(server), "ue-1", params=FAST) as ue:
        await ue.register()
        for text, priority in [
            ("low", "LOW"),
            ("mid", "MIDDLE"),
            ("high", "HIGH"),
            ("low2", "LOW"),
            ("high2", "HIGH"),
        ]:
            ack = await as_client.send("UE:ue-1", text, store=True, priority=priority)
            assert ack["status"] == "DELY_STORED"
        inbox = ue.inbox()
        items = await _take(inbox, 6)
        assert [i["payload"] for i in items[1:]] == ["high", "high2", "mid", "low", "low2"]
        await inbox.aclose()


async def test_ue_to_ue_segmented_both_ways_with_recovery(server: ServerApp) -> None:
    text = "".join(f"{i:05d}✓" for i in range(1250))  # 10,000 octets of UTF-8
    async with (
        UeClient(_uri(server), "ue-a", params=FAST, max_segment_size=700) as a,
        UeClient(_uri(server), "ue-b", params=FAST) as b,
    ):
        await a.register()
        await b.register(max_segment_size=1000)
        resp = await a.send("UE:ue-b", text, msg_id="big-1", store=True, report=True)
        assert resp == {"msgType": "MSGRESP", "msgId": "big-1", "status": "DELY_STORED"}
        inbox = b.inbox()
        (pending, whole) = await _take(inbox, 2)
        assert pending == {"pending": 10}
        assert whole["payload"] == text
        assert whole["msgId"] == "big-1"
        assert whole["delivStReqInd"] is True
        # SEGCONFIR dropped the kept copies, so recovery now finds nothing.
        with pytest.raises(SdkError) as gone:
            await b.recover(whole["segId"], [2])
        assert gone.value.code == "4.04"
        await inbox.aclose()


async def test_segment_recovery_resends_what_the_ue_asks_for(
    server: ServerApp, as_client: AsClient
) -> None:
    async with UeClient(_uri(server), "ue-1", params=FAST) as ue:
        await ue.register(max_segment_size=100)
        ack = await as_client.send("UE:ue-1", "y" * 250, store=True)
        assert ack["status"] == "DELY_STORED"
        remote = ue.remote
        async with CoapClient(params=FAST) as client:
            observation = await client.observe(remote, (*BASE, "ues", "ue-1", "inbox"))
            notes = []
            async with asyncio.timeout(5):
                async for note in observation:
                    notes.append(json.loads(note.payload))
                    if len(notes) == 4:
                        break
            segments = notes[1:]
            assert [s["segParams"]["segNumb"] for s in segments] == [1, 2, 3]
            assert segments[2]["segParams"]["lastSegFlag"] is True
            seg_id = segments[0]["segParams"]["segId"]
            resent = await client.request(
                remote,
                Code.POST,
                (*BASE, "segments"),
                content_format=ContentFormat.JSON,
                payload=json.dumps({"msgType": "SEGREC", "segId": seg_id, "missing": [2]}).encode(),
            )
            assert format_code(resent.code) == "2.04"
            async with asyncio.timeout(5):
                again = json.loads((await anext(observation)).payload)
            assert again == segments[1]
            confirmed = await client.request(
                remote,
                Code.POST,
                (*BASE, "segments"),
                content_format=ContentFormat.JSON,
                payload=json.dumps({"msgType": "SEGCONFIR", "segId": seg_id}).encode(),
            )
            assert format_code(confirmed.code) == "2.04"
            await observation.cancel()


async def test_incomplete_uplink_reassembly_times_out_with_a_report(
    server: ServerApp, raw: CoapClient
) -> None:
    async with UeClient(_uri(server), "ue-1", params=FAST) as ue:
        await ue.register()
        first = {
            "msgType": "MSG",
            "oriAddr": ue.address,
            "destAddr": {"addrType": "AS", "addr": "as-x"},
            "msgId": "part-1",
            "delivStReqInd": True,
            "payload": "half",
            "segInd": True,
            "segParams": {"segId": "s-1", "segNumb": 1, "totalSegCount": 2},
        }
        code, body = await _post(raw, server, "messages", json.dumps(first).encode())
        assert code == "2.04"
        assert body == {"msgType": "MSGRESP", "msgId": "part-1"}
        inbox = ue.inbox()
        (_, report) = await _take(inbox, 2)
        assert report["msgType"] == "IMDN"
        assert report["msgId"] == "part-1"
        assert report["delivSt"] == "REPT_DELY_FAILED"
        assert "SEGMENTS_MISSING" in report["failureCause"]
        await inbox.aclose()


async def test_aggregated_messages(server: ServerApp, raw: CoapClient) -> None:
    async with (
        UeClient(_uri(server), "ue-1", params=FAST) as ue,
        UeClient(_uri(server), "ue-2", params=FAST) as other,
    ):
        await ue.register()
        await other.register()
        entries = [
            {
                "msgType": "MSG",
                "oriAddr": ue.address,
                "destAddr": other.address,
                "msgId": f"agg-{i}",
                "payload": f"p{i}",
                "stoAndFwInd": True,
            }
            for i in range(3)
        ]
        code, body = await _post(
            raw, server, "messages", json.dumps({"msgType": "MSG", "aggregated": entries}).encode()
        )
        assert code == "2.04"
        assert body is not None
        assert [a["msgId"] for a in body["aggregated"]] == ["agg-0", "agg-1", "agg-2"]
        inbox = other.inbox()
        items = await _take(inbox, 4)
        assert [i["payload"] for i in items[1:]] == ["p0", "p1", "p2"]
        await inbox.aclose()


async def test_a_new_observation_takes_over_an_unacknowledged_item(
    server: ServerApp, as_client: AsClient
) -> None:
    async with UeClient(_uri(server), "ue-1", params=FAST) as ue:
        await ue.register()
        await as_client.send("UE:ue-1", "first", store=True)
        async with CoapClient(params=FAST) as silent:
            stale = await silent.observe(ue.remote, (*BASE, "ues", "ue-1", "inbox"))
            assert json.loads((await anext(stale)).payload) == {"pending": 1}
            await asyncio.sleep(0.1)  # "first" is notified there and never acknowledged
            loop = asyncio.get_running_loop()
            started = loop.time()
            inbox = ue.inbox()
            items = await _take(inbox, 2)
            assert items[1]["payload"] == "first"
            # Handed over on the new observation at once, not after the old one timed out.
            assert loop.time() - started < 1.0
            assert server.ue_inbox.current("ue-1") is not None
            await inbox.aclose()


async def test_deregistration_ends_the_observation_with_4_04(server: ServerApp) -> None:
    async with UeClient(_uri(server), "ue-1", params=FAST) as ue:
        await ue.register()
        inbox = ue.inbox()
        assert await _take(inbox, 1) == [{"pending": 0}]
        await ue.deregister()
        with pytest.raises(SdkError) as ended:
            await _take(inbox, 1)
        assert ended.value.code == "4.04"
        assert server.ue_inbox.current("ue-1") is None
        await inbox.aclose()
