# SPDX-License-Identifier: Apache-2.0
"""SMS text encoding and concatenation, sans-IO.

Implements the parts of 3GPP TS 23.038 (GSM 7-bit default alphabet and its extension table,
septet packing, UCS-2) and TS 23.040 (TP-User-Data Header, concatenation information elements
IEI 0x00 and 0x08) that an SMPP 3.4 ESME needs to turn a text into ``short_message`` octets and
back.

Decisions:

* The text goes as GSM 7-bit (``data_coding`` 0x00, "SMSC default alphabet") when every
  character is in the default alphabet or its extension table, otherwise as UCS-2
  (``data_coding`` 0x08, UTF-16BE; a character outside the BMP is a surrogate pair and counts as
  two code units).
* GSM 7-bit is sent **unpacked**, one septet per octet, which is what SMPP 3.4 (section 5.2.19)
  and SMSCs expect for ``data_coding`` 0; the SMSC packs it for the air interface. Packed
  septets (with the fill bits after a UDH, TS 23.040 9.2.3.24) are available with
  ``packed=True`` for SMSCs configured that way. Either way every part fits the 140-octet
  TP-User-Data of one SMS on the air interface (:attr:`SmsPart.air_octets`); in unpacked form
  ``short_message`` itself holds up to 160 (single) or 6 + 153 (concatenated) octets.
* Limits: one SMS holds 160 septets or 70 UCS-2 units; with the 6-octet concatenation UDH
  (``05 00 03 ref total seq``) a part holds 153 septets or 67 units. An escape pair (ESC + char)
  and a surrogate pair are never split across parts.
* Data codings other than 0x00/0x08 are decoded on receipt: 0x01 IA5 (ASCII), 0x03 Latin-1,
  0x02/0x04 8-bit binary (returned as base64 text, per the MSGin5G rule that binary content
  travels as base64), and the TS 23.038 coding groups 0x1X-0x3X and 0xFX.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "DATA_CODING_DEFAULT",
    "DATA_CODING_UCS2",
    "ESM_CLASS_UDHI",
    "ConcatInfo",
    "SmsEncodingError",
    "SmsPart",
    "UserData",
    "alphabet_of",
    "concat_udh",
    "decode_payload",
    "gsm7_decode",
    "gsm7_encode",
    "is_gsm7",
    "pack_septets",
    "parse_user_data",
    "split_text",
    "unpack_septets",
]

logger = logging.getLogger(__name__)

DATA_CODING_DEFAULT: Final = 0x00
DATA_CODING_IA5: Final = 0x01
DATA_CODING_BINARY: Final = 0x02
DATA_CODING_LATIN1: Final = 0x03
DATA_CODING_BINARY_8BIT: Final = 0x04
DATA_CODING_UCS2: Final = 0x08

ESM_CLASS_UDHI: Final = 0x40
"""SMPP 3.4 5.2.12: the short_message begins with a User Data Header (TS 23.040 TP-UDHI)."""

MAX_USER_DATA_OCTETS: Final = 140
SINGLE_SEPTETS: Final = 160
PART_SEPTETS: Final = 153
SINGLE_UCS2_UNITS: Final = 70
PART_UCS2_UNITS: Final = 67
MAX_PARTS: Final = 255

_ESC: Final = 0x1B
_CR: Final = 0x0D

# TS 23.038 6.2.1: the default alphabet; index = septet value. 0x1B is the escape to the
# extension table (no character of its own here).
_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# TS 23.038 6.2.1.1: the default extension table (after ESC).
_EXTENSION = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

_ENCODE: dict[str, bytes] = {ch: bytes((i,)) for i, ch in enumerate(_BASIC) if i != _ESC}
_ENCODE.update({ch: bytes((_ESC, code)) for code, ch in _EXTENSION.items()})
_DECODE_EXT: dict[int, str] = dict(_EXTENSION)

Alphabet = Literal["gsm7", "ucs2", "latin1", "ascii", "binary"]
_ALPHABET_BITS: Final[tuple[Alphabet, ...]] = ("gsm7", "binary", "ucs2", "binary")


class SmsEncodingError(ValueError):
    """A text cannot be encoded or a short_message cannot be decoded."""


@dataclass(frozen=True, slots=True)
class ConcatInfo:
    """The concatenation information element of a part (TS 23.040 9.2.3.24.1 / .8)."""

    reference: int
    total: int
    sequence: int


@dataclass(frozen=True, slots=True)
class SmsPart:
    """One SMS ready for submit_sm: ``short_message``, ``data_coding`` and ``esm_class``."""

    short_message: bytes
    data_coding: int
    esm_class: int
    concat: ConcatInfo | None
    air_octets: int
    """Octets of TP-User-Data this part needs on the air interface (always <= 140)."""


@dataclass(frozen=True, slots=True)
class UserData:
    """A received short_message split into its header and payload.

    ``payload`` holds unpacked septets (one per octet) for GSM 7-bit, raw octets otherwise, so
    the payloads of the parts of one message can be joined before decoding.
    """

    header: bytes
    concat: ConcatInfo | None
    payload: bytes
    data_coding: int


# --------------------------------------------------------------------------- GSM 7-bit


def is_gsm7(text: str) -> bool:
    """True if every character of ``text`` is in the GSM default alphabet or its extension."""
    enc = _ENCODE
    return all(ch in enc for ch in text)


def gsm7_encode(text: str) -> bytes:
    """Encode ``text`` as unpacked septets (one per octet), escapes as ESC + code.

    Raises:
        SmsEncodingError: a character is not in the GSM 7-bit alphabet.
    """
    enc = _ENCODE
    try:
        return b"".join([enc[ch] for ch in text])
    except KeyError as exc:
        raise SmsEncodingError(f"character {exc.args[0]!r} is not in GSM 7-bit") from None


def gsm7_decode(septets: bytes) -> str:
    """Decode unpacked septets. An unknown escape shows the default-table character
    (TS 23.038 6.2.1.1); a trailing lone ESC is dropped."""
    out: list[str] = []
    basic = _BASIC
    i, n = 0, len(septets)
    while i < n:
        s = septets[i] & 0x7F
        if s == _ESC:
            if i + 1 >= n:
                break
            nxt = septets[i + 1] & 0x7F
            ext = _DECODE_EXT.get(nxt)
            out.append(ext if ext is not None else (" " if nxt == _ESC else basic[nxt]))
            i += 2
        else:
            out.append(basic[s])
            i += 1
    return "".join(out)


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack septets LSB first (TS 23.038 6.1.2.1.1), after ``fill_bits`` zero bits.

    When the last octet would end with 7 spare bits, a CR septet is added as padding
    (TS 23.038 6.1.2.3.1) so the receiver does not read a phantom ``@``.
    """
    end_bits = (fill_bits + 7 * len(septets)) % 8
    if end_bits == 1 or (end_bits == 0 and septets[-1:] == b"\r"):
        # 7 spare bits: pad with CR. A wanted CR that ends on an octet boundary would be read
        # as padding, so it is doubled (CR CR means the same as CR).
        septets = septets + bytes((_CR,))
    acc = 0
    nbits = fill_bits
    out = bytearray()
    for s in septets:
        acc |= (s & 0x7F) << nbits
        nbits += 7
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    return bytes(out)


def unpack_septets(data: bytes, fill_bits: int = 0, count: int | None = None) -> bytes:
    """Unpack septets from ``data`` after ``fill_bits``; the inverse of :func:`pack_septets`.

    Without ``count`` every whole septet is returned, and a CR that ends exactly on an octet
    boundary is taken as padding and dropped (TS 23.038 6.1.2.3.1). So packed text round-trips
    exactly except that a CR ending on an octet boundary comes back as CR CR.
    """
    total_bits = len(data) * 8 - fill_bits
    derived = total_bits // 7 if total_bits > 0 else 0
    n = derived if count is None else min(count, derived)
    value = int.from_bytes(data, "little") >> fill_bits
    out = bytearray(n)
    for i in range(n):
        out[i] = (value >> (7 * i)) & 0x7F
    if count is None and n and out[-1] == _CR and total_bits % 7 == 0:
        del out[-1]
    return bytes(out)


# --------------------------------------------------------------------------- splitting


def concat_udh(reference: int, total: int, sequence: int) -> bytes:
    """The 6-octet UDH with an 8-bit-reference concatenation IE: ``05 00 03 ref total seq``."""
    return bytes((5, 0x00, 3, reference & 0xFF, total, sequence))


def _chunk_gsm7(septets: bytes, size: int) -> list[bytes]:
    chunks: list[bytes] = []
    start, n = 0, len(septets)
    while start < n:
        end = min(start + size, n)
        if end < n:
            # Do not split an escape pair: count escapes from start to see whether
            # the septet at end-1 is an ESC that opens a pair.
            i = start
            while i < end:
                i += 2 if septets[i] == _ESC else 1
            if i > end:
                end -= 1
        chunks.append(septets[start:end])
        start = end
    return chunks


def _chunk_ucs2(data: bytes, units: int) -> list[bytes]:
    chunks: list[bytes] = []
    size = units * 2
    start, n = 0, len(data)
    while start < n:
        end = min(start + size, n)
        if end < n and 0xD8 <= data[end - 2] <= 0xDB:
            end -= 2  # the last unit is a high surrogate: keep the pair together
        chunks.append(data[start:end])
        start = end
    return chunks


def split_text(
    text: str,
    *,
    reference: int = 0,
    packed: bool = False,
    force_ucs2: bool = False,
) -> list[SmsPart]:
    """Encode ``text`` into one SMS or concatenated parts.

    Args:
        text: any string (surrogate code points excepted).
        reference: the concatenation reference (0-255) shared by the parts; the caller picks it
            per destination so that concurrent long messages do not collide.
        packed: pack GSM 7-bit septets into ``short_message`` instead of one per octet.
        force_ucs2: use UCS-2 even when the text fits GSM 7-bit.

    Raises:
        SmsEncodingError: the text needs more than 255 parts or holds lone surrogates.
    """
    if not force_ucs2 and is_gsm7(text):
        septets = gsm7_encode(text)
        chunks = [septets] if len(septets) <= SINGLE_SEPTETS else _chunk_gsm7(septets, PART_SEPTETS)
        return _build_parts(chunks, DATA_CODING_DEFAULT, reference, packed)
    try:
        data = text.encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise SmsEncodingError(f"text holds a lone surrogate: {exc}") from None
    chunks = [data] if len(data) <= SINGLE_UCS2_UNITS * 2 else _chunk_ucs2(data, PART_UCS2_UNITS)
    return _build_parts(chunks, DATA_CODING_UCS2, reference, packed)


def _build_parts(
    chunks: Sequence[bytes], data_coding: int, reference: int, packed: bool
) -> list[SmsPart]:
    total = len(chunks)
    if total > MAX_PARTS:
        raise SmsEncodingError(f"text needs {total} parts, more than {MAX_PARTS}")
    gsm = data_coding == DATA_CODING_DEFAULT
    if total == 1:
        body = chunks[0]
        air = (len(body) * 7 + 7) // 8 if gsm else len(body)
        if gsm and packed:
            body = pack_septets(body)
        return [SmsPart(body, data_coding, 0, None, air)]
    parts: list[SmsPart] = []
    ref = reference & 0xFF
    for seq, chunk in enumerate(chunks, start=1):
        udh = concat_udh(ref, total, seq)
        if gsm:
            air = len(udh) + (len(chunk) * 7 + 1 + 7) // 8  # 1 fill bit after a 6-octet UDH
            # packed: one fill bit aligns the septets after the 6-octet UDH (TS 23.040 9.2.3.24)
            body = udh + (pack_septets(chunk, fill_bits=1) if packed else chunk)
        else:
            air = len(udh) + len(chunk)
            body = udh + chunk
        parts.append(SmsPart(body, data_coding, ESM_CLASS_UDHI, ConcatInfo(ref, total, seq), air))
    return parts


# --------------------------------------------------------------------------- receiving


def alphabet_of(data_coding: int) -> Alphabet:
    """The character set named by an SMPP ``data_coding`` (SMPP 3.4 5.2.19, TS 23.038 4)."""
    if data_coding == DATA_CODING_DEFAULT:
        return "gsm7"
    if data_coding == DATA_CODING_IA5:
        return "ascii"
    if data_coding == DATA_CODING_LATIN1:
        return "latin1"
    if data_coding == DATA_CODING_UCS2:
        return "ucs2"
    if data_coding in (DATA_CODING_BINARY, DATA_CODING_BINARY_8BIT):
        return "binary"
    group = data_coding >> 4
    if group <= 0x3 and group >= 0x1:  # general data coding (bit 5 = compressed, unsupported)
        bits = (data_coding >> 2) & 0x3
    elif group == 0xF:
        bits = 0x1 if data_coding & 0x04 else 0x0
    elif group in (0xC, 0xD):  # message waiting, GSM 7-bit
        bits = 0x0
    elif group == 0xE:  # message waiting, UCS-2
        bits = 0x2
    else:
        return "latin1"  # reserved and SMSC-specific values: Latin-1 is the usual reading
    return _ALPHABET_BITS[bits]


def _parse_udh(header: bytes) -> ConcatInfo | None:
    i = 0
    concat: ConcatInfo | None = None
    while i + 2 <= len(header):
        iei, length = header[i], header[i + 1]
        value = header[i + 2 : i + 2 + length]
        if len(value) != length:
            raise SmsEncodingError("truncated information element in UDH")
        if iei == 0x00 and length == 3:
            concat = ConcatInfo(value[0], value[1], value[2])
        elif iei == 0x08 and length == 4:
            concat = ConcatInfo(int.from_bytes(value[0:2], "big"), value[2], value[3])
        i += 2 + length
    if concat is not None and (concat.total == 0 or not 1 <= concat.sequence <= concat.total):
        return None  # TS 23.040 9.2.3.24.1: ignore the IE if the values are invalid
    return concat


def parse_user_data(
    short_message: bytes, esm_class: int, data_coding: int, *, packed: bool = False
) -> UserData:
    """Split a received short_message into UDH and payload (septets unpacked for GSM 7-bit).

    Raises:
        SmsEncodingError: the UDH length exceeds the message.
    """
    header = b""
    body = short_message
    fill = 0
    if esm_class & ESM_CLASS_UDHI and short_message:
        udhl = short_message[0]
        if 1 + udhl > len(short_message):
            raise SmsEncodingError("UDH longer than the short_message")
        header = short_message[1 : 1 + udhl]
        body = short_message[1 + udhl :]
        fill = (7 - ((1 + udhl) * 8) % 7) % 7
    concat = _parse_udh(header) if header else None
    gsm = alphabet_of(data_coding) == "gsm7"
    payload = unpack_septets(body, fill) if gsm and packed else body
    return UserData(header, concat, payload, data_coding)


def decode_payload(payload: bytes, data_coding: int) -> str:
    """Decode a payload (or the joined payloads of all parts) to text; binary becomes base64."""
    alphabet = alphabet_of(data_coding)
    if alphabet == "gsm7":
        return gsm7_decode(payload)
    if alphabet == "ucs2":
        return payload.decode("utf-16-be", errors="replace")
    if alphabet == "ascii":
        return payload.decode("ascii", errors="replace")
    if alphabet == "latin1":
        return payload.decode("latin-1")
    return base64.b64encode(payload).decode("ascii")
