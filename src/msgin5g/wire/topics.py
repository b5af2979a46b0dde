# SPDX-License-Identifier: Apache-2.0
"""MSGS_TopiclistEvent bodies (TS 29.538 Rel-18, TS29538_MSGS_TopiclistEvent.yaml).

Field names are the file's. `UpdateStatus` is an extensible enum, so `updateStat` is a plain
`str`; `DateTime` values must carry a UTC offset (checked by the API layer, since msgspec
accepts naive date-times); `SupportedFeatures` keeps its hexadecimal pattern.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from msgin5g.wire.common import Address

# UpdateStatus
UPDATE_CREATED = "CREATED"
UPDATE_DELETED = "DELETED"

SupportedFeatures = Annotated[str, msgspec.Meta(pattern="^[A-Fa-f0-9]*$")]
Topics = Annotated[list[str], msgspec.Meta(min_length=1)]


class TopicListSubscription(msgspec.Struct, omit_defaults=True):
    """Body of POST /topiclist-subscriptions."""

    oriAddr: Address
    destAddr: Address
    notificationURI: str
    secCred: str | None = None
    exprTime: datetime | None = None
    suppFeat: SupportedFeatures | None = None


class TopicListUnsubscription(msgspec.Struct, omit_defaults=True):
    """Body of POST /topiclist-subscriptions/{subscriptionId}."""

    oriAddr: Address
    destAddr: Address
    secCred: str | None = None


class TopicListSubscriptionAck(msgspec.Struct, omit_defaults=True):
    subStat: str
    exprTime: datetime | None = None
    suppFeat: str | None = None


class TopicListUnsubscriptionAck(msgspec.Struct, omit_defaults=True):
    subStat: str


class TopicSubscription(msgspec.Struct, omit_defaults=True):
    """Body of POST /request-topic-subscription."""

    oriAddr: Address
    msgTopics: Topics
    secCred: str | None = None
    exprTime: datetime | None = None


class TopicSubscriptionAck(msgspec.Struct, omit_defaults=True):
    subStat: str
    exprTime: datetime | None = None


class TopicUnsubscription(msgspec.Struct, omit_defaults=True):
    """Body of POST /request-topic-unsubscription."""

    oriAddr: Address
    msgTopics: Topics
    secCred: str | None = None


class MessagingTopic(msgspec.Struct):
    msgTopic: str
    updateStat: str


class TopicListNotification(msgspec.Struct, omit_defaults=True):
    """Body POSTed to a topic-list subscriber's notificationURI."""

    msgTopics: Annotated[list[MessagingTopic], msgspec.Meta(min_length=1)]
    exprTime: datetime | None = None
