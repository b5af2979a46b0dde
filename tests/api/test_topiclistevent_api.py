# SPDX-License-Identifier: Apache-2.0
"""MSGS_TopiclistEvent (TS 29.538 Rel-18) through the real ASGI app, in process.

Every response is validated against TS29538_MSGS_TopiclistEvent.yaml (and the MSGDelivery
file for messages), read in place, by the client's event hook (tests/support/oas.py).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from tests.support import oas

from msgin5g.bootstrap import ServerApp

BASE = "/msgs-topiclistevent/v1"
TOPICLIST = f"{BASE}/topiclist-subscriptions"
SUBSCRIBE = f"{BASE}/request-topic-subscription"
UNSUBSCRIBE = f"{BASE}/request-topic-unsubscription"
DELIVER_AS = "/msgs-msgdelivery/v1/deliver-as-message"
LOCATION = re.compile(rf"^{TOPICLIST}/(?P<id>[^/]+)$")
DEAD = "http://127.0.0.1:9/notify"


def addr(kind: str, value: str) -> dict[str, str]:
    return {"addrType": kind, "addr": value}


def stamp(dt: datetime) -> str:
    return dt.isoformat()


def parse(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.fixture
def settings_overrides() -> dict[str, dict[str, Any]]:
    return {"topics": {"default_ttl_s": 600, "max_ttl_s": 3600}}


def assert_problem(response: httpx.Response, status: int, cause: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = oas.validate_problem(response)
    assert body["cause"] == cause, body
    return body


async def test_topiclist_subscription_is_created_and_deleted(client: httpx.AsyncClient) -> None:
    body = {
        "oriAddr": addr("AS", "peer-server"),
        "destAddr": addr("AS", "this-server"),
        "notificationURI": DEAD,
        "secCred": "opaque",
        "suppFeat": "0",
    }
    started = time.time()
    response = await client.post(TOPICLIST, json=body)
    assert response.status_code == 201, response.text
    location = urlsplit(response.headers["location"])
    assert (location.scheme, location.netloc) == ("http", "testserver")
    match = LOCATION.match(location.path)
    assert match, location.path
    ack = response.json()
    assert ack["subStat"] == "SUBSCRIBED"
    assert started + 600 - 5 < parse(ack["exprTime"]) < time.time() + 600 + 5

    unsubscribe = {"oriAddr": body["oriAddr"], "destAddr": body["destAddr"]}
    other = dict(unsubscribe, oriAddr=addr("AS", "someone-else"))
    path = f"{TOPICLIST}/{match['id']}"
    assert_problem(await client.post(path, json=other), 403, "UNSPECIFIED_MSG_FAILURE")
    assert (await client.post(path, json=unsubscribe)).status_code == 204
    assert_problem(await client.post(path, json=unsubscribe), 404, "TARGET_NOT_FOUND")


@pytest.mark.parametrize(
    ("change", "status", "cause"),
    [
        pytest.param({"notificationURI": "not a uri"}, 400, "MANDATORY_IE_INCORRECT", id="uri"),
        pytest.param({"exprTime": "2020-01-01T00:00:00Z"}, 400, "OPTIONAL_IE_INCORRECT", id="past"),
        pytest.param({"exprTime": "2099-01-01T00:00:00"}, 400, "OPTIONAL_IE_INCORRECT", id="naive"),
        pytest.param({"suppFeat": "xyz"}, 400, "OPTIONAL_IE_INCORRECT", id="suppFeat"),
        pytest.param({"notificationURI": None}, 400, "MANDATORY_IE_MISSING", id="missing"),
    ],
)
async def test_bad_topiclist_subscriptions_are_refused(
    client: httpx.AsyncClient, change: dict[str, Any], status: int, cause: str
) -> None:
    body: dict[str, Any] = {
        "oriAddr": addr("AS", "peer"),
        "destAddr": addr("AS", "me"),
        "notificationURI": DEAD,
        **change,
    }
    body = {k: v for k, v in body.items() if v is not None}
    assert_problem(await client.post(TOPICLIST, json=body), status, cause)


async def test_topic_subscription_grants_expiry_and_unsubscription_answers_204(
    client: httpx.AsyncClient, server_app: ServerApp
) -> None:
    now = datetime.now(UTC)
    soon = now + timedelta(seconds=120)
    body = {
        "oriAddr": addr("AS", "as-1"),
        "msgTopics": ["news", "weather"],
        "exprTime": stamp(soon),
    }
    ack = (await client.post(SUBSCRIBE, json=body)).json()
    assert ack["subStat"] == "SUBSCRIBED"
    assert abs(parse(ack["exprTime"]) - soon.timestamp()) < 1

    far = dict(body, oriAddr=addr("UE", "ue-1"), exprTime=stamp(now + timedelta(days=30)))
    capped = (await client.post(SUBSCRIBE, json=far)).json()
    assert parse(capped["exprTime"]) < time.time() + 3600 + 5

    default = {"oriAddr": addr("UE", "ue-2"), "msgTopics": ["news"]}
    got = (await client.post(SUBSCRIBE, json=default)).json()
    assert time.time() + 590 < parse(got["exprTime"]) < time.time() + 605

    assert sorted(server_app.topics.topics()) == ["news", "weather"]
    assert len(server_app.topics.subscribers("news")) == 3

    unsubscribe = {"oriAddr": addr("AS", "as-1"), "msgTopics": ["news", "never-had"]}
    response = await client.post(UNSUBSCRIBE, json=unsubscribe)
    assert response.status_code == 204
    assert response.content == b""
    assert len(server_app.topics.subscribers("news")) == 2
    # A repeat is harmless.
    assert (await client.post(UNSUBSCRIBE, json=unsubscribe)).status_code == 204


BAD_TOPIC_REQUESTS = [
    ({"oriAddr": addr("GROUP", "g"), "msgTopics": ["t"]}, "MANDATORY_IE_INCORRECT"),
    ({"oriAddr": addr("AS", "a"), "msgTopics": []}, "MANDATORY_IE_INCORRECT"),
    ({"oriAddr": addr("AS", "a"), "msgTopics": [""]}, "MANDATORY_IE_INCORRECT"),
    ({"oriAddr": addr("AS", "a")}, "MANDATORY_IE_MISSING"),
]
PAST = {"oriAddr": addr("AS", "a"), "msgTopics": ["t"], "exprTime": "2020-01-01T00:00:00Z"}


@pytest.mark.parametrize(
    ("path", "body", "cause"),
    [(p, b, c) for p in (SUBSCRIBE, UNSUBSCRIBE) for b, c in BAD_TOPIC_REQUESTS]
    + [(SUBSCRIBE, PAST, "OPTIONAL_IE_INCORRECT")],
)
async def test_bad_topic_requests_are_refused(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], cause: str
) -> None:
    assert_problem(await client.post(path, json=body), 400, cause)


async def test_topic_message_is_accepted_only_with_a_current_subscriber(
    client: httpx.AsyncClient,
) -> None:
    message = {
        "oriAddr": addr("AS", "publisher"),
        "destAddr": addr("TOPIC", "alerts"),
        "msgId": "t-1",
        "payload": "hello",
        "stoAndFwInd": True,
    }
    ack = (await client.post(DELIVER_AS, json=message)).json()
    assert ack["status"] == "DELY_FAILED"
    assert ack["failureCause"].startswith("NO_SUBSCRIBERS")

    subscription = {"oriAddr": addr("AS", "reader"), "msgTopics": ["alerts"]}
    assert (await client.post(SUBSCRIBE, json=subscription)).status_code == 200
    ack = (await client.post(DELIVER_AS, json=dict(message, msgId="t-2"))).json()
    assert ack == {"oriAddr": addr("AS", "publisher"), "msgId": "t-2"}


async def test_openapi_json_lists_the_topiclistevent_operations(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in (
        "topiclist-subscriptions",
        "topiclist-subscriptions/{subscriptionId}",
        "request-topic-subscription",
        "request-topic-unsubscription",
    ):
        assert "post" in paths[f"{BASE}/{path}"], path
