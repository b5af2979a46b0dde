# SPDX-License-Identifier: Apache-2.0
"""Reassembly of concatenated MO SMS (TS 23.040 9.2.3.24.1), sans-IO with explicit time."""

from __future__ import annotations

from msgin5g.gateways.sms.concat import IncompleteMessage, Reassembler
from msgin5g.gateways.sms.encoding import UserData, parse_user_data, split_text

TEXT = "The quick brown fox jumps over the lazy dog. " * 8


def parts(text: str = TEXT, reference: int = 7) -> list[UserData]:
    return [
        parse_user_data(p.short_message, p.esm_class, p.data_coding)
        for p in split_text(text, reference=reference)
    ]


def test_out_of_order_and_duplicate_parts() -> None:
    r = Reassembler()
    p = parts()
    assert len(p) == 3
    assert r.add("4911", "gw", p[2], 0.0) is None
    assert r.add("4911", "gw", p[0], 0.1) is None
    assert r.add("4911", "gw", p[0], 0.2) is None  # duplicate
    done = r.add("4911", "gw", p[1], 0.3)
    assert done is not None
    assert done.text == TEXT
    assert done.total == 3
    assert done.reference == 7
    assert len(r) == 0


def test_same_reference_from_two_originators_kept_apart() -> None:
    r = Reassembler()
    a, b = parts("A" * 200), parts("B" * 200)
    assert r.add("4911", "gw", a[0], 0) is None
    assert r.add("4922", "gw", b[0], 0) is None
    done_b = r.add("4922", "gw", b[1], 0)
    done_a = r.add("4911", "gw", a[1], 0)
    assert done_a is not None
    assert done_b is not None
    assert (done_a.text, done_b.text) == ("A" * 200, "B" * 200)


def test_single_message_is_complete_at_once() -> None:
    done = Reassembler().add("4911", "gw", parts("hi")[0], 0)
    assert done is not None
    assert done.text == "hi"


def test_timeout_reports_incomplete() -> None:
    r = Reassembler(timeout=10)
    p = parts()
    r.add("4911", "gw", p[0], 100.0)
    r.add("4911", "gw", p[2], 105.0)
    assert r.expire(109.9) == []
    assert r.expire(110.0) == [IncompleteMessage("4911", "gw", 7, 3, (1, 3))]
    assert len(r) == 0
    # a late part starts a new, separate reassembly
    assert r.add("4911", "gw", p[1], 111.0) is None


def test_eviction_when_full() -> None:
    r = Reassembler(max_pending=1)
    r.add("4911", "gw", parts(reference=1)[0], 1.0)
    r.add("4911", "gw", parts(reference=2)[0], 2.0)
    assert len(r) == 1
    assert [m.reference for m in r.expire(2.0)] == [1]
