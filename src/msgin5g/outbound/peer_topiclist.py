# SPDX-License-Identifier: Apache-2.0
"""The consumer side of a peer's MSGS_TopiclistEvent (TS 29.538; ADR 0013):
POST /topiclist-subscriptions (201 + Location) and the unsubscription POST to that Location."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from msgin5g.core.message import PEER
from msgin5g.outbound.http_client import HttpClientPool
from msgin5g.wire.common import Address
from msgin5g.wire.topics import (
    TopicListSubscription,
    TopicListSubscriptionAck,
    TopicListUnsubscription,
)

_encode = msgspec.json.Encoder().encode
_decode_ack = msgspec.json.Decoder(TopicListSubscriptionAck).decode


class PeerTopicLists:
    """`TopicListSource` over HTTP: this server (`own_name`) subscribes at its peers."""

    def __init__(self, pool: HttpClientPool, own_name: str, api_roots: Mapping[str, str]) -> None:
        self._pool = pool
        self._own = Address(addrType=PEER, addr=own_name)
        self._roots = {name: root.rstrip("/") for name, root in api_roots.items()}

    async def subscribe(self, peer: str, notification_uri: str) -> tuple[str, float]:
        url = f"{self._roots[peer]}/msgs-topiclistevent/v1/topiclist-subscriptions"
        body = TopicListSubscription(
            oriAddr=self._own,
            destAddr=Address(addrType=PEER, addr=peer),
            notificationURI=notification_uri,
        )
        response = await self._pool.post_json(url, _encode(body))
        location = response.headers.get("location")
        if response.status_code != 201 or not location:
            raise RuntimeError(f"{url} answered HTTP {response.status_code}")
        ack = _decode_ack(response.content)
        if ack.exprTime is None:
            raise RuntimeError(f"{url} granted no exprTime")
        return location, ack.exprTime.timestamp()

    async def unsubscribe(self, peer: str, subscription: str) -> None:
        body = TopicListUnsubscription(
            oriAddr=self._own, destAddr=Address(addrType=PEER, addr=peer)
        )
        response = await self._pool.post_json(subscription, _encode(body))
        if response.status_code not in (200, 204, 404):
            raise RuntimeError(f"{subscription} answered HTTP {response.status_code}")
