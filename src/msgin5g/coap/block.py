# SPDX-License-Identifier: Apache-2.0
"""Block-wise transfer, RFC 7959, sans-IO: slicing, Block1 reassembly, Block2 reassembly.

- :func:`slice_block` and :func:`negotiate_block2` serve Block2 (§2.4): a body larger than one
  block goes out in blocks of at most ``max_szx`` (SZX 6 = 1024 bytes by default, because
  libcoap's coap-client drops datagrams over 1152 bytes); a client asking for a larger block
  size gets ours with the block number recomputed from the byte offset (§2.4, late
  negotiation).
- :class:`RepresentationCache` keeps the representation a Block2 transfer was cut from, so the
  follow-up requests for blocks 1..N (§2.4; for Observe notifications §3.4 and RFC 7641 §4.5
  with RFC 7959 §2.6) see the same bytes under the same ETag.
- :class:`Block1Assembler` reassembles request bodies (§2.5): 2.31 Continue for non-final blocks
  (§2.3, §2.9.1), 4.08 Request Entity Incomplete for a block out of order (§2.9.2), 4.13 Request
  Entity Too Large with Size1 beyond the configured limit (§2.9.3, §4). Transfers are keyed by
  the caller (remote endpoint, URI and Request-Tag, RFC 9175 §3), never by token: clients may
  change token between blocks.
- :class:`Block2Assembler` reassembles a response body on the client side.

Time is passed in by the caller (seconds, the event loop clock).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from msgin5g.coap.message import BlockOption, CoapBlockError

__all__ = [
    "MAX_SZX",
    "Block1Assembler",
    "Block1Complete",
    "Block1Continue",
    "Block1Incomplete",
    "Block1Invalid",
    "Block1Result",
    "Block1TooLarge",
    "Block2Assembler",
    "Representation",
    "RepresentationCache",
    "negotiate_block2",
    "size_to_szx",
    "slice_block",
    "szx_to_size",
]

MAX_SZX = 6
"""Largest block size exponent over UDP (1024 bytes); 7 is BERT, TCP only (RFC 8323)."""


def szx_to_size(szx: int) -> int:
    """Block size in bytes for an exponent 0..6."""
    return 1 << (szx + 4)


def size_to_szx(size: int) -> int:
    """The exponent of a block size; raises ValueError unless a power of two in 16..1024."""
    szx = size.bit_length() - 5
    if not 0 <= szx <= MAX_SZX or size != 1 << (szx + 4):
        raise ValueError(f"block size must be a power of two in 16..1024, not {size}")
    return szx


def negotiate_block2(requested: BlockOption | None, max_szx: int) -> tuple[int, int]:
    """(num, szx) to serve for a request's Block2 option (§2.4).

    No option means block 0 at ``max_szx``. A requested size above ours is lowered and the
    block number recomputed so that the byte offset stays the same.
    """
    if requested is None:
        return 0, max_szx
    if requested.szx <= max_szx:
        return requested.num, requested.szx
    return requested.offset >> (max_szx + 4), max_szx


def slice_block(body: bytes, num: int, szx: int) -> tuple[bytes, bool]:
    """Block ``num`` of ``body`` at block size ``2**(szx+4)`` and whether more follow.

    Raises:
        CoapBlockError: when the block starts beyond the end of the body (block 0 of an empty
            body is allowed).
    """
    size = 1 << (szx + 4)
    start = num * size
    if start >= len(body) and num:
        raise CoapBlockError(f"block {num} is beyond the end of a {len(body)}-byte body")
    end = start + size
    return body[start:end], end < len(body)


@dataclass(frozen=True, slots=True)
class Representation:
    """A body being transferred block-wise, with what each block response repeats."""

    body: bytes
    etag: bytes
    content_format: int | None
    code: int


class RepresentationCache:
    """Current representations by key (remote endpoint + URI), expiring after ``lifetime``.

    Bounded: beyond ``max_entries`` the entry that expires first goes.
    """

    __slots__ = ("_entries", "_lifetime", "_max_entries")

    def __init__(self, lifetime: float, max_entries: int = 10_000) -> None:
        self._lifetime = lifetime
        self._max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[float, Representation]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: Hashable, representation: Representation, now: float) -> None:
        """Store (or replace) the representation under ``key``."""
        entries = self._entries
        entries.pop(key, None)
        while entries:
            if next(iter(entries.values()))[0] > now and len(entries) < self._max_entries:
                break
            entries.popitem(last=False)
        entries[key] = (now + self._lifetime, representation)

    def get(self, key: Hashable, now: float) -> Representation | None:
        """The live representation under ``key``, or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._entries[key]
            return None
        return entry[1]

    def discard(self, key: Hashable) -> None:
        """Forget ``key``."""
        self._entries.pop(key, None)


@dataclass(frozen=True, slots=True)
class Block1Continue:
    """Answer 2.31 Continue carrying ``block`` as Block1 (§2.3)."""

    block: BlockOption


@dataclass(frozen=True, slots=True)
class Block1Complete:
    """The body is whole; the final response echoes ``block`` as Block1 (§2.3)."""

    body: bytes
    block: BlockOption


@dataclass(frozen=True, slots=True)
class Block1Incomplete:
    """Answer 4.08 Request Entity Incomplete (§2.9.2)."""


@dataclass(frozen=True, slots=True)
class Block1TooLarge:
    """Answer 4.13 Request Entity Too Large with Size1 = ``limit`` (§2.9.3, §4)."""

    limit: int


@dataclass(frozen=True, slots=True)
class Block1Invalid:
    """Answer 4.00 Bad Request (a non-final block of the wrong size, §2.2)."""

    reason: str


Block1Result = Block1Continue | Block1Complete | Block1Incomplete | Block1TooLarge | Block1Invalid


class _Transfer:
    __slots__ = ("body", "expiry")

    def __init__(self, expiry: float) -> None:
        self.body = bytearray()
        self.expiry = expiry


class Block1Assembler:
    """Reassembles Block1 request bodies (§2.5), one transfer per key.

    Progress is checked by byte offset (``num * size`` must equal what has arrived), which also
    covers a client that switches to the smaller size this server asked for.
    """

    __slots__ = ("_lifetime", "_max_body", "_max_entries", "_max_szx", "_transfers")

    def __init__(
        self,
        max_body: int,
        *,
        max_szx: int = MAX_SZX,
        lifetime: float = 247.0,
        max_entries: int = 10_000,
    ) -> None:
        self._max_body = max_body
        self._max_szx = max_szx
        self._lifetime = lifetime
        self._max_entries = max_entries
        self._transfers: OrderedDict[Hashable, _Transfer] = OrderedDict()

    def __len__(self) -> int:
        return len(self._transfers)

    def feed(
        self, key: Hashable, block: BlockOption, payload: bytes, size1: int | None, now: float
    ) -> Block1Result:
        """Take one request block and say how to answer it."""
        transfers = self._transfers
        if block.num == 0:
            transfers.pop(key, None)
            if size1 is not None and size1 > self._max_body:
                return Block1TooLarge(self._max_body)
            if not block.more:
                if len(payload) > self._max_body:
                    return Block1TooLarge(self._max_body)
                return Block1Complete(payload, block)
            self._purge(now)
            transfer = _Transfer(now + self._lifetime)
            transfers[key] = transfer
        else:
            found = transfers.get(key)
            if found is None or found.expiry <= now:
                transfers.pop(key, None)
                return Block1Incomplete()
            transfer = found
        if block.offset != len(transfer.body):
            del transfers[key]
            return Block1Incomplete()
        if len(payload) > block.size or (block.more and len(payload) != block.size):
            del transfers[key]
            return Block1Invalid("a non-final block must carry exactly the block size")
        if len(transfer.body) + len(payload) > self._max_body:
            del transfers[key]
            return Block1TooLarge(self._max_body)
        transfer.body += payload
        if block.more:
            return Block1Continue(BlockOption(block.num, True, min(block.szx, self._max_szx)))
        del transfers[key]
        return Block1Complete(bytes(transfer.body), block)

    def _purge(self, now: float) -> None:
        transfers = self._transfers
        while transfers:
            if next(iter(transfers.values())).expiry > now and len(transfers) < self._max_entries:
                return
            transfers.popitem(last=False)


class Block2Assembler:
    """Client side of Block2 (§2.4): collects blocks in order and checks the ETag stays put."""

    __slots__ = ("_body", "_etag", "_max_body")

    def __init__(self, max_body: int = 1 << 24) -> None:
        self._body = bytearray()
        self._etag: bytes | None = None
        self._max_body = max_body

    @property
    def body(self) -> bytes:
        """What has been collected so far."""
        return bytes(self._body)

    def feed(self, block: BlockOption, payload: bytes, etag: bytes | None) -> BlockOption | None:
        """Add one block; returns the Block2 option to ask for next, or None when complete.

        Raises:
            CoapBlockError: wrong offset, changed ETag, a short non-final block or a body over
                ``max_body``.
        """
        if block.offset != len(self._body):
            raise CoapBlockError(f"block {block.num} does not continue at byte {len(self._body)}")
        if block.num == 0:
            self._etag = etag
        elif etag != self._etag:
            raise CoapBlockError("the representation changed during the transfer (ETag)")
        if block.more and len(payload) != block.size:
            raise CoapBlockError("a non-final block must carry exactly the block size")
        if len(self._body) + len(payload) > self._max_body:
            raise CoapBlockError("body larger than the configured limit")
        self._body += payload
        if not block.more:
            return None
        return BlockOption(block.num + 1, False, block.szx)
