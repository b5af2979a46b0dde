# SPDX-License-Identifier: Apache-2.0
"""Messaging Topics (TS 23.554 8.8; TS 29.538 MSGS_TopiclistEvent) on a real server process:
a topic message reaches an AS subscriber and a UE behind a gateway, each reports once; an
expired subscription stops receiving; a topic-list subscriber hears CREATED then DELETED."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from msgin5g.coap import TransmissionParameters
from msgin5g.sdk import SdkError, UeClient
from tests.support.procs import Receiver, ServerProcess

pytestmark = pytest.mark.e2e

FAST = TransmissionParameters(ack_timeout=0.3, exchange_lifetime=10.0, non_lifetime=10.0)

TOPICS = "/msgs-topiclistevent/v1"
DELIVER_AS = "/msgs-msgdelivery/v1/deliver-as-message"


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[dict[str, Receiver]]:
    started = {
        name: Receiver(tmp_path / f"{name}.jsonl", mode).start()
        for name, mode in (
            ("sender", "h2c"),
            ("reader", "h1"),
            ("other", "h2c"),
            ("gateway", "h1"),
            ("watcher", "h1"),
        )
    }
    try:
        yield started
    finally:
        for r in started.values():
            r.stop()


def address(kind: str, value: str) -> dict[str, str]:
    return {"addrType": kind, "addr": value}


def changes(watcher: Receiver) -> list[list[tuple[str, str]]]:
    return [
        [(t["msgTopic"], t["updateStat"]) for t in r["body"]["msgTopics"]]  # type: ignore[index]
        for r in watcher.received()
    ]


async def register_as(http: httpx.AsyncClient, as_id: str, target: str) -> None:
    r = await http.post(
        "/msgs-asregistration/v1/registrations", json={"asSvcId": as_id, "targetUri": target}
    )
    assert r.status_code == 201, r.text


async def test_topic_message_reaches_each_subscriber_and_each_reports(
    server: ServerProcess, receivers: dict[str, Receiver]
) -> None:
    sender, reader, gateway, watcher = (
        receivers[n] for n in ("sender", "reader", "gateway", "watcher")
    )
    async with httpx.AsyncClient(base_url=server.url, http1=False, http2=True) as http:
        await register_as(http, "sender", sender.url)
        await register_as(http, "reader", reader.url)
        r = await http.post(
            "/ext-gwueregistration/v1/registrations",
            json={
                "gwType": "L3G",
                "gwApiRoot": f"http://127.0.0.1:{gateway.port}",
                "ueSvcIds": ["ue-sms"],
            },
        )
        assert r.status_code == 201, r.text

        r = await http.post(
            f"{TOPICS}/topiclist-subscriptions",
            json={
                "oriAddr": address("AS", "peer-server"),
                "destAddr": address("AS", "this-server"),
                "notificationURI": watcher.url,
            },
        )
        assert r.status_code == 201, r.text
        assert r.headers["location"].startswith(f"{server.url}{TOPICS}/topiclist-subscriptions/")

        for subscriber in (address("AS", "reader"), address("UE", "ue-sms")):
            r = await http.post(
                f"{TOPICS}/request-topic-subscription",
                json={"oriAddr": subscriber, "msgTopics": ["news"]},
            )
            assert r.status_code == 200, r.text
            assert r.json()["subStat"] == "SUBSCRIBED"
        await asyncio.to_thread(watcher.wait_for, 1)

        ack = await http.post(
            DELIVER_AS,
            json={
                "oriAddr": address("AS", "sender"),
                "destAddr": address("TOPIC", "news"),
                "msgId": "topic-1",
                "payload": "extra, extra",
                "stoAndFwInd": True,
                "delivStReqInd": True,
            },
        )
        assert ack.json() == {"oriAddr": address("AS", "sender"), "msgId": "topic-1"}

        (as_msg,) = await asyncio.to_thread(reader.wait_for, 1)
        assert as_msg["path"] == "/cb/deliver-message"
        assert as_msg["body"]["destAddr"] == address("AS", "reader")  # type: ignore[index]
        assert as_msg["body"]["payload"] == "extra, extra"  # type: ignore[index]
        (gw_msg,) = await asyncio.to_thread(gateway.wait_for, 1)
        assert gw_msg["path"] == "/msgg-l3gdelivery/v1/deliver-message"
        assert gw_msg["body"]["destAddr"] == address("UE", "ue-sms")  # type: ignore[index]

        for reporter in (address("AS", "reader"), address("UE", "ue-sms")):
            report = {
                "oriAddr": reporter,
                "destAddr": address("AS", "sender"),
                "msgId": "topic-1",
                "delivSt": "REPT_DELY_SUCCESS",
            }
            for _ in range(2):  # a repeat is absorbed
                r = await http.post("/msgs-msgdelivery/v1/deliver-report", json=report)
                assert r.status_code == 200
                assert "status" not in r.json()
        await asyncio.to_thread(sender.wait_for, 2)
        await asyncio.sleep(0.5)
        reporters = sorted(r["body"]["oriAddr"]["addr"] for r in sender.received())  # type: ignore[index]
        assert reporters == ["reader", "ue-sms"]

        for subscriber in (address("AS", "reader"), address("UE", "ue-sms")):
            r = await http.post(
                f"{TOPICS}/request-topic-unsubscription",
                json={"oriAddr": subscriber, "msgTopics": ["news"]},
            )
            assert r.status_code == 204
        await asyncio.to_thread(watcher.wait_for, 2)
        await asyncio.sleep(0.3)
        assert changes(watcher) == [[("news", "CREATED")], [("news", "DELETED")]]
        assert {r["path"] for r in watcher.received()} == {"/cb"}
        exprs = {r["body"]["exprTime"] for r in watcher.received()}  # type: ignore[index]
        assert len(exprs) == 1

        gone = await http.post(
            DELIVER_AS,
            json={
                "oriAddr": address("AS", "sender"),
                "destAddr": address("TOPIC", "news"),
                "msgId": "topic-2",
                "stoAndFwInd": True,
            },
        )
        assert gone.json()["status"] == "DELY_FAILED"
        assert gone.json()["failureCause"].startswith("NO_SUBSCRIBERS")


async def test_expired_subscription_stops_receiving(
    server: ServerProcess, receivers: dict[str, Receiver]
) -> None:
    reader, other, watcher = receivers["reader"], receivers["other"], receivers["watcher"]
    async with httpx.AsyncClient(base_url=server.url) as http:
        await register_as(http, "short", reader.url)
        await register_as(http, "long", other.url)
        r = await http.post(
            f"{TOPICS}/topiclist-subscriptions",
            json={
                "oriAddr": address("AS", "peer-server"),
                "destAddr": address("AS", "this-server"),
                "notificationURI": watcher.url,
            },
        )
        assert r.status_code == 201
        soon = datetime.now(UTC) + timedelta(seconds=1.5)
        r = await http.post(
            f"{TOPICS}/request-topic-subscription",
            json={
                "oriAddr": address("AS", "short"),
                "msgTopics": ["flash", "both"],
                "exprTime": soon.isoformat(),
            },
        )
        assert abs(datetime.fromisoformat(r.json()["exprTime"]).timestamp() - soon.timestamp()) < 1
        r = await http.post(
            f"{TOPICS}/request-topic-subscription",
            json={"oriAddr": address("AS", "long"), "msgTopics": ["both"]},
        )
        assert r.status_code == 200

        def message(topic: str, msg_id: str) -> dict[str, object]:
            return {
                "oriAddr": address("AS", "pub"),
                "destAddr": address("TOPIC", topic),
                "msgId": msg_id,
                "payload": msg_id,
                "stoAndFwInd": True,
            }

        assert "status" not in (await http.post(DELIVER_AS, json=message("both", "b-1"))).json()
        await asyncio.to_thread(reader.wait_for, 1)
        await asyncio.to_thread(other.wait_for, 1)

        await asyncio.sleep(max(0.0, soon.timestamp() - time.time()) + 0.5)
        assert "status" not in (await http.post(DELIVER_AS, json=message("both", "b-2"))).json()
        await asyncio.to_thread(other.wait_for, 2)
        expired = (await http.post(DELIVER_AS, json=message("flash", "f-1"))).json()
        assert expired["status"] == "DELY_FAILED"
        assert expired["failureCause"].startswith("NO_SUBSCRIBERS")
        await asyncio.sleep(0.5)
        assert [r["body"]["msgId"] for r in reader.received()] == ["b-1"]  # type: ignore[index]

        # The sweep removed the expired subscription: "flash" lost its only subscriber.
        await asyncio.to_thread(watcher.wait_for, 2)
        got = changes(watcher)
        assert sorted(got[0]) == [("both", "CREATED"), ("flash", "CREATED")]
        assert got[1] == [("flash", "DELETED")]


async def test_coap_ue_subscribes_over_msgin5g1_and_receives_topic_messages(
    server: ServerProcess, receivers: dict[str, Receiver]
) -> None:
    sender = receivers["sender"]
    coap = f"coap://127.0.0.1:{server.coap_port}"
    async with httpx.AsyncClient(base_url=server.url) as http:
        await register_as(http, "sender", sender.url)
        async with UeClient(coap, "ue-stranger", params=FAST) as stranger:
            with pytest.raises(SdkError) as refused:
                await stranger.subscribe_topics(["news"])
            assert refused.value.code == "4.04"
        async with UeClient(coap, "ue-coap", params=FAST) as ue:
            await ue.register()
            inbox = ue.inbox()
            async with asyncio.timeout(10):
                assert await anext(inbox) == {"pending": 0}
            answer = await ue.subscribe_topics(["news"])
            assert answer["msgType"] == "TOPICSUBRESP"
            assert answer["subStat"] == "SUBSCRIBED"
            assert datetime.fromisoformat(answer["exprTime"]) > datetime.now(UTC)

            body = {
                "oriAddr": address("AS", "sender"),
                "destAddr": address("TOPIC", "news"),
                "msgId": "coap-1",
                "payload": "to the UE",
                "stoAndFwInd": True,
                "delivStReqInd": True,
            }
            assert "status" not in (await http.post(DELIVER_AS, json=body)).json()
            async with asyncio.timeout(10):
                got = await anext(inbox)
            assert got["msgType"] == "MSG"
            assert got["destAddr"] == address("UE", "ue-coap")
            assert got["payload"] == "to the UE"
            await ue.report(got["oriAddr"], got["msgId"])
            (report,) = await asyncio.to_thread(sender.wait_for, 1)
            assert report["body"]["oriAddr"] == address("UE", "ue-coap")  # type: ignore[index]

            await ue.unsubscribe_topics(["news"])
            after = (await http.post(DELIVER_AS, json=dict(body, msgId="coap-2"))).json()
            assert after["failureCause"].startswith("NO_SUBSCRIBERS")
