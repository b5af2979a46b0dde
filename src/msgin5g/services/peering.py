# SPDX-License-Identifier: Apache-2.0
"""Topic sharing between interconnected servers (TS 23.554 8.8.4, 8.7.5.3; ADR 0013).

Each server follows the topic list of each peer (a topic-list subscription whose CREATED /
DELETED notifications land in `RemoteTopics`). A topic message from one of this server's own
users then goes, besides to the local subscribers, once to every peer that has the topic, and
that peer hands it to its own subscribers only. A message a peer forwarded is never forwarded
again, so a message crosses at most one server-to-server hop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from msgin5g.ports import TopicChange, TopicListSource

log = logging.getLogger(__name__)


class RemoteTopics:
    """Which peers have which topics, as their topic-list notifications said."""

    def __init__(self) -> None:
        self._by_topic: dict[str, set[str]] = {}

    def apply(self, peer: str, changes: Sequence[tuple[str, TopicChange]]) -> None:
        for topic, change in changes:
            if change is TopicChange.CREATED:
                self._by_topic.setdefault(topic, set()).add(peer)
            else:
                self.forget(peer, topic)

    def forget(self, peer: str, topic: str) -> None:
        peers = self._by_topic.get(topic)
        if peers is not None:
            peers.discard(peer)
            if not peers:
                del self._by_topic[topic]

    def peers_for(self, topic: str) -> tuple[str, ...]:
        return tuple(sorted(self._by_topic.get(topic, ())))

    def topics_of(self, peer: str) -> list[str]:
        return sorted(t for t, peers in self._by_topic.items() if peer in peers)


class TopicListFollower:
    """Keeps one topic-list subscription at each peer: subscribes at start, renews before it
    expires (and every `refresh` seconds, which also resynchronises the list), retries with
    backoff while the peer is down, and unsubscribes at stop."""

    def __init__(
        self,
        source: TopicListSource,
        peers: Sequence[str],
        notification_uri: Callable[[str], str],
        *,
        clock: Callable[[], float],
        refresh: float = 300.0,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        self._source = source
        self._peers = list(peers)
        self._notification_uri = notification_uri
        self._clock = clock
        self._refresh = refresh
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._current: dict[str, str] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def subscription(self, peer: str) -> str | None:
        """The URI of the current topic-list subscription at `peer`, if any."""
        return self._current.get(peer)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._follow(peer), name=f"msgin5g-topiclist-{peer}")
            for peer in self._peers
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for peer, subscription in list(self._current.items()):
            try:
                async with asyncio.timeout(2.0):
                    await self._source.unsubscribe(peer, subscription)
            except Exception as exc:  # the peer may be gone; its subscription then expires
                log.info(
                    "topic-list unsubscription failed", extra={"peer": peer, "error": f"{exc}"}
                )
        self._current.clear()

    async def _follow(self, peer: str) -> None:
        backoff = self._initial_backoff
        while True:
            try:
                subscription, expires_at = await self._source.subscribe(
                    peer, self._notification_uri(peer)
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info(
                    "topic-list subscription at peer failed, will retry",
                    extra={"peer": peer, "error": str(exc), "retryIn": backoff},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            backoff = self._initial_backoff
            previous = self._current.get(peer)
            self._current[peer] = subscription
            log.info("following peer topic list", extra={"peer": peer, "uri": subscription})
            if previous is not None and previous != subscription:
                try:
                    await self._source.unsubscribe(peer, previous)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.info("old topic-list subscription not ended", extra={"error": str(exc)})
            lifetime = expires_at - self._clock()
            await asyncio.sleep(max(1.0, min(self._refresh, lifetime / 2)))
