# SPDX-License-Identifier: Apache-2.0
"""Topic sharing between servers (ADR 0013): the remote topic map and the follower that keeps a
topic-list subscription at each peer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import msgspec

from msgin5g.core.message import AS, PEER, UE, Address, Delivery, DeliveryKind, Priority
from msgin5g.outbound.peer_delivery import forwarded_request
from msgin5g.ports import TopicChange
from msgin5g.services.peering import RemoteTopics, TopicListFollower


def test_remote_topics_follow_created_and_deleted() -> None:
    remote = RemoteTopics()
    remote.apply("p1", [("news", TopicChange.CREATED), ("sport", TopicChange.CREATED)])
    remote.apply("p2", [("news", TopicChange.CREATED)])
    assert remote.peers_for("news") == ("p1", "p2")
    assert remote.topics_of("p1") == ["news", "sport"]
    remote.apply("p1", [("news", TopicChange.DELETED)])
    assert remote.peers_for("news") == ("p2",)
    remote.forget("p2", "news")
    assert remote.peers_for("news") == ()
    remote.forget("p2", "never-had")  # harmless


class FlakySource:
    """A TopicListSource whose peer is down for the first `failures` calls."""

    def __init__(self, failures: int, lifetime: float) -> None:
        self.failures = failures
        self.lifetime = lifetime
        self.subscribed: list[str] = []
        self.unsubscribed: list[str] = []

    async def subscribe(self, peer: str, notification_uri: str) -> tuple[str, float]:
        assert notification_uri == f"http://me/{peer}"
        if self.failures:
            self.failures -= 1
            raise OSError("connection refused")
        uri = f"{peer}/sub-{len(self.subscribed)}"
        self.subscribed.append(uri)
        return uri, asyncio.get_running_loop().time() + self.lifetime

    async def unsubscribe(self, peer: str, subscription: str) -> None:
        self.unsubscribed.append(subscription)


async def test_follower_retries_renews_before_expiry_and_unsubscribes_at_stop() -> None:
    source = FlakySource(failures=2, lifetime=2.2)
    loop = asyncio.get_running_loop()
    follower = TopicListFollower(
        source,
        ["p1"],
        lambda peer: f"http://me/{peer}",
        clock=loop.time,
        refresh=300.0,
        initial_backoff=0.01,
    )
    await follower.start()
    await asyncio.sleep(0.2)
    assert source.subscribed == ["p1/sub-0"]  # after two refused attempts
    assert follower.subscription("p1") == "p1/sub-0"
    await asyncio.sleep(1.2)  # half the lifetime (1.1 s) passed: renewed, old one ended
    assert source.subscribed == ["p1/sub-0", "p1/sub-1"]
    assert source.unsubscribed == ["p1/sub-0"]
    await follower.stop()
    assert source.unsubscribed == ["p1/sub-0", "p1/sub-1"]
    assert follower.subscription("p1") is None


_decode = msgspec.json.Decoder(dict[str, object]).decode


def delivery(origin: Address, recipient: Address, body: dict[str, object]) -> Delivery:
    return Delivery(
        delivery_id=1,
        kind=DeliveryKind.MESSAGE,
        recipient=recipient,
        body=msgspec.json.encode(body),
        priority=Priority.HIGH,
        expires_at=datetime(2030, 1, 1, tzinfo=UTC).timestamp(),
        origin=origin,
        message_id="m-1",
        wants_report=True,
    )


def test_forwarded_request_uses_the_originators_operation_and_keeps_the_message() -> None:
    body = {
        "oriAddr": {"addrType": AS, "addr": "app"},
        "destAddr": {"addrType": "TOPIC", "addr": "news"},
        "msgId": "m-1",
        "payload": "hi",
        "delivStReqInd": True,
    }
    request = forwarded_request(delivery(Address(AS, "app"), Address(PEER, "p2"), body))
    assert request is not None
    path, sent = request
    assert path == "/msgs-msgdelivery/v1/deliver-as-message"
    assert _decode(sent) == {
        **body,
        "stoAndFwInd": True,
        "priority": "HIGH",
        "stoAndFwParams": {"exprTime": "2030-01-01T00:00:00Z"},
    }
    body["oriAddr"] = {"addrType": UE, "addr": "dev"}
    path, sent = forwarded_request(delivery(Address(UE, "dev"), Address(AS, "x"), body)) or (
        "",
        b"",
    )
    assert path == "/msgs-msgdelivery/v1/deliver-ue-message"
    assert "priority" not in _decode(sent)  # UEMessageDelivery has none
    body["oriAddr"] = {"addrType": "GROUP", "addr": "g"}
    assert forwarded_request(delivery(Address("GROUP", "g"), Address(AS, "x"), body)) is None
