# SPDX-License-Identifier: Apache-2.0
"""The NATS JetStream side of a cluster (ADR 0018): doorbells and registry changes.

One stream, `MSGIN5G_WORK`, interest retention, short `max_age`:
- `msgin5g.work.i.<instance>`: "recipient R has new stored work", for the lane owner;
- `msgin5g.work.ue`: the same for a MSGin5G UE whose observing instance is not known;
- `msgin5g.work.sync`: a registry changed / a UE observes at an instance.
Every instance has an ephemeral push consumer on each subject it reads. Publishes carry
`Nats-Msg-Id`, so a retried publish is stored once (JetStream de-duplication). A doorbell
carries no message: PostgreSQL stays the system of record, and the owner reads it from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import DeliverPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

log = logging.getLogger(__name__)

STREAM = "MSGIN5G_WORK"
PREFIX = "msgin5g.work"
UE_SUBJECT = f"{PREFIX}.ue"
SYNC_SUBJECT = f"{PREFIX}.sync"
HOPS = "Msgin5g-Hops"


def subject_token(instance_id: str) -> str:
    """`instance_id` as one NATS subject token (no dots, spaces or wildcards)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", instance_id) or "_"


def instance_subject(instance_id: str) -> str:
    return f"{PREFIX}.i.{subject_token(instance_id)}"


Doorbell = Callable[[str, int], Awaitable[None]]
"""(recipient key, hops so far)."""
SyncHandler = Callable[[dict[str, Any]], Awaitable[None]]


class WorkBus:
    """Connects to NATS, makes sure the stream exists and runs this instance's consumers."""

    def __init__(
        self,
        url: str,
        instance_id: str,
        *,
        on_doorbell: Doorbell,
        on_ue_doorbell: Doorbell,
        on_sync: SyncHandler,
        on_reconnected: Callable[[], Awaitable[None]],
        max_age: float = 60.0,
    ) -> None:
        self._url = url
        self.instance_id = instance_id
        self._on_doorbell = on_doorbell
        self._on_ue_doorbell = on_ue_doorbell
        self._on_sync = on_sync
        self._on_reconnected = on_reconnected
        self._max_age = max_age
        self._nc: NatsClient | None = None
        self._subs: list[Any] = []
        self.published = 0
        self.failed = 0

    async def open(self) -> None:
        """Connect, create or update the stream, start the consumers; raises on failure."""
        nc = await asyncio.wait_for(  # reconnects forever later, but start-up gives up
            nats.connect(
                self._url,
                name=f"msgin5g-{self.instance_id}",
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                connect_timeout=5,
                allow_reconnect=True,
                reconnected_cb=self._on_reconnected,
                error_cb=self._error,
            ),
            timeout=10,
        )
        self._nc = nc
        js = nc.jetstream(timeout=5)
        config = StreamConfig(
            name=STREAM,
            subjects=[f"{PREFIX}.>"],
            retention=RetentionPolicy.INTEREST,
            storage=StorageType.FILE,
            max_age=self._max_age,
            duplicate_window=min(self._max_age, 30.0),
        )
        try:
            await js.add_stream(config)
        except BadRequestError:  # exists with other settings (an older release): align it
            await js.update_stream(config)
        own = instance_subject(self.instance_id)
        for subject, handler in (
            (own, self._doorbell),
            (UE_SUBJECT, self._ue_doorbell),
            (SYNC_SUBJECT, self._sync),
        ):
            self._subs.append(
                await js.subscribe(
                    subject,
                    stream=STREAM,
                    cb=handler,
                    manual_ack=True,
                    deliver_policy=DeliverPolicy.NEW,
                    inactive_threshold=max(30.0, self._max_age),
                )
            )

    async def close(self) -> None:
        nc, self._nc = self._nc, None
        if nc is None:
            return
        for sub in self._subs:
            with contextlib.suppress(NatsError, TimeoutError):
                await sub.unsubscribe()
        self._subs.clear()
        with contextlib.suppress(NatsError, TimeoutError):
            await nc.drain()

    async def _error(self, exc: Exception) -> None:
        log.warning("NATS connection: %s", exc or type(exc).__name__)

    # publishing ------------------------------------------------------------------------------

    async def publish(self, subject: str, payload: bytes, msg_id: str, *, hops: int = 0) -> bool:
        """Store one message in the stream; False (logged) when NATS did not confirm it."""
        nc = self._nc
        if nc is None:
            return False
        try:
            await nc.jetstream(timeout=5).publish(
                subject, payload, headers={"Nats-Msg-Id": msg_id, HOPS: str(hops)}
            )
        except (TimeoutError, NatsError) as exc:
            self.failed += 1
            log.warning("cluster publish failed", extra={"subject": subject, "error": repr(exc)})
            return False
        self.published += 1
        return True

    async def publish_sync(self, event: dict[str, Any], msg_id: str) -> bool:
        body = json.dumps({**event, "from": self.instance_id}).encode()
        return await self.publish(SYNC_SUBJECT, body, msg_id)

    # consuming -------------------------------------------------------------------------------

    async def _doorbell(self, msg: Msg) -> None:
        await self._run(msg, self._on_doorbell)

    async def _ue_doorbell(self, msg: Msg) -> None:
        await self._run(msg, self._on_ue_doorbell)

    async def _run(self, msg: Msg, handler: Doorbell) -> None:
        hops = int((msg.headers or {}).get(HOPS, "0") or 0)
        try:
            await handler(msg.data.decode(), hops)
        except Exception:
            log.exception("cluster doorbell failed")
            await msg.nak(delay=1.0)
            return
        await msg.ack()

    async def _sync(self, msg: Msg) -> None:
        try:
            event = json.loads(msg.data)
            if isinstance(event, dict):
                await self._on_sync(event)
        except Exception:
            log.exception("cluster sync event failed")
        await msg.ack()
