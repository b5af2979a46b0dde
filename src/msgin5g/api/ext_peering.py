# SPDX-License-Identifier: Apache-2.0
"""Extension API `ext-peering` (ours, not TS 29.538; ADR 0013): where peer servers deliver
the TopicListNotifications of the topic-list subscriptions this server holds at them.

* POST /ext-peering/v1/topiclist-notifications/{peer}: a `TopicListNotification`
  (TS 29.538 MSGS_TopiclistEvent callback body); 204. 404 for a peer that is not configured.
* GET /ext-peering/v1/peers: each configured peer with its apiRoot, the URI of this server's
  topic-list subscription there (null while the peer is unreachable) and the topics it has.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from msgin5g.api.app import Operation
from msgin5g.api.http import Request, Response
from msgin5g.api.problems import decode_error
from msgin5g.core.errors import NotFound
from msgin5g.core.message import PEER, Address
from msgin5g.ports import TopicChange
from msgin5g.security import policy
from msgin5g.services.peering import RemoteTopics, TopicListFollower
from msgin5g.wire.topics import TopicListNotification

BASE = "/ext-peering/v1"
_decode = msgspec.json.Decoder(TopicListNotification).decode
_CHANGES = {c.value: c for c in TopicChange}
_encode = msgspec.json.Encoder().encode


def notification_path(peer: str) -> str:
    return f"{BASE}/topiclist-notifications/{peer}"


def operations(
    remote: RemoteTopics, peers: Mapping[str, str], follower: TopicListFollower
) -> list[Operation]:
    """`peers`: name to apiRoot of every configured peer server."""

    async def list_peers(request: Request) -> Response:
        del request
        return Response(
            200,
            _encode(
                [
                    {
                        "name": name,
                        "apiRoot": root,
                        "topicListSubscription": follower.subscription(name),
                        "topics": remote.topics_of(name),
                    }
                    for name, root in peers.items()
                ]
            ),
        )

    async def topiclist_notification(request: Request) -> Response:
        peer = request.params["peer"]
        if peer not in peers:
            raise NotFound(f"no peer server {peer!r} is configured")
        # Only the peer itself (a client with address pattern "PEER:<name>"; ADR 0015).
        policy.check_originator(request.principal, Address(PEER, peer))
        try:
            body = _decode(request.body)
        except msgspec.DecodeError as exc:
            raise decode_error(exc, frozenset({"msgTopics"})) from None
        # Unknown updateStat values (extensible enum) are ignored.
        remote.apply(
            peer,
            [
                (t.msgTopic, _CHANGES[t.updateStat])
                for t in body.msgTopics
                if t.updateStat in _CHANGES
            ],
        )
        return Response(204, content_type=None)

    return [
        Operation("GET", f"{BASE}/peers", "peering.peers", list_peers),
        Operation(
            "POST",
            f"{BASE}/topiclist-notifications/{{peer}}",
            "peering.topiclist_notification",
            topiclist_notification,
            True,
        ),
    ]
