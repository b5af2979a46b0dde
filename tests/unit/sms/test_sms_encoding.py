# SPDX-License-Identifier: Apache-2.0
"""GSM 7-bit (TS 23.038) and UCS-2 encoding, concatenation UDH (TS 23.040), sans-IO."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from msgin5g.gateways.sms.concat import Reassembler
from msgin5g.gateways.sms.encoding import (
    DATA_CODING_DEFAULT,
    DATA_CODING_UCS2,
    ESM_CLASS_UDHI,
    ConcatInfo,
    SmsEncodingError,
    alphabet_of,
    decode_payload,
    gsm7_decode,
    gsm7_encode,
    is_gsm7,
    pack_septets,
    parse_user_data,
    split_text,
    unpack_septets,
)

GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = "\f^{}\\[~]|€"
gsm_text = st.text(alphabet=GSM_BASIC + GSM_EXTENSION, max_size=700)
any_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=400)
mixed_text = st.one_of(gsm_text, any_text, st.text(alphabet="a€😀", max_size=300))


def roundtrip(text: str, *, packed: bool = False) -> str:
    parts = split_text(text, reference=42, packed=packed)
    reassembler = Reassembler()
    result = None
    for part in parts:
        ud = parse_user_data(part.short_message, part.esm_class, part.data_coding, packed=packed)
        result = reassembler.add("4911", "gw", ud, now=0.0)
    assert result is not None
    assert len(reassembler) == 0
    return result.text


@pytest.mark.parametrize(
    ("text", "septets"),
    [
        ("A", b"\x41"),
        ("@", b"\x00"),
        ("€", b"\x1b\x65"),
        ("[x]", b"\x1b\x3cx\x1b\x3e"),
        ("{|}~^\\", b"\x1b\x28\x1b\x40\x1b\x29\x1b\x3d\x1b\x14\x1b\x2f"),
        ("Ünïcode", None),  # ï is not in the default alphabet
    ],
)
def test_gsm7_encode_table(text: str, septets: bytes | None) -> None:
    if septets is None:
        assert not is_gsm7(text)
        with pytest.raises(SmsEncodingError):
            gsm7_encode(text)
    else:
        assert is_gsm7(text)
        assert gsm7_encode(text) == septets
        assert gsm7_decode(septets) == text


def test_pack_known_vector() -> None:
    # TS 23.038 style example: "hellohello" packs to 9 octets
    assert pack_septets(gsm7_encode("hellohello")).hex() == "e8329bfd4697d9ec37"
    assert gsm7_decode(unpack_septets(bytes.fromhex("e8329bfd4697d9ec37"))) == "hellohello"


def test_pack_seven_characters_pads_with_cr() -> None:
    packed = pack_septets(gsm7_encode("1234567"))
    assert len(packed) == 7
    assert packed[-1] >> 1 == 0x0D  # CR in the 7 spare bits, not a phantom '@'
    assert gsm7_decode(unpack_septets(packed)) == "1234567"


def test_unknown_escape_and_trailing_escape_decode_leniently() -> None:
    assert gsm7_decode(b"\x1b\x41B") == "AB"
    assert gsm7_decode(b"A\x1b") == "A"


@given(st.binary(max_size=300).map(lambda b: bytes(x & 0x7F for x in b)), st.integers(0, 6))
def test_pack_unpack_roundtrip_with_count(septets: bytes, fill: int) -> None:
    assert unpack_septets(pack_septets(septets, fill), fill, count=len(septets)) == septets


@pytest.mark.parametrize(
    ("text", "parts", "coding"),
    [
        ("", 1, DATA_CODING_DEFAULT),
        ("a" * 160, 1, DATA_CODING_DEFAULT),
        ("a" * 161, 2, DATA_CODING_DEFAULT),
        ("€" * 80, 1, DATA_CODING_DEFAULT),  # 160 septets
        ("€" * 81, 2, DATA_CODING_DEFAULT),
        ("a" * 306, 2, DATA_CODING_DEFAULT),
        ("a" * 307, 3, DATA_CODING_DEFAULT),
        ("ж" * 70, 1, DATA_CODING_UCS2),
        ("ж" * 71, 2, DATA_CODING_UCS2),
        ("😀" * 35, 1, DATA_CODING_UCS2),  # 70 UTF-16 code units
        ("😀" * 36, 2, DATA_CODING_UCS2),
    ],
)
def test_split_limits(text: str, parts: int, coding: int) -> None:
    result = split_text(text)
    assert len(result) == parts
    assert {p.data_coding for p in result} == {coding}
    if parts == 1:
        assert result[0].esm_class == 0
        assert result[0].concat is None
    else:
        assert all(p.esm_class == ESM_CLASS_UDHI for p in result)
        assert [p.concat for p in result] == [ConcatInfo(0, parts, i) for i in range(1, parts + 1)]


def test_concat_udh_layout() -> None:
    parts = split_text("x" * 200, reference=0x1A3)
    assert parts[0].short_message[:6] == bytes.fromhex("050003a30201")  # 8-bit reference
    assert parts[1].short_message[:6] == bytes.fromhex("050003a30202")
    assert len(parts[0].short_message) == 6 + 153  # unpacked: one septet per octet


def test_escape_pair_not_split() -> None:
    text = "a" * 152 + "€" + "b" * 10  # ESC would fall on septet 153
    parts = split_text(text)
    assert parts[0].short_message[6:] == b"a" * 152
    assert parts[1].short_message[6:] == b"\x1b\x65" + b"b" * 10


def test_surrogate_pair_not_split() -> None:
    text = "a" * 66 + "😀" + "b" * 10
    parts = split_text(text)
    first = parts[0].short_message[6:]
    assert len(first) == 66 * 2
    assert parts[1].short_message[6:].decode("utf-16-be").startswith("😀")


def test_force_ucs2_and_lone_surrogate() -> None:
    assert split_text("abc", force_ucs2=True)[0].short_message == "abc".encode("utf-16-be")
    with pytest.raises(SmsEncodingError):
        split_text("\ud800")


def test_too_many_parts() -> None:
    with pytest.raises(SmsEncodingError):
        split_text("a" * (153 * 255 + 1))


@given(mixed_text)
@example("a" * 152 + "€")
@example("😀" * 34 + "a" + "😀")
def test_any_text_roundtrips_unpacked(text: str) -> None:
    assert roundtrip(text) == text


@given(gsm_text.filter(lambda t: "\r" not in t))
@example("1234567")
@example("a" * 152 + "€")
def test_gsm_text_roundtrips_packed(text: str) -> None:
    # A CR that ends exactly on an octet boundary comes back as CR CR (TS 23.038 6.1.2.3.1),
    # hence no CR in this property; see test_packed_cr_rule.
    assert roundtrip(text, packed=True) == text


def test_packed_cr_rule() -> None:
    assert roundtrip("1234567\r", packed=True) == "1234567\r\r"
    assert roundtrip("123456\r", packed=True) == "123456\r"


@given(mixed_text, st.booleans())
def test_every_part_fits_one_sms(text: str, packed: bool) -> None:
    for part in split_text(text, packed=packed):
        assert part.air_octets <= 140
        if packed or part.data_coding == DATA_CODING_UCS2:
            assert len(part.short_message) <= 140
        else:
            # unpacked septets: the SMSC packs them into <= 140 octets
            udh = 6 if part.concat else 0
            assert len(part.short_message) - udh <= (153 if udh else 160)


@pytest.mark.parametrize(
    ("data_coding", "alphabet"),
    [
        (0x00, "gsm7"),
        (0x01, "ascii"),
        (0x02, "binary"),
        (0x03, "latin1"),
        (0x04, "binary"),
        (0x08, "ucs2"),
        (0x11, "gsm7"),
        (0x18, "ucs2"),
        (0xF0, "gsm7"),
        (0xF4, "binary"),
        (0xE0, "ucs2"),
        (0x05, "latin1"),
    ],
)
def test_alphabet_of(data_coding: int, alphabet: str) -> None:
    assert alphabet_of(data_coding) == alphabet


def test_decode_payload_other_codings() -> None:
    assert decode_payload(b"caf\xe9", 0x03) == "café"
    assert decode_payload(b"abc", 0x01) == "abc"
    assert decode_payload(b"\x00\xff", 0x04) == "AP8="


def test_parse_user_data_16bit_reference_and_bad_udh() -> None:
    ud = parse_user_data(bytes.fromhex("0608041234030268690a"), ESM_CLASS_UDHI, 0)
    assert ud.concat == ConcatInfo(0x1234, 3, 2)
    assert ud.payload == b"hi\n"
    invalid = parse_user_data(bytes.fromhex("050003010300") + b"x", ESM_CLASS_UDHI, 0)
    assert invalid.concat is None  # sequence 0 is invalid: ignored
    with pytest.raises(SmsEncodingError):
        parse_user_data(b"\x09\x00\x03", ESM_CLASS_UDHI, 0)
