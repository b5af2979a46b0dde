# SPDX-License-Identifier: Apache-2.0
"""Delivery over HTTP to `{base}/deliver-message` and `{base}/deliver-report`.

The same shape serves two peers: an Application Server at its registered `targetUri` (our
binding, DESIGN 2.2) and a Message Gateway at `{apiRoot}/msgg-l3gdelivery/v1` or
`.../msgg-n3gdelivery/v1` (TS 29.538 9.1, 9.2: 204 on success, 404 for a UE it does not
serve). Any 2xx is success; 5xx, 408, 429, timeouts and refused connections are retried;
other 4xx reject the delivery (and the sender gets a failure report if it asked for one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urlsplit

from msgin5g.core.message import Delivery, DeliveryKind
from msgin5g.outbound.h2c import H2cClient
from msgin5g.outbound.http_client import HttpClientPool, PeerUnavailable
from msgin5g.ports import SendOutcome, SendResult

_PATHS = {DeliveryKind.MESSAGE: "/deliver-message", DeliveryKind.REPORT: "/deliver-report"}


class HttpDeliveryTransport:
    """`Transport` for one HTTP recipient (an AS or a gateway); `target_uri` gives its base."""

    def __init__(
        self, pool: HttpClientPool, target_uri: Callable[[], str | None], *, timeout: float = 10.0
    ) -> None:
        self._pool = pool
        self._target_uri = target_uri
        self._timeout = timeout
        self._client: H2cClient | None = None
        self._origin = ""
        self._closing: set[asyncio.Task[None]] = set()

    def _client_for(self, origin: str) -> H2cClient:
        if self._client is None or origin != self._origin:
            if self._client is not None:  # the recipient moved: close the old connection
                task = asyncio.get_running_loop().create_task(self._client.aclose())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            self._client = H2cClient(origin, self._pool, timeout=self._timeout)
            self._origin = origin
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        await asyncio.gather(*self._closing, return_exceptions=True)

    async def send(self, delivery: Delivery) -> SendOutcome:
        target = self._target_uri()
        if not target:
            return SendOutcome(SendResult.RETRY, "the recipient has no URI to deliver to")
        url = target.rstrip("/") + _PATHS[delivery.kind]
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            status, _body = await self._client_for(f"{parts.scheme}://{parts.netloc}").post(
                path, delivery.body
            )
        except PeerUnavailable as exc:
            return SendOutcome(SendResult.RETRY, str(exc))
        if 200 <= status < 300:
            return SendOutcome(SendResult.DELIVERED)
        if status >= 500 or status in (408, 429):
            return SendOutcome(SendResult.RETRY, f"recipient answered HTTP {status}")
        return SendOutcome(SendResult.REJECTED, f"RECIPIENT_REJECTED: {url} answered HTTP {status}")
