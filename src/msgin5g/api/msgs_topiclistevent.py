# SPDX-License-Identifier: Apache-2.0
"""MSGS_TopiclistEvent (TS 29.538 Rel-18; TS 23.554 8.8).

* POST /topiclist-subscriptions: 201, absolute Location
  `{apiRoot}/msgs-topiclistevent/v1/topiclist-subscriptions/{subscriptionId}` and a
  TopicListSubscriptionAck (subStat "SUBSCRIBED", the granted exprTime). CREATED / DELETED
  TopicListNotifications then go to `notificationURI` (outbound/topic_notify.py), starting with
  the topics that exist now.
* POST /topiclist-subscriptions/{subscriptionId}: unsubscription, 204; 404 for an unknown or
  expired id; 403 when `oriAddr` is not the one that subscribed.
* POST /request-topic-subscription: 200 TopicSubscriptionAck (subStat "SUBSCRIBED", the
  granted exprTime: the requested one capped by `topics.max_ttl_s`, `topics.default_ttl_s`
  ahead when absent).
* POST /request-topic-unsubscription: 204 (also for topics the subscriber did not have).

`oriAddr` of the topic operations is the subscriber itself, a UE or an AS of this server: the
Rel-18 API is written for a peer Server acting on behalf of its users, and 29.538 has no
AS-facing topic API, so our deployment lets the UE's gateway / the AS call it directly with
its own address (ADR 0011). Subscriptions by a peer Server come with server interconnection.
`destAddr` of the topic-list operations is not checked yet: this server has no address of its
own until interconnection gives it one. `secCred` is accepted and ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from msgin5g.api.app import Operation
from msgin5g.api.http import Request, Response
from msgin5g.api.problems import decode_error
from msgin5g.api.translate import address, check_api_root
from msgin5g.core.errors import InvalidField, InvalidRequest
from msgin5g.security import policy
from msgin5g.services.topics import TopicRegistry
from msgin5g.wire.topics import (
    TopicListSubscription,
    TopicListSubscriptionAck,
    TopicListUnsubscription,
    TopicSubscription,
    TopicSubscriptionAck,
    TopicUnsubscription,
)

BASE = "/msgs-topiclistevent/v1"
SUBSCRIBED = "SUBSCRIBED"
_encode = msgspec.json.Encoder().encode
_decode_list_sub = msgspec.json.Decoder(TopicListSubscription).decode
_decode_list_unsub = msgspec.json.Decoder(TopicListUnsubscription).decode
_decode_sub = msgspec.json.Decoder(TopicSubscription).decode
_decode_unsub = msgspec.json.Decoder(TopicUnsubscription).decode


def _expiry(when: datetime | None) -> float | None:
    if when is None:
        return None
    if when.tzinfo is None:
        raise InvalidRequest(
            "/exprTime must carry a UTC offset (RFC 3339)",
            cause="OPTIONAL_IE_INCORRECT",
            fields=[InvalidField("/exprTime", "date-time without offset")],
        )
    return when.timestamp()


def _when(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def operations(topics: TopicRegistry, api_root: str | None) -> list[Operation]:
    async def subscribe_list(request: Request) -> Response:
        try:
            body = _decode_list_sub(request.body)
        except msgspec.DecodeError as exc:
            raise decode_error(exc, frozenset({"oriAddr", "destAddr", "notificationURI"})) from None
        check_api_root(body.notificationURI, "/notificationURI")
        policy.check_originator(request.principal, address(body.oriAddr))
        watch = await topics.add_watch(
            address(body.oriAddr), body.notificationURI, _expiry(body.exprTime)
        )
        location = (
            f"{request.base_url(api_root)}{BASE}/topiclist-subscriptions/{watch.subscription_id}"
        )
        ack = TopicListSubscriptionAck(subStat=SUBSCRIBED, exprTime=_when(watch.expires_at))
        return Response(201, _encode(ack), headers=[(b"location", location.encode())])

    async def unsubscribe_list(request: Request) -> Response:
        try:
            body = _decode_list_unsub(request.body)
        except msgspec.DecodeError as exc:
            raise decode_error(exc, frozenset({"oriAddr", "destAddr"})) from None
        policy.check_originator(request.principal, address(body.oriAddr))
        await topics.remove_watch(request.params["subscriptionId"], address(body.oriAddr))
        return Response(204, content_type=None)

    async def subscribe(request: Request) -> Response:
        try:
            body = _decode_sub(request.body)
        except msgspec.DecodeError as exc:
            raise decode_error(exc, frozenset({"oriAddr", "msgTopics"})) from None
        policy.check_originator(request.principal, address(body.oriAddr))
        granted = await topics.subscribe(
            address(body.oriAddr), body.msgTopics, _expiry(body.exprTime)
        )
        return Response(
            200, _encode(TopicSubscriptionAck(subStat=SUBSCRIBED, exprTime=_when(granted)))
        )

    async def unsubscribe(request: Request) -> Response:
        try:
            body = _decode_unsub(request.body)
        except msgspec.DecodeError as exc:
            raise decode_error(exc, frozenset({"oriAddr", "msgTopics"})) from None
        policy.check_originator(request.principal, address(body.oriAddr))
        await topics.unsubscribe(address(body.oriAddr), body.msgTopics)
        return Response(204, content_type=None)

    return [
        Operation(
            "POST", f"{BASE}/topiclist-subscriptions", "topiclist.subscribe", subscribe_list, True
        ),
        Operation(
            "POST",
            f"{BASE}/topiclist-subscriptions/{{subscriptionId}}",
            "topiclist.unsubscribe",
            unsubscribe_list,
            True,
        ),
        Operation(
            "POST", f"{BASE}/request-topic-subscription", "topics.subscribe", subscribe, True
        ),
        Operation(
            "POST", f"{BASE}/request-topic-unsubscription", "topics.unsubscribe", unsubscribe, True
        ),
    ]
