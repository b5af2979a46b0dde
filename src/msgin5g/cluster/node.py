# SPDX-License-Identifier: Apache-2.0
"""One instance's part in a cluster (ADR 0018): who owns a recipient's lane, where the
doorbell for a lane owned elsewhere goes, and what a registry change elsewhere means here.

Ownership: a MSGin5G UE (CoAP) belongs to the instance where it observes its inbox; every
other recipient (AS, gateway-served UE, group, topic, broadcast area, peer) to the holder of
its shard's lease. Work for a recipient owned elsewhere is committed to PostgreSQL as usual,
then a doorbell tells the owner to read it. A lost doorbell costs latency, not messages: every
`rescan` seconds the owner looks at the work stored since its scan before last, about once a
minute and whenever it gains shards at all of it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol

from msgin5g.cluster.bus import UE_SUBJECT, WorkBus, instance_subject
from msgin5g.cluster.leases import ShardLeases
from msgin5g.cluster.shards import shard_of
from msgin5g.core.message import UE, Address

log = logging.getLogger(__name__)

REGISTRIES = ("as", "ue", "groups", "topics")
KEYED = ("ue",)
"""Registries that other instances refresh by key: the UE registry may hold millions."""
MAX_KEYS = 1000
"""More keys in one change (a gateway registering its UEs) go as one whole reload."""
_WAKE_KEYS = 64
"""Up to this many refreshed recipients are woken one by one; more, one rescan."""
_MAX_HOPS = 2
_FULL_RESCAN_S = 60.0
"""How often the periodic rescan reads all stored work rather than the recent (ADR 0018)."""


class Lanes(Protocol):
    """What the node needs of the dispatcher (services/dispatch.py)."""

    def reload(self, recipient: Address) -> None: ...

    def active(self, recipient: Address) -> bool: ...

    def busy(self, match: Callable[[Address], bool]) -> bool: ...


class ClusterNode:
    """Ownership predicate, doorbells and registry sync of this instance."""

    def __init__(
        self,
        *,
        store_url: str,
        schema: str,
        nats_url: str,
        instance_id: str,
        shards: int,
        lease_ttl: float,
        heartbeat: float,
        rescan: float,
        is_coap_ue: Callable[[Address], bool],
        observing_here: Callable[[str], bool],
        work_after: Callable[[int], Awaitable[tuple[list[Address], int]]],
        reload_registry: Callable[[str], Awaitable[list[Address] | None]],
        end_observation: Callable[[str], Awaitable[None]],
        refresh_registry: Callable[[str, list[str]], Awaitable[None]] | None = None,
        on_live_instances: Callable[[int], None] = lambda _n: None,
    ) -> None:
        self.instance_id = instance_id
        self._shards = shards
        self._heartbeat = heartbeat
        self._rescan = rescan
        self._is_coap_ue = is_coap_ue
        self._observing_here = observing_here
        self._work_after = work_after
        self._full_every = max(1, round(_FULL_RESCAN_S / rescan))
        self._scans = 0
        self._marks: deque[int] = deque(maxlen=3)
        """The highest delivery id each of the last scans saw, oldest first."""
        self._reload_registry = reload_registry
        self._refresh_registry = refresh_registry
        self._on_live_instances = on_live_instances
        self._live_seen = 0
        self._end_observation = end_observation
        self.leases = ShardLeases(
            store_url,
            schema,
            instance_id,
            shards=shards,
            ttl=lease_ttl,
            on_gained=self._gained,
            drained=self._drained,
        )
        self.bus = WorkBus(
            nats_url,
            instance_id,
            on_doorbell=self._doorbell,
            on_ue_doorbell=self._ue_doorbell,
            on_sync=self._sync,
            on_reconnected=self._reconnected,
        )
        self._lanes: Lanes | None = None
        self._observers: dict[str, str] = {}
        self._outbox: dict[tuple[str, str], tuple[str, int]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._stale: set[str] = set()
        self._stale_keys: dict[str, set[str]] = {}
        self.registry_reloads = {"whole": 0, "keys": 0}
        self.rescans = {"full": 0, "recent": 0}
        self._reloader: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self.doorbells_sent = 0
        self.doorbells_received = 0

    def attach(self, lanes: Lanes) -> None:
        self._lanes = lanes

    # lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Lease tables, NATS consumers, the first heartbeat (claims shards), then the loops."""
        try:
            await self.leases.open()
            await self.bus.open()
        except Exception as exc:  # asyncpg or nats: the CLI reports OSError as "cannot start"
            await self.bus.close()
            await self.leases.close()
            raise OSError(f"cannot join the cluster: {type(exc).__name__}: {exc}") from None
        await self._beat()
        self._tasks = [
            asyncio.create_task(self._every(self._heartbeat, self._beat), name="lease"),
            asyncio.create_task(self._every(self._rescan, self._periodic_rescan), name="rescan"),
        ]

    async def stop(self) -> None:
        """After the dispatcher drained: give the leases back so the others take over now."""
        for task in (*self._tasks, self._flusher, self._reloader, *self._background):
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *self._tasks,
            *(t for t in (self._flusher, self._reloader) if t is not None),
            *self._background,
            return_exceptions=True,
        )
        await self.bus.close()
        await self.leases.close()

    async def _beat(self) -> None:
        """Renew the leases; tell `on_live_instances` when the number of instances changed."""
        await self.leases.beat()
        live = self.leases.live_instances
        if live != self._live_seen:
            self._live_seen = live
            self._on_live_instances(live)

    async def _every(self, period: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(period)
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cluster job failed", extra={"job": job.__name__})

    # ownership (the dispatcher's hook) --------------------------------------------------------

    def owns(self, recipient: Address) -> bool:
        """True when this instance runs `recipient`'s lane now."""
        if self._is_coap_ue(recipient):
            return self._observing_here(recipient.value)
        return self.leases.holds(shard_of(recipient.key, self._shards))

    def reachable(self, recipient: Address) -> bool | None:
        """For a recipient owned elsewhere: a MSGin5G UE is reachable while it observes at
        some instance; None (decide locally) for the others."""
        if self._is_coap_ue(recipient):
            return recipient.value in self._observers
        return None

    def handled_elsewhere(self, recipient: Address) -> bool:
        """True when another instance may be handing over to `recipient`: a MSGin5G UE that
        last observed at another instance, any other recipient whose shard is not ours."""
        if self._is_coap_ue(recipient):
            return self._observers.get(recipient.value, self.instance_id) != self.instance_id
        return not self.leases.holds(shard_of(recipient.key, self._shards))

    def hand_off(self, recipient: Address, token: str | None = None, hops: int = 0) -> None:
        """Ring the owner's doorbell for `recipient` (the work is already in the store)."""
        if self._is_coap_ue(recipient):
            at = self._observers.get(recipient.value)
            subject = instance_subject(at) if at and at != self.instance_id else UE_SUBJECT
        else:
            owner = self.leases.owner_of(shard_of(recipient.key, self._shards))
            if owner is None or owner == self.instance_id:
                return  # shard changing hands: its next holder reads the store when it gains it
            subject = instance_subject(owner)
        msg_id = f"{recipient.key}|{token or uuid.uuid4().hex}"
        self._outbox[(subject, recipient.key)] = (msg_id, hops)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="cluster-doorbells")

    async def _flush(self) -> None:
        while self._outbox:
            batch, self._outbox = self._outbox, {}
            sent = await asyncio.gather(
                *(
                    self.bus.publish(subject, key.encode(), msg_id, hops=hops)
                    for (subject, key), (msg_id, hops) in batch.items()
                )
            )
            self.doorbells_sent += sum(sent)

    # doorbells -------------------------------------------------------------------------------

    async def _doorbell(self, key: str, hops: int) -> None:
        self.doorbells_received += 1
        recipient = Address.from_key(key)
        if self.owns(recipient):
            self._require().reload(recipient)
        elif hops < _MAX_HOPS:  # our lease moved on meanwhile: pass it to the new holder
            self.hand_off(recipient, hops=hops + 1)

    async def _ue_doorbell(self, key: str, hops: int) -> None:
        recipient = Address.from_key(key)
        if self._observing_here(recipient.value):
            self.doorbells_received += 1
            self._require().reload(recipient)

    # registry sync ---------------------------------------------------------------------------

    def changed(self, registry: str, keys: Sequence[str] = ()) -> None:
        """A registry changed here (at `keys`, when given): tell the other instances to
        refresh those keys, or to reload it whole."""
        event: dict[str, Any] = {"registry": registry}
        if keys and registry in KEYED and len(keys) <= MAX_KEYS:
            event["keys"] = list(keys)
        self._spawn(self._announce(event))

    async def _announce(self, event: dict[str, Any]) -> None:
        """Publish a sync event, retrying while NATS is away (the same Nats-Msg-Id each time,
        so JetStream stores it once)."""
        msg_id = uuid.uuid4().hex
        for attempt in range(10):
            if await self.bus.publish_sync(event, msg_id):
                return
            await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
        log.error("cluster sync event not published", extra={"event": event})

    async def _reconnected(self) -> None:
        """Events may have been missed while NATS was away: reload every registry."""
        log.info("NATS reconnected: reloading the registries")
        for name in REGISTRIES:
            self._stale.add(name)
        if self._reloader is None or self._reloader.done():
            self._reloader = asyncio.create_task(self._reload(), name="cluster-reload")

    def observing(self, ue_service_id: str) -> None:
        """A UE observes its inbox here: the others route its doorbells here and end any
        observation of it they still hold."""
        self._observers[ue_service_id] = self.instance_id
        self._spawn(self._announce({"observing": ue_service_id}))

    async def _sync(self, event: dict[str, Any]) -> None:
        # Our own registry changes come back too: reloading after them as well means a reload
        # that read the store before a local write cannot hide that write for good.
        registry = event.get("registry")
        if registry in REGISTRIES:
            keys = event.get("keys")
            if (
                registry in KEYED
                and self._refresh_registry is not None
                and isinstance(keys, list)
                and all(isinstance(k, str) for k in keys)
            ):
                self._stale_keys.setdefault(str(registry), set()).update(keys)
            else:
                self._stale.add(str(registry))
            if self._reloader is None or self._reloader.done():
                self._reloader = asyncio.create_task(self._reload(), name="cluster-reload")
        ue = event.get("observing")
        at = event.get("from")
        if isinstance(ue, str) and isinstance(at, str) and at != self.instance_id:
            self._observers[ue] = at
            if self._observing_here(ue):
                await self._end_observation(ue)  # it moved: one lane owner at a time

    async def _reload(self) -> None:
        while self._stale or self._stale_keys:
            names, self._stale = self._stale, set()
            keyed, self._stale_keys = self._stale_keys, {}
            unknown = False  # a reload that cannot say which recipients may have work now
            woken: list[Address] = []
            for name in sorted(names):
                recipients = await self._reload_registry(name)
                self.registry_reloads["whole"] += 1
                if recipients is None:
                    unknown = True
                else:
                    woken += recipients
            for name, keys in keyed.items():
                if name in names:  # the whole reload began after these changes: it has them
                    continue
                assert self._refresh_registry is not None
                await self._refresh_registry(name, sorted(keys))
                self.registry_reloads["keys"] += 1
                woken += (Address(UE, key) for key in keys)
            if unknown or len(woken) > _WAKE_KEYS:
                await self.rescan()
            else:
                self._wake_owned(woken)

    def _wake_owned(self, recipients: Iterable[Address]) -> None:
        """Start the lanes of `recipients` owned here that may have stored work."""
        lanes = self._require()
        for recipient in recipients:
            if self.owns(recipient) and not lanes.active(recipient):
                lanes.reload(recipient)

    # taking over -----------------------------------------------------------------------------

    async def rescan(self) -> None:
        """Start a lane for every owned recipient with stored work and no running lane."""
        await self._scan(0, "full")

    async def _periodic_rescan(self) -> None:
        """Every `rescan` s: the work stored since the scan before last (a transaction that
        took its ids before a scan may commit after it), and all of it about once a minute
        (a lost doorbell for older work, a lane that stopped)."""
        self._scans += 1
        if not self._marks or self._scans % self._full_every == 0:
            await self._scan(0, "full")
        else:
            await self._scan(self._marks[0], "recent")

    async def _scan(self, after_id: int, kind: str) -> None:
        recipients, top = await self._work_after(after_id)
        self._marks.append(max(top, self._marks[-1] if self._marks else 0))
        self.rescans[kind] += 1
        self._wake_owned(recipients)

    async def _gained(self, shards: Iterable[int]) -> None:
        await self.rescan()

    def _drained(self, shard: int) -> bool:
        lanes = self._lanes
        if lanes is None:
            return True
        return not lanes.busy(
            lambda r: not self._is_coap_ue(r) and shard_of(r.key, self._shards) == shard
        )

    def _require(self) -> Lanes:
        if self._lanes is None:
            raise RuntimeError("ClusterNode.attach() was not called")
        return self._lanes

    def _spawn(self, job: Awaitable[Any]) -> None:
        async def run() -> None:
            await job

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def default_instance_id() -> str:
    """hostname-pid: unique per process on a host, readable in the lease table."""
    return f"{socket.gethostname()}-{os.getpid()}"
