# SPDX-License-Identifier: Apache-2.0
"""Segments on MSGin5G-1 (TS 23.554 8.5, DESIGN 2.4): reassembly of UE-originated messages,
segment recovery (SEGREC) and confirmation (SEGCONFIR) for segments sent to UEs.

Every UE-originated segment is committed before the UE gets its 2.04; when the last missing
one arrives the message is reassembled and accepted through `MessageService.accept` (so it is
routed, and cut again for a UE recipient with a smaller segment size). A set that does not
complete within `timeout` seconds of its first segment is dropped, and the UE gets a
REPT_DELY_FAILED report if it asked for one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import msgspec

from msgin5g.core.message import (
    Acceptance,
    AckStatus,
    Delivery,
    DeliveryKind,
    Message,
)
from msgin5g.core.segmentation import Part, Reassembly, check_part, with_payload
from msgin5g.ports import MessageStore, Outcome, UplinkSegment
from msgin5g.services.delivery import MessageService

log = logging.getLogger(__name__)

REASSEMBLY_TIMEOUT_CAUSE = "SEGMENTS_MISSING: the segmented message was not completed in time"

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Message).decode


class SegmentService:
    """Uplink reassembly and downlink segment recovery; start() and stop() bound its sweeper."""

    def __init__(
        self,
        store: MessageStore,
        service: MessageService,
        submit: Callable[[Sequence[Delivery]], None],
        *,
        clock: Callable[[], float],
        timeout: float = 60.0,
        sweep_interval: float = 1.0,
    ) -> None:
        self._store = store
        self._service = service
        self._submit = submit
        self._clock = clock
        self._timeout = timeout
        self._sweep_interval = sweep_interval
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="msgin5g-segment-sweeper")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None

    # uplink ------------------------------------------------------------------------------------

    async def accept_segment(self, message: Message) -> Acceptance:
        """Keep one segment of a UE-originated message; accept the message once complete.

        Returns the message's Acceptance when this segment completed it (or it was already
        accepted), else FORWARDED (the segment is stored). Durable when this returns.
        """
        segment = message.segment
        assert segment is not None
        assert segment.segment_id is not None
        problem = check_part(segment.number, segment.total)
        if problem is not None:
            return Acceptance(AckStatus.FAILED, f"INVALID_SEGMENT: {problem}")
        known = await self._store.find_message(message.originator, message.message_id)
        if known is not None:
            return known.acceptance  # a repeat after reassembly
        assert segment.number is not None
        kept = await self._store.add_uplink_segment(
            UplinkSegment(
                origin=message.originator,
                segment_id=segment.segment_id,
                number=segment.number,
                total=segment.total,
                last=bool(segment.last),
                body=_encode(message),
                expires_at=self._clock() + self._timeout,
            )
        )
        parts = [_decode(k.body) for k in kept]
        reassembly = Reassembly(
            Part(k.number, k.total, k.last, part.payload or "")
            for k, part in zip(kept, parts, strict=True)
        )
        if not reassembly.complete:
            return Acceptance(AckStatus.FORWARDED)
        first = parts[0]
        whole = with_payload(first, reassembly.payload(), None)
        acceptance = await self._service.accept(whole)
        await self._store.drop_uplink_segments(message.originator, segment.segment_id)
        log.debug(
            "segmented message reassembled",
            extra={"msgId": whole.message_id, "segments": len(parts)},
        )
        return acceptance

    # downlink ----------------------------------------------------------------------------------

    async def recover(self, segment_id: str, numbers: Sequence[int]) -> int:
        """SEGREC: queue the kept segments `numbers` of `segment_id` again; returns how many."""
        created = await self._store.resend_segments(segment_id, numbers)
        if created:
            self._submit(created)
        return len(created)

    async def confirm(self, segment_id: str) -> int:
        """SEGCONFIR: the UE has every segment of `segment_id`; drop the kept copies."""
        return await self._store.forget_segments(segment_id)

    # expiry ------------------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Drop reassemblies that ran out of time; returns how many sets were dropped."""
        expired = await self._store.expired_uplink_segments(self._clock())
        follow_ups = []
        for kept in expired:
            message = _decode(kept.body)
            await self._store.drop_uplink_segments(kept.origin, kept.segment_id)
            if await self._store.find_message(message.originator, message.message_id):
                continue  # reassembled before a crash; only the clean-up was missing
            log.info(
                "reassembly timed out",
                extra={"msgId": message.message_id, "originator": message.originator.key},
            )
            report = self._service.failure_report(
                Delivery(
                    delivery_id=0,
                    kind=DeliveryKind.MESSAGE,
                    recipient=message.recipient,
                    body=b"",
                    priority=message.priority,
                    expires_at=kept.expires_at,
                    origin=message.originator,
                    message_id=message.message_id,
                    wants_report=message.wants_report,
                ),
                Outcome.FAILED,
                REASSEMBLY_TIMEOUT_CAUSE,
            )
            if report is not None:
                follow_ups.append(report)
        if follow_ups:
            self._submit(await self._store.add_deliveries(follow_ups))
        return len(expired)

    async def _sweep_loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("segment sweep failed")
            await asyncio.sleep(self._sweep_interval)
