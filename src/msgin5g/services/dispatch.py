# SPDX-License-Identifier: Apache-2.0
"""The store-and-forward worker: hands queued deliveries to recipients (TS 23.554 8.3.6).

One lane per recipient with pending work. A lane keeps at most `buffer_limit` deliveries in
memory and pages the rest from the store, so a recipient that is down grows its queue on disk,
not in memory. A failing recipient backs off as a whole (capped exponential), so other
recipients keep their speed. A recipient with no transport (not registered, not observing) is
parked until `wake()`.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from msgin5g.core.errors import StorageFailure
from msgin5g.core.lifecycle import Event, State, advance
from msgin5g.core.message import Address, Delivery
from msgin5g.core.retry import RetryPolicy
from msgin5g.observability import Metrics
from msgin5g.ports import (
    MessageStore,
    NewDelivery,
    Outcome,
    SendOutcome,
    SendResult,
    Transport,
)

log = logging.getLogger(__name__)

_EVENTS = {
    SendResult.DELIVERED: Event.ACK,
    SendResult.REJECTED: Event.REJECT,
    SendResult.RETRY: Event.RETRY,
}

EXPIRED_CAUSE = "EXPIRED: not delivered before the message expired"

ReportFactory = Callable[[Delivery, Outcome, str], NewDelivery | None]
"""Builds the failure report owed to the originator of a delivery that failed or expired."""


class Ownership(Protocol):
    """Which lanes this instance runs when several share one store (ADR 0018)."""

    def owns(self, recipient: Address) -> bool: ...

    def hand_off(self, recipient: Address, token: str | None = None) -> None:
        """Tell the owner of `recipient` that it has new stored work."""
        ...

    def reachable(self, recipient: Address) -> bool | None:
        """Reachability of a recipient owned elsewhere; None: judge it locally."""
        ...

    def handled_elsewhere(self, recipient: Address) -> bool:
        """True when another instance may be handing a delivery over to `recipient` now: the
        expiry sweep here leaves those to it for a while (ADR 0018)."""
        ...


@dataclass(slots=True)
class _Lane:
    recipient: Address
    window: int
    heap: list[tuple[int, int, Delivery]] = field(default_factory=list)
    known: set[int] = field(default_factory=set)
    in_flight: dict[int, Delivery] = field(default_factory=dict)
    spilled: bool = False
    parked: bool = False
    failures: int = 0
    backoff_until: float = 0.0
    workers: int = 0
    loading: asyncio.Lock = field(default_factory=asyncio.Lock)


class Dispatcher:
    """Owns every lane and the expiry sweeper; start() and stop() bound their tasks."""

    def __init__(
        self,
        store: MessageStore,
        transport_for: Callable[[Address], Transport | None],
        report_factory: ReportFactory,
        metrics: Metrics,
        *,
        clock: Callable[[], float],
        retry: RetryPolicy | None = None,
        window_for: Callable[[Address], int] = lambda _a: 1,
        buffer_limit: int = 1024,
        sweep_interval: float = 1.0,
        on_delivered: Callable[[Delivery], Awaitable[None]] | None = None,
        ownership: Ownership | None = None,
        resume_page: int = 2000,
        hand_over_limit: float = 300.0,
    ) -> None:
        self._store = store
        self._transport_for = transport_for
        self._report_factory = report_factory
        self._metrics = metrics
        self._clock = clock
        self._retry = retry or RetryPolicy()
        self._window_for = window_for
        self._buffer_limit = buffer_limit
        self._sweep_interval = sweep_interval
        self._on_delivered = on_delivered
        self._ownership = ownership
        self._hand_over_limit = hand_over_limit
        """The longest a hand-over can take: with several instances, a delivery whose
        recipient another instance runs is expired here only this long after its expiry."""
        self._lanes: dict[str, _Lane] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._resumer: asyncio.Task[None] | None = None
        self._resume_page = resume_page
        self._resuming = False
        self._stopping = False
        self._random = random.Random()

    # lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the expiry sweeper and, in the background, resume every reachable recipient
        with stored work: with a million of them the server is ready before the scan ends."""
        self._resuming = True
        self._resumer = asyncio.create_task(self._resume(), name="msgin5g-resume")
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="msgin5g-expiry-sweeper")

    async def _resume(self) -> None:
        """Page through the recipients with stored work (ADR 0019). An unreachable one (a UE
        not observing yet) gets no lane: its work waits in the store until wake(). Until the
        scan ends, a lane that submit() creates reads the store first (`_resuming`), so a new
        message cannot overtake the recipient's older stored ones."""
        after = ""
        try:
            while not self._stopping:
                recipients = await self._store.recipients_with_pending(after, self._resume_page)
                for recipient in recipients:
                    if not self._owns(recipient) or self._transport_for(recipient) is None:
                        continue
                    lane = self._lane(recipient)
                    lane.spilled = True
                    self._kick(lane)
                if len(recipients) < self._resume_page:
                    break
                after = recipients[-1].key
                await asyncio.sleep(0)  # let requests in between pages
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("resuming stored work failed; it is picked up on wake or restart")
        finally:
            self._resuming = False

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Stop taking new work; let in-flight hand-overs finish for up to `drain_timeout` s."""
        self._stopping = True
        for task in (self._resumer, self._sweeper):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=drain_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    # intake ----------------------------------------------------------------------------------

    def submit(self, deliveries: Iterable[Delivery]) -> None:
        """Hand newly committed deliveries to their lanes (they are already durable)."""
        handed: set[str] = set()
        for delivery in deliveries:
            if not self._owns(delivery.recipient):
                if delivery.recipient.key not in handed and self._ownership is not None:
                    handed.add(delivery.recipient.key)
                    self._ownership.hand_off(delivery.recipient, f"d{delivery.delivery_id}")
                continue
            lane = self._lanes.get(delivery.recipient.key)
            if lane is None:
                if self._transport_for(delivery.recipient) is None:
                    continue  # stored; wake() loads it when the recipient becomes reachable
                lane = self._lane(delivery.recipient)
                if self._resuming:  # older stored work may not be resumed yet: read it first
                    lane.spilled = True
            self._push(lane, delivery)
            self._kick(lane)

    def wake(self, recipient: Address) -> None:
        """The recipient became reachable: reload its stored work and try at once."""
        if not self._owns(recipient):
            if self._ownership is not None:
                self._ownership.hand_off(recipient)
            return
        lane = self._lanes.get(recipient.key)
        if lane is None:
            lane = self._lane(recipient)
            lane.spilled = True
        lane.parked = False
        lane.backoff_until = 0.0
        self._kick(lane)

    def reachable(self, recipient: Address) -> bool:
        """True when a message for `recipient` would be handed over now, not stored."""
        if self._ownership is not None and not self._ownership.owns(recipient):
            remote = self._ownership.reachable(recipient)
            if remote is not None:
                return remote
        if self._transport_for(recipient) is None:
            return False
        lane = self._lanes.get(recipient.key)
        return lane is None or (lane.backoff_until <= self._clock() and not lane.parked)

    def forget(self, delivery_ids: Iterable[int]) -> None:
        """Drop deliveries the store no longer holds (expired) from memory."""
        ids = set(delivery_ids)
        for lane in self._lanes.values():
            if lane.known & ids:
                lane.heap = [e for e in lane.heap if e[1] not in ids]
                heapq.heapify(lane.heap)
                lane.known -= ids

    def reload(self, recipient: Address) -> None:
        """Another instance stored work for `recipient`: read it from the store (ADR 0018)."""
        lane = self._lanes.get(recipient.key)
        if lane is not None:
            lane.spilled = True
        self.wake(recipient)

    def active(self, recipient: Address) -> bool:
        """True when `recipient` has a lane that is not parked."""
        lane = self._lanes.get(recipient.key)
        return lane is not None and not lane.parked

    def busy(self, match: Callable[[Address], bool]) -> bool:
        """True while a hand-over to a recipient that `match`es is in flight."""
        return any(lane.in_flight and match(lane.recipient) for lane in self._lanes.values())

    def _owns(self, recipient: Address) -> bool:
        return self._ownership is None or self._ownership.owns(recipient)

    def in_flight_ids(self) -> list[int]:
        return [i for lane in self._lanes.values() for i in lane.in_flight]

    @property
    def lanes(self) -> int:
        return len(self._lanes)

    # lanes -----------------------------------------------------------------------------------

    def _lane(self, recipient: Address) -> _Lane:
        lane = self._lanes.get(recipient.key)
        if lane is None:
            lane = _Lane(recipient=recipient, window=max(1, self._window_for(recipient)))
            self._lanes[recipient.key] = lane
        return lane

    def _push(self, lane: _Lane, delivery: Delivery) -> None:
        if delivery.delivery_id in lane.known or delivery.delivery_id in lane.in_flight:
            return
        if lane.spilled or len(lane.heap) >= self._buffer_limit:
            lane.spilled = True  # it is in the store; the lane pages it in later
            return
        heapq.heappush(lane.heap, (int(delivery.priority), delivery.delivery_id, delivery))
        lane.known.add(delivery.delivery_id)

    def _kick(self, lane: _Lane) -> None:
        if self._stopping or lane.parked:
            return
        wanted = min(lane.window, max(1, len(lane.heap))) if not lane.spilled else lane.window
        while lane.workers < wanted:
            lane.workers += 1
            task = asyncio.create_task(self._worker(lane), name=f"lane:{lane.recipient.key}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _take(self, lane: _Lane) -> Delivery | None:
        while True:
            if self._stopping or lane.parked:
                return None
            if not self._owns(lane.recipient):  # its lease moved on: the new owner reloads it
                lane.heap.clear()
                lane.known.clear()
                lane.spilled = False
                return None
            delay = lane.backoff_until - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            if lane.heap:
                _prio, delivery_id, delivery = heapq.heappop(lane.heap)
                lane.known.discard(delivery_id)
                return delivery
            if not lane.spilled:
                return None
            async with lane.loading:
                if lane.heap or not lane.spilled:
                    continue
                page = await self._store.pending(
                    lane.recipient, list(lane.in_flight), self._buffer_limit
                )
                lane.spilled = len(page) >= self._buffer_limit
                for delivery in page:
                    if delivery.delivery_id not in lane.in_flight:
                        heapq.heappush(
                            lane.heap, (int(delivery.priority), delivery.delivery_id, delivery)
                        )
                        lane.known.add(delivery.delivery_id)
                if not page:
                    return None

    async def _worker(self, lane: _Lane) -> None:
        try:
            while (delivery := await self._take(lane)) is not None:
                if not self._owns(lane.recipient):  # lost while paging: it stays stored
                    continue  # _take drops the lane
                transport = self._transport_for(lane.recipient)
                if transport is None:
                    self._park(lane, delivery)
                    return
                lane.in_flight[delivery.delivery_id] = delivery
                try:
                    await self._hand_over(lane, transport, delivery)
                except StorageFailure as exc:
                    self._keep_after_store_failure(lane, delivery, exc)
                finally:
                    lane.in_flight.pop(delivery.delivery_id, None)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery lane failed", extra={"recipient": lane.recipient.key})
        finally:
            lane.workers -= 1
            # An idle lane goes, and so does a parked one (its recipient went away; its work
            # is in the store and wake() makes a new lane): a million UEs that came and went
            # leave no lanes behind (ADR 0019).
            if (
                lane.workers == 0
                and not lane.in_flight
                and (lane.parked or (not lane.heap and not lane.spilled))
                and self._lanes.get(lane.recipient.key) is lane
            ):
                del self._lanes[lane.recipient.key]

    def _keep_after_store_failure(
        self, lane: _Lane, delivery: Delivery, exc: StorageFailure
    ) -> None:
        """The store could not record an outcome (disk full, ...; ADR 0020): the delivery is
        still pending there, so it stays in the lane and is tried again after a pause rather
        than being stranded until a restart (a repeat after a success is at-least-once)."""
        lane.failures += 1
        pause = self._retry.delay(lane.failures, self._random.random())
        lane.backoff_until = max(lane.backoff_until, self._clock() + pause)
        if not lane.spilled and delivery.delivery_id not in lane.known:
            heapq.heappush(lane.heap, (int(delivery.priority), delivery.delivery_id, delivery))
            lane.known.add(delivery.delivery_id)
        log.warning(
            "store failure after a hand-over; retrying",
            extra={
                "recipient": lane.recipient.key,
                "msgId": delivery.message_id,
                "cause": str(exc),
            },
        )

    def _park(self, lane: _Lane, delivery: Delivery) -> None:
        lane.parked = True
        lane.spilled = True
        lane.heap.clear()
        lane.known.clear()
        log.debug("recipient unreachable, parked", extra={"recipient": lane.recipient.key})
        del delivery  # it stays in the store

    async def _hand_over(self, lane: _Lane, transport: Transport, delivery: Delivery) -> None:
        if delivery.expires_at <= self._clock():
            await self._finish(delivery, Outcome.EXPIRED, EXPIRED_CAUSE)
            return
        try:
            outcome = await transport.send(delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a transport bug must not strand the delivery: retry it
            log.exception("transport failed", extra={"recipient": lane.recipient.key})
            outcome = SendOutcome(SendResult.RETRY, f"{type(exc).__name__}: {exc}")
        # The lifecycle table (core/lifecycle.py) decides where the hand-over leaves it.
        state = advance(advance(State.PENDING, Event.DISPATCH), _EVENTS[outcome.result])
        if state is State.DELIVERED:
            lane.failures = 0
            await self._store.finish(delivery, Outcome.DELIVERED, None)
            self._metrics.inc("msgin5g_deliveries_total", outcome="delivered")
            if self._on_delivered is not None:
                await self._on_delivered(delivery)
        elif state is State.FAILED:
            await self._finish(delivery, Outcome.FAILED, outcome.detail)
        else:  # back to PENDING: the whole lane backs off
            lane.failures += 1
            attempts = delivery.attempts + 1
            pause = self._retry.delay(lane.failures, self._random.random())
            lane.backoff_until = max(lane.backoff_until, self._clock() + pause)
            self._metrics.inc("msgin5g_deliveries_total", outcome="retried")
            log.info(
                "delivery deferred",
                extra={
                    "recipient": lane.recipient.key,
                    "msgId": delivery.message_id,
                    "attempt": attempts,
                    "retry_in_s": round(pause, 3),
                    "reason": outcome.detail,
                },
            )
            await self._store.record_attempt(delivery.delivery_id, attempts)
            retried = msgspec.structs.replace(delivery, attempts=attempts)
            if not lane.spilled:
                heapq.heappush(lane.heap, (int(retried.priority), retried.delivery_id, retried))
                lane.known.add(retried.delivery_id)

    async def _finish(self, delivery: Delivery, outcome: Outcome, cause: str) -> None:
        follow_up = self._report_factory(delivery, outcome, cause)
        created = await self._store.finish(delivery, outcome, follow_up)
        self._metrics.inc("msgin5g_deliveries_total", outcome=outcome.value)
        log.info(
            "delivery %s",
            outcome.value,
            extra={
                "recipient": delivery.recipient.key,
                "originator": delivery.origin.key,
                "msgId": delivery.message_id,
                "cause": cause,
            },
        )
        if created is not None:
            self.submit([created])

    # expiry ----------------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Expire what is past its time; returns how many deliveries expired."""
        total = 0
        while True:
            now = self._clock()
            ownership = self._ownership
            # With several instances, the one running a recipient expires its deliveries at
            # once; the others only once the longest hand-over is surely over.
            expired = await self._store.expire(
                now,
                512,
                self.in_flight_ids(),
                ownership.handled_elsewhere if ownership is not None else None,
                now - self._hand_over_limit,
            )
            if not expired:
                return total
            self.forget(d.delivery_id for d in expired)
            follow_ups = [
                f
                for d in expired
                if (f := self._report_factory(d, Outcome.EXPIRED, EXPIRED_CAUSE)) is not None
            ]
            for d in expired:
                self._metrics.inc("msgin5g_deliveries_total", outcome="expired")
                log.info(
                    "delivery expired",
                    extra={
                        "recipient": d.recipient.key,
                        "originator": d.origin.key,
                        "msgId": d.message_id,
                    },
                )
            if follow_ups:
                self.submit(await self._store.add_deliveries(follow_ups))
            total += len(expired)

    async def _sweep_loop(self) -> None:
        while True:
            try:
                await self.sweep()
                await self._store.purge_messages(self._clock())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("expiry sweep failed")
            await asyncio.sleep(self._sweep_interval)
