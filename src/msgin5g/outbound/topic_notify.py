# SPDX-License-Identifier: Apache-2.0
"""TopicListNotification POSTs to topic-list subscribers (TS 29.538 MSGS_TopiclistEvent
callback `MessagingTopicListNotification`; TS 29.501 notifications: 204 on success).

`notify` never blocks: each notification runs as a task, after the previous one to the same
notificationURI, so a subscriber sees CREATED before the DELETED that follows it. Failures are
retried with doubling backoff (`attempts` in all); 307/308 are followed once per attempt to
their Location; 404 and 410 end the topic-list subscription through `on_gone`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import msgspec

from msgin5g.outbound.http_client import HttpClientPool, PeerUnavailable
from msgin5g.ports import TopicChange, TopicListWatch
from msgin5g.wire.topics import MessagingTopic, TopicListNotification

log = logging.getLogger(__name__)

_encode = msgspec.json.Encoder().encode


def notification_body(watch: TopicListWatch, changes: Sequence[tuple[str, TopicChange]]) -> bytes:
    return _encode(
        TopicListNotification(
            msgTopics=[MessagingTopic(msgTopic=t, updateStat=c.value) for t, c in changes],
            exprTime=datetime.fromtimestamp(watch.expires_at, UTC),
        )
    )


class HttpTopicListNotifier:
    """`TopicListNotifier` over HTTP/2 (HTTP/1.1 fallback) with the shared client pool."""

    def __init__(
        self,
        pool: HttpClientPool,
        *,
        attempts: int = 4,
        initial_backoff: float = 0.5,
        on_gone: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._pool = pool
        self._attempts = attempts
        self._initial_backoff = initial_backoff
        self._on_gone = on_gone
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def notify(self, watch: TopicListWatch, changes: Sequence[tuple[str, TopicChange]]) -> None:
        if not changes:
            return
        body = notification_body(watch, changes)
        previous = self._tails.get(watch.notification_uri)
        task = asyncio.create_task(self._send_after(previous, watch, body))
        self._tails[watch.notification_uri] = task
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(watch.notification_uri, t))

    def _done(self, uri: str, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._tails.get(uri) is task:
            del self._tails[uri]

    async def _send_after(
        self, previous: asyncio.Task[None] | None, watch: TopicListWatch, body: bytes
    ) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        backoff = self._initial_backoff
        for attempt in range(1, self._attempts + 1):
            outcome = await self._post(watch.notification_uri, body)
            if outcome == "done":
                return
            if outcome == "gone":
                log.info(
                    "topic-list subscriber is gone, subscription ended",
                    extra={"subscriptionId": watch.subscription_id},
                )
                if self._on_gone is not None:
                    await self._on_gone(watch.subscription_id)
                return
            if outcome == "rejected":
                break
            if attempt < self._attempts:
                await asyncio.sleep(backoff)
                backoff *= 2
        log.warning(
            "topic-list notification dropped",
            extra={"subscriptionId": watch.subscription_id, "uri": watch.notification_uri},
        )

    async def _post(self, uri: str, body: bytes) -> str:
        """ "done", "retry", "gone" (404/410) or "rejected" (another 4xx)."""
        try:
            response = await self._pool.post_json(uri, body)
            if response.status_code in (307, 308) and "location" in response.headers:
                response = await self._pool.post_json(response.headers["location"], body)
        except PeerUnavailable as exc:
            log.info("topic-list notification failed", extra={"uri": uri, "error": str(exc)})
            return "retry"
        except Exception as exc:  # not a URL httpx can use
            log.info("topic-list notification impossible", extra={"uri": uri, "error": str(exc)})
            return "rejected"
        status = response.status_code
        if 200 <= status < 300:
            return "done"
        if status in (404, 410):
            return "gone"
        if status >= 500 or status in (408, 429):
            return "retry"
        return "rejected"

    async def aclose(self) -> None:
        """Cancel notifications still in flight (at shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._tails.clear()
