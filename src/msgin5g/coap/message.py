# SPDX-License-Identifier: Apache-2.0
"""The CoAP message layer: RFC 7252 message format (§3) and message-layer bookkeeping (§4).

Everything here is sans-IO: bytes in, :class:`Message` out and back, with time passed in by the
caller. The asyncio driver lives in :mod:`msgin5g.coap.endpoint`.

- :func:`decode` / :func:`encode`: the fixed header, Token, Options with delta/length
  extensions and the payload marker (RFC 7252 §3, §3.1). The encoding is canonical, so
  ``encode(decode(b)) == b`` for every datagram ``b`` that decodes. Anything malformed raises
  :class:`CoapFormatError` and nothing else, so a driver can answer RST (§4.2) or ignore (§4.3).
- Option accessors on :class:`Message`: Uri-Path/Query, Content-Format (§5.10), Observe
  (RFC 7641 §2), Block1/Block2 (RFC 7959 §2.2), Size1/Size2 (RFC 7959 §4).
- :class:`TransmissionParameters` (RFC 7252 §4.8), :func:`retransmission_delays` (§4.2),
  :class:`DedupCache` (§4.5) and :class:`MessageIds` (§4.4).

Errors form one small tree::

    CoapError
     ├── CoapFormatError    malformed datagram or option value (RFC 7252 §3, §5.4.3)
     ├── CoapTimeoutError   no ACK after MAX_RETRANSMIT, or no response (RFC 7252 §4.2)
     ├── CoapResetError     the peer answered RST (RFC 7252 §4.2)
     └── CoapBlockError     a block-wise transfer went out of step (RFC 7959 §2.3-§2.5)
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, replace
from enum import IntEnum
from operator import itemgetter
from typing import NamedTuple, Protocol

__all__ = [
    "BlockOption",
    "CoapBlockError",
    "CoapError",
    "CoapFormatError",
    "CoapResetError",
    "CoapTimeoutError",
    "Code",
    "ContentFormat",
    "DedupCache",
    "IdReservations",
    "Message",
    "MessageIds",
    "MessageType",
    "OptionNumber",
    "TransmissionParameters",
    "decode",
    "encode",
    "encode_uint",
    "format_code",
    "initial_timeout",
    "retransmission_delays",
    "string_options",
]


class CoapError(Exception):
    """Root of the CoAP errors."""


class CoapFormatError(CoapError):
    """A datagram or an option value does not follow RFC 7252 §3 / §5.4.3."""


class CoapTimeoutError(CoapError):
    """No ACK after MAX_RETRANSMIT retransmissions, or no response in time."""


class CoapResetError(CoapError):
    """The peer rejected a message with RST."""


class CoapBlockError(CoapError):
    """A block-wise transfer went out of step (wrong offset, changed ETag, error code)."""


class MessageType(IntEnum):
    """RFC 7252 §3 message types."""

    CON = 0
    NON = 1
    ACK = 2
    RST = 3


def _c(cls: int, detail: int) -> int:
    return (cls << 5) | detail


class Code(IntEnum):
    """RFC 7252 §12.1 method and response codes (class << 5 | detail)."""

    EMPTY = 0
    GET = 1
    POST = 2
    PUT = 3
    DELETE = 4
    FETCH = 5
    PATCH = 6
    IPATCH = 7
    CREATED = _c(2, 1)
    DELETED = _c(2, 2)
    VALID = _c(2, 3)
    CHANGED = _c(2, 4)
    CONTENT = _c(2, 5)
    CONTINUE = _c(2, 31)
    BAD_REQUEST = _c(4, 0)
    UNAUTHORIZED = _c(4, 1)
    BAD_OPTION = _c(4, 2)
    FORBIDDEN = _c(4, 3)
    NOT_FOUND = _c(4, 4)
    METHOD_NOT_ALLOWED = _c(4, 5)
    NOT_ACCEPTABLE = _c(4, 6)
    REQUEST_ENTITY_INCOMPLETE = _c(4, 8)
    PRECONDITION_FAILED = _c(4, 12)
    REQUEST_ENTITY_TOO_LARGE = _c(4, 13)
    UNSUPPORTED_CONTENT_FORMAT = _c(4, 15)
    INTERNAL_SERVER_ERROR = _c(5, 0)
    NOT_IMPLEMENTED = _c(5, 1)
    BAD_GATEWAY = _c(5, 2)
    SERVICE_UNAVAILABLE = _c(5, 3)
    GATEWAY_TIMEOUT = _c(5, 4)
    PROXYING_NOT_SUPPORTED = _c(5, 5)


def format_code(code: int) -> str:
    """Render a code the way RFC 7252 writes it, e.g. ``69`` -> ``"2.05"``."""
    return f"{code >> 5}.{code & 0x1F:02d}"


class OptionNumber(IntEnum):
    """RFC 7252 §5.10, RFC 7641 §2, RFC 7959 §2.1 and §4 option numbers."""

    IF_MATCH = 1
    URI_HOST = 3
    ETAG = 4
    IF_NONE_MATCH = 5
    OBSERVE = 6
    URI_PORT = 7
    LOCATION_PATH = 8
    URI_PATH = 11
    CONTENT_FORMAT = 12
    MAX_AGE = 14
    URI_QUERY = 15
    ACCEPT = 17
    LOCATION_QUERY = 20
    BLOCK2 = 23
    BLOCK1 = 27
    SIZE2 = 28
    PROXY_URI = 35
    PROXY_SCHEME = 39
    SIZE1 = 60


class ContentFormat(IntEnum):
    """A few RFC 7252 §12.3 Content-Formats."""

    TEXT_PLAIN = 0
    LINK_FORMAT = 40
    OCTET_STREAM = 42
    JSON = 50
    CBOR = 60


_TYPES = tuple(MessageType)
_RNG = random.Random()
_MAX_OPTION_NUMBER = 0xFFFF
_MAX_UINT_LENGTH = 4

Option = tuple[int, bytes]


class BlockOption(NamedTuple):
    """A parsed Block1/Block2 value (RFC 7959 §2.2): block number, More flag, size exponent."""

    num: int
    more: bool
    szx: int

    @property
    def size(self) -> int:
        """Block size in bytes, ``2 ** (szx + 4)``."""
        return 1 << (self.szx + 4)

    @property
    def offset(self) -> int:
        """Byte offset of this block in the body."""
        return self.num << (self.szx + 4)

    def encode(self) -> bytes:
        """The option value; raises ValueError when a field is out of range."""
        if not 0 <= self.num < 1 << 20 or not 0 <= self.szx <= 6:
            raise ValueError(f"block option out of range: {self}")
        return encode_uint((self.num << 4) | (int(self.more) << 3) | self.szx)

    @classmethod
    def decode(cls, value: bytes) -> BlockOption:
        """Parse a Block1/Block2 value; SZX 7 (BERT, TCP only) or >3 bytes is a format error."""
        if len(value) > 3:
            raise CoapFormatError("block option longer than 3 bytes")
        raw = int.from_bytes(value, "big")
        szx = raw & 7
        if szx == 7:
            raise CoapFormatError("block size exponent 7 is reserved")
        return cls(raw >> 4, bool(raw & 8), szx)


def encode_uint(value: int) -> bytes:
    """Minimal big-endian encoding of an unsigned option value (RFC 7252 §3.2); 0 is empty."""
    return value.to_bytes((value.bit_length() + 7) >> 3, "big")


def decode_uint(number: int, value: bytes) -> int:
    """The value of uint option `number` (RFC 7252 §3.2); CoapFormatError when longer than 4
    bytes."""
    if len(value) > _MAX_UINT_LENGTH:
        raise CoapFormatError(f"option {number}: uint longer than 4 bytes")
    return int.from_bytes(value, "big")


def string_options(number: int, values: Iterable[str]) -> tuple[Option, ...]:
    """Repeatable string options, e.g. ``string_options(OptionNumber.URI_PATH, ("a", "b"))``."""
    return tuple((number, v.encode()) for v in values)


@dataclass(slots=True)
class Message:
    """One CoAP message. ``options`` is a tuple of ``(number, value)``; :func:`encode` sorts it
    stably by number, :func:`decode` yields it in wire order.

    Treat it as immutable (copy with ``dataclasses.replace``). It is not a frozen dataclass
    because one is made per datagram and a frozen one takes four times as long to make."""

    mtype: MessageType
    code: int
    mid: int
    token: bytes = b""
    options: tuple[Option, ...] = ()
    payload: bytes = b""

    # -- classification -------------------------------------------------------------------
    @property
    def is_request(self) -> bool:
        """Code class 0 and not Empty."""
        return 0 < self.code < 32

    @property
    def is_response(self) -> bool:
        """Code class 2, 4 or 5."""
        return 64 <= self.code < 192

    @property
    def is_empty(self) -> bool:
        """Code 0.00 (Empty message: ACK, RST or CoAP ping)."""
        return self.code == 0

    # -- generic option access ------------------------------------------------------------
    def option_values(self, number: int) -> tuple[bytes, ...]:
        """All values of one option, in order."""
        return tuple(v for n, v in self.options if n == number)

    def first_option(self, number: int) -> bytes | None:
        """The first value of an option, or None when absent."""
        for n, v in self.options:
            if n == number:
                return v
        return None

    def has_option(self, number: int) -> bool:
        """Whether the option is present at all."""
        return any(n == number for n, _ in self.options)

    def uint_option(self, number: int) -> int | None:
        """A uint option (RFC 7252 §3.2); raises CoapFormatError when longer than 4 bytes."""
        value = self.first_option(number)
        return None if value is None else decode_uint(number, value)

    def string_option_values(self, number: int) -> tuple[str, ...]:
        """A repeatable string option as str; raises CoapFormatError on bad UTF-8."""
        try:
            return tuple(v.decode() for n, v in self.options if n == number)
        except UnicodeDecodeError as exc:
            raise CoapFormatError(f"option {number}: not UTF-8") from exc

    def with_options(self, *options: Option) -> Message:
        """A copy with more options appended."""
        return replace(self, options=self.options + options)

    def without_options(self, *numbers: int) -> Message:
        """A copy without any option of the given numbers."""
        return replace(self, options=tuple(o for o in self.options if o[0] not in numbers))

    # -- named options --------------------------------------------------------------------
    @property
    def uri_path(self) -> tuple[str, ...]:
        """Uri-Path segments (option 11)."""
        return self.string_option_values(OptionNumber.URI_PATH)

    @property
    def uri_query(self) -> tuple[str, ...]:
        """Uri-Query items (option 15)."""
        return self.string_option_values(OptionNumber.URI_QUERY)

    @property
    def location_path(self) -> tuple[str, ...]:
        """Location-Path segments (option 8)."""
        return self.string_option_values(OptionNumber.LOCATION_PATH)

    @property
    def content_format(self) -> int | None:
        """Content-Format (option 12)."""
        return self.uint_option(OptionNumber.CONTENT_FORMAT)

    @property
    def accept(self) -> int | None:
        """Accept (option 17)."""
        return self.uint_option(OptionNumber.ACCEPT)

    @property
    def observe(self) -> int | None:
        """Observe (option 6, RFC 7641 §2)."""
        return self.uint_option(OptionNumber.OBSERVE)

    @property
    def max_age(self) -> int | None:
        """Max-Age in seconds (option 14)."""
        return self.uint_option(OptionNumber.MAX_AGE)

    @property
    def etag(self) -> bytes | None:
        """The first ETag (option 4)."""
        return self.first_option(OptionNumber.ETAG)

    @property
    def block1(self) -> BlockOption | None:
        """Block1 (option 27, RFC 7959 §2.2)."""
        value = self.first_option(OptionNumber.BLOCK1)
        return None if value is None else BlockOption.decode(value)

    @property
    def block2(self) -> BlockOption | None:
        """Block2 (option 23, RFC 7959 §2.2)."""
        value = self.first_option(OptionNumber.BLOCK2)
        return None if value is None else BlockOption.decode(value)

    @property
    def size1(self) -> int | None:
        """Size1 (option 60, RFC 7959 §4)."""
        return self.uint_option(OptionNumber.SIZE1)

    @property
    def size2(self) -> int | None:
        """Size2 (option 28, RFC 7959 §4)."""
        return self.uint_option(OptionNumber.SIZE2)


# -- codec -------------------------------------------------------------------------------


def decode(data: bytes) -> Message:
    """Parse one datagram (RFC 7252 §3).

    Raises:
        CoapFormatError: on any malformed input; no other exception escapes.
    """
    n = len(data)
    if n < 4:
        raise CoapFormatError("datagram shorter than the 4-byte header")
    b0 = data[0]
    if b0 >> 6 != 1:
        raise CoapFormatError("unknown CoAP version")
    tkl = b0 & 0x0F
    if tkl > 8:
        raise CoapFormatError("token length 9-15 is reserved")
    code = data[1]
    if code == 0 and (n != 4 or tkl):
        # §4.1: an Empty message carries nothing after the Message ID.
        raise CoapFormatError("empty message with token, options or payload")
    pos = 4 + tkl
    if pos > n:
        raise CoapFormatError("datagram ends inside the token")
    options: list[Option] = []
    number = 0
    payload = b""
    while pos < n:
        byte = data[pos]
        pos += 1
        if byte == 0xFF:
            if pos == n:
                raise CoapFormatError("payload marker followed by an empty payload")
            payload = bytes(data[pos:])
            break
        delta = byte >> 4
        length = byte & 0x0F
        if delta >= 13:
            delta, pos = _extended(data, pos, delta)
        if length >= 13:
            length, pos = _extended(data, pos, length)
        number += delta
        if number > _MAX_OPTION_NUMBER:
            raise CoapFormatError("option number above 65535")
        end = pos + length
        if end > n:
            raise CoapFormatError("datagram ends inside an option value")
        options.append((number, bytes(data[pos:end])))
        pos = end
    mid = (data[2] << 8) | data[3]
    return Message(
        _TYPES[(b0 >> 4) & 3], code, mid, bytes(data[4 : 4 + tkl]), tuple(options), payload
    )


def _extended(data: bytes, pos: int, nibble: int) -> tuple[int, int]:
    if nibble == 13:
        if pos >= len(data):
            raise CoapFormatError("datagram ends inside an extended option field")
        return data[pos] + 13, pos + 1
    if nibble == 14:
        if pos + 2 > len(data):
            raise CoapFormatError("datagram ends inside an extended option field")
        return ((data[pos] << 8) | data[pos + 1]) + 269, pos + 2
    raise CoapFormatError("option delta or length nibble 15 is reserved")


def _nibble(value: int, out: bytearray) -> int:
    if value < 13:
        return value
    if value < 269:
        out.append(value - 13)
        return 13
    if value < 65805:
        out += (value - 269).to_bytes(2, "big")
        return 14
    raise ValueError("option delta or length too large")


def encode(message: Message) -> bytes:
    """Serialise a message (RFC 7252 §3); options are sorted stably by number.

    Raises:
        ValueError: when a field is out of range (a programming error, not peer input).
    """
    token = message.token
    if len(token) > 8:
        raise ValueError("token longer than 8 bytes")
    if not 0 <= message.mid <= 0xFFFF or not 0 <= message.code <= 0xFF:
        raise ValueError("message id or code out of range")
    first = 0x40 | (int(message.mtype) << 4) | len(token)
    out = bytearray((first, message.code, message.mid >> 8, message.mid & 0xFF))
    out += token
    options = message.options
    if options:
        if any(options[i][0] > options[i + 1][0] for i in range(len(options) - 1)):
            options = tuple(sorted(options, key=itemgetter(0)))
        last = 0
        for number, value in options:
            if not last <= number <= _MAX_OPTION_NUMBER:
                raise ValueError(f"option number {number} out of range")
            ext = bytearray()
            head_delta = _nibble(number - last, ext)
            head_length = _nibble(len(value), ext)
            out.append((head_delta << 4) | head_length)
            out += ext
            out += value
            last = number
    if message.payload:
        out.append(0xFF)
        out += message.payload
    return bytes(out)


# -- message layer bookkeeping ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TransmissionParameters:
    """RFC 7252 §4.8 transmission parameters, in seconds; shorten them in tests.

    ``exchange_lifetime`` and ``non_lifetime`` default to the §4.8.2 values derived from the
    defaults (247 s and 145 s); set them explicitly when the timers are shortened.
    """

    ack_timeout: float = 2.0
    ack_random_factor: float = 1.5
    max_retransmit: int = 4
    exchange_lifetime: float = 247.0
    non_lifetime: float = 145.0

    @property
    def max_transmit_wait(self) -> float:
        """§4.8.2 MAX_TRANSMIT_WAIT: how long a sender waits for an ACK in the worst case."""
        return self.ack_timeout * ((1 << (self.max_retransmit + 1)) - 1) * self.ack_random_factor

    @classmethod
    def scaled(cls, factor: float) -> TransmissionParameters:
        """The defaults with every timer multiplied by ``factor`` (for tests)."""
        base = cls()
        return cls(
            ack_timeout=base.ack_timeout * factor,
            exchange_lifetime=base.exchange_lifetime * factor,
            non_lifetime=base.non_lifetime * factor,
        )


def retransmission_delays(
    params: TransmissionParameters, rng: random.Random | None = None
) -> list[float]:
    """§4.2: the waits after the first transmission and after each retransmission.

    The first timeout is random in [ACK_TIMEOUT, ACK_TIMEOUT * ACK_RANDOM_FACTOR] and doubles
    each time; the list has MAX_RETRANSMIT + 1 entries, the last being the wait after the final
    retransmission before giving up.
    """
    first = initial_timeout(params, rng)
    return [first * (1 << i) for i in range(params.max_retransmit + 1)]


def initial_timeout(params: TransmissionParameters, rng: random.Random | None = None) -> float:
    """§4.2: the wait after a CON's first transmission, random in [ACK_TIMEOUT,
    ACK_TIMEOUT * ACK_RANDOM_FACTOR]; it doubles after each retransmission."""
    return (rng or _RNG).uniform(params.ack_timeout, params.ack_timeout * params.ack_random_factor)


class DedupCache:
    """§4.5 duplicate detection: remembers (remote, message id) for EXCHANGE_LIFETIME.

    Each entry may hold the bytes sent in reply, to repeat them for a duplicate. Entries expire
    in insertion order (the lifetime is constant), so purging is amortised O(1); it runs at
    most once a second (an expired entry is never taken for a duplicate meanwhile); the size is
    bounded by evicting the oldest entry.
    """

    __slots__ = ("_entries", "_lifetime", "_max_entries", "_next_purge")

    def __init__(self, lifetime: float, max_entries: int = 100_000) -> None:
        self._lifetime = lifetime
        self._max_entries = max_entries
        self._next_purge = 0.0
        # OrderedDict, not dict: taking a dict's first key after many deletions from its front
        # scans the deleted slots (O(n)); OrderedDict's is O(1).
        self._entries: OrderedDict[Hashable, _DedupEntry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def seen(self, key: Hashable, now: float) -> bool:
        """Whether ``key`` arrived within the lifetime; records it if not."""
        entries = self._entries
        entry = entries.get(key)
        if entry is not None:
            if entry.expiry > now:
                return True
            del entries[key]
        if now >= self._next_purge or len(entries) >= self._max_entries:
            self._purge(now)
        entries[key] = _DedupEntry(now + self._lifetime)
        return False

    def reply(self, key: Hashable) -> bytes | None:
        """The reply recorded for ``key``, if any."""
        entry = self._entries.get(key)
        return None if entry is None else entry.reply

    def set_reply(self, key: Hashable, data: bytes) -> None:
        """Record the reply sent for ``key`` (ignored when the key has gone)."""
        entry = self._entries.get(key)
        if entry is not None:
            entry.reply = data

    def forget(self, key: Hashable) -> None:
        """Drop ``key`` so that its next arrival is processed afresh."""
        self._entries.pop(key, None)

    def _purge(self, now: float) -> None:
        entries = self._entries
        self._next_purge = now + _PURGE_INTERVAL
        while entries:
            first = next(iter(entries.values()))
            if first.expiry > now and len(entries) < self._max_entries:
                self._next_purge = max(first.expiry, self._next_purge)
                return
            entries.popitem(last=False)


_PURGE_INTERVAL = 1.0


class _DedupEntry:
    __slots__ = ("expiry", "reply")

    def __init__(self, expiry: float) -> None:
        self.expiry = expiry
        self.reply: bytes | None = None


class IdReservations(Protocol):
    """Where :class:`MessageIds` records how far each endpoint's ids may have gone, so that a
    restarted server continues there (:mod:`msgin5g.coap.id_journal`). Times are those of
    the caller's clock."""

    def reserved(self, remote: Hashable, limit: int, low: float, high: float) -> None:
        """Ids of `remote` up to `limit` (exclusive, modulo 2**16) may be used from now on."""

    def rewrite(self, entries: Iterable[tuple[Hashable, int, float, float]]) -> None:
        """Replace everything recorded by `entries` (remote, limit, low, high)."""

    @property
    def records(self) -> int:
        """How many records were written since the last rewrite."""


_ID_BLOCK = 1024
"""Ids are reserved in aligned blocks of this many; it divides 0x8000, so a block never spans
both halves of the id space."""


class MessageIds:
    """§4.4 message ids, one sequence per remote endpoint: a random start, then +1 modulo
    2**16, and an id goes to the same endpoint again only after `lifetime` (EXCHANGE_LIFETIME).

    Sooner, the endpoint's duplicate detection (§4.5) would take a new Confirmable message for
    the old one with that id and acknowledge it unseen: a notification counted as delivered
    that the UE never got. One sequence shared by all endpoints repeats an id to some endpoint
    as soon as 65,536 messages went out within `lifetime`, which a busy server reaches in
    seconds. Each half of the id space is entered again only `lifetime` after its last use
    (`delay` says how long to wait), so one endpoint gets at most 65,536 messages per
    `lifetime`. Endpoints not sent to within `lifetime` are forgotten: their next sequence
    starts afresh, as any id is then safe again.

    With `reservations`, each endpoint's ids are reserved block by block before use, so that
    after a restart (`restore`) every endpoint continues past whatever it may have been sent
    instead of at a random id that it may have seen moments ago.
    """

    __slots__ = (
        "_lifetime",
        "_replied",
        "_replied_max",
        "_reservations",
        "_restored",
        "_restored_at",
        "_rng",
        "_state",
    )

    def __init__(
        self,
        lifetime: float,
        rng: random.Random | None = None,
        reservations: IdReservations | None = None,
        replied_max: int = 100_000,
    ) -> None:
        self._lifetime = lifetime
        self._rng = rng or _RNG
        self._reservations = reservations
        self._state: OrderedDict[Hashable, _IdSequence] = OrderedDict()  # least recent first
        self._replied: OrderedDict[Hashable, tuple[int, float]] = OrderedDict()
        self._replied_max = replied_max
        self._restored: dict[Hashable, tuple[int, float, float]] = {}
        self._restored_at = -math.inf

    def __len__(self) -> int:
        return len(self._state) + len(self._restored)

    def delay(self, remote: Hashable, now: float) -> float:
        """Seconds until the next id for `remote` may go out (0 almost always)."""
        state = self._state.get(remote) or self._restored_sequence(remote, now)
        if state is None or state.next & 0x7FFF:  # new, or inside a half already entered
            return 0.0
        last_use = state.high if state.next & 0x8000 else state.low
        return max(0.0, last_use + self._lifetime - now)

    def take(self, remote: Hashable, now: float) -> int:
        """The next id for `remote`; callers that can wait await `delay` first."""
        states = self._state
        state = states.get(remote)
        if state is None:
            state = self._restored_sequence(remote, now)
            if state is None:
                state = states[remote] = self._new_sequence(remote, now)
        else:
            states.move_to_end(remote)
        mid = state.next
        if mid == state.limit:
            self._reserve(remote, state, mid, now)
        state.next = (mid + 1) & 0xFFFF
        if mid & 0x8000:
            state.high = now
        else:
            state.low = now
        oldest = next(iter(states.values()))
        if max(oldest.low, oldest.high) + self._lifetime < now:
            states.popitem(last=False)  # the least recent endpoint: its ids are all safe again
        return mid

    def reply_id(self, remote: Hashable, now: float) -> int:
        """An id for a Non-confirmable reply: the next of `remote`'s sequence when it has one,
        else any id (nothing went to `remote` within `lifetime`, so none can repeat), kept
        only in a bounded table of recent replies. A flood of requests from ever new source
        addresses thus grows no sequences; one started later for `remote` goes on after the
        id it was answered with."""
        if remote in self._state or self._restored_sequence(remote, now) is not None:
            return self.take(remote, now)
        mid = self._rng.randrange(0x10000)
        replied = self._replied
        replied[remote] = (mid, now)
        replied.move_to_end(remote)
        if len(replied) > self._replied_max:
            replied.popitem(last=False)
        return mid

    def _new_sequence(self, remote: Hashable, now: float) -> _IdSequence:
        """A random start, or just after a recent reply's id to `remote`."""
        replied = self._replied.pop(remote, None)
        if replied is None or replied[1] + self._lifetime < now:
            start = self._rng.randrange(0x10000)
            return _IdSequence(start, start if self._reservations else -1)
        used, at = replied
        start = (used + 1) & 0xFFFF
        state = _IdSequence(start, start if self._reservations else -1)
        if used & 0x8000:
            state.high = at
        else:
            state.low = at
        return state

    def _reserve(self, remote: Hashable, state: _IdSequence, mid: int, now: float) -> None:
        """Record the block of `mid` before any id of it goes out."""
        reservations = self._reservations
        assert reservations is not None
        state.limit = ((mid | (_ID_BLOCK - 1)) + 1) & 0xFFFF
        reservations.reserved(remote, state.limit, state.low, state.high)
        if reservations.records > 2 * len(self) + _ID_BLOCK:
            if self._restored and self._restored_at + self._lifetime < now:
                self._restored.clear()  # all safe again
            reservations.rewrite(self.entries())

    def entries(self) -> Iterator[tuple[Hashable, int, float, float]]:
        """(remote, limit, low, high) of every endpoint kept, for `IdReservations.rewrite`."""
        for remote, state in self._state.items():
            if state.limit >= 0:
                yield remote, state.limit, state.low, state.high
        at = self._restored_at
        for remote, (limit, low, high) in self._restored.items():
            low, high = _restored_halves(limit, low, high, at)
            yield remote, limit, low, high

    def restore(self, entries: Iterable[tuple[Hashable, int, float, float]], now: float) -> int:
        """Continue the sequences recorded before a restart; returns how many.

        Each endpoint goes on at its recorded limit. The half of the id space that its last
        reserved block lies in may have been used until the restart, so it counts as used
        `now`; the other half was last used when recorded. An endpoint's sequence is made
        when it is next sent to, so that a restart does not build a million of them at once.
        """
        restored = self._restored
        for remote, limit, low, high in entries:
            restored[remote] = (limit, low, high)
        self._restored_at = now
        return len(restored)

    def _restored_sequence(self, remote: Hashable, now: float) -> _IdSequence | None:
        """`remote`'s sequence from before the restart, if it was recorded and still counts."""
        restored = self._restored
        if not restored:
            return None
        if self._restored_at + self._lifetime < now:
            restored.clear()  # every id is safe again
            return None
        found = restored.pop(remote, None)
        if found is None:
            return None
        limit, low, high = found
        state = self._state[remote] = _IdSequence(limit, limit)
        state.low, state.high = _restored_halves(limit, low, high, self._restored_at)
        return state


def _restored_halves(limit: int, low: float, high: float, restart: float) -> tuple[float, float]:
    """Last use of each half after a restart: the half of the last reserved block at the
    restart (its ids may have gone out until then), the other as recorded."""
    return (low, restart) if (limit - 1) & 0x8000 else (restart, high)


class _IdSequence:
    """The next id for one endpoint; the first id not yet reserved (-1: none are); when ids
    0..0x7FFF and 0x8000..0xFFFF were last used."""

    __slots__ = ("high", "limit", "low", "next")

    def __init__(self, start: int, limit: int) -> None:
        self.next = start
        self.limit = limit
        self.low = self.high = -math.inf
