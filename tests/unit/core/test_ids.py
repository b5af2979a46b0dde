# SPDX-License-Identifier: Apache-2.0
"""Time-ordered msgIds (ADR 0024): RFC 9562 UUIDv7 strings that ascend within a process."""

from __future__ import annotations

import time
import uuid

import pytest

from msgin5g.core import ids
from msgin5g.core.ids import new_message_id


def _ms(message_id: str) -> int:
    return uuid.UUID(message_id).int >> 80


def test_a_canonical_uuidv7_stamped_with_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    message_id = new_message_id()
    after = time.time_ns() // 1_000_000
    parsed = uuid.UUID(message_id)
    assert str(parsed) == message_id  # lowercase, hyphenated, 36 characters
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert before <= _ms(message_id) <= after + 1


def test_ids_ascend_as_text_and_never_repeat() -> None:
    made = [new_message_id() for _ in range(20_000)]  # many share a millisecond
    assert made == sorted(made)
    assert len(set(made)) == len(made)


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A clock the test sets (ns); module state starts afresh."""
    now = [1_800_000_000_000 * 1_000_000]
    monkeypatch.setattr(ids.time, "time_ns", lambda: now[0])
    monkeypatch.setattr(ids, "_last_ms", 0)
    monkeypatch.setattr(ids, "_counter", 0)
    return now


def test_ids_ascend_when_the_clock_steps_back(frozen_clock: list[int]) -> None:
    first = new_message_id()
    frozen_clock[0] -= 5_000 * 1_000_000  # NTP steps the clock back by 5 s
    second = new_message_id()
    assert second > first
    assert _ms(second) == _ms(first)  # held at the last millisecond, not the earlier time
    frozen_clock[0] += 10_000 * 1_000_000
    third = new_message_id()
    assert third > second
    assert _ms(third) == frozen_clock[0] // 1_000_000


def test_more_ids_than_the_counter_holds_in_one_millisecond(frozen_clock: list[int]) -> None:
    made = [new_message_id() for _ in range(5_000)]  # the 12-bit counter holds 4,096
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    start = frozen_clock[0] // 1_000_000
    assert _ms(made[0]) == start
    assert start < _ms(made[-1]) <= start + 3  # ran ahead of the frozen clock, briefly
