# SPDX-License-Identifier: Apache-2.0
"""Limits that keep one party from hurting the others (issue 6; ADR 0020), through the real
server in process: the per-UE stored-message quota, topic and topic-list subscription counts
and the group size. A refusal happens at acceptance; nothing acknowledged is ever dropped."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from msgin5g.bootstrap import ServerApp
from msgin5g.coap import CoapClient, Code, ContentFormat, Message, TransmissionParameters
from msgin5g.core.message import UE, Address
from msgin5g.sdk import UeClient
from tests.support import oas
from tests.support.inprocess import BASE_URL, asgi_client, running_server

DELIVER_AS = "/msgs-msgdelivery/v1/deliver-as-message"
REGISTRATIONS = "/msgs-asregistration/v1/registrations"
TOPICS = "/msgs-topiclistevent/v1"
GROUPS = "/ext-groups/v1/groups"
FAST = TransmissionParameters(ack_timeout=0.2, exchange_lifetime=10.0, non_lifetime=10.0)
QUOTA = 3


def addr(kind: str, value: str) -> dict[str, str]:
    return {"addrType": kind, "addr": value}


def to_ue(ue: str, msg_id: str) -> dict[str, Any]:
    return {
        "oriAddr": addr("AS", "as-src"),
        "destAddr": addr("UE", ue),
        "msgId": msg_id,
        "stoAndFwInd": True,
        "payload": f"payload {msg_id}",
    }


def problem(response: httpx.Response, status: int, cause: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = oas.validate_problem(response)
    assert body["cause"] == cause, body
    return body


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[ServerApp, httpx.AsyncClient]]:
    overrides = {
        "ue": {"max_stored_messages": QUOTA},
        "topics": {"max_subscriptions_per_subscriber": 2, "max_topiclist_subscriptions": 1},
        "groups": {"max_members": 3},
    }
    async with running_server(tmp_path, overrides) as app, asgi_client(app) as client:
        response = await client.post(REGISTRATIONS, json={"asSvcId": "as-src"})
        assert response.status_code == 201, response.text
        yield app, client


async def test_ue_quota_refuses_new_messages_and_keeps_the_acknowledged(
    served: tuple[ServerApp, httpx.AsyncClient],
) -> None:
    app, client = served
    await app.ue_registry.register("ue-full")
    await app.ue_registry.register("ue-other")
    for i in range(QUOTA):
        ack = (await client.post(DELIVER_AS, json=to_ue("ue-full", f"m-{i}"))).json()
        assert ack.get("status") == "DELY_STORED", ack
    refused = (await client.post(DELIVER_AS, json=to_ue("ue-full", "m-over"))).json()
    assert refused["status"] == "DELY_FAILED", refused
    assert refused["failureCause"].startswith("STORAGE_QUOTA_EXCEEDED"), refused
    # A repeat of an acknowledged message is acknowledged again, not refused (idempotency).
    again = (await client.post(DELIVER_AS, json=to_ue("ue-full", "m-0"))).json()
    assert again.get("status") == "DELY_STORED", again
    # The full queue of one UE does not hurt another.
    other = (await client.post(DELIVER_AS, json=to_ue("ue-other", "o-1"))).json()
    assert other.get("status") == "DELY_STORED", other
    assert await app.store.pending_count(Address(UE, "ue-full")) == QUOTA

    port = app.coap.address[1]
    async with UeClient(f"coap://127.0.0.1:{port}", "ue-full", params=FAST) as ue:
        await ue.register()
        inbox = ue.inbox()
        got: list[dict[str, Any]] = []
        async with asyncio.timeout(10):
            while len(got) < QUOTA + 1:
                got.append(await anext(inbox))
        assert got[0] == {"pending": QUOTA}
        assert sorted(m["msgId"] for m in got[1:]) == [f"m-{i}" for i in range(QUOTA)]
        for _ in range(200):  # the ACKed notifications are finished in the store shortly
            if not await app.store.pending_count(Address(UE, "ue-full")):
                break
            await asyncio.sleep(0.05)
        # Room again: the quota follows the store, not a counter that only grows.
        ack = (await client.post(DELIVER_AS, json=to_ue("ue-full", "m-later"))).json()
        assert ack.get("status") in (None, "DELY_STORED"), ack
        async with asyncio.timeout(10):
            later = await anext(inbox)
        assert later["msgId"] == "m-later"


async def test_many_concurrent_senders_cannot_overshoot_the_quota(
    served: tuple[ServerApp, httpx.AsyncClient],
) -> None:
    app, client = served
    await app.ue_registry.register("ue-burst")
    responses = await asyncio.gather(
        *(client.post(DELIVER_AS, json=to_ue("ue-burst", f"b-{i}")) for i in range(20))
    )
    statuses = [r.json().get("status") for r in responses]
    assert statuses.count("DELY_STORED") == QUOTA, statuses
    assert statuses.count("DELY_FAILED") == 20 - QUOTA, statuses
    assert await app.store.pending_count(Address(UE, "ue-burst")) == QUOTA


async def test_topic_subscriptions_per_subscriber_are_bounded(
    served: tuple[ServerApp, httpx.AsyncClient],
) -> None:
    _, client = served
    me = {"oriAddr": addr("AS", "as-t"), "destAddr": addr("AS", "server")}
    subscribe = f"{TOPICS}/request-topic-subscription"
    assert (await client.post(subscribe, json={**me, "msgTopics": ["a", "b"]})).status_code == 200
    refused = await client.post(subscribe, json={**me, "msgTopics": ["c"]})
    problem(refused, 403, "SUBSCRIPTION_LIMIT_EXCEEDED")
    # Renewing what is held stays allowed; another subscriber is not affected.
    assert (await client.post(subscribe, json={**me, "msgTopics": ["a"]})).status_code == 200
    other = {**me, "oriAddr": addr("AS", "as-u"), "msgTopics": ["c", "d"]}
    assert (await client.post(subscribe, json=other)).status_code == 200
    unsubscribe = f"{TOPICS}/request-topic-unsubscription"
    assert (await client.post(unsubscribe, json={**me, "msgTopics": ["b"]})).status_code == 204
    assert (await client.post(subscribe, json={**me, "msgTopics": ["c"]})).status_code == 200


async def test_topiclist_subscriptions_per_originator_are_bounded(
    served: tuple[ServerApp, httpx.AsyncClient],
) -> None:
    _, client = served
    body = {
        "oriAddr": addr("AS", "watcher"),
        "destAddr": addr("AS", "server"),
        "notificationURI": "http://127.0.0.1:9/notify",
    }
    first = await client.post(f"{TOPICS}/topiclist-subscriptions", json=body)
    assert first.status_code == 201, first.text
    second = await client.post(f"{TOPICS}/topiclist-subscriptions", json=body)
    problem(second, 403, "SUBSCRIPTION_LIMIT_EXCEEDED")
    other = {**body, "oriAddr": addr("AS", "someone-else")}
    assert (await client.post(f"{TOPICS}/topiclist-subscriptions", json=other)).status_code == 201
    # Ending the first makes room again.
    unsubscribe = {"oriAddr": body["oriAddr"], "destAddr": body["destAddr"]}
    location = first.headers["location"].split("/msgs-topiclistevent/v1", 1)[1]
    assert (await client.post(f"{TOPICS}{location}", json=unsubscribe)).status_code == 204
    again = await client.post(f"{TOPICS}/topiclist-subscriptions", json=body)
    assert again.status_code == 201, again.text


async def test_group_size_is_bounded(served: tuple[ServerApp, httpx.AsyncClient]) -> None:
    app, _ = served
    # ext-groups is our extension API: no 3GPP file to validate it against.
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app.app), base_url=BASE_URL)
    members = [addr("UE", f"ue-{i}") for i in range(4)]
    refused = await client.put(f"{GROUPS}/big", json={"members": members})
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert body["cause"] == "OPTIONAL_IE_INCORRECT"
    assert body["invalidParams"][0]["param"] == "/members"
    ok = await client.put(f"{GROUPS}/big", json={"members": members[:3]})
    assert ok.status_code == 201, ok.text
    await client.aclose()


async def test_topic_bound_over_coap_is_403(served: tuple[ServerApp, httpx.AsyncClient]) -> None:
    app, _ = served
    await app.ue_registry.register("ue-t")
    remote = app.coap.address

    async def subscribe(client: CoapClient, topics: list[str]) -> Message:
        body = {"msgType": "TOPICSUB", "oriAddr": addr("UE", "ue-t"), "msgTopics": topics}
        return await client.request(
            remote,
            Code.POST,
            ("msgin5g", "v1", "topics"),
            payload=json.dumps(body).encode(),
            content_format=ContentFormat.JSON,
        )

    async with CoapClient(params=FAST) as client:
        assert (await subscribe(client, ["a", "b"])).code == Code.CHANGED
        refused = await subscribe(client, ["c"])
        assert refused.code == Code.FORBIDDEN
        assert json.loads(refused.payload)["cause"] == "SUBSCRIPTION_LIMIT_EXCEEDED"
