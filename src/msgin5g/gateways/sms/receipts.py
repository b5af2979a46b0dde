# SPDX-License-Identifier: Apache-2.0
"""SMPP delivery receipts, sans-IO.

Parses the receipt an SMSC sends in a deliver_sm with esm_class bits 2-5 = 0001 (SMPP 3.4
5.2.12): the de-facto text format of SMPP 3.4 Appendix B

    id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm
    stat:DDDDDDD err:E text: ...

and the optional parameters receipted_message_id (0x001E, 5.3.2.12) and message_state (0x0427,
5.3.2.35), which take precedence over the text when present. Maps the final state to the
MSGin5G outcome: DELIVRD is success; EXPIRED, DELETED, UNDELIV, REJECTD and UNKNOWN are failure
with the state name as failureCause; ACCEPTD and ENROUTE are intermediate. Also formats receipts
for the SMSC simulator.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

__all__ = [
    "ESM_CLASS_RECEIPT",
    "MESSAGE_STATES",
    "TAG_MESSAGE_STATE",
    "TAG_RECEIPTED_MESSAGE_ID",
    "DeliveryReceipt",
    "ReceiptOutcome",
    "ReceiptParseError",
    "format_receipt",
    "is_receipt",
    "parse_receipt",
]

logger = logging.getLogger(__name__)

ESM_CLASS_RECEIPT: Final = 0x04
TAG_RECEIPTED_MESSAGE_ID: Final = 0x001E
TAG_MESSAGE_STATE: Final = 0x0427

MESSAGE_STATES: Final[Mapping[int, str]] = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}
"""SMPP 3.4 5.2.28 message_state values to the receipt ``stat`` names."""
_STATE_CODES: Final = {name: code for code, name in MESSAGE_STATES.items()}
# Long spellings some SMSCs put in stat:.
_ALIASES: Final = {
    "DELIVERED": "DELIVRD",
    "UNDELIVERABLE": "UNDELIV",
    "ACCEPTED": "ACCEPTD",
    "REJECTED": "REJECTD",
}


class ReceiptOutcome(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    INTERMEDIATE = "intermediate"


_OUTCOMES: Final = {
    "DELIVRD": ReceiptOutcome.SUCCESS,
    "ENROUTE": ReceiptOutcome.INTERMEDIATE,
    "ACCEPTD": ReceiptOutcome.INTERMEDIATE,
}


class ReceiptParseError(ValueError):
    """The deliver_sm carries neither a receipt text nor the receipt TLVs."""


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """A parsed delivery receipt. Dates are naive (SMSC local time) or None."""

    message_id: str
    state: str
    submitted: int | None = None
    delivered: int | None = None
    submit_date: datetime | None = None
    done_date: datetime | None = None
    error: str | None = None
    text: str = ""

    @property
    def outcome(self) -> ReceiptOutcome:
        return _OUTCOMES.get(self.state, ReceiptOutcome.FAILURE)

    @property
    def failure_cause(self) -> str | None:
        """The state name when the message failed, else None."""
        return self.state if self.outcome is ReceiptOutcome.FAILURE else None


_FIELD = re.compile(
    r"(?P<key>id|sub|dlvrd|submit date|done date|stat|err)\s*:\s*(?P<value>\S*)", re.IGNORECASE
)
_TEXT = re.compile(r"\btext\s*:", re.IGNORECASE)


def is_receipt(esm_class: int) -> bool:
    """True for an SMSC delivery receipt (esm_class message type 0001, SMPP 3.4 5.2.12)."""
    return (esm_class & 0x3C) == ESM_CLASS_RECEIPT


def _parse_date(value: str) -> datetime | None:
    digits = value.strip()
    for fmt, size in (("%y%m%d%H%M%S", 12), ("%y%m%d%H%M", 10)):
        if len(digits) == size and digits.isdigit():
            try:
                return datetime.strptime(digits, fmt)
            except ValueError:
                return None
    return None


def _parse_int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _normalise_state(value: str) -> str:
    upper = value.strip().upper()
    return _ALIASES.get(upper, upper) or "UNKNOWN"


def parse_receipt(text: str, tlvs: Mapping[int, bytes] | None = None) -> DeliveryReceipt:
    """Parse a receipt from the short_message text and the deliver_sm TLVs.

    Args:
        text: the short_message decoded as text (receipts are ASCII in practice).
        tlvs: optional parameters by tag; receipted_message_id and message_state, when present,
            override the ``id:`` and ``stat:`` of the text.

    Raises:
        ReceiptParseError: no message id or no state can be found.
    """
    text_field = _TEXT.search(text)
    head, rest = (
        (text[: text_field.start()], text[text_field.end() :]) if text_field else (text, "")
    )
    fields: dict[str, str] = {}
    for m in _FIELD.finditer(head):
        fields.setdefault(m.group("key").lower(), m.group("value"))
    message_id = fields.get("id")
    state = fields.get("stat")
    if tlvs:
        raw_id = tlvs.get(TAG_RECEIPTED_MESSAGE_ID)
        if raw_id:
            message_id = raw_id.rstrip(b"\x00").decode("ascii", errors="replace")
        raw_state = tlvs.get(TAG_MESSAGE_STATE)
        if raw_state:
            state = MESSAGE_STATES.get(raw_state[0], "UNKNOWN")
    if not message_id:
        raise ReceiptParseError(f"no message id in receipt {text[:80]!r}")
    if not state:
        raise ReceiptParseError(f"no stat in receipt {text[:80]!r}")
    return DeliveryReceipt(
        message_id=message_id,
        state=_normalise_state(state),
        submitted=_parse_int(fields.get("sub")),
        delivered=_parse_int(fields.get("dlvrd")),
        submit_date=_parse_date(fields.get("submit date", "")),
        done_date=_parse_date(fields.get("done date", "")),
        error=fields.get("err"),
        text=rest.strip(),
    )


def format_receipt(
    message_id: str,
    state: str,
    *,
    submit_date: datetime,
    done_date: datetime,
    error: int = 0,
    text: str = "",
) -> tuple[str, dict[int, bytes]]:
    """Build the receipt text and its receipted_message_id/message_state TLVs (tag -> value)."""
    delivered = 1 if state == "DELIVRD" else 0
    body = (
        f"id:{message_id} sub:001 dlvrd:{delivered:03d} "
        f"submit date:{submit_date:%y%m%d%H%M} done date:{done_date:%y%m%d%H%M} "
        f"stat:{state} err:{error:03d} text:{text[:20]}"
    )
    tlvs = {
        TAG_RECEIPTED_MESSAGE_ID: message_id.encode("ascii") + b"\x00",
        TAG_MESSAGE_STATE: bytes((_STATE_CODES.get(state, 7),)),
    }
    return body, tlvs
