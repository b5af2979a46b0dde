# SPDX-License-Identifier: Apache-2.0
"""The asyncio driver of the CoAP layer: a UDP server endpoint and a client.

The wire format, duplicate detection and retransmission schedule come from the sans-IO
:mod:`msgin5g.coap.message`, block-wise transfer from :mod:`msgin5g.coap.block`; this module
only moves datagrams, keeps timers (``loop.call_at`` handles on the loop clock, no task per
timer) and owns the tasks that run request handlers.

Server (:class:`CoapEndpoint`):

- RFC 7252 §4.2/§4.5: a duplicate Confirmable request (same remote and Message ID within
  EXCHANGE_LIFETIME) gets the reply that was sent the first time, from a bounded cache.
- RFC 7252 §5.2.1/§5.2.2: the response is piggybacked on the ACK when the handler returns
  within ``piggyback_delay``; otherwise an empty ACK goes first and the response follows as a
  Confirmable separate response, retransmitted until ACKed.
- RFC 7252 §5.4.1: an unrecognised critical option in a request gets 4.02 Bad Option; a
  malformed Confirmable datagram gets RST (§4.2), anything else malformed is ignored (§4.3).
  A handler exception becomes 5.00. With ``max_in_progress`` handlers running, a new request
  gets 5.03 Service Unavailable with Max-Age at once (§5.9.3.4) rather than a late answer.
- RFC 7959: request bodies arrive through Block1 (2.31 Continue, 4.08, 4.13 with Size1);
  response bodies larger than one block (1024 bytes by default, SZX <= 6) go out with Block2
  and ETag, the later blocks served from a per-remote-and-URI cache of the representation.
- RFC 7641: a GET with Observe 0 whose handler calls :meth:`CoapRequest.accept_observation`
  registers the observer (remote endpoint + token, §4.1) and the response carries Observe.
  :meth:`Observation.notify` sends one notification and returns whether it was delivered.
  The observation ends on RST (§3.6, §4.5), on a GET with Observe 1 and the same token (§3.6),
  when a Confirmable notification is never ACKed (§4.5), on a non-2.xx handler answer, or by
  the application; the application learns of it through :meth:`Observation.wait_cancelled`
  or :meth:`Observation.add_cancel_callback`. Observe values increase per notification,
  modulo 2**24 (§4.4).

When a notification counts as delivered (``notify`` returns True):

- Confirmable, fits one block: when the client ACKs it.
- Confirmable, larger than one block (RFC 7959 §2.6 / RFC 7641 §4.5 with Block2): the first
  block goes with Observe, Block2 (num 0, M=1), ETag and Size2. It counts as delivered when
  the client has ACKed that first block *and* fetched the final block of the same
  representation (GET with Block2 num=N and no Observe, served from the cache), in either
  order, within ``block_fetch_timeout``. An ACK alone only says the first block arrived, so
  an item is handed over only when the client has all of it. libcoap's coap-client does
  both (ACK, then GETs for blocks 1..N). ``EndpointConfig(notify_waits_for_blocks=False)``
  counts the ACK of the first block alone.
- Non-confirmable: True once sent (there is nothing to wait for); a later RST still cancels.
- False on RST, on no ACK after MAX_RETRANSMIT (which also cancels, §4.5), when the blocks are
  not fetched in time (the observation stays), or when the observation or endpoint has ended.

Client (:class:`CoapClient`): Confirmable requests with retransmission, piggybacked and separate
responses, Block1 for large request bodies, Block2 reassembly of large responses, and
observations as async iterators (:class:`ClientObservation`). A Confirmable notification is
ACKed only when the consumer takes it from the iterator, so a server that counts a
notification as delivered on ACK (as above, and as MSGin5G-1 requires) never over-counts; the
blocks of a large notification are fetched first, then the whole body is handed over.
Notifications older than the last one seen are dropped (RFC 7641 §3.4).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Coroutine, Hashable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, cast

from msgin5g.coap.block import (
    MAX_SZX,
    Block1Assembler,
    Block1Complete,
    Block1Continue,
    Block1Incomplete,
    Block1TooLarge,
    Block2Assembler,
    Representation,
    RepresentationCache,
    negotiate_block2,
    slice_block,
)
from msgin5g.coap.id_journal import IdJournal
from msgin5g.coap.message import (
    BlockOption,
    CoapBlockError,
    CoapError,
    CoapFormatError,
    CoapResetError,
    CoapTimeoutError,
    Code,
    ContentFormat,
    DedupCache,
    Message,
    MessageIds,
    MessageType,
    OptionNumber,
    TransmissionParameters,
    decode,
    decode_uint,
    encode,
    encode_uint,
    format_code,
    initial_timeout,
    string_options,
)

__all__ = [
    "Address",
    "ClientObservation",
    "CoapClient",
    "CoapEndpoint",
    "CoapRequest",
    "CoapResponse",
    "EndpointConfig",
    "Observation",
    "RequestHandler",
]

logger = logging.getLogger(__name__)

Address = tuple[Any, ...]
"""A socket address as asyncio reports it: (host, port) or (host, port, flowinfo, scope_id)."""

Option = tuple[int, bytes]

_CON = MessageType.CON
_NON = MessageType.NON
_ACK = MessageType.ACK
_RST = MessageType.RST
_OBSERVE = int(OptionNumber.OBSERVE)
_BLOCK1 = int(OptionNumber.BLOCK1)
_BLOCK2 = int(OptionNumber.BLOCK2)
_URI_PATH = int(OptionNumber.URI_PATH)
_URI_QUERY = int(OptionNumber.URI_QUERY)
_CONTENT_FORMAT = int(OptionNumber.CONTENT_FORMAT)
_ACCEPT = int(OptionNumber.ACCEPT)
_REQUEST_TAG = 292  # RFC 9175 §3.2; elective, used to key Block1 transfers
_SEQ_MASK = 0xFFFFFF
_TIMER_SLACK = 0.001
# Critical options (odd numbers, RFC 7252 §5.4.1) this endpoint recognises. Proxy-Uri and
# Proxy-Scheme are left out on purpose: we are no proxy, so they get 4.02.
_KNOWN_CRITICAL = frozenset(
    int(n)
    for n in OptionNumber
    if n & 1 and n not in (OptionNumber.PROXY_URI, OptionNumber.PROXY_SCHEME)
)


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """Server tunables (sizes in bytes, times in seconds).

    ``piggyback_delay`` defaults to half of ACK_TIMEOUT and ``block_fetch_timeout`` to
    MAX_TRANSMIT_WAIT of the transmission parameters in use.
    """

    max_body_size: int = 65536
    block_szx: int = MAX_SZX
    piggyback_delay: float | None = None
    block_fetch_timeout: float | None = None
    notify_waits_for_blocks: bool = True
    dedup_max_entries: int = 100_000
    representation_max_entries: int = 10_000
    receive_buffer: int = 4 * 1024 * 1024
    """SO_RCVBUF of the UDP socket: ACKs of many UEs arrive in bursts while the loop is busy
    with other work, and a dropped ACK costs a 2-3 s retransmission (capped by the kernel's
    net.core.rmem_max)."""
    max_in_progress: int = 0
    """Requests whose handler is running at once; a new one beyond it is answered 5.03 with
    Max-Age ``overload_max_age`` at once (RFC 7252 §5.9.3.4) instead of queueing until the
    client times out. 0 = no limit."""
    overload_max_age: int = 2


@dataclass(slots=True)
class CoapResponse:
    """What a handler answers. ``options`` are added as they are (e.g. Max-Age, ETag).
    Not frozen, like :class:`Message`: one is made per request."""

    code: int = Code.CONTENT
    payload: bytes = b""
    content_format: int | None = None
    location_path: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()


@dataclass(slots=True)
class CoapRequest:
    """A request as the handler sees it; ``payload`` is whole (after Block1 reassembly).
    Not frozen, like :class:`Message`: one is made per request."""

    method: int
    path: tuple[str, ...]
    query: tuple[str, ...]
    content_format: int | None
    accept: int | None
    observe: int | None
    payload: bytes
    remote: Address
    message: Message = field(repr=False)
    _observation: Observation | None = field(default=None, repr=False)
    peer_identity: str | None = None
    """The identity the peer authenticated with (the DTLS PSK identity); None over plain
    CoAP."""

    @property
    def options(self) -> tuple[Option, ...]:
        """The request's options as received."""
        return self.message.options

    @property
    def token(self) -> bytes:
        """The request token."""
        return self.message.token

    @property
    def wants_observation(self) -> bool:
        """A GET with Observe 0 (RFC 7641 §3.1)."""
        return self._observation is not None

    def accept_observation(self) -> Observation:
        """Register the client as an observer (RFC 7641 §4.1); the response then carries
        Observe. Only for a GET with Observe 0; the registration stands if the handler's
        response is 2.xx.

        Raises:
            ValueError: when the request is not an Observe registration.
        """
        observation = self._observation
        if observation is None:
            raise ValueError("not a GET with Observe 0")
        observation._accepted = True
        return observation


class RequestHandler(Protocol):
    """The application behind a :class:`CoapEndpoint`."""

    async def handle(self, request: CoapRequest) -> CoapResponse:
        """Answer one request; exceptions become 5.00."""
        ...


class Observation:
    """One registered observer (remote endpoint + token) of one resource, RFC 7641."""

    __slots__ = (
        "_accepted",
        "_cancelled",
        "_con",
        "_endpoint",
        "_seq",
        "_waiter",
        "path",
        "query",
        "remote",
        "token",
    )

    def __init__(
        self,
        endpoint: CoapEndpoint,
        remote: Address,
        token: bytes,
        path: tuple[str, ...],
        query: tuple[str, ...],
    ) -> None:
        self._endpoint = endpoint
        self.remote = remote
        self.token = token
        self.path = path
        self.query = query
        self._accepted = False
        self._seq = 1
        self._cancelled: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiter: asyncio.Future[bool] | None = None
        self._con: asyncio.Future[Message | None] | None = None  # the notification in flight

    def __repr__(self) -> str:
        return f"Observation({self.remote!r}, {self.token.hex()}, /{'/'.join(self.path)})"

    @property
    def cancelled(self) -> bool:
        """Whether the observation has ended."""
        return self._cancelled.done()

    @property
    def cancel_reason(self) -> str | None:
        """``reset``, ``deregistered``, ``timeout``, ``replaced``, ``rejected``, ``ended``
        (a non-2.xx notification), ``cancelled``, ``stopped``, ``session ended`` (the peer's
        DTLS session ended); None while active."""
        return self._cancelled.result() if self._cancelled.done() else None

    async def wait_cancelled(self) -> str:
        """Wait until the observation ends; returns the reason."""
        return await asyncio.shield(self._cancelled)

    def add_cancel_callback(self, callback: Callable[[Observation], None]) -> None:
        """Call ``callback(self)`` (from the event loop) once the observation ends."""
        self._cancelled.add_done_callback(lambda _: callback(self))

    def cancel(self) -> None:
        """End the observation from the application side (no message is sent)."""
        self._endpoint._drop_observation(self, "cancelled")

    async def notify(
        self,
        payload: bytes,
        *,
        content_format: int | None = ContentFormat.JSON,
        confirmable: bool = True,
        code: int = Code.CONTENT,
        options: Iterable[Option] = (),
    ) -> bool:
        """Send one notification; see the module docstring for when it returns True.

        Await one call at a time per observation (RFC 7641 §4.5.1 allows one outstanding
        Confirmable notification). Never raises for network outcomes.
        """
        return await self._endpoint._notify(
            self, payload, content_format, confirmable, code, tuple(options)
        )

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & _SEQ_MASK
        return self._seq

    def _finish(self, reason: str) -> None:
        if not self._cancelled.done():
            self._cancelled.set_result(reason)
        con = self._con  # a notification waiting for its ACK stops now (RFC 7641 §3.6)
        if con is not None and not con.done():
            con.set_result(None)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(False)


class _PendingCon:
    __slots__ = ("attempt", "data", "future", "remote", "timeout", "timer")

    def __init__(
        self, data: bytes, remote: Address, future: asyncio.Future[Message | None]
    ) -> None:
        self.data = data
        self.remote = remote
        self.future = future
        self.timeout = 0.0  # the first wait; it doubles after each retransmission (§4.2)
        self.attempt = 0
        self.timer: asyncio.TimerHandle | None = None


class _Layer(asyncio.DatagramProtocol):
    """The message layer shared by server and client: send/receive, CON retransmission (RFC
    7252 §4.2), ACK/RST matching, duplicate detection (§4.5), owned tasks."""

    def __init__(
        self,
        params: TransmissionParameters,
        dedup_max_entries: int,
        rng: random.Random | None,
    ) -> None:
        self.params = params
        self._rng = rng or random.Random()
        self._mids = MessageIds(params.exchange_lifetime, self._rng)
        self._id_journal: IdJournal | None = None
        self._dedup = DedupCache(params.exchange_lifetime, dedup_max_entries)
        self._pending: dict[tuple[Address, int], _PendingCon] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._transport: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ipv6 = False
        self._receive_buffer = 0  # 0: the kernel default

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self, host: str, port: int) -> None:
        """Bind the UDP socket (port 0 picks a free one; see :attr:`address`)."""
        if self._transport is not None:
            raise RuntimeError("already started")
        self._loop = loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port))
        sock = transport.get_extra_info("socket")
        if sock is not None and self._receive_buffer:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._receive_buffer)

    def keep_message_ids(self, path: Path) -> int:
        """Keep this endpoint's message ids across restarts in the file `path`
        (:mod:`msgin5g.coap.id_journal`, RFC 7252 §4.4): call before serving. Returns how many
        endpoints' sequences continue from before."""
        loop = self._loop = self._loop or asyncio.get_running_loop()
        journal = IdJournal(path, loop.time)
        self._mids = MessageIds(self.params.exchange_lifetime, self._rng, journal)
        restored = self._mids.restore(journal.load(), loop.time())
        journal.open()
        self._id_journal = journal
        return restored

    async def stop(self) -> None:
        """Close the socket, end outstanding exchanges and cancel the owned tasks."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        journal, self._id_journal = self._id_journal, None
        if journal is not None:
            journal.close(self._mids.entries())
        for pending in self._pending.values():
            if pending.timer is not None:
                pending.timer.cancel()
            if not pending.future.done():
                pending.future.set_result(None)
        self._on_stop()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _on_stop(self) -> None:
        """Hook for subclasses: end their own state (called before tasks are cancelled)."""

    @property
    def address(self) -> Address:
        """The bound socket address."""
        if self._transport is None:
            raise RuntimeError("not started")
        sockname: Address = self._transport.get_extra_info("sockname")
        return sockname

    # -- asyncio.DatagramProtocol -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Selector and uvloop datagram transports do not all subclass DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        sock = transport.get_extra_info("socket")
        self._ipv6 = sock is not None and sock.family == socket.AF_INET6

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (e.g. port unreachable after a client went away) must not stop serving.
        logger.debug("CoAP socket error: %s", exc)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        try:
            message = decode(data)
        except CoapFormatError as exc:
            self._reject_malformed(data, addr, exc)
            return
        try:
            mtype = message.mtype
            if mtype >= _ACK:
                pending = self._pending.get((addr, message.mid))
                if pending is not None and not pending.future.done():
                    pending.future.set_result(message)
                elif mtype == _RST:
                    self._on_unmatched_reset(message, addr)
                return
            code = message.code
            if code == 0:
                if mtype == _CON:  # CoAP ping, RFC 7252 §4.3
                    self._send_empty(_RST, message.mid, addr)
            elif code < 32:
                self._on_request(message, addr)
            elif 64 <= code < 192:
                self._on_response(message, addr)
            elif mtype == _CON:
                self._send_empty(_RST, message.mid, addr)
        except Exception:
            logger.exception("CoAP: failed to process a datagram from %s", addr)

    # -- hooks --------------------------------------------------------------------------
    def _on_request(self, message: Message, remote: Address) -> None:
        if message.mtype == _CON:
            self._send_empty(_RST, message.mid, remote)

    def _on_response(self, message: Message, remote: Address) -> None:
        if message.mtype == _CON:
            self._send_empty(_RST, message.mid, remote)

    def _on_unmatched_reset(self, message: Message, remote: Address) -> None:
        """An RST that matches no outstanding CON."""

    # -- sending ------------------------------------------------------------------------
    def _send(self, data: bytes, remote: Address) -> None:
        transport = self._transport
        if transport is not None:
            transport.sendto(data, remote)

    def _send_empty(self, mtype: MessageType, mid: int, remote: Address) -> bytes:
        data = bytes((0x40 | (int(mtype) << 4), 0, mid >> 8, mid & 0xFF))
        self._send(data, remote)
        return data

    def _mid(self, remote: Address) -> int:
        """A message id for `remote` now (responses, requests: see `MessageIds`)."""
        return self._mids.take(remote, self._now())

    async def _next_mid(self, remote: Address) -> int:
        """A message id for `remote`, waiting in the rare case that `remote` was sent 65,536
        messages within EXCHANGE_LIFETIME, so that no id is repeated to it sooner (§4.4)."""
        delay = self._mids.delay(remote, self._now())
        while delay > 0:
            await asyncio.sleep(delay)
            delay = self._mids.delay(remote, self._now())
        return self._mids.take(remote, self._now())

    def _reject_malformed(self, data: bytes, addr: Address, exc: CoapFormatError) -> None:
        # RFC 7252 §4.2: reject a malformed CON with RST; §4.3: ignore anything else.
        if len(data) >= 4 and data[0] >> 6 == 1 and (data[0] >> 4) & 3 == _CON:
            self._send_empty(_RST, (data[2] << 8) | data[3], addr)
        logger.debug("CoAP: malformed datagram from %s: %s", addr, exc)

    async def _send_confirmable(
        self, message: Message, remote: Address, observation: Observation | None = None
    ) -> Message | None:
        """Send a CON and retransmit it (§4.2); returns the ACK or RST, or None on timeout or
        when `observation` (a notification's) ends first."""
        loop = self._loop
        if loop is None or self._transport is None:
            return None
        data = encode(message)
        key = (remote, message.mid)
        future: asyncio.Future[Message | None] = loop.create_future()
        pending = _PendingCon(data, remote, future)
        pending.timeout = initial_timeout(self.params, self._rng)
        self._pending[key] = pending
        pending.timer = loop.call_at(loop.time() + pending.timeout, self._retransmit, key)
        self._send(data, remote)
        if observation is not None:
            observation._con = future
        try:
            return await future
        finally:
            if observation is not None and observation._con is future:
                observation._con = None
            if pending.timer is not None:
                pending.timer.cancel()
            if self._pending.get(key) is pending:
                del self._pending[key]

    def _retransmit(self, key: tuple[Address, int]) -> None:
        pending = self._pending.get(key)
        loop = self._loop
        if pending is None or pending.future.done() or loop is None:
            return
        pending.attempt += 1
        if pending.attempt > self.params.max_retransmit:
            pending.future.set_result(None)
            return
        self._send(pending.data, pending.remote)
        pending.timer = loop.call_at(
            loop.time() + pending.timeout * (1 << pending.attempt), self._retransmit, key
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()


def _no_identity(remote: Address) -> str | None:
    """Plain CoAP authenticates nobody."""
    return None


class _UnknownCritical(Exception):
    def __init__(self, number: int) -> None:
        self.number = number


class _RequestOptions:
    """The options a request is served by, read in one pass over them (RFC 7252 5.4).

    The first of a repeated non-repeatable option counts. Raises _UnknownCritical for a
    critical option this endpoint does not know (5.4.1: answered 4.02), CoapFormatError for a
    malformed value."""

    __slots__ = ("accept", "block1", "block2", "content_format", "observe", "path", "query")

    def __init__(self, options: tuple[Option, ...]) -> None:
        path: list[str] = []
        query: list[str] = []
        content_format = accept = None
        observe: bytes | None = None
        block1 = block2 = None
        try:
            for number, value in options:
                if number == _URI_PATH:
                    path.append(value.decode())
                elif number == _CONTENT_FORMAT:
                    if content_format is None:
                        content_format = decode_uint(number, value)
                elif number == _URI_QUERY:
                    query.append(value.decode())
                elif number == _BLOCK1:
                    if block1 is None:
                        block1 = BlockOption.decode(value)
                elif number == _BLOCK2:
                    if block2 is None:
                        block2 = BlockOption.decode(value)
                elif number == _OBSERVE:
                    if observe is None:
                        observe = value  # read for a GET only
                elif number == _ACCEPT:
                    if accept is None:
                        accept = decode_uint(number, value)
                elif number & 1 and number not in _KNOWN_CRITICAL:
                    raise _UnknownCritical(number)
        except UnicodeDecodeError as exc:
            raise CoapFormatError(f"option {number}: not UTF-8") from exc
        self.path = tuple(path)
        self.query = tuple(query)
        self.content_format = content_format
        self.accept = accept
        self.observe = observe
        self.block1 = block1
        self.block2 = block2


class _ReplyState:
    """One request in progress, as the early-ACK sweep sees it."""

    __slots__ = ("acked", "deadline", "done", "mid", "remote")

    def __init__(self, deadline: float, mid: int, remote: Address) -> None:
        self.acked = False  # the empty ACK went out: the answer follows as a CON
        self.done = False  # the handler answered: no empty ACK is due
        self.deadline = deadline
        self.mid = mid
        self.remote = remote


class CoapEndpoint(_Layer):
    """A CoAP server on one UDP socket, answering through a :class:`RequestHandler`."""

    def __init__(
        self,
        handler: RequestHandler,
        *,
        params: TransmissionParameters | None = None,
        config: EndpointConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        params = params or TransmissionParameters()
        config = config or EndpointConfig()
        if not 0 <= config.block_szx <= MAX_SZX:
            raise ValueError("block_szx must be 0..6 (16..1024 bytes)")
        super().__init__(params, config.dedup_max_entries, rng)
        self.config = config
        self._receive_buffer = config.receive_buffer
        self._handle = handler.handle
        self._block_szx = config.block_szx
        self._block_size = 1 << (config.block_szx + 4)
        self._piggyback_delay = (
            params.ack_timeout / 2 if config.piggyback_delay is None else config.piggyback_delay
        )
        self._fetch_timeout = (
            params.max_transmit_wait
            if config.block_fetch_timeout is None
            else config.block_fetch_timeout
        )
        self._block1 = Block1Assembler(
            config.max_body_size, max_szx=config.block_szx, lifetime=params.exchange_lifetime
        )
        self._representations = RepresentationCache(
            params.exchange_lifetime, config.representation_max_entries
        )
        self._observations: dict[tuple[Address, bytes], Observation] = {}
        self._fetch_waiters: dict[Hashable, asyncio.Future[bool]] = {}
        self._non_notifications: OrderedDict[tuple[Address, int], Observation] = OrderedDict()
        # CON requests in progress by arrival, so by deadline: one timer sweeps them all.
        self._early: deque[_ReplyState] = deque()
        self._early_timer: asyncio.TimerHandle | None = None
        self._etag = self._rng.getrandbits(32)
        self._in_progress = 0
        self.overloaded = 0
        """Requests answered 5.03 because ``max_in_progress`` handlers were running."""
        self.peer_identity: Callable[[Address], str | None] = _no_identity
        """Who the peer at an address authenticated as; a security layer in front of the
        endpoint (:mod:`msgin5g.coap.dtls`) replaces it."""

    @property
    def observations(self) -> tuple[Observation, ...]:
        """The registered observations."""
        return tuple(self._observations.values())

    # -- requests -----------------------------------------------------------------------
    def _on_request(self, message: Message, remote: Address) -> None:
        confirmable = message.mtype == _CON
        if self._dedup.seen((remote, message.mid), self._now()):
            reply = self._dedup.reply((remote, message.mid)) if confirmable else None
            if reply is not None:
                self._send(reply, remote)
            return
        try:
            self._prepare(message, remote, _RequestOptions(message.options))
        except _UnknownCritical as exc:
            self._reply(message, remote, Code.BAD_OPTION, (), f"option {exc.number}".encode())
        except CoapFormatError as exc:
            self._reply(message, remote, Code.BAD_OPTION, (), str(exc).encode())

    def _prepare(self, message: Message, remote: Address, options: _RequestOptions) -> None:
        path = options.path
        query = options.query
        block1 = options.block1
        block2 = options.block2
        payload = message.payload
        extra: tuple[Option, ...] = ()
        if block1 is not None:
            result = self._block1.feed(
                (remote, path, query, message.first_option(_REQUEST_TAG)),
                block1,
                payload,
                message.size1,
                self._now(),
            )
            if isinstance(result, Block1Continue):
                opts = ((_BLOCK1, result.block.encode()),)
                self._reply(message, remote, Code.CONTINUE, opts)
                return
            if isinstance(result, Block1Complete):
                payload = result.body
                extra = ((_BLOCK1, BlockOption(block1.num, False, block1.szx).encode()),)
            elif isinstance(result, Block1Incomplete):
                self._reply(message, remote, Code.REQUEST_ENTITY_INCOMPLETE)
                return
            elif isinstance(result, Block1TooLarge):
                self._reply_too_large(message, remote, result.limit)
                return
            else:
                self._reply(message, remote, Code.BAD_REQUEST, (), result.reason.encode())
                return
        elif len(payload) > self.config.max_body_size:
            self._reply_too_large(message, remote, self.config.max_body_size)
            return
        if block2 is not None and block2.num > 0:
            representation = self._representations.get((remote, path, query), self._now())
            if representation is not None:
                self._serve_block(message, remote, representation, block2, (remote, path, query))
                return
            if message.code != Code.GET:
                self._reply(message, remote, Code.REQUEST_ENTITY_INCOMPLETE)
                return
        observe = None
        if message.code == Code.GET and options.observe is not None:
            observe = decode_uint(_OBSERVE, options.observe)
        observation = None
        if observe == 0:
            observation = Observation(self, remote, message.token, path, query)
        elif observe == 1:
            registered = self._observations.get((remote, message.token))
            if registered is not None:
                self._drop_observation(registered, "deregistered")
        limit = self.config.max_in_progress
        if limit and self._in_progress >= limit:
            self._reply_overloaded(message, remote)
            return
        request = CoapRequest(
            message.code,
            path,
            query,
            options.content_format,
            options.accept,
            observe,
            payload,
            remote,
            message,
            observation,
            self.peer_identity(remote),
        )
        self._in_progress += 1  # given back by _serve once the handler has answered
        self._spawn(self._serve(message, remote, request, extra, block2))

    async def _serve(
        self,
        message: Message,
        remote: Address,
        request: CoapRequest,
        extra: tuple[Option, ...],
        block2: BlockOption | None,
    ) -> None:
        loop = self._loop
        assert loop is not None
        state = None
        if message.mtype == _CON:
            state = _ReplyState(loop.time() + self._piggyback_delay, message.mid, remote)
            self._early.append(state)
            if self._early_timer is None:
                self._early_timer = loop.call_at(state.deadline, self._early_acks)
        try:
            try:
                response = await self._handle(request)
            finally:
                self._in_progress -= 1
                if state is not None:
                    state.done = True
        except Exception:
            logger.exception(
                "CoAP handler failed for %s /%s from %s",
                format_code(request.method),
                "/".join(request.path),
                remote,
            )
            response = CoapResponse(Code.INTERNAL_SERVER_ERROR)
        options = [*response.options, *extra]
        if response.content_format is not None:
            options.append((OptionNumber.CONTENT_FORMAT, encode_uint(response.content_format)))
        if response.location_path:
            options += string_options(OptionNumber.LOCATION_PATH, response.location_path)
        observation = request._observation
        if observation is not None and observation._accepted:
            if 64 <= response.code < 96 and not observation.cancelled:
                self._register(observation)
                options.append((_OBSERVE, encode_uint(observation._next_seq())))
            else:
                observation._finish("rejected")
        payload = response.payload
        if block2 is not None or len(payload) > self._block_size:
            num, szx = negotiate_block2(block2, self._block_szx)
            if num or len(payload) > 1 << (szx + 4):
                representation = Representation(
                    payload, self._next_etag(), response.content_format, response.code
                )
                key = (remote, request.path, request.query)
                self._representations.put(key, representation, self._now())
                try:
                    payload, block_options = self._block(representation, num, szx)
                except CoapBlockError as exc:
                    options = []
                    payload = str(exc).encode()
                    response = CoapResponse(Code.BAD_OPTION)
                else:
                    options += block_options
            else:
                options.append((_BLOCK2, BlockOption(0, False, szx).encode()))
        out = Message(_ACK, response.code, message.mid, message.token, tuple(options), payload)
        if message.mtype != _CON:
            mid = self._mids.reply_id(remote, self._now())
            self._send(encode(replace(out, mtype=_NON, mid=mid)), remote)
        elif state is None or not state.acked:
            data = encode(out)
            self._dedup.set_reply((remote, message.mid), data)
            self._send(data, remote)
        else:
            answer = await self._send_confirmable(
                replace(out, mtype=_CON, mid=await self._next_mid(remote)), remote
            )
            if answer is not None and answer.mtype == _RST and observation is not None:
                self._drop_observation(observation, "reset")

    def _early_acks(self) -> None:
        """Send an empty ACK for each CON whose handler has not answered within the piggyback
        delay (RFC 7252 5.2.2, so the client stops retransmitting); the answer then follows
        as a CON of its own. One timer for all requests, at the oldest one's deadline."""
        self._early_timer = None
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        queue = self._early
        while queue:
            state = queue[0]
            if not state.done:
                if state.deadline > now + _TIMER_SLACK:  # timers may fire a little early
                    self._early_timer = loop.call_at(state.deadline, self._early_acks)
                    return
                state.acked = True
                data = self._send_empty(_ACK, state.mid, state.remote)
                self._dedup.set_reply((state.remote, state.mid), data)
            queue.popleft()

    def _reply(
        self,
        message: Message,
        remote: Address,
        code: int,
        options: tuple[Option, ...] = (),
        payload: bytes = b"",
    ) -> None:
        if message.mtype == _CON:
            data = encode(Message(_ACK, code, message.mid, message.token, options, payload))
            self._dedup.set_reply((remote, message.mid), data)
        else:
            mid = self._mids.reply_id(remote, self._now())
            data = encode(Message(_NON, code, mid, message.token, options, payload))
        self._send(data, remote)

    def _reply_overloaded(self, message: Message, remote: Address) -> None:
        self.overloaded += 1
        age = ((OptionNumber.MAX_AGE, encode_uint(self.config.overload_max_age)),)
        content = ((OptionNumber.CONTENT_FORMAT, encode_uint(ContentFormat.JSON)),)
        body = b'{"cause":"NF_CONGESTION","detail":"too many requests in progress"}'
        self._reply(message, remote, Code.SERVICE_UNAVAILABLE, (*content, *age), body)

    def _reply_too_large(self, message: Message, remote: Address, limit: int) -> None:
        options = ((OptionNumber.SIZE1, encode_uint(limit)),)
        self._reply(message, remote, Code.REQUEST_ENTITY_TOO_LARGE, options)

    # -- Block2 ---------------------------------------------------------------------------
    def _next_etag(self) -> bytes:
        self._etag = (self._etag + 1) & 0xFFFFFFFF
        return self._etag.to_bytes(4, "big")

    @staticmethod
    def _block(representation: Representation, num: int, szx: int) -> tuple[bytes, list[Option]]:
        chunk, more = slice_block(representation.body, num, szx)
        options: list[Option] = [
            (OptionNumber.ETAG, representation.etag),
            (_BLOCK2, BlockOption(num, more, szx).encode()),
        ]
        if num == 0:
            options.append((OptionNumber.SIZE2, encode_uint(len(representation.body))))
        return chunk, options

    def _serve_block(
        self,
        message: Message,
        remote: Address,
        representation: Representation,
        block2: BlockOption,
        key: Hashable,
    ) -> None:
        num, szx = negotiate_block2(block2, self._block_szx)
        try:
            chunk, options = self._block(representation, num, szx)
        except CoapBlockError as exc:
            self._reply(message, remote, Code.BAD_OPTION, (), str(exc).encode())
            return
        if representation.content_format is not None:
            options.append(
                (OptionNumber.CONTENT_FORMAT, encode_uint(representation.content_format))
            )
        self._reply(message, remote, representation.code, tuple(options), chunk)
        if (num + 1) << (szx + 4) >= len(representation.body):
            waiter = self._fetch_waiters.pop(key, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(True)

    # -- observations ---------------------------------------------------------------------
    def _register(self, observation: Observation) -> None:
        key = (observation.remote, observation.token)
        previous = self._observations.get(key)
        if previous is not None and previous is not observation:
            self._drop_observation(previous, "replaced")
        self._observations[key] = observation

    def forget_peer(self, remote: Address) -> None:
        """End the observations of ``remote``: its security session ended, and a later peer
        on the same address must not receive what was meant for this one."""
        for key, observation in list(self._observations.items()):
            if key[0] == remote:
                self._drop_observation(observation, "session ended")

    def _drop_observation(self, observation: Observation, reason: str) -> None:
        key = (observation.remote, observation.token)
        if self._observations.get(key) is observation:
            del self._observations[key]
        observation._finish(reason)

    def _on_unmatched_reset(self, message: Message, remote: Address) -> None:
        observation = self._non_notifications.pop((remote, message.mid), None)
        if observation is not None:
            self._drop_observation(observation, "reset")

    async def _notify(
        self,
        observation: Observation,
        payload: bytes,
        content_format: int | None,
        confirmable: bool,
        code: int,
        extra: tuple[Option, ...],
    ) -> bool:
        if observation.cancelled or self._transport is None:
            return False
        loop = self._loop
        assert loop is not None
        remote = observation.remote
        if self._mids.delay(remote, loop.time()) > 0:
            mid = await self._next_mid(remote)
            if observation.cancelled:
                return False
        else:
            mid = self._mids.take(remote, loop.time())
        options = [*extra, (_OBSERVE, encode_uint(observation._next_seq()))]
        if content_format is not None:
            options.append((OptionNumber.CONTENT_FORMAT, encode_uint(content_format)))
        waiter: asyncio.Future[bool] | None = None
        key = (observation.remote, observation.path, observation.query)
        if len(payload) > self._block_size:
            representation = Representation(payload, self._next_etag(), content_format, code)
            self._representations.put(key, representation, loop.time())
            payload, block_options = self._block(representation, 0, self._block_szx)
            options += block_options
            if confirmable and self.config.notify_waits_for_blocks:
                waiter = loop.create_future()
                previous = self._fetch_waiters.get(key)
                if previous is not None and not previous.done():
                    previous.set_result(False)
                self._fetch_waiters[key] = waiter
                observation._waiter = waiter
        message = Message(
            _CON if confirmable else _NON,
            code,
            mid,
            observation.token,
            tuple(options),
            payload,
        )
        final = not 64 <= code < 96  # a non-2.xx notification ends the observation (§3.2)
        if not confirmable:
            self._remember_non(observation, message.mid)
            self._send(encode(message), observation.remote)
            if final:
                self._drop_observation(observation, "ended")
            return True
        try:
            answer = await self._send_confirmable(message, observation.remote, observation)
            if answer is None:
                self._drop_observation(observation, "timeout")  # or it had ended already
                return False
            if answer.mtype == _RST:
                self._drop_observation(observation, "reset")
                return False
            if final:
                self._drop_observation(observation, "ended")
            if waiter is None:
                return True
            try:
                async with asyncio.timeout(self._fetch_timeout):
                    return await waiter
            except TimeoutError:
                logger.debug("CoAP: %r did not fetch all blocks in time", observation)
                return False
        finally:
            if waiter is not None:
                observation._waiter = None
                if self._fetch_waiters.get(key) is waiter:
                    del self._fetch_waiters[key]

    def _remember_non(self, observation: Observation, mid: int) -> None:
        notes = self._non_notifications
        if len(notes) >= 10_000:
            notes.popitem(last=False)
        notes[(observation.remote, mid)] = observation

    def _on_stop(self) -> None:
        if self._early_timer is not None:
            self._early_timer.cancel()
            self._early_timer = None
        self._early.clear()
        for observation in list(self._observations.values()):
            self._drop_observation(observation, "stopped")
        for waiter in self._fetch_waiters.values():
            if not waiter.done():
                waiter.set_result(False)
        self._fetch_waiters.clear()
        self._non_notifications.clear()


# -- client ------------------------------------------------------------------------------


class _Waiter:
    __slots__ = ("future", "mid", "remote")

    def __init__(self, future: asyncio.Future[Message], mid: int, remote: Address) -> None:
        self.future = future
        self.mid = mid
        self.remote = remote


class _Notification:
    __slots__ = ("message", "mid")

    def __init__(self, message: Message, mid: int | None) -> None:
        self.message = message
        self.mid = mid  # the CON notification's Message ID, to ACK when taken


_END: Any = object()


def _is_fresh(last: int, new: int) -> bool:
    # RFC 7641 §3.4 without the 128 s clause: the caller handles time.
    return (last < new and new - last < 1 << 23) or (last > new and last - new > 1 << 23)


class ClientObservation:
    """An observation made by :class:`CoapClient`: an async iterator of notifications.

    The first item is the response to the registration. A Confirmable notification is ACKed
    when the iterator hands it over; notifications still queued when the observation is
    cancelled are rejected with RST. Iteration ends after a non-2.xx notification or one
    without Observe, or after :meth:`cancel`.
    """

    def __init__(
        self,
        client: CoapClient,
        remote: Address,
        token: bytes,
        path: tuple[str, ...],
        query: tuple[str, ...],
    ) -> None:
        self._client = client
        self.remote = remote
        self.token = token
        self.path = path
        self.query = query
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._closed = False
        self._last_seq: int | None = None
        self._last_time = 0.0

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)
            raise StopAsyncIteration
        assert isinstance(item, _Notification)
        if item.mid is not None:
            self._client._ack_taken(self.remote, item.mid)
        message = item.message
        if not 64 <= message.code < 96 or not message.has_option(_OBSERVE):
            self._close()
        return message

    async def __aenter__(self) -> ClientObservation:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.cancel()

    @property
    def closed(self) -> bool:
        """Whether the observation has ended locally."""
        return self._closed

    async def cancel(self) -> None:
        """Deregister (a GET with Observe 1 and the same token, RFC 7641 §3.6) and end."""
        if self._closed:
            return
        self._close()
        try:
            await self._client._deregister(self)
        except CoapError as exc:
            logger.debug("CoAP: deregistration of %s failed: %s", self.path, exc)

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._client._client_observations.pop(self.token, None)
        queue = self._queue
        while not queue.empty():
            item = queue.get_nowait()
            if isinstance(item, _Notification) and item.mid is not None:
                self._client._send_empty(_RST, item.mid, self.remote)
        queue.put_nowait(_END)

    def _deliver(self, message: Message, mid: int | None) -> None:
        if self._closed:
            if mid is not None:
                self._client._send_empty(_RST, mid, self.remote)
            return
        seq = message.observe
        now = self._client._now()
        if seq is not None:
            last = self._last_seq
            if last is not None and not _is_fresh(last, seq) and now < self._last_time + 128:
                if mid is not None:  # stale, RFC 7641 §3.4: ACK and drop
                    self._client._ack_taken(self.remote, mid)
                return
            self._last_seq = seq
            self._last_time = now
        self._queue.put_nowait(_Notification(message, mid))


class CoapClient(_Layer):
    """A CoAP client on one UDP socket. Remote addresses are numeric (IP, port) tuples."""

    def __init__(
        self,
        *,
        params: TransmissionParameters | None = None,
        block_szx: int = MAX_SZX,
        max_body_size: int = 1 << 24,
        response_timeout: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        params = params or TransmissionParameters()
        super().__init__(params, 10_000, rng)
        self._block_szx = block_szx
        self._max_body = max_body_size
        self._response_timeout = (
            params.max_transmit_wait if response_timeout is None else response_timeout
        )
        self._waiters: dict[bytes, _Waiter] = {}
        self._client_observations: dict[bytes, ClientObservation] = {}

    async def start(self, host: str = "0.0.0.0", port: int = 0) -> None:
        """Bind the local UDP socket (any address, a free port, by default)."""
        await super().start(host, port)

    async def __aenter__(self) -> CoapClient:
        if self._transport is None:
            await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _on_stop(self) -> None:
        for observation in list(self._client_observations.values()):
            observation._close()
        for waiter in self._waiters.values():
            if not waiter.future.done():
                waiter.future.set_exception(CoapError("client stopped"))

    # -- public API -----------------------------------------------------------------------
    async def request(
        self,
        remote: Address,
        method: int,
        path: Iterable[str],
        *,
        payload: bytes = b"",
        content_format: int | None = None,
        accept: int | None = None,
        query: Iterable[str] = (),
        options: Iterable[Option] = (),
        confirmable: bool = True,
    ) -> Message:
        """Send a request and return the response with its whole body.

        A body larger than one block goes with Block1 (RFC 7959 §2.5); a Block2 response is
        fetched to the end (§2.4). The returned message keeps the options of the first
        response block, without Block2.

        Raises:
            CoapTimeoutError: no ACK or no response in time.
            CoapResetError: the server answered RST.
            CoapBlockError: a block-wise transfer went wrong.
        """
        remote = self._normalise(remote)
        base = self._base_options(path, query, content_format, accept, options)
        mtype = _CON if confirmable else _NON
        block_size = 1 << (self._block_szx + 4)
        if len(payload) <= block_size:
            message = self._message(remote, mtype, method, base, payload)
            response = await self._exchange(remote, message)
        else:
            response = await self._send_blocks(remote, mtype, method, base, payload)
        block2 = response.block2
        if block2 is not None and block2.more:
            response = await self._fetch_rest(remote, mtype, method, base, response, block2)
        return response

    async def observe(
        self,
        remote: Address,
        path: Iterable[str],
        *,
        query: Iterable[str] = (),
        accept: int | None = None,
        options: Iterable[Option] = (),
    ) -> ClientObservation:
        """Register as an observer (GET with Observe 0, RFC 7641 §3.1).

        Raises the errors of :meth:`request` for the registration itself.
        """
        remote = self._normalise(remote)
        path, query = tuple(path), tuple(query)
        base = self._base_options(path, query, None, accept, options)
        message = self._message(remote, _CON, Code.GET, ((_OBSERVE, b""), *base), b"")
        observation = ClientObservation(self, remote, message.token, path, query)
        self._client_observations[message.token] = observation
        try:
            first = await self._exchange(remote, message)
            block2 = first.block2
            if block2 is not None and block2.more:
                first = await self._fetch_rest(remote, _CON, Code.GET, base, first, block2)
        except BaseException:
            self._client_observations.pop(message.token, None)
            raise
        observation._deliver(first, None)
        return observation

    # -- internals ------------------------------------------------------------------------
    def _normalise(self, remote: Address) -> Address:
        if self._ipv6 and len(remote) == 2:
            return (remote[0], remote[1], 0, 0)
        return tuple(remote)

    @staticmethod
    def _base_options(
        path: Iterable[str],
        query: Iterable[str],
        content_format: int | None,
        accept: int | None,
        options: Iterable[Option],
    ) -> tuple[Option, ...]:
        base = [
            *string_options(OptionNumber.URI_PATH, path),
            *string_options(OptionNumber.URI_QUERY, query),
            *options,
        ]
        if content_format is not None:
            base.append((OptionNumber.CONTENT_FORMAT, encode_uint(content_format)))
        if accept is not None:
            base.append((OptionNumber.ACCEPT, encode_uint(accept)))
        return tuple(base)

    def _new_token(self) -> bytes:
        while True:
            token = self._rng.getrandbits(64).to_bytes(8, "big")
            if token not in self._waiters and token not in self._client_observations:
                return token

    def _message(
        self,
        remote: Address,
        mtype: MessageType,
        code: int,
        options: tuple[Option, ...],
        payload: bytes,
    ) -> Message:
        return Message(mtype, code, self._mid(remote), self._new_token(), options, payload)

    async def _exchange(self, remote: Address, message: Message) -> Message:
        loop = self._loop
        if loop is None or self._transport is None:
            raise CoapError("client not started")
        future: asyncio.Future[Message] = loop.create_future()
        self._waiters[message.token] = _Waiter(future, message.mid, remote)
        try:
            if message.mtype == _CON:
                answer = await self._send_confirmable(message, remote)
                if answer is None:
                    if future.done():
                        return future.result()
                    raise CoapTimeoutError(f"no ACK from {remote} for {message.mid}")
                if answer.mtype == _RST:
                    raise CoapResetError(f"{remote} rejected message {message.mid}")
                if answer.code:
                    return answer
            else:
                self._send(encode(message), remote)
            try:
                async with asyncio.timeout(self._response_timeout):
                    return await future
            except TimeoutError:
                raise CoapTimeoutError(f"no response from {remote}") from None
        finally:
            del self._waiters[message.token]
            if future.done() and not future.cancelled():
                future.exception()  # mark retrieved

    async def _send_blocks(
        self,
        remote: Address,
        mtype: MessageType,
        method: int,
        base: tuple[Option, ...],
        payload: bytes,
    ) -> Message:
        szx = self._block_szx
        offset = 0
        size1 = ((OptionNumber.SIZE1, encode_uint(len(payload))),)
        while True:
            size = 1 << (szx + 4)
            num = offset >> (szx + 4)
            chunk = payload[offset : offset + size]
            more = offset + size < len(payload)
            options = (*base, (_BLOCK1, BlockOption(num, more, szx).encode()))
            if num == 0:
                options += size1
            message = self._message(remote, mtype, method, options, chunk)
            response = await self._exchange(remote, message)
            if not more or response.code != Code.CONTINUE:
                return response
            offset += size
            echoed = response.block1
            if echoed is not None and echoed.szx < szx:
                szx = echoed.szx  # the server asked for smaller blocks (RFC 7959 §2.5)

    async def _fetch_rest(
        self,
        remote: Address,
        mtype: MessageType,
        method: int,
        base: tuple[Option, ...],
        first: Message,
        block2: BlockOption,
    ) -> Message:
        assembler = Block2Assembler(self._max_body)
        following = assembler.feed(block2, first.payload, first.etag)
        while following is not None:
            options = (*base, (_BLOCK2, following.encode()))
            message = self._message(remote, mtype, method, options, b"")
            response = await self._exchange(remote, message)
            block = response.block2
            if not 64 <= response.code < 96 or block is None:
                raise CoapBlockError(f"block {following.num} answered {response.code:#x}")
            following = assembler.feed(block, response.payload, response.etag)
        return replace(first.without_options(_BLOCK2), payload=assembler.body)

    async def _deregister(self, observation: ClientObservation) -> None:
        base = self._base_options(observation.path, observation.query, None, None, ())
        message = Message(
            _CON,
            Code.GET,
            self._mid(observation.remote),
            observation.token,
            ((_OBSERVE, b"\x01"), *base),
        )
        await self._exchange(observation.remote, message)

    def _ack_taken(self, remote: Address, mid: int) -> None:
        data = self._send_empty(_ACK, mid, remote)
        self._dedup.set_reply((remote, mid), data)

    def _on_response(self, message: Message, remote: Address) -> None:
        mid = message.mid
        confirmable = message.mtype == _CON
        if confirmable and self._dedup.seen((remote, mid), self._now()):
            reply = self._dedup.reply((remote, mid))
            if reply is not None:
                self._send(reply, remote)
            return
        waiter = self._waiters.get(message.token)
        if waiter is not None and not waiter.future.done() and waiter.remote == remote:
            if confirmable:
                self._ack_taken(remote, mid)
            pending = self._pending.get((remote, waiter.mid))
            if pending is not None and not pending.future.done():
                # A separate response also acknowledges the request (RFC 7252 §5.2.2).
                pending.future.set_result(message)
            waiter.future.set_result(message)
            return
        observation = self._client_observations.get(message.token)
        if observation is not None and observation.remote == remote:
            try:
                block2 = message.block2
            except CoapFormatError:
                block2 = None
            ack_mid = mid if confirmable else None
            if block2 is not None and block2.more:
                self._spawn(self._complete_notification(observation, message, block2, ack_mid))
            else:
                observation._deliver(message, ack_mid)
            return
        if confirmable:
            data = self._send_empty(_RST, mid, remote)
            self._dedup.set_reply((remote, mid), data)

    async def _complete_notification(
        self,
        observation: ClientObservation,
        message: Message,
        block2: BlockOption,
        ack_mid: int | None,
    ) -> None:
        base = self._base_options(observation.path, observation.query, None, None, ())
        try:
            whole = await self._fetch_rest(
                observation.remote, _CON, Code.GET, base, message, block2
            )
        except CoapError as exc:
            logger.debug("CoAP: could not fetch the blocks of a notification: %s", exc)
            if ack_mid is not None:
                # Let the server's retransmission of the first block start a new attempt.
                self._dedup.forget((observation.remote, ack_mid))
            return
        observation._deliver(whole, ack_mid)
