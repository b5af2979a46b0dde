# SPDX-License-Identifier: Apache-2.0
"""Cell Broadcast (CBS) pages, sans-IO: 3GPP TS 23.041 9.4.1.2 and TS 23.038 clause 5.

A CBS page carries 82 octets of content: 93 GSM 7-bit default-alphabet characters packed
(93 x 7 = 651 bits) or 41 UCS-2 characters. A CBS message has at most 15 pages.

Decisions:

* GSM 7-bit (Data Coding Scheme 0x0F: default alphabet, language unspecified) when every
  character is in the default alphabet or its extension table; otherwise UCS-2 (DCS 0x48:
  general data coding, uncompressed, UCS-2, no message class). A character outside the BMP is a
  surrogate pair and takes two of the 41 places.
* An escape pair (ESC + extension character) and a surrogate pair are never split across pages.
* Every page is padded to the full 82 octets with CR (TS 23.041 9.4.1.2.2: "padded with
  <CR>"); :func:`decode` strips trailing CRs of each page. So a CR at the very end of a page
  is taken as padding: a text round-trips exactly unless a page of it ends in CR.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from msgin5g.gateways.sms.encoding import gsm7_decode, gsm7_encode, is_gsm7, pack_septets
from msgin5g.gateways.sms.encoding import unpack_septets as _unpack

__all__ = [
    "DCS_GSM7",
    "DCS_UCS2",
    "GSM7_PAGE_CHARS",
    "MAX_PAGES",
    "PAGE_OCTETS",
    "UCS2_PAGE_CHARS",
    "CbsEncodingError",
    "CbsMessage",
    "decode",
    "encode",
]

PAGE_OCTETS: Final = 82
GSM7_PAGE_CHARS: Final = 93
UCS2_PAGE_CHARS: Final = 41
MAX_PAGES: Final = 15
DCS_GSM7: Final = 0x0F
DCS_UCS2: Final = 0x48

_ESC: Final = 0x1B
_CR: Final = 0x0D
_UCS2_CR: Final = b"\x00\x0d"


class CbsEncodingError(ValueError):
    """The text needs more than 15 pages, or a page cannot be decoded."""


@dataclass(frozen=True, slots=True)
class CbsMessage:
    """The Data Coding Scheme and the pages (each exactly 82 octets)."""

    dcs: int
    pages: tuple[bytes, ...]


def _gsm7_chunks(septets: bytes) -> list[bytes]:
    chunks: list[bytes] = []
    start, n = 0, len(septets)
    while start < n:
        end = min(start + GSM7_PAGE_CHARS, n)
        if end < n:
            i = start
            while i < end:
                i += 2 if septets[i] == _ESC else 1
            if i > end:  # the last septet of the page opens an escape pair: move it on
                end -= 1
        chunks.append(septets[start:end])
        start = end
    return chunks or [b""]


def _ucs2_chunks(data: bytes) -> list[bytes]:
    chunks: list[bytes] = []
    start, n = 0, len(data)
    while start < n:
        end = min(start + PAGE_OCTETS, n)
        if end < n and 0xD8 <= data[end - 2] <= 0xDB:  # a high surrogate: keep the pair whole
            end -= 2
        chunks.append(data[start:end])
        start = end
    return chunks or [b""]


def encode(text: str) -> CbsMessage:
    """The pages of `text`: GSM 7-bit when it fits the default alphabet, else UCS-2.

    Raises:
        CbsEncodingError: more than 15 pages would be needed.
    """
    if is_gsm7(text):
        dcs = DCS_GSM7
        pages = [
            pack_septets(chunk + bytes([_CR]) * (GSM7_PAGE_CHARS - len(chunk)))
            for chunk in _gsm7_chunks(gsm7_encode(text))
        ]
    else:
        dcs = DCS_UCS2
        pages = [
            chunk + _UCS2_CR * ((PAGE_OCTETS - len(chunk)) // 2)
            for chunk in _ucs2_chunks(text.encode("utf-16-be", "surrogatepass"))
        ]
    if len(pages) > MAX_PAGES:
        raise CbsEncodingError(
            f"the text needs {len(pages)} cell broadcast pages; at most {MAX_PAGES} are allowed"
        )
    return CbsMessage(dcs, tuple(pages))


def decode(dcs: int, pages: Sequence[bytes]) -> str:
    """The text of `pages` (the inverse of :func:`encode`; trailing CRs are padding).

    Raises:
        CbsEncodingError: an unsupported DCS or a malformed UCS-2 page.
    """
    if dcs == DCS_GSM7:
        septets = b"".join(
            _unpack(page, count=len(page) * 8 // 7).rstrip(bytes([_CR])) for page in pages
        )
        return gsm7_decode(septets)
    if dcs == DCS_UCS2:
        data = bytearray()
        for page in pages:
            if len(page) % 2:
                raise CbsEncodingError("a UCS-2 page has an odd number of octets")
            while page.endswith(_UCS2_CR):
                page = page[:-2]
            data += page
        try:
            return data.decode("utf-16-be", "surrogatepass")
        except UnicodeError as exc:
            raise CbsEncodingError(f"malformed UCS-2: {exc}") from None
    raise CbsEncodingError(f"unsupported data coding scheme 0x{dcs:02X}")
