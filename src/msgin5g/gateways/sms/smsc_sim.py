# SPDX-License-Identifier: Apache-2.0
"""An SMSC simulator speaking SMPP 3.4 over TCP, for tests, benchmarks and labs.

No SMSC is packaged for Debian, so the gateway tests run against this one (DESIGN 5). It is
built on our sans-IO codec (:mod:`msgin5g.gateways.sms.smpp_protocol`) because the smpp34
server accepts any password and cannot refuse a bind. It

* accepts bind_transmitter/receiver/transceiver (SMPP 3.4 4.1) with the configured system_id
  and password, and refuses others with ESME_RBINDFAIL (0x0D, unknown system_id) or
  ESME_RINVPASWD (0x0E);
* answers submit_sm (4.4) with a fresh message_id, or ESME_RTHROTTLED (0x58) beyond the
  optional per-bind ``throttle`` (messages/second, token bucket with one second of burst);
* sends a delivery receipt deliver_sm per part (esm_class 0x04, the Appendix B text plus the
  receipted_message_id and message_state TLVs) after ``receipt_delay`` seconds, stat DELIVRD, or
  UNDELIV when the destination starts with ``fail_prefix``; honours registered_delivery (5.2.17);
* lets a test inject MO deliver_sm, single or concatenated with a TS 23.040 UDH
  (:meth:`SmscSimulator.inject_mo`);
* records every bind and every submit_sm part with its decoded text, data_coding and UDH.

Deliver_sm waiting for an ESME survive :meth:`SmscSimulator.stop` and go out after the next
:meth:`SmscSimulator.start`, as in an SMSC that stores them. Run it alone with::

    python -m msgin5g.gateways.sms.smsc_sim --port 2775 --system-id gw --password secret \\
        [--throttle 100/s] [--receipt-delay 0.5] [--fail-msisdn 4915]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from msgin5g.gateways.sms.encoding import (
    ConcatInfo,
    SmsEncodingError,
    decode_payload,
    parse_user_data,
    split_text,
)
from msgin5g.gateways.sms.receipts import ESM_CLASS_RECEIPT, format_receipt
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

__all__ = ["BindRecord", "ReceivedSubmit", "SmscSimulator", "main"]

logger = logging.getLogger(__name__)

_RECEIVERS = frozenset((CommandId.BIND_RECEIVER, CommandId.BIND_TRANSCEIVER))
_TRANSMITTERS = frozenset((CommandId.BIND_TRANSMITTER, CommandId.BIND_TRANSCEIVER))
_WINDOW = 10


@dataclass(frozen=True, slots=True)
class BindRecord:
    """One bind attempt and the status it got."""

    command_id: int
    system_id: str
    password: str
    status: int


@dataclass(frozen=True, slots=True)
class ReceivedSubmit:
    """One accepted submit_sm (one part of a message)."""

    message_id: str
    session: int
    source_addr: str
    destination_addr: str
    data_coding: int
    esm_class: int
    registered_delivery: int
    short_message: bytes
    udh: bytes
    concat: ConcatInfo | None
    text: str
    """This part's text alone (decoded with its data_coding)."""


@dataclass(slots=True)
class _Outbound:
    """A deliver_sm waiting for, or in flight to, an ESME."""

    pdu: DeliverSm
    done: asyncio.Future[int] | None = None
    attempts: int = 0


class _Bucket:
    __slots__ = ("_capacity", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._capacity = max(rate, 1.0)
        self._tokens = self._capacity
        self._stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class _EsmeConnection:
    """The SMSC side of one TCP connection."""

    def __init__(
        self,
        sim: SmscSimulator,
        number: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.sim = sim
        self.number = number
        self.reader = reader
        self.writer = writer
        self.bind_command: int | None = None
        self.bucket = _Bucket(sim.throttle) if sim.throttle else None
        self.seq = itertools.count(1)
        self.in_flight: dict[int, _Outbound] = {}
        self.window = asyncio.Semaphore(_WINDOW)
        self.sender: asyncio.Task[None] | None = None

    async def serve(self) -> None:
        pdus = PduReader()
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    return
                for pdu in pdus.receive_data(data):
                    if not self._handle(pdu):
                        await self.writer.drain()
                        return
        except (OSError, SmppDecodeError) as exc:
            logger.info("ESME connection %d ended: %s", self.number, exc)
        finally:
            self.close()

    def close(self) -> None:
        if self.sender is not None:
            self.sender.cancel()
        # Whatever the ESME did not acknowledge goes back to the store.
        for item in self.in_flight.values():
            self.sim._requeue(item)
        self.in_flight.clear()
        self.writer.close()

    def _handle(self, pdu: Pdu) -> bool:
        sim = self.sim
        write = self.writer.write
        if isinstance(pdu, DeliverSmResp):
            item = self.in_flight.pop(pdu.sequence, None)
            if item is not None:
                self.window.release()
                sim._settle(item, pdu.status)
            return True
        if isinstance(pdu, DeliverSm):  # an SMSC does not accept deliver_sm
            write(GenericNack(pdu.sequence, Status.RINVCMDID).encode())
            return True
        if isinstance(pdu, SubmitSm):
            if self.bind_command not in _TRANSMITTERS:
                write(SubmitSmResp(pdu.sequence, Status.RINVBNDSTS).encode())
            elif self.bucket is not None and not self.bucket.take():
                sim.throttled += 1
                write(SubmitSmResp(pdu.sequence, Status.RTHROTTLED).encode())
            else:
                write(sim._accept(self, pdu).encode())
            return True
        if isinstance(pdu, EnquireLink):
            write(EnquireLinkResp(pdu.sequence).encode())
            return True
        if isinstance(pdu, Bind):
            return self._bind(pdu)
        if isinstance(pdu, Unbind):
            write(UnbindResp(pdu.sequence).encode())
            return False
        if isinstance(pdu, EnquireLinkResp | UnbindResp | GenericNack | BindResp | SubmitSmResp):
            return True
        if isinstance(pdu, InvalidPdu):
            write(GenericNack(pdu.sequence, Status.RINVCMDLEN).encode())
            return True
        if isinstance(pdu, UnknownPdu) and not pdu.command_id & CommandId.RESP_BIT:
            write(GenericNack(pdu.sequence, Status.RINVCMDID).encode())
        return True

    def _bind(self, pdu: Bind) -> bool:
        sim = self.sim
        resp_id = pdu.command_id | CommandId.RESP_BIT
        if self.bind_command is not None:
            status = Status.RALYBND
        elif pdu.system_id != sim.system_id:
            status = Status.RBINDFAIL
        elif pdu.password != sim.password:
            status = Status.RINVPASWD
        else:
            status = Status.ROK
        sim.binds.append(BindRecord(pdu.command_id, pdu.system_id, pdu.password, status))
        self.writer.write(BindResp(resp_id, pdu.sequence, status, sim.smsc_id).encode())
        if status == Status.RALYBND:
            return True
        if status != Status.ROK:
            return False  # refused: close the connection
        self.bind_command = pdu.command_id
        if pdu.command_id in _RECEIVERS:
            self.sender = asyncio.create_task(self._send_loop())
        return True

    async def _send_loop(self) -> None:
        queue = self.sim._outbound
        while True:
            await self.window.acquire()
            item = await queue.get()
            if self.writer.transport.is_closing():
                self.sim._requeue(item)
                return
            seq = next(self.seq)
            item.pdu.sequence = seq
            item.attempts += 1
            self.in_flight[seq] = item
            self.writer.write(item.pdu.encode())


class SmscSimulator:
    """An in-process SMSC on ``host:port`` (port 0 picks a free one).

    Args:
        system_id: the only system_id allowed to bind.
        password: its password.
        throttle: submit_sm per second per bind before ESME_RTHROTTLED; None for no limit.
        receipt_delay: seconds between accepting a part and sending its receipt.
        fail_prefix: destinations starting with it get stat UNDELIV receipts.
        packed: read GSM 7-bit short_message as packed septets.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        system_id: str = "msgin5g",
        password: str = "secret",
        throttle: float | None = None,
        receipt_delay: float = 0.0,
        fail_prefix: str | None = None,
        packed: bool = False,
        smsc_id: str = "SMSCSIM",
    ) -> None:
        self.host = host
        self.port = port
        self.system_id = system_id
        self.password = password
        self.throttle = throttle
        self.receipt_delay = receipt_delay
        self.fail_prefix = fail_prefix
        self.packed = packed
        self.smsc_id = smsc_id
        self.binds: list[BindRecord] = []
        self.received: list[ReceivedSubmit] = []
        self.receipts_sent = 0
        self.throttled = 0
        self.record = True
        """Set False for benchmarks: counts only, no per-part records or decoding."""
        self.accepted = 0
        self._ids = itertools.count(1)
        self._conn_ids = itertools.count(1)
        self._outbound: asyncio.Queue[_Outbound] = asyncio.Queue()
        self._connections: set[_EsmeConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen; after a stop, on the same port as before."""
        self._server = await asyncio.start_server(self._on_connect, self.host, self.port)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        logger.info("SMSC simulator listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening and drop every connection (what was not acknowledged is kept)."""
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.writer.transport.abort()
            conn.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> SmscSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def bound_sessions(self) -> int:
        return sum(1 for c in self._connections if c.bind_command is not None)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _EsmeConnection(self, next(self._conn_ids), reader, writer)
        self._connections.add(conn)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await conn.serve()
        finally:
            self._connections.discard(conn)
            if task is not None:
                self._tasks.discard(task)

    # ------------------------------------------------------------------ submit and receipts

    def _accept(self, conn: _EsmeConnection, pdu: SubmitSm) -> SubmitSmResp:
        message_id = f"{next(self._ids):010d}"
        self.accepted += 1
        text = ""
        if self.record:
            try:
                ud = parse_user_data(
                    pdu.payload, pdu.esm_class, pdu.data_coding, packed=self.packed
                )
                text = decode_payload(ud.payload, pdu.data_coding)
                udh, concat = ud.header, ud.concat
            except SmsEncodingError:
                udh, concat = b"", None
            self.received.append(
                ReceivedSubmit(
                    message_id,
                    conn.number,
                    pdu.source_addr,
                    pdu.destination_addr,
                    pdu.data_coding,
                    pdu.esm_class,
                    pdu.registered_delivery,
                    pdu.payload,
                    udh,
                    concat,
                    text,
                )
            )
            self._changed.set()
        wanted = pdu.registered_delivery & 0x03
        failed = bool(self.fail_prefix) and pdu.destination_addr.startswith(self.fail_prefix or "")
        if wanted == 1 or (wanted == 2 and failed):
            receipt = self._receipt(message_id, pdu, failed, text)
            if self.receipt_delay > 0:
                asyncio.get_running_loop().call_later(
                    self.receipt_delay, self._outbound.put_nowait, receipt
                )
            else:
                self._outbound.put_nowait(receipt)
        return SubmitSmResp(pdu.sequence, Status.ROK, message_id)

    def _receipt(self, message_id: str, pdu: SubmitSm, failed: bool, text: str) -> _Outbound:
        now = datetime.now()
        body, tlvs = format_receipt(
            message_id,
            "UNDELIV" if failed else "DELIVRD",
            submit_date=now,
            done_date=now,
            error=1 if failed else 0,
            text=text.encode("ascii", errors="replace").decode("ascii"),
        )
        return _Outbound(
            DeliverSm(
                0,
                pdu.destination_addr,
                pdu.source_addr,
                body.encode("ascii"),
                source_addr_ton=pdu.dest_addr_ton,
                source_addr_npi=pdu.dest_addr_npi,
                dest_addr_ton=pdu.source_addr_ton,
                dest_addr_npi=pdu.source_addr_npi,
                esm_class=ESM_CLASS_RECEIPT,
                tlvs=tlvs,
            )
        )

    def _settle(self, item: _Outbound, status: int) -> None:
        if status == Status.ROK or item.attempts >= 5:
            if item.pdu.esm_class == ESM_CLASS_RECEIPT:
                self.receipts_sent += 1
            if item.done is not None and not item.done.done():
                item.done.set_result(status)
            return
        self._requeue(item)

    def _requeue(self, item: _Outbound) -> None:
        self._outbound.put_nowait(item)

    # ------------------------------------------------------------------ test API

    async def inject_mo(
        self,
        source: str,
        destination: str,
        text: str,
        *,
        reference: int = 0,
        force_ucs2: bool = False,
        order: Callable[[list[DeliverSm]], list[DeliverSm]] | None = None,
    ) -> list[int]:
        """Send ``text`` as MO deliver_sm (concatenated when long) to a receiver bind.

        ``order`` may reorder or repeat the parts. Returns the deliver_sm_resp status per sent
        PDU. It waits for a receiver bind as long as it takes: wrap it in ``asyncio.timeout``.
        """
        pdus = [
            DeliverSm(
                0,
                source,
                destination,
                part.short_message,
                esm_class=part.esm_class,
                data_coding=part.data_coding,
            )
            for part in split_text(
                text, reference=reference, packed=self.packed, force_ucs2=force_ucs2
            )
        ]
        if order is not None:
            pdus = order(pdus)
        loop = asyncio.get_running_loop()
        items = [_Outbound(pdu, loop.create_future()) for pdu in pdus]
        for item in items:
            self._outbound.put_nowait(item)
        return [await item.done for item in items if item.done is not None]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds (checked after each submit and every 20 ms);
        wrap it in ``asyncio.timeout``."""
        while not predicate():
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.02):
                    await self._changed.wait()


# ---------------------------------------------------------------------- command line


def _parse_rate(value: str) -> float:
    return float(value.removesuffix("/s"))


def main(argv: list[str] | None = None) -> None:
    """Run the simulator until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m msgin5g.gateways.sms.smsc_sim")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2775)
    parser.add_argument("--system-id", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--throttle", type=_parse_rate, default=None, help="N/s per bind")
    parser.add_argument("--receipt-delay", type=float, default=0.0, help="seconds")
    parser.add_argument("--fail-msisdn", default=None, help="prefix that gets UNDELIV")
    parser.add_argument("--no-record", action="store_true", help="count only (benchmarks)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")

    async def run() -> None:
        sim = SmscSimulator(
            host=args.host,
            port=args.port,
            system_id=args.system_id,
            password=args.password,
            throttle=args.throttle,
            receipt_delay=args.receipt_delay,
            fail_prefix=args.fail_msisdn,
        )
        sim.record = not args.no_record
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await sim.start()
        print(f"SMSC simulator listening on {sim.host}:{sim.port}", flush=True)
        await stop.wait()
        await sim.stop()
        logger.info(
            "accepted %d submit_sm, sent %d receipts, throttled %d",
            sim.accepted,
            sim.receipts_sent,
            sim.throttled,
        )

    asyncio.run(run())


if __name__ == "__main__":
    main()
