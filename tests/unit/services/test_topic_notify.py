# SPDX-License-Identifier: Apache-2.0
"""HttpTopicListNotifier: TopicListNotification bodies, order per URI, retries, 307 and 404."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from msgin5g.core.message import Address
from msgin5g.outbound.http_client import PeerUnavailable
from msgin5g.outbound.topic_notify import HttpTopicListNotifier
from msgin5g.ports import TopicChange, TopicListWatch

WATCH = TopicListWatch("w1", Address("AS", "peer"), "http://peer/cb", 0.0)


class FakePool:
    def __init__(self, answers: list[int | Exception]) -> None:
        self.answers = answers
        self.posts: list[tuple[str, Any]] = []

    async def post_json(self, url: str, body: bytes) -> httpx.Response:
        self.posts.append((url, json.loads(body)))
        answer = self.answers.pop(0) if self.answers else 204
        if isinstance(answer, Exception):
            raise answer
        headers = {"location": "http://moved/cb"} if answer in (307, 308) else {}
        return httpx.Response(answer, headers=headers)


def notifier(pool: FakePool, **kw: Any) -> HttpTopicListNotifier:
    return HttpTopicListNotifier(pool, initial_backoff=0.001, **kw)  # type: ignore[arg-type]


async def settle(n: HttpTopicListNotifier) -> None:
    for _ in range(100):
        await asyncio.sleep(0.005)
        if not n._tasks:
            return


async def test_notifications_keep_their_order_and_retry() -> None:
    pool = FakePool([PeerUnavailable("down"), 503, 204])
    n = notifier(pool)
    n.notify(WATCH, [("a", TopicChange.CREATED)])
    n.notify(WATCH, [("a", TopicChange.DELETED)])
    await settle(n)
    bodies = [b["msgTopics"] for _, b in pool.posts]
    assert bodies == [
        [{"msgTopic": "a", "updateStat": "CREATED"}],
        [{"msgTopic": "a", "updateStat": "CREATED"}],
        [{"msgTopic": "a", "updateStat": "CREATED"}],
        [{"msgTopic": "a", "updateStat": "DELETED"}],
    ]
    assert pool.posts[0][1]["exprTime"] == "1970-01-01T00:00:00Z"


async def test_redirect_is_followed_and_gone_ends_the_subscription() -> None:
    ended: list[str] = []

    async def on_gone(subscription_id: str) -> None:
        ended.append(subscription_id)

    pool = FakePool([307, 204, 404])
    n = notifier(pool, on_gone=on_gone)
    n.notify(WATCH, [("a", TopicChange.CREATED)])
    n.notify(WATCH, [("b", TopicChange.CREATED)])
    await settle(n)
    assert [url for url, _ in pool.posts] == ["http://peer/cb", "http://moved/cb", "http://peer/cb"]
    assert ended == ["w1"]


async def test_gives_up_after_the_attempts() -> None:
    pool = FakePool([503] * 10)
    n = notifier(pool, attempts=3)
    n.notify(WATCH, [("a", TopicChange.CREATED)])
    await settle(n)
    assert len(pool.posts) == 3
    await n.aclose()
