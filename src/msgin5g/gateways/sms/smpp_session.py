# SPDX-License-Identifier: Apache-2.0
"""The asyncio SMPP 3.4 ESME: one bind (:class:`SmppSession`), a pool of binds (:class:`SmppPool`).

A thin driver over the sans-IO codec in :mod:`msgin5g.gateways.sms.smpp_protocol`:

* bind_transceiver (or transmitter/receiver) with system_id/password (SMPP 3.4 4.1); a refused
  bind raises :class:`SmppBindRefused` from :meth:`SmppSession.start`;
* enquire_link every ``enquire_link_interval`` seconds (4.11); a link that does not answer within
  ``response_timeout`` is closed and rebound;
* a window of at most ``window`` outstanding submit_sm, each awaiting its submit_sm_resp matched
  by sequence_number (4.4, 2.6);
* a throttle per bind (GCRA, the token bucket as a schedule: ``throughput`` messages/second
  with a burst of ``burst``);
* ESME_RTHROTTLED (0x58) and ESME_RMSGQFUL (0x14) retried with exponential backoff, other
  error statuses raised as :class:`SmppSubmitError`;
* after the connection drops, reconnect with exponential backoff; submits in flight fail with
  the retryable :class:`SmppConnectionLost` (the SMSC may or may not have the message: resending
  is at-least-once), submits not yet written wait for the new bind or fail with
  :class:`SmppNotBound`, which is always safe to resend;
* incoming deliver_sm (MO and receipts) go to a handler; deliver_sm_resp is sent when the handler
  returns, with ESME_RX_T_APPN (0x64) if it raised, so the SMSC redelivers what we did not take.

Exceptions::

    SmppError                      (retryable: bool)
     ├── SmppBindRefused(status)   bind_resp with an error status
     ├── SmppSubmitError(status)   submit_sm_resp with an error status
     ├── SmppConnectionLost        link closed with the submit in flight (retryable)
     │    └── SmppNotBound          no bind to write to within the wait (retryable, not sent)
     └── SmppTimeout               no response within response_timeout (retryable, unknown)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from msgin5g.gateways.sms.encoding import SmsPart, split_text
from msgin5g.gateways.sms.smpp_protocol import (
    Bind,
    BindResp,
    CommandId,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    InvalidPdu,
    Pdu,
    PduReader,
    SmppDecodeError,
    Status,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    UnknownPdu,
)

__all__ = [
    "DeliverHandler",
    "SmppBindRefused",
    "SmppConfig",
    "SmppConnectionLost",
    "SmppError",
    "SmppNotBound",
    "SmppPool",
    "SmppSession",
    "SmppSubmitError",
    "SmppTimeout",
    "SubmitOptions",
]

logger = logging.getLogger(__name__)

DeliverHandler = Callable[[DeliverSm], Awaitable[None]]
"""Called once per received deliver_sm; deliver_sm_resp goes out when it returns."""

BindType = Literal["transceiver", "transmitter", "receiver"]
_BIND_COMMANDS: Final = {
    "transceiver": CommandId.BIND_TRANSCEIVER,
    "transmitter": CommandId.BIND_TRANSMITTER,
    "receiver": CommandId.BIND_RECEIVER,
}
_THROTTLE_STATUSES: Final = frozenset((Status.RTHROTTLED, Status.RMSGQFUL))
_RETRYABLE_STATUSES: Final = frozenset(
    (Status.RTHROTTLED, Status.RMSGQFUL, Status.RSYSERR, Status.RX_T_APPN)
)


class SmppError(Exception):
    """Root of the SMPP adapter errors; ``retryable`` tells whether resending may succeed."""

    retryable: bool = False


class SmppBindRefused(SmppError):
    """The SMSC answered the bind with an error (e.g. 0x0D ESME_RBINDFAIL, 0x0E RINVPASWD)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"bind refused: command_status 0x{status:02X}")
        self.status = status


class SmppSubmitError(SmppError):
    """submit_sm_resp carried an error command_status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"submit_sm failed: command_status 0x{status:02X}")
        self.status = status
        self.retryable = status in _RETRYABLE_STATUSES


class SmppConnectionLost(SmppError):
    """The link closed while the submit was in flight: the SMSC may or may not have it."""

    retryable = True


class SmppNotBound(SmppConnectionLost):
    """No bind was available within the wait; nothing was sent."""


class SmppTimeout(SmppError):
    """No response within ``response_timeout``; the outcome is unknown."""

    retryable = True


@dataclass(frozen=True, slots=True)
class SmppConfig:
    """Settings of one bind. Times in seconds, ``throughput`` in messages/second."""

    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    bind_type: BindType = "transceiver"
    window: int = 10
    throughput: float | None = None
    burst: int = 1
    enquire_link_interval: float = 30.0
    response_timeout: float = 10.0
    connect_timeout: float = 5.0
    bind_wait: float = 10.0
    """How long a submit waits for a bind when the link is down before SmppNotBound."""
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    throttle_retries: int = 10
    throttle_backoff: float = 0.05
    throttle_backoff_max: float = 2.0


@dataclass(frozen=True, slots=True)
class SubmitOptions:
    """submit_sm fields other than the destination and the user data."""

    source_addr: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    dest_addr_ton: int = 1
    dest_addr_npi: int = 1
    registered_delivery: int = 1
    service_type: str = ""
    validity_period: str = ""
    protocol_id: int = 0


class _Rate:
    """GCRA: admits ``rate`` per second with bursts of ``burst``; waiters are served in order."""

    __slots__ = ("_interval", "_tat", "_tolerance")

    def __init__(self, rate: float, burst: int) -> None:
        self._interval = 1.0 / rate
        self._tolerance = self._interval * max(burst - 1, 0)
        self._tat = 0.0

    async def acquire(self) -> None:
        now = time.monotonic()
        tat = max(self._tat, now)
        self._tat = tat + self._interval
        wait = tat - self._tolerance - now
        if wait > 0:
            await asyncio.sleep(wait)


class _Link:
    """One bound TCP connection: the pending responses and the reader/keepalive tasks."""

    def __init__(
        self,
        config: SmppConfig,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handler: DeliverHandler,
    ) -> None:
        self._config = config
        self._reader = reader
        self._writer = writer
        self._handler = handler
        self._pdus = PduReader()
        self._seq = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Pdu]] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()
        self._unbinding = False
        self.in_flight = 0

    @property
    def is_open(self) -> bool:
        return not self._closed.is_set()

    def next_sequence(self) -> int:
        seq = next(self._seq)
        if seq > 0x7FFFFFFF:  # 2.6: sequence numbers run 0x00000001..0x7FFFFFFF
            self._seq = itertools.count(2)
            seq = 1
        return seq

    def expect(self, sequence: int) -> asyncio.Future[Pdu]:
        if not self.is_open:
            raise SmppConnectionLost("link closed")
        fut: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        self._pending[sequence] = fut
        return fut

    def forget(self, sequence: int) -> None:
        self._pending.pop(sequence, None)

    def write(self, data: bytes) -> None:
        if self._closed.is_set() or self._writer.transport.is_closing():
            raise SmppConnectionLost("SMPP connection closed")
        self._writer.write(data)

    async def request(self, pdu: Bind | EnquireLink | Unbind) -> Pdu:
        fut = self.expect(pdu.sequence)
        self.write(pdu.encode())
        try:
            async with asyncio.timeout(self._config.response_timeout):
                return await fut
        except TimeoutError:
            raise SmppTimeout(f"no response to {type(pdu).__name__}") from None
        finally:
            self.forget(pdu.sequence)

    async def run(self) -> None:
        """Read until the connection ends; then fail everything pending."""
        keepalive = asyncio.create_task(self._keepalive())
        try:
            await self._read_loop()
        finally:
            keepalive.cancel()
            self._close()
            with contextlib.suppress(asyncio.CancelledError):
                await keepalive

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def unbind(self) -> None:
        """Unbind politely (4.2) and close."""
        if not self.is_open:
            return
        self._unbinding = True
        with contextlib.suppress(SmppError, OSError):
            await self.request(Unbind(self.next_sequence()))
        self._close()

    def abort(self) -> None:
        """Close at once, without a FIN handshake or unbind."""
        self._close()
        self._writer.transport.abort()

    def _close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._writer.close()
        error = SmppConnectionLost("SMPP connection closed")
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(error)
        self._pending.clear()
        for task in self._handlers:
            task.cancel()

    async def _read_loop(self) -> None:
        read = self._reader.read
        while True:
            try:
                data = await read(65536)
            except OSError as exc:
                logger.info("SMPP read failed: %s", exc)
                return
            if not data:
                return
            try:
                pdus = self._pdus.receive_data(data)
            except SmppDecodeError as exc:
                logger.warning("SMPP stream corrupt, closing: %s", exc)
                return
            try:
                for pdu in pdus:
                    if not self._dispatch(pdu):
                        return
            except SmppConnectionLost:
                return

    def _dispatch(self, pdu: Pdu) -> bool:
        """Handle one PDU; False ends the connection."""
        if isinstance(pdu, SubmitSmResp | BindResp | EnquireLinkResp | UnbindResp | GenericNack):
            fut = self._pending.pop(pdu.sequence, None)
            if fut is not None and not fut.done():
                fut.set_result(pdu)
            return True
        if isinstance(pdu, DeliverSm):
            task = asyncio.create_task(self._deliver(pdu))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
            return True
        if isinstance(pdu, EnquireLink):
            self.write(EnquireLinkResp(pdu.sequence).encode())
            return True
        if isinstance(pdu, Unbind):
            self.write(UnbindResp(pdu.sequence).encode())
            logger.info("SMSC unbound the session")
            return False
        if isinstance(pdu, InvalidPdu | UnknownPdu) and pdu.command_id & CommandId.RESP_BIT:
            fut = self._pending.pop(pdu.sequence, None)
            if fut is not None and not fut.done():
                fut.set_exception(SmppSubmitError(pdu.status or Status.RSYSERR))
            return True
        status = Status.RINVCMDLEN if isinstance(pdu, InvalidPdu) else Status.RINVCMDID
        self.write(GenericNack(pdu.sequence, status).encode())
        return True

    async def _deliver(self, pdu: DeliverSm) -> None:
        status = Status.ROK
        try:
            await self._handler(pdu)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("deliver_sm handler failed; answering ESME_RX_T_APPN")
            status = Status.RX_T_APPN
        with contextlib.suppress(SmppConnectionLost):
            self.write(DeliverSmResp(pdu.sequence, status).encode())

    async def _keepalive(self) -> None:
        interval = self._config.enquire_link_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self.request(EnquireLink(self.next_sequence()))
            except SmppError:
                if not self._unbinding:
                    logger.warning("enquire_link unanswered; dropping the SMPP connection")
                self.abort()
                return


class SmppSession:
    """One ESME bind with keepalive, window, throttle and automatic rebind.

    Args:
        config: the bind settings.
        handler: receives every deliver_sm; without one, use :meth:`deliveries`.
    """

    def __init__(self, config: SmppConfig, handler: DeliverHandler | None = None) -> None:
        self.config = config
        self._queue: asyncio.Queue[DeliverSm] | None = None
        if handler is None:
            self._queue = asyncio.Queue(maxsize=10_000)
            handler = self._queue.put
        self._handler = handler
        self._window = asyncio.Semaphore(config.window)
        self._rate = _Rate(config.throughput, config.burst) if config.throughput else None
        self._link: _Link | None = None
        self._runner: asyncio.Task[None] | None = None
        self._bound = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self.in_flight = 0
        self.binds = 0
        """Number of successful binds so far (1 after start, +1 per rebind)."""

    @property
    def is_bound(self) -> bool:
        return self._link is not None and self._link.is_open

    async def start(self) -> None:
        """Connect and bind once; then keep the bind up in the background.

        Raises:
            SmppBindRefused: the SMSC refused the credentials.
            OSError, SmppTimeout: the SMSC cannot be reached.
        """
        await self._connect()
        self._supervisor = asyncio.create_task(self._supervise(), name="smpp-session")

    async def stop(self) -> None:
        """Unbind and close; submits still waiting fail with SmppConnectionLost."""
        self._stopping = True
        link = self._link
        if link is not None:
            await link.unbind()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        self._bound.set()  # wake submits waiting for a bind so they fail now

    async def __aenter__(self) -> SmppSession:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def deliveries(self) -> AsyncIterator[DeliverSm]:
        """Received deliver_sm, when the session was built without a handler."""
        if self._queue is None:
            raise RuntimeError("this session has a deliver handler")
        while True:
            yield await self._queue.get()

    def drop_connection(self) -> None:
        """Abort the TCP connection (tests, or on an operator request); it will rebind."""
        if self._link is not None:
            self._link.abort()

    async def _connect(self) -> _Link:
        cfg = self.config
        async with asyncio.timeout(cfg.connect_timeout):
            reader, writer = await asyncio.open_connection(cfg.host, cfg.port)
        link = _Link(cfg, reader, writer, self._handler)
        runner = asyncio.create_task(link.run(), name="smpp-link")
        try:
            resp = await link.request(
                Bind(
                    _BIND_COMMANDS[cfg.bind_type],
                    link.next_sequence(),
                    cfg.system_id,
                    cfg.password,
                    cfg.system_type,
                )
            )
        except BaseException:
            link.abort()
            await asyncio.gather(runner, return_exceptions=True)
            raise
        if not isinstance(resp, BindResp) or resp.status != Status.ROK:
            link.abort()
            await asyncio.gather(runner, return_exceptions=True)
            raise SmppBindRefused(getattr(resp, "status", Status.RBINDFAIL))
        self._runner = runner
        self._link = link
        self.binds += 1
        self._bound.set()
        logger.info(
            "SMPP bound",
            extra={"system_id": cfg.system_id, "peer": f"{cfg.host}:{cfg.port}"},
        )
        return link

    async def _supervise(self) -> None:
        cfg = self.config
        try:
            while True:
                if self._runner is not None:
                    await asyncio.gather(self._runner, return_exceptions=True)
                self._bound.clear()
                self._link = None
                if self._stopping:
                    return
                logger.warning(
                    "SMPP connection lost; rebinding", extra={"system_id": cfg.system_id}
                )
                delay = cfg.reconnect_min
                while True:
                    await asyncio.sleep(delay)
                    try:
                        await self._connect()
                        break
                    except (OSError, SmppError, TimeoutError) as exc:
                        logger.warning("SMPP rebind failed: %s", exc)
                        delay = min(delay * 2, cfg.reconnect_max)
        finally:
            if self._link is not None:
                self._link.abort()
            if self._runner is not None:
                await asyncio.gather(self._runner, return_exceptions=True)

    async def _bound_link(self) -> _Link:
        link = self._link
        if link is not None and link.is_open:
            return link
        if self._stopping:
            raise SmppNotBound("session stopped")
        try:
            async with asyncio.timeout(self.config.bind_wait):
                while True:
                    await self._bound.wait()
                    link = self._link
                    if link is not None and link.is_open:
                        return link
                    if self._stopping:
                        raise SmppNotBound("session stopped")
                    self._bound.clear()
        except TimeoutError:
            raise SmppNotBound("no SMPP bind available") from None

    async def submit_sm(
        self,
        destination: str,
        short_message: bytes,
        *,
        data_coding: int = 0,
        esm_class: int = 0,
        options: SubmitOptions = SubmitOptions(),
    ) -> str:
        """Send one submit_sm; return the SMSC message_id.

        Retries ESME_RTHROTTLED and ESME_RMSGQFUL with backoff up to ``throttle_retries``.

        Raises:
            SmppSubmitError: an error status (after the retries for throttling).
            SmppConnectionLost: the link dropped with the submit in flight (retryable).
            SmppNotBound: no bind within ``bind_wait`` (retryable, nothing sent).
            SmppTimeout: no submit_sm_resp within ``response_timeout``.
        """
        cfg = self.config
        delay = cfg.throttle_backoff
        for attempt in itertools.count():
            resp = await self._submit_once(
                destination, short_message, data_coding, esm_class, options
            )
            if resp.status == Status.ROK:
                return resp.message_id
            if resp.status not in _THROTTLE_STATUSES or attempt >= cfg.throttle_retries:
                raise SmppSubmitError(resp.status)
            logger.debug("submit_sm throttled (0x%02X); retry in %.3fs", resp.status, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, cfg.throttle_backoff_max)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _submit_once(
        self,
        destination: str,
        short_message: bytes,
        data_coding: int,
        esm_class: int,
        options: SubmitOptions,
    ) -> SubmitSmResp:
        async with self._window:
            if self._rate is not None:
                await self._rate.acquire()
            link = await self._bound_link()
            seq = link.next_sequence()
            fut = link.expect(seq)
            pdu = SubmitSm(
                seq,
                options.source_addr,
                destination,
                short_message,
                options.service_type,
                options.source_addr_ton,
                options.source_addr_npi,
                options.dest_addr_ton,
                options.dest_addr_npi,
                esm_class,
                options.protocol_id,
                0,
                "",
                options.validity_period,
                options.registered_delivery,
                0,
                data_coding,
            )
            try:
                link.write(pdu.encode())
            except SmppConnectionLost:
                link.forget(seq)
                raise SmppNotBound("link closed before the submit was written") from None
            self.in_flight += 1
            try:
                async with asyncio.timeout(self.config.response_timeout):
                    resp = await fut
            except TimeoutError:
                raise SmppTimeout(f"no submit_sm_resp for sequence {seq}") from None
            finally:
                self.in_flight -= 1
                link.forget(seq)
        if isinstance(resp, SubmitSmResp):
            return resp
        return SubmitSmResp(seq, getattr(resp, "status", Status.RSYSERR) or Status.RSYSERR)

    async def submit_text(
        self,
        destination: str,
        text: str,
        options: SubmitOptions = SubmitOptions(),
        *,
        reference: int = 0,
    ) -> list[str]:
        """Encode ``text`` (GSM 7-bit or UCS-2, concatenated when long) and submit every part.

        Returns the message_id of each part in order; raises the first failure (see
        :meth:`submit_sm`) once all parts are settled.
        """
        return await _submit_parts(
            self.submit_sm, destination, split_text(text, reference=reference), options
        )


class SmppPool:
    """N binds to one SMSC; submits go to the bound session with the fewest in flight.

    Args:
        config: the settings of every bind (``window`` and ``throughput`` are per bind).
        size: number of binds.
        handler: receives the deliver_sm of every bind; without one, use :meth:`deliveries`.
    """

    def __init__(
        self, config: SmppConfig, size: int = 1, handler: DeliverHandler | None = None
    ) -> None:
        self._queue: asyncio.Queue[DeliverSm] | None = None
        if handler is None:
            self._queue = asyncio.Queue(maxsize=10_000)
            handler = self._queue.put
        self.sessions = [SmppSession(config, handler) for _ in range(size)]
        self._references = itertools.count()

    async def start(self) -> None:
        """Bind every session; raises like :meth:`SmppSession.start` if the first bind fails."""
        await self.sessions[0].start()
        results = await asyncio.gather(
            *(s.start() for s in self.sessions[1:]), return_exceptions=True
        )
        for r in results:
            if isinstance(r, BaseException):
                await self.stop()
                raise r

    async def stop(self) -> None:
        await asyncio.gather(*(s.stop() for s in self.sessions), return_exceptions=True)

    async def __aenter__(self) -> SmppPool:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def deliveries(self) -> AsyncIterator[DeliverSm]:
        if self._queue is None:
            raise RuntimeError("this pool has a deliver handler")
        while True:
            yield await self._queue.get()

    def _pick(self, exclude: SmppSession | None = None) -> SmppSession:
        best: SmppSession | None = None
        for s in self.sessions:
            if s is exclude or not s.is_bound:
                continue
            if best is None or s.in_flight < best.in_flight:
                best = s
        if best is None:
            best = min(self.sessions, key=lambda s: s.in_flight)
        return best

    def next_reference(self) -> int:
        """A concatenation reference (0-255) for the next long message."""
        return next(self._references) & 0xFF

    async def submit_sm(
        self,
        destination: str,
        short_message: bytes,
        *,
        data_coding: int = 0,
        esm_class: int = 0,
        options: SubmitOptions = SubmitOptions(),
    ) -> str:
        """Like :meth:`SmppSession.submit_sm`; a submit that was never written
        (:class:`SmppNotBound`) is tried once on each other bind."""
        session = self._pick()
        tried: set[int] = set()
        while True:
            tried.add(id(session))
            try:
                return await session.submit_sm(
                    destination,
                    short_message,
                    data_coding=data_coding,
                    esm_class=esm_class,
                    options=options,
                )
            except SmppNotBound:
                others = [s for s in self.sessions if id(s) not in tried and s.is_bound]
                if not others:
                    raise
                session = min(others, key=lambda s: s.in_flight)

    async def submit_text(
        self,
        destination: str,
        text: str,
        options: SubmitOptions = SubmitOptions(),
    ) -> list[str]:
        """Encode ``text`` (GSM 7-bit or UCS-2, concatenated if long) and submit every part.

        Returns the message_id of each part in order; raises the first failure.
        """
        parts = split_text(text, reference=self.next_reference())
        return await _submit_parts(self.submit_sm, destination, parts, options)


class _Submit(Protocol):
    async def __call__(
        self,
        destination: str,
        short_message: bytes,
        *,
        data_coding: int = ...,
        esm_class: int = ...,
        options: SubmitOptions = ...,
    ) -> str: ...


async def _submit_parts(
    submit: _Submit, destination: str, parts: list[SmsPart], options: SubmitOptions
) -> list[str]:
    if len(parts) == 1:
        p = parts[0]
        return [
            await submit(
                destination,
                p.short_message,
                data_coding=p.data_coding,
                esm_class=p.esm_class,
                options=options,
            )
        ]
    results = await asyncio.gather(
        *(
            submit(
                destination,
                p.short_message,
                data_coding=p.data_coding,
                esm_class=p.esm_class,
                options=options,
            )
            for p in parts
        ),
        return_exceptions=True,
    )
    ids: list[str] = []
    for r in results:
        if isinstance(r, BaseException):
            raise r
        ids.append(r)
    return ids
