# SPDX-License-Identifier: Apache-2.0
"""CBS page segmentation (TS 23.041 9.4.1.2, TS 23.038), sans-IO."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from msgin5g.gateways.cbs.pages import (
    DCS_GSM7,
    DCS_UCS2,
    GSM7_PAGE_CHARS,
    MAX_PAGES,
    PAGE_OCTETS,
    UCS2_PAGE_CHARS,
    CbsEncodingError,
    CbsMessage,
    decode,
    encode,
)
from msgin5g.gateways.sms.encoding import is_gsm7

GSM_CHARS = (
    "@£$¥èéùìòÇ\nØøÅåΔ_ΦΓΛΩΠΨΣΘÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    "^{}\\[~]|€"  # the extension table: two septets each
)
gsm_text = st.text(alphabet=GSM_CHARS, max_size=GSM7_PAGE_CHARS * MAX_PAGES // 2)
ucs2_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\r"),
    max_size=UCS2_PAGE_CHARS * MAX_PAGES // 2 - 1,
)


@given(gsm_text)
@example("")
@example("x" * GSM7_PAGE_CHARS)
@example("x" * (GSM7_PAGE_CHARS - 1) + "€")  # an escape pair across the page boundary
def test_gsm7_round_trip(text: str) -> None:
    message = encode(text)
    assert message.dcs == DCS_GSM7
    assert all(len(page) == PAGE_OCTETS for page in message.pages)
    assert 1 <= len(message.pages) <= MAX_PAGES
    assert decode(message.dcs, message.pages) == text


@given(ucs2_text.filter(lambda t: not is_gsm7(t)))
@example("привет 😀" * 20)
@example("я" * (UCS2_PAGE_CHARS - 1) + "😀")  # a surrogate pair across the page boundary
def test_ucs2_round_trip(text: str) -> None:
    message = encode(text)
    assert message.dcs == DCS_UCS2
    assert all(len(page) == PAGE_OCTETS for page in message.pages)
    assert decode(message.dcs, message.pages) == text


def test_page_capacity() -> None:
    assert len(encode("a" * 93).pages) == 1
    assert len(encode("a" * 94).pages) == 2
    assert len(encode("я" * 41).pages) == 1
    assert len(encode("я" * 42).pages) == 2
    assert len(encode("€" * 46).pages) == 1  # 92 septets
    assert len(encode("€" * 47).pages) == 2
    assert len(encode("a" * 93 * MAX_PAGES).pages) == MAX_PAGES


def test_escape_pair_never_split() -> None:
    message = encode("a" * 92 + "€b")
    assert len(message.pages) == 2
    assert decode(message.dcs, message.pages[1:]) == "€b"


def test_too_long() -> None:
    with pytest.raises(CbsEncodingError, match="at most 15"):
        encode("a" * (93 * MAX_PAGES + 1))
    with pytest.raises(CbsEncodingError):
        encode("я" * (41 * MAX_PAGES + 1))


def test_gsm7_padding_is_cr() -> None:
    page = encode("A").pages[0]
    # 'A' (0x41) then CR septets (0x0D) packed LSB first
    assert page[:2] == bytes([0x41 | (0x0D << 7) & 0xFF, 0x0D >> 1 | (0x0D << 6) & 0xFF])


def test_decode_rejects() -> None:
    with pytest.raises(CbsEncodingError, match="unsupported"):
        decode(0x11, [b"\x00" * 82])
    with pytest.raises(CbsEncodingError, match="odd"):
        decode(DCS_UCS2, [b"\x00" * 81])


def test_cr_inside_a_page_survives_but_a_trailing_one_is_padding() -> None:
    for text in ("line 1\rline 2", "é\r€ я\rя"):
        message = encode(text)
        assert decode(message.dcs, message.pages) == text
    assert decode(*_parts(encode("ends in CR\r"))) == "ends in CR"


def _parts(message: CbsMessage) -> tuple[int, tuple[bytes, ...]]:
    return message.dcs, message.pages
