# SPDX-License-Identifier: Apache-2.0
"""Messaging Topics (TS 23.554 8.8) and the topic list (TS 29.538 MSGS_TopiclistEvent).

A topic exists while it has at least one current (unexpired) subscriber: the first
subscription creates it, the last unsubscription or expiry deletes it, and every topic-list
subscriber hears CREATED / DELETED at its notificationURI. A message to `{TOPIC, name}` is
committed once, as one delivery to the topic, and the topic's lane expands it into one
delivery per subscriber current at that moment (the group fan-out, `services/fanout.py`).

Subscribers are UEs and ASs of this server (ADR 0011): Rel-18 defines topic subscription only
in the Server-to-Server API, so our deployment lets the subscriber itself call
request-topic-subscription with its own address as `oriAddr`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from msgin5g.core.errors import Forbidden, InvalidField, InvalidRequest, NotFound
from msgin5g.core.message import AS, UE, Address, Delivery
from msgin5g.ports import (
    MessageStore,
    SendOutcome,
    SendResult,
    TopicChange,
    TopicListNotifier,
    TopicListWatch,
    TopicSubscriber,
)
from msgin5g.services.fanout import fan_out

log = logging.getLogger(__name__)

SUBSCRIBER_KINDS = (UE, AS)
LIMIT_CAUSE = "SUBSCRIPTION_LIMIT_EXCEEDED"


class TopicRegistry:
    """Topic subscribers and topic-list subscriptions, in memory and written through."""

    def __init__(
        self,
        store: MessageStore,
        notifier: TopicListNotifier,
        *,
        clock: Callable[[], float],
        new_id: Callable[[], str],
        default_ttl: float = 86_400.0,
        max_ttl: float = 30 * 86_400.0,
        sweep_interval: float = 1.0,
        on_changed: Callable[[], None] = lambda: None,
        max_topics_per_subscriber: int = 0,
        max_watches_per_origin: int = 0,
    ) -> None:
        self._store = store
        # Limits that keep one party from hurting others (ADR 0020); 0 = no limit.
        self._max_topics = max_topics_per_subscriber
        self._max_watches = max_watches_per_origin
        self._notifier = notifier
        self._on_changed = on_changed
        """Called after every committed change (other instances reload, ADR 0018)."""
        self._clock = clock
        self._new_id = new_id
        self._default_ttl = default_ttl
        self._max_ttl = max_ttl
        self._sweep_interval = sweep_interval
        self._topics: dict[str, dict[Address, float]] = {}
        self._watches: dict[str, TopicListWatch] = {}
        self._sweeper: asyncio.Task[None] | None = None

    async def load(self) -> list[str]:
        """(Re)load from the store; the old view serves until the new one is complete. Returns
        the topics whose subscriptions changed since the last load (ADR 0018)."""
        topics: dict[str, dict[Address, float]] = {}
        for item in await self._store.load_topic_subscriptions():
            topics.setdefault(item.topic, {})[item.subscriber] = item.expires_at
        before, self._topics = self._topics, topics
        self._watches = {w.subscription_id: w for w in await self._store.load_topiclist_watches()}
        return [t for t, subscribers in topics.items() if before.get(t) != subscribers]

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="msgin5g-topic-sweeper")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None

    # reading -----------------------------------------------------------------------------------

    def subscribers(self, topic: str) -> tuple[Address, ...]:
        """The subscribers of `topic` whose subscription has not expired."""
        now = self._clock()
        return tuple(a for a, until in self._topics.get(topic, {}).items() if until > now)

    def topics(self) -> list[str]:
        """The topics that exist now (have a current subscriber)."""
        return [t for t in self._topics if self.subscribers(t)]

    def watch(self, subscription_id: str) -> TopicListWatch | None:
        return self._watches.get(subscription_id)

    def __len__(self) -> int:
        return len(self.topics())

    # topic subscriptions (TS 23.554 8.8.1 / 8.8.2) ----------------------------------------------

    def _grant(self, requested: float | None, now: float) -> float:
        if requested is not None and requested <= now:
            raise InvalidRequest(
                "/exprTime must lie in the future",
                cause="OPTIONAL_IE_INCORRECT",
                fields=[InvalidField("/exprTime", "in the past")],
            )
        latest = now + self._max_ttl
        return min(requested, latest) if requested is not None else now + self._default_ttl

    @staticmethod
    def _check(subscriber: Address, topics: Sequence[str]) -> None:
        if subscriber.kind not in SUBSCRIBER_KINDS:
            raise InvalidRequest(
                "/oriAddr/addrType must be UE or AS: the subscriber itself",
                cause="MANDATORY_IE_INCORRECT",
                fields=[InvalidField("/oriAddr/addrType", "expected UE or AS")],
            )
        for i, topic in enumerate(topics):
            if not topic:
                raise InvalidRequest(
                    f"/msgTopics/{i} is empty",
                    cause="MANDATORY_IE_INCORRECT",
                    fields=[InvalidField(f"/msgTopics/{i}", "empty topic")],
                )

    async def subscribe(
        self, subscriber: Address, topics: Sequence[str], requested: float | None
    ) -> float:
        """Subscribe `subscriber` to each of `topics`; returns the granted expiry."""
        self._check(subscriber, topics)
        now = self._clock()
        granted = self._grant(requested, now)
        await self.sweep(now)
        unique = list(dict.fromkeys(topics))
        if self._max_topics > 0:
            self._check_topic_limit(subscriber, unique)
        await self._store.save_topic_subscriptions(
            [TopicSubscriber(t, subscriber, granted) for t in unique]
        )
        created = [t for t in unique if not self._topics.get(t)]
        for topic in unique:
            self._topics.setdefault(topic, {})[subscriber] = granted
        self._on_changed()
        log.info(
            "topic subscription",
            extra={"subscriber": subscriber.key, "topics": unique, "expiresAt": granted},
        )
        self._announce([(t, TopicChange.CREATED) for t in created], now)
        return granted

    def _check_topic_limit(self, subscriber: Address, topics: Sequence[str]) -> None:
        """Forbidden when `subscriber` would hold more than the allowed number of topics."""
        held = {t for t, subscribers in self._topics.items() if subscriber in subscribers}
        wanted = len(held.union(topics))
        if wanted > self._max_topics:
            raise Forbidden(
                f"{subscriber.key} would subscribe to {wanted} topics"
                f" (limit topics.max_subscriptions_per_subscriber = {self._max_topics})",
                cause=LIMIT_CAUSE,
            )

    async def unsubscribe(self, subscriber: Address, topics: Sequence[str]) -> None:
        """End `subscriber`'s subscription to `topics`; topics it never had are ignored."""
        self._check(subscriber, topics)
        now = self._clock()
        await self.sweep(now)
        unique = [t for t in dict.fromkeys(topics) if subscriber in self._topics.get(t, {})]
        if not unique:
            return
        await self._store.delete_topic_subscriptions(
            [TopicSubscriber(t, subscriber, 0.0) for t in unique]
        )
        deleted = []
        for topic in unique:
            subscribers = self._topics[topic]
            subscribers.pop(subscriber, None)
            if not subscribers:
                del self._topics[topic]
                deleted.append(topic)
        self._on_changed()
        log.info("topic unsubscription", extra={"subscriber": subscriber.key, "topics": unique})
        self._announce([(t, TopicChange.DELETED) for t in deleted], now)

    # topic-list subscriptions (TS 23.554 8.8.4.2 / 8.8.4.2a) ------------------------------------

    async def add_watch(
        self, origin: Address, notification_uri: str, requested: float | None
    ) -> TopicListWatch:
        """Create a topic-list subscription; the current topics are announced to it at once."""
        now = self._clock()
        if self._max_watches > 0:
            await self.sweep(now)
            held = sum(1 for w in self._watches.values() if w.origin == origin)
            if held >= self._max_watches:
                raise Forbidden(
                    f"{origin.key} already holds {held} topic-list subscriptions"
                    f" (limit topics.max_topiclist_subscriptions = {self._max_watches})",
                    cause=LIMIT_CAUSE,
                )
        watch = TopicListWatch(
            subscription_id=self._new_id(),
            origin=origin,
            notification_uri=notification_uri,
            expires_at=self._grant(requested, now),
        )
        await self._store.save_topiclist_watch(watch)
        self._watches[watch.subscription_id] = watch
        self._on_changed()
        current = self.topics()
        if current:
            self._notifier.notify(watch, [(t, TopicChange.CREATED) for t in current])
        return watch

    async def remove_watch(self, subscription_id: str, origin: Address) -> None:
        """Raises NotFound for an unknown id, Forbidden when `origin` did not create it."""
        watch = self._watches.get(subscription_id)
        if watch is None or watch.expires_at <= self._clock():
            raise NotFound(f"no topic-list subscription {subscription_id!r}")
        if watch.origin != origin:
            raise Forbidden(
                "/oriAddr is not the subscriber that created this topic-list subscription",
                cause="UNSPECIFIED_MSG_FAILURE",
            )
        await self._store.delete_topiclist_watch(subscription_id)
        self._watches.pop(subscription_id, None)
        self._on_changed()

    async def drop_watch(self, subscription_id: str) -> None:
        """End a topic-list subscription whose notificationURI is gone (404/410)."""
        if self._watches.pop(subscription_id, None) is not None:
            await self._store.delete_topiclist_watch(subscription_id)

    # expiry --------------------------------------------------------------------------------------

    async def sweep(self, now: float | None = None) -> None:
        """Drop expired subscriptions (announcing topics that lost their last subscriber) and
        expired topic-list subscriptions."""
        now = self._clock() if now is None else now
        expired = [
            TopicSubscriber(topic, subscriber, until)
            for topic, subscribers in self._topics.items()
            for subscriber, until in subscribers.items()
            if until <= now
        ]
        gone = [w for w in self._watches.values() if w.expires_at <= now]
        for watch in gone:
            await self._store.delete_topiclist_watch(watch.subscription_id)
            del self._watches[watch.subscription_id]
        if not expired:
            return
        await self._store.delete_topic_subscriptions(expired)
        deleted = []
        for item in expired:
            subscribers = self._topics.get(item.topic)
            if subscribers is None:
                continue
            subscribers.pop(item.subscriber, None)
            if not subscribers:
                del self._topics[item.topic]
                deleted.append(item.topic)
        log.info("topic subscriptions expired", extra={"count": len(expired), "topics": deleted})
        self._announce([(t, TopicChange.DELETED) for t in deleted], now)

    async def _sweep_loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("topic sweep failed")
            await asyncio.sleep(self._sweep_interval)

    def _announce(self, changes: list[tuple[str, TopicChange]], now: float) -> None:
        if not changes:
            return
        for watch in list(self._watches.values()):
            if watch.expires_at > now:
                self._notifier.notify(watch, changes)


class TopicFanOut:
    """`Transport` for `{TOPIC, name}` recipients: one delivery per current subscriber."""

    def __init__(
        self,
        topics: TopicRegistry,
        store: MessageStore,
        submit: Callable[[Sequence[Delivery]], None],
        *,
        chunk: int = 500,
        peers: Callable[[Delivery], Sequence[Address]] | None = None,
    ) -> None:
        self._topics = topics
        self._store = store
        self._submit = submit
        self._chunk = chunk
        # The peer servers owed one copy each (interconnection, services/peering.py).
        self._peers = peers

    async def send(self, delivery: Delivery) -> SendOutcome:
        subscribers = self._topics.subscribers(delivery.recipient.value)
        if self._peers is not None:
            subscribers = (*subscribers, *self._peers(delivery))
        if not subscribers:
            return SendOutcome(
                SendResult.REJECTED,
                f"NO_SUBSCRIBERS: topic {delivery.recipient.value!r} has no current subscriber",
            )
        queued = await fan_out(delivery, subscribers, self._store, self._submit, chunk=self._chunk)
        log.info(
            "topic message fanned out",
            extra={
                "topic": delivery.recipient.value,
                "msgId": delivery.message_id,
                "originator": delivery.origin.key,
                "subscribers": len(subscribers),
                "queued": queued,
            },
        )
        return SendOutcome(SendResult.DELIVERED)
