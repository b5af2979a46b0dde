# SPDX-License-Identifier: Apache-2.0
"""Segmentation and reassembly of message payloads (TS 23.554 8.5, DESIGN 2.4).

Pure functions: `split` cuts a payload into parts of at most `max_size` octets of UTF-8 (never
inside a character), `Reassembly` tells from the parts received so far whether a segmented
message is complete and which parts are missing. Segment parameters follow DESIGN 2.4: one
`segId` shared by all segments, `segNumb` from 1, `totalSegCount` on every segment (TS 23.554
requires it on the first; carrying it on all lets a receiver size its buffer from any part),
`lastSegFlag` true on the last only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from msgin5g.core.message import Message, Segment

DEFAULT_MAX_SEGMENT_SIZE = 2048
"""Octets of payload per segment when the recipient announced no maxSegSize (TS 22.262)."""

MIN_SEGMENT_SIZE = 16
"""A maxSegSize below this is raised to it: each segment must carry at least one character."""


def payload_size(payload: str | None) -> int:
    """Octets of `payload` on the wire (UTF-8)."""
    return len(payload.encode()) if payload else 0


def split_payload(payload: str, max_size: int) -> list[str]:
    """Cut `payload` into parts of at most `max_size` UTF-8 octets, at character boundaries.

    Raises:
        ValueError: `max_size` is smaller than MIN_SEGMENT_SIZE.
    """
    if max_size < MIN_SEGMENT_SIZE:
        raise ValueError(f"max_size must be at least {MIN_SEGMENT_SIZE}")
    data = payload.encode()
    parts: list[str] = []
    start = 0
    while start < len(data):
        end = min(start + max_size, len(data))
        # Step back over UTF-8 continuation bytes (10xxxxxx) so no character is cut.
        while end < len(data) and data[end] & 0xC0 == 0x80:
            end -= 1
        parts.append(data[start:end].decode())
        start = end
    return parts or [""]


def segment_message(
    message: Message, max_size: int, new_segment_id: Callable[[], str]
) -> list[Message]:
    """`message` as one message per segment if its payload exceeds `max_size` octets, else
    `[message]`. A message that is already a segment is never cut again; `new_segment_id` is
    called once, only when the message is cut."""
    if message.segment is not None or payload_size(message.payload) <= max_size:
        return [message]
    assert message.payload is not None
    parts = split_payload(message.payload, max_size)
    total = len(parts)
    segment_id = new_segment_id()
    return [
        with_payload(
            message, part, Segment(segment_id, number, total, True if number == total else None)
        )
        for number, part in enumerate(parts, start=1)
    ]


def with_payload(message: Message, payload: str | None, segment: Segment | None) -> Message:
    """A copy of `message` with another payload and segment parameters."""
    return Message(
        originator=message.originator,
        recipient=message.recipient,
        message_id=message.message_id,
        store_and_forward=message.store_and_forward,
        app_id=message.app_id,
        payload=payload,
        wants_report=message.wants_report,
        priority=message.priority,
        segment=segment,
        expires_at=message.expires_at,
        latency_ms=message.latency_ms,
    )


@dataclass(frozen=True, slots=True)
class Part:
    """One received segment: its number, the count and last flag it announced, its payload."""

    number: int
    total: int | None
    last: bool
    payload: str


class Reassembly:
    """What the parts of one segmented message received so far add up to."""

    __slots__ = ("_parts",)

    def __init__(self, parts: Iterable[Part]) -> None:
        self._parts: dict[int, Part] = {}
        for part in parts:
            self._parts.setdefault(part.number, part)

    @property
    def total(self) -> int | None:
        """The number of segments, once any part announced it or the last one arrived."""
        for part in self._parts.values():
            if part.total:
                return part.total
        for part in self._parts.values():
            if part.last:
                return part.number
        return None

    def missing(self) -> list[int]:
        """Segment numbers not received yet, up to the highest known (total or highest seen)."""
        total = self.total
        highest = total if total is not None else max(self._parts, default=0)
        return [n for n in range(1, highest + 1) if n not in self._parts]

    @property
    def complete(self) -> bool:
        return self.total is not None and not self.missing()

    def payload(self) -> str:
        """The reassembled payload.

        Raises:
            ValueError: the message is not complete.
        """
        if not self.complete:
            raise ValueError(f"segments missing: {self.missing()}")
        total = self.total
        assert total is not None
        return "".join(self._parts[n].payload for n in range(1, total + 1))


def check_part(number: int | None, total: int | None) -> str | None:
    """Why segment parameters are unusable, or None when they are fine."""
    if number is None or number < 1:
        return "segParams/segNumb must be an integer from 1"
    if total is not None and (total < 1 or number > total):
        return "segParams/totalSegCount must be at least segNumb"
    return None
