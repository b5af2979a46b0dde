# SPDX-License-Identifier: Apache-2.0
"""SMPP 3.4 Appendix B delivery receipts and the receipt TLVs (5.3.2.12, 5.3.2.35)."""

from __future__ import annotations

from datetime import datetime

import pytest

from msgin5g.gateways.sms.receipts import (
    TAG_MESSAGE_STATE,
    TAG_RECEIPTED_MESSAGE_ID,
    DeliveryReceipt,
    ReceiptOutcome,
    ReceiptParseError,
    format_receipt,
    is_receipt,
    parse_receipt,
)

STANDARD = (
    "id:0123456789 sub:001 dlvrd:001 submit date:2401021530 done date:2401021531 "
    "stat:DELIVRD err:000 text:Hello world"
)


def test_parse_standard_text() -> None:
    r = parse_receipt(STANDARD)
    assert r == DeliveryReceipt(
        message_id="0123456789",
        state="DELIVRD",
        submitted=1,
        delivered=1,
        submit_date=datetime(2024, 1, 2, 15, 30),
        done_date=datetime(2024, 1, 2, 15, 31),
        error="000",
        text="Hello world",
    )
    assert r.outcome is ReceiptOutcome.SUCCESS
    assert r.failure_cause is None


@pytest.mark.parametrize(
    ("stat", "outcome", "cause"),
    [
        ("DELIVRD", ReceiptOutcome.SUCCESS, None),
        ("EXPIRED", ReceiptOutcome.FAILURE, "EXPIRED"),
        ("DELETED", ReceiptOutcome.FAILURE, "DELETED"),
        ("UNDELIV", ReceiptOutcome.FAILURE, "UNDELIV"),
        ("REJECTD", ReceiptOutcome.FAILURE, "REJECTD"),
        ("UNKNOWN", ReceiptOutcome.FAILURE, "UNKNOWN"),
        ("ACCEPTD", ReceiptOutcome.INTERMEDIATE, None),
        ("ENROUTE", ReceiptOutcome.INTERMEDIATE, None),
        ("delivered", ReceiptOutcome.SUCCESS, None),
        ("UNDELIVERABLE", ReceiptOutcome.FAILURE, "UNDELIV"),
        ("WEIRD", ReceiptOutcome.FAILURE, "WEIRD"),
    ],
)
def test_state_mapping(stat: str, outcome: ReceiptOutcome, cause: str | None) -> None:
    r = parse_receipt(STANDARD.replace("DELIVRD", stat))
    assert r.outcome is outcome
    assert r.failure_cause == cause


@pytest.mark.parametrize(
    "text",
    [
        "id:abc-1 submit date:2401021530 done date:2401021531 stat:UNDELIV err:001",
        "ID:abc-1 SUB:001 DLVRD:000 SUBMIT DATE:240102153000 DONE DATE:bad STAT:UNDELIV ERR:1",
        "id:abc-1 stat:UNDELIV text:stat:DELIVRD in the text is ignored",
    ],
)
def test_variants(text: str) -> None:
    r = parse_receipt(text)
    assert r.message_id == "abc-1"
    assert r.state == "UNDELIV"


def test_tlvs_override_text() -> None:
    tlvs = {TAG_RECEIPTED_MESSAGE_ID: b"ff01\x00", TAG_MESSAGE_STATE: b"\x03"}
    r = parse_receipt(STANDARD, tlvs)
    assert (r.message_id, r.state, r.failure_cause) == ("ff01", "EXPIRED", "EXPIRED")
    only_tlvs = parse_receipt("", {TAG_RECEIPTED_MESSAGE_ID: b"x\x00", TAG_MESSAGE_STATE: b"\x02"})
    assert only_tlvs.outcome is ReceiptOutcome.SUCCESS


@pytest.mark.parametrize("text", ["", "hello", "id:123 sub:001", "stat:DELIVRD"])
def test_not_a_receipt(text: str) -> None:
    with pytest.raises(ReceiptParseError):
        parse_receipt(text)


def test_format_then_parse() -> None:
    when = datetime(2025, 3, 4, 5, 6)
    body, tlvs = format_receipt(
        "42", "UNDELIV", submit_date=when, done_date=when, error=1, text="hi"
    )
    r = parse_receipt(body, tlvs)
    assert (r.message_id, r.state, r.delivered, r.error, r.text) == (
        "42",
        "UNDELIV",
        0,
        "001",
        "hi",
    )
    assert tlvs[TAG_MESSAGE_STATE] == b"\x05"


@pytest.mark.parametrize(
    ("esm_class", "expected"), [(0x04, True), (0x44, True), (0x00, False), (0x08, False)]
)
def test_is_receipt(esm_class: int, expected: bool) -> None:
    assert is_receipt(esm_class) is expected
