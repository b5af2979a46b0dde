# SPDX-License-Identifier: Apache-2.0
"""core.segmentation: cutting payloads at UTF-8 boundaries and reassembling them (DESIGN 2.4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msgin5g.core.message import AS, UE, Address, Message, Segment
from msgin5g.core.segmentation import (
    Part,
    Reassembly,
    check_part,
    segment_message,
    split_payload,
)


def _message(payload: str | None, segment: Segment | None = None) -> Message:
    return Message(
        originator=Address(AS, "as-1"),
        recipient=Address(UE, "ue-1"),
        message_id="m-1",
        store_and_forward=True,
        payload=payload,
        wants_report=True,
        segment=segment,
    )


@given(st.text(max_size=3000), st.integers(min_value=16, max_value=600))
def test_split_round_trips_and_respects_the_size(payload: str, size: int) -> None:
    parts = split_payload(payload, size)
    assert "".join(parts) == payload
    assert all(len(p.encode()) <= size for p in parts)
    assert all(parts) or parts == [""]


def test_split_never_cuts_a_character() -> None:
    payload = "é" * 10 + "✓" * 10 + "😀" * 10  # 2-, 3- and 4-octet characters
    parts = split_payload(payload, 17)
    assert "".join(parts) == payload
    # Only the last part may be shorter than the size minus one character (3 octets).
    assert all(14 <= len(p.encode()) <= 17 for p in parts[:-1])


def test_split_refuses_tiny_sizes() -> None:
    with pytest.raises(ValueError, match="at least"):
        split_payload("abc", 3)


def test_segment_message_cuts_only_when_needed() -> None:
    small = _message("x" * 2048)
    assert segment_message(small, 2048, lambda: pytest.fail("no id needed")) == [small]
    already = _message("x" * 5000, Segment("s", 1, 2, None))
    assert segment_message(already, 2048, lambda: "new") == [already]
    parts = segment_message(_message("x" * 5000), 2048, lambda: "seg-1")
    assert [p.segment for p in parts] == [
        Segment("seg-1", 1, 3, None),
        Segment("seg-1", 2, 3, None),
        Segment("seg-1", 3, 3, True),
    ]
    assert "".join(p.payload or "" for p in parts) == "x" * 5000
    assert {p.message_id for p in parts} == {"m-1"}


@pytest.mark.parametrize(
    ("parts", "complete", "missing"),
    [
        ([Part(1, 3, False, "a"), Part(3, 3, True, "c")], False, [2]),
        ([Part(2, None, False, "b")], False, [1]),
        ([Part(1, None, False, "a"), Part(2, None, True, "b")], True, []),
        ([Part(2, 2, True, "b"), Part(1, 2, False, "a"), Part(1, 2, False, "dup")], True, []),
        ([Part(1, None, False, "a")], False, []),
    ],
)
def test_reassembly(parts: list[Part], complete: bool, missing: list[int]) -> None:
    reassembly = Reassembly(parts)
    assert reassembly.complete is complete
    assert reassembly.missing() == missing
    if complete:
        assert reassembly.payload() == "ab"
    else:
        with pytest.raises(ValueError, match="missing"):
            reassembly.payload()


@given(st.text(min_size=1, max_size=2000), st.integers(min_value=16, max_value=300), st.randoms())
def test_reassembly_of_shuffled_segments(payload: str, size: int, rnd: object) -> None:
    import random

    assert isinstance(rnd, random.Random)
    cut = segment_message(_message(payload), size, lambda: "s")
    received = [
        Part(m.segment.number or 0, m.segment.total, bool(m.segment.last), m.payload or "")
        if m.segment
        else Part(1, 1, True, m.payload or "")
        for m in cut
    ]
    rnd.shuffle(received)
    assert Reassembly(received).payload() == payload


@pytest.mark.parametrize(
    ("number", "total", "ok"),
    [(1, 1, True), (2, None, True), (0, 2, False), (None, 2, False), (3, 2, False)],
)
def test_check_part(number: int | None, total: int | None, ok: bool) -> None:
    assert (check_part(number, total) is None) is ok
