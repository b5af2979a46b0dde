# SPDX-License-Identifier: Apache-2.0
"""The Legacy 3GPP Message Gateway over SMS: MSGG_L3GDelivery v1 (TS 29.538 9.1) on one side,
an SMPP 3.4 ESME toward an SMSC on the other (TS 23.554 8.6.1, 8.7.1, 8.7.3).

Downlink (server -> Legacy 3GPP UE), ``POST /msgg-l3gdelivery/v1/deliver-message``:

* ``destAddr`` must be ``{UE, <ueSvcId>}`` of a UE configured with its MSISDN (``--ue
  ID=MSISDN``), else 404. The ``payload`` text goes as GSM 7-bit when every character is in the
  default alphabet (or its extension table), else UCS-2, in concatenated parts with a UDH when
  long; more than 255 parts is 413.
* 204 is answered only once the message is committed to the gateway's SQLite store under
  ``--data-dir``: a crash after the 204 loses nothing, the message is submitted on restart.
  A repeated (``oriAddr``, ``msgId``, UE) within a day is acknowledged again, not sent twice.
* A segment (``segInd`` with ``segParams`` ``segId``/``segNumb``/``totalSegCount``, DESIGN
  2.4) is stored until the set is complete; the joined text then goes out as one message (SMS
  parts as above) with one report for its ``msgId``. A set still incomplete after
  ``reassembly_timeout`` is dropped, with REPT_DELY_FAILED ``SEGMENT_REASSEMBLY_TIMEOUT`` when
  a report was asked for.
* Parts go out through :class:`SmppPool` (``--binds`` binds, ``--window`` each, optional
  ``--throttle``); ESME_RTHROTTLED is retried by the session, a lost bind or a timeout by the
  gateway with backoff (only the parts not yet accepted are resubmitted, with the same
  concatenation reference); another error status fails the message.
* ``registered_delivery`` is asked for exactly when ``delivStReqInd`` is true. The SMSC
  message_id of every part is persisted with (message, part), so receipts map back across
  restarts. When every part has a final receipt, ONE report per MSGin5G message goes to the
  server (``POST msgs-msgdelivery/v1/deliver-report``, ``oriAddr`` = the UE, ``destAddr`` =
  the original sender): all DELIVRD -> REPT_DELY_SUCCESS; otherwise REPT_DELY_FAILED with the
  first failed state (EXPIRED, UNDELIV, REJECTD, DELETED, UNKNOWN) as ``failureCause``; a
  submit refused for good -> REPT_DELY_FAILED with ``SMPP_STATUS_0xNN``.

Uplink (MO SMS -> server), ``POST msgs-msgdelivery/v1/deliver-ue-message``:

* a deliver_sm that is not a receipt is an MO SMS. Its source MSISDN is mapped back to the
  UE Service ID (``--ue``; a leading ``+`` is ignored); unknown senders are logged and dropped.
  Concatenated parts are kept in SQLite until all have arrived (and reassembled from there after
  a restart); a message still incomplete after ``reassembly_timeout`` is dropped with a
  warning.
* The complete text becomes ``UEMessageDelivery{oriAddr {UE, ueSvcId}, destAddr --mo-to,
  msgId <new UUIDv7>, stoAndFwInd true, payload <text>}``. ``--mo-to`` is ``as:<asSvcId>``
  (or ``ue:<ueSvcId>``): SMS has no way to name an MSGin5G recipient, so one configured
  destination receives all MO traffic of this gateway.
* It is written to the durable outbox in the same transaction, and the deliver_sm_resp goes to
  the SMSC only after that commit (a failure answers ESME_RX_T_APPN and the SMSC redelivers).
  The outbox is retried until the server acknowledges (see :mod:`msgin5g.gateways.common`).

Reports from the server for UE-originated messages (``POST .../deliver-report``): 404 for a
UE that is not configured; otherwise logged (``delivery report for UE-originated message``
with msgId, UE, delivSt, failureCause) and, with ``report_sms``, also sent to the UE as a short
text ``MSGin5G report <msgId>: delivered|not delivered (<cause>)``.

The configured UEs are registered with the server at start (DESIGN 2.5 extension API), retried
until the server accepts. Metrics: ``msgin5g_gateway_messages_total{gateway="sms"}`` by
direction and outcome (accepted, submitted, delivered, failed, retried), at /metrics.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgspec

from msgin5g.api.app import HttpApp
from msgin5g.api.http import HttpError
from msgin5g.api.msgg_delivery import L3G_API
from msgin5g.core.errors import InvalidField, InvalidRequest, NotFound
from msgin5g.core.ids import new_message_id
from msgin5g.gateways.common import (
    GatewayCounters,
    GatewayDb,
    GatewaySettings,
    Registrar,
    ServerClient,
    build_app,
)
from msgin5g.gateways.sms.concat import Reassembler
from msgin5g.gateways.sms.encoding import (
    ConcatInfo,
    SmsEncodingError,
    SmsPart,
    UserData,
    decode_payload,
    parse_user_data,
    split_text,
)
from msgin5g.gateways.sms.receipts import (
    ReceiptOutcome,
    ReceiptParseError,
    is_receipt,
    parse_receipt,
)
from msgin5g.gateways.sms.smpp_protocol import DeliverSm
from msgin5g.gateways.sms.smpp_session import (
    SmppBindRefused,
    SmppConfig,
    SmppError,
    SmppPool,
    SmppSubmitError,
    SubmitOptions,
)
from msgin5g.observability import Metrics
from msgin5g.outbound.http_client import HttpClientPool
from msgin5g.wire.common import (
    ADDR_AS,
    ADDR_UE,
    REPT_DELY_FAILED,
    REPT_DELY_SUCCESS,
    Address,
    DeliveryStatusReport,
)
from msgin5g.wire.msgg import GatewayMessageDelivery
from msgin5g.wire.msgs import UEMessageDelivery

__all__ = ["SmsGateway", "SmsGatewaySettings", "parse_destination"]

log = logging.getLogger(__name__)

_BIND_REASONS: Final = {
    0x0D: "ESME_RBINDFAIL: the SMSC does not know this system_id",
    0x0E: "ESME_RINVPASWD: wrong password",
    0x0F: "ESME_RINVSYSID: invalid system_id",
    0x05: "ESME_RALYBND: already bound",
}

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS downlink (
    id INTEGER PRIMARY KEY,
    msg_id TEXT NOT NULL,
    originator TEXT NOT NULL,
    ue TEXT NOT NULL,
    msisdn TEXT NOT NULL,
    text TEXT NOT NULL,
    report INTEGER NOT NULL,
    reference INTEGER NOT NULL,
    created REAL NOT NULL,
    done REAL,
    UNIQUE (originator, msg_id, ue)
);
CREATE TABLE IF NOT EXISTS parts (
    smsc_id TEXT PRIMARY KEY,
    down_id INTEGER,
    part INTEGER,
    state TEXT,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS parts_by_down ON parts (down_id);
CREATE TABLE IF NOT EXISTS segments (
    originator TEXT NOT NULL,
    seg_id TEXT NOT NULL,
    ue TEXT NOT NULL,
    seg_numb INTEGER NOT NULL,
    total INTEGER NOT NULL,
    msg_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    report INTEGER NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (originator, seg_id, ue, seg_numb)
);
CREATE TABLE IF NOT EXISTS mo_parts (
    originator TEXT NOT NULL,
    destination TEXT NOT NULL,
    reference INTEGER NOT NULL,
    total INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    data_coding INTEGER NOT NULL,
    payload BLOB NOT NULL,
    received REAL NOT NULL,
    PRIMARY KEY (originator, destination, reference, total, seq)
);
"""

_address_encode = msgspec.json.Encoder().encode
_address_decode = msgspec.json.Decoder(Address).decode


def parse_destination(value: str) -> Address:
    """``as:<asSvcId>`` or ``ue:<ueSvcId>`` to an Address (for ``--mo-to``).

    Raises:
        ValueError: any other form.
    """
    kind, sep, rest = value.partition(":")
    kinds = {"as": ADDR_AS, "ue": ADDR_UE}
    if not sep or not rest or kind.lower() not in kinds:
        raise ValueError(f"expected as:<asSvcId> or ue:<ueSvcId>, got {value!r}")
    return Address(kinds[kind.lower()], rest)


def _msisdn_key(msisdn: str) -> str:
    return msisdn.strip().lstrip("+")


@dataclass(frozen=True, slots=True)
class SmsGatewaySettings:
    """Settings of the SMS gateway. Times in seconds."""

    gateway: GatewaySettings
    smpp: SmppConfig
    ues: Mapping[str, str]
    """UE Service ID -> MSISDN."""
    mo_to: Address
    binds: int = 1
    source_addr: str = "MSGin5G"
    """source_addr of submitted SMS (what the handset shows as sender)."""
    report_sms: bool = False
    reassembly_timeout: float = 60.0
    submit_ttl: float = 86_400.0
    """A downlink that could not be submitted for this long fails (REPT_DELY_FAILED EXPIRED)."""
    retention: float = 86_400.0
    """How long finished downlinks are remembered for duplicate detection."""
    sweep_interval: float = 1.0


@dataclass(slots=True)
class _Down:
    """A downlink message not yet finished, mirrored in the `downlink`/`parts` tables."""

    id: int
    msg_id: str
    originator: Address
    ue: str
    msisdn: str
    text: str
    report: bool
    reference: int
    created: float
    parts: list[SmsPart]
    submitted: dict[int, list[str]] = field(default_factory=dict)
    """Part number (from 1) -> SMSC message_ids (more than one after an uncertain resend)."""
    states: dict[str, str | None] = field(default_factory=dict)
    """SMSC message_id -> final receipt state, None while unknown."""
    attempts: int = 0


class SmsGateway:
    """The L3G gateway process: HTTP API, SMPP pool, durable store, uplink and registration."""

    def __init__(
        self,
        settings: SmsGatewaySettings,
        *,
        metrics: Metrics | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self._log = logger or log
        gw = settings.gateway
        self.counters = GatewayCounters(self.metrics, "sms")
        self.db = GatewayDb(Path(gw.data_dir) / "sms-gateway.sqlite3", _SCHEMA)
        self._http = HttpClientPool(timeout=gw.request_timeout)
        self.server = ServerClient(gw, self.db, self._http, self.counters, logger=self._log)
        self.registrar = Registrar(gw, logger=self._log)
        self._ues = dict(settings.ues)
        self._ue_by_msisdn = {_msisdn_key(m): ue for ue, m in settings.ues.items()}
        self._reassembler = Reassembler(timeout=settings.reassembly_timeout)
        self._references = itertools.count()
        self._active: dict[int, _Down] = {}
        self._by_smsc_id: dict[str, int] = {}
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._timers: set[asyncio.TimerHandle] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.pool: SmppPool | None = None
        self._pool_ready = asyncio.Event()
        self._no_downlink = asyncio.Event()
        self._no_downlink.set()
        self._started = False
        self.app: HttpApp = build_app(
            L3G_API,
            self._on_message,
            self._on_report,
            self.metrics,
            lambda: self._started,
            max_body=gw.max_body_bytes,
        )
        self._gauges()

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, resume unfinished work, bind in the background, register the UEs."""
        self.db.open()
        self._restore()
        await self.server.start()
        await self.registrar.start()
        self.registrar.add(self._ues)
        workers = max(8, self.settings.binds * self.settings.smpp.window)
        self._tasks = [
            asyncio.create_task(self._connect(), name="smpp-connect"),
            asyncio.create_task(self._sweep(), name="sms-sweep"),
            *(asyncio.create_task(self._worker(), name=f"sms-submit-{i}") for i in range(workers)),
        ]
        self._started = True
        self._log.info(
            "SMS gateway started",
            extra={
                "ues": len(self._ues),
                "smsc": f"{self.settings.smpp.host}:{self.settings.smpp.port}",
                "pending_downlink": len(self._active),
                "pending_uplink": self.server.pending,
            },
        )

    async def stop(self) -> None:
        self._started = False
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.pool is not None:
            await self.pool.stop()
            self.pool = None
        await self.registrar.stop()
        await self.server.stop()
        await self._http.aclose()
        self.db.close()
        self._log.info("SMS gateway stopped")

    def _restore(self) -> None:
        for row in self.db.query(
            "SELECT id, msg_id, originator, ue, msisdn, text, report, reference, created"
            " FROM downlink WHERE done IS NULL ORDER BY id"
        ):
            down = self._down_from_row(row)
            if down is None:
                continue
            self._active[down.id] = down
            self._no_downlink.clear()
        for smsc_id, down_id, part, state in self.db.query(
            "SELECT smsc_id, down_id, part, state FROM parts WHERE down_id IS NOT NULL"
        ):
            down = self._active.get(down_id)
            if down is None:
                continue
            down.submitted.setdefault(part, []).append(smsc_id)
            down.states[smsc_id] = state
            self._by_smsc_id[smsc_id] = down_id
        for down in self._active.values():
            if len(down.submitted) < len(down.parts):
                self._queue.put_nowait(down.id)
        for (
            originator,
            destination,
            reference,
            total,
            seq,
            coding,
            payload,
            received,
        ) in self.db.query(
            "SELECT originator, destination, reference, total, seq, data_coding, payload,"
            " received FROM mo_parts ORDER BY received"
        ):
            ud = UserData(b"", ConcatInfo(reference, total, seq), bytes(payload), coding)
            self._reassembler.add(originator, destination, ud, received)
        for down in list(self._active.values()):
            if len(down.submitted) == len(down.parts):
                with self.db.transaction():
                    self._maybe_finish(down)

    def _down_from_row(self, row: tuple[object, ...]) -> _Down | None:
        down_id, msg_id, originator, ue, msisdn, text, report, reference, created = row
        assert isinstance(down_id, int)
        try:
            parts = split_text(str(text), reference=int(str(reference)))
        except SmsEncodingError:
            return None
        return _Down(
            down_id,
            str(msg_id),
            _address_decode(originator if isinstance(originator, bytes) else str(originator)),
            str(ue),
            str(msisdn),
            str(text),
            bool(report),
            int(str(reference)),
            float(str(created)),
            parts,
        )

    def _gauges(self) -> None:
        async def downlink() -> float:
            return float(len(self._active))

        async def uplink() -> float:
            return float(self.server.pending)

        async def bound() -> float:
            pool = self.pool
            return float(sum(s.is_bound for s in pool.sessions)) if pool else 0.0

        self.metrics.gauge("msgin5g_gateway_sms_downlink_pending", downlink)
        self.metrics.gauge("msgin5g_gateway_sms_uplink_pending", uplink)
        self.metrics.gauge("msgin5g_gateway_sms_binds_up", bound)

    # -- SMSC connection -------------------------------------------------------------------------

    async def _connect(self) -> None:
        cfg = self.settings.smpp
        delay = cfg.reconnect_min
        while True:
            pool = SmppPool(cfg, self.settings.binds, handler=self._on_deliver)
            try:
                await pool.start()
            except SmppBindRefused as exc:
                reason = _BIND_REASONS.get(exc.status, f"command_status 0x{exc.status:02X}")
                self._log.error(
                    "the SMSC refused the bind; check --system-id/--password; retrying",
                    extra={
                        "system_id": cfg.system_id,
                        "smsc": f"{cfg.host}:{cfg.port}",
                        "reason": reason,
                        "retry_in_s": delay,
                    },
                )
            except (OSError, SmppError, TimeoutError) as exc:
                self._log.warning(
                    "cannot reach the SMSC; retrying",
                    extra={
                        "smsc": f"{cfg.host}:{cfg.port}",
                        "reason": str(exc),
                        "retry_in_s": delay,
                    },
                )
            else:
                self.pool = pool
                self._pool_ready.set()
                self._log.info(
                    "bound to the SMSC",
                    extra={"smsc": f"{cfg.host}:{cfg.port}", "binds": self.settings.binds},
                )
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, cfg.reconnect_max)

    # -- downlink: server -> UE ------------------------------------------------------------------

    async def _on_message(self, body: GatewayMessageDelivery) -> None:
        dest = body.destAddr
        msisdn = self._ues.get(dest.addr) if dest.addrType == ADDR_UE else None
        if msisdn is None:
            raise NotFound(f"UE {dest.addr!r} is not served by this gateway")
        if body.segInd and body.segParams is not None:
            self._on_segment(body, dest.addr, msisdn)
            return
        self._accept(
            body.oriAddr,
            body.msgId,
            dest.addr,
            msisdn,
            body.payload or "",
            bool(body.delivStReqInd),
        )

    def _on_segment(self, body: GatewayMessageDelivery, ue: str, msisdn: str) -> None:
        """One MSGin5G segment (DESIGN 2.4): kept until the set is complete, then the whole
        text goes out as one (concatenated) SMS with one report."""
        seg = body.segParams
        assert seg is not None
        numb, total = seg.segNumb, seg.totalSegCount
        if numb is None or total is None or not 1 <= numb <= total:
            raise InvalidRequest(
                "segParams needs segNumb and totalSegCount with 1 <= segNumb <= totalSegCount",
                cause="MANDATORY_IE_INCORRECT",
                fields=[InvalidField("/segParams", "segNumb/totalSegCount missing or invalid")],
            )
        originator = _address_encode(body.oriAddr).decode()
        key = (originator, seg.segId or body.msgId, ue)
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO segments VALUES (?,?,?,?,?,?,?,?,?)",
                (*key, numb, total, body.msgId, body.payload or "",
                 int(bool(body.delivStReqInd)), time.time()),
            )  # fmt: skip
            rows = conn.execute(
                "SELECT payload, report FROM segments WHERE originator = ? AND seg_id = ?"
                " AND ue = ? ORDER BY seg_numb",
                key,
            ).fetchall()
            if len(rows) < total:
                return
            conn.execute("DELETE FROM segments WHERE originator = ? AND seg_id = ? AND ue = ?", key)
            text = "".join(payload for payload, _ in rows)
            report = any(wanted for _, wanted in rows)
            self._stage(conn, body.oriAddr, body.msgId, ue, msisdn, text, report)

    def _accept(
        self, originator: Address, msg_id: str, ue: str, msisdn: str, text: str, report: bool
    ) -> None:
        with self.db.transaction() as conn:
            self._stage(conn, originator, msg_id, ue, msisdn, text, report)

    def _stage(
        self,
        conn: sqlite3.Connection,
        originator: Address,
        msg_id: str,
        ue: str,
        msisdn: str,
        text: str,
        report: bool,
    ) -> None:
        """Inside a transaction: queue one downlink message (once per originator, msgId, UE).

        Raises:
            HttpError: 413, the text needs more than 255 SMS.
            InvalidRequest: the text cannot be encoded.
        """
        reference = next(self._references) & 0xFF
        try:
            parts = split_text(text, reference=reference)
        except SmsEncodingError as exc:
            if "parts" in str(exc):
                raise HttpError(
                    413, f"payload too long for SMS: {exc}", cause="PAYLOAD_TOO_LARGE"
                ) from None
            raise InvalidRequest(
                f"payload cannot be sent as SMS: {exc}",
                cause="MANDATORY_IE_INCORRECT",
                fields=[InvalidField("/payload", str(exc))],
            ) from None
        now = time.time()
        cursor = conn.execute(
            "INSERT OR IGNORE INTO downlink (msg_id, originator, ue, msisdn, text, report,"
            " reference, created) VALUES (?,?,?,?,?,?,?,?)",
            (msg_id, _address_encode(originator).decode(), ue, msisdn, text, int(report),
             reference, now),
        )  # fmt: skip
        if cursor.rowcount != 1 or cursor.lastrowid is None:
            self._log.info(
                "duplicate message acknowledged again", extra={"msg_id": msg_id, "ue": ue}
            )
            return
        down = _Down(
            cursor.lastrowid, msg_id, originator, ue, msisdn, text, report, reference, now, parts
        )
        self.db.after_commit(lambda: self._queued(down))

    def _queued(self, down: _Down) -> None:
        self._active[down.id] = down
        self._no_downlink.clear()
        self.counters.inc("down", "accepted")
        self._queue.put_nowait(down.id)

    async def _worker(self) -> None:
        while True:
            down_id = await self._queue.get()
            down = self._active.get(down_id)
            if down is not None:
                await self._submit(down)

    async def _submit(self, down: _Down) -> None:
        await self._pool_ready.wait()
        pool = self.pool
        assert pool is not None
        options = SubmitOptions(
            source_addr=self.settings.source_addr,
            source_addr_ton=5 if not self.settings.source_addr.isdigit() else 1,
            source_addr_npi=0 if not self.settings.source_addr.isdigit() else 1,
            registered_delivery=1 if down.report else 0,
        )
        todo = [n for n in range(1, len(down.parts) + 1) if n not in down.submitted]
        results = await asyncio.gather(
            *(
                pool.submit_sm(
                    down.msisdn,
                    down.parts[n - 1].short_message,
                    data_coding=down.parts[n - 1].data_coding,
                    esm_class=down.parts[n - 1].esm_class,
                    options=options,
                )
                for n in todo
            ),
            return_exceptions=True,
        )
        if down.id not in self._active:
            return
        errors: list[BaseException] = []
        now = time.time()
        with self.db.transaction() as conn:
            for number, result in zip(todo, results, strict=True):
                if isinstance(result, BaseException):
                    errors.append(result)
                    continue
                (state,) = conn.execute(
                    "INSERT INTO parts (smsc_id, down_id, part, state, updated)"
                    " VALUES (?,?,?,NULL,?) ON CONFLICT (smsc_id) DO UPDATE SET"
                    " down_id = excluded.down_id, part = excluded.part,"
                    " state = CASE WHEN parts.down_id IS NULL THEN parts.state ELSE NULL END,"
                    " updated = excluded.updated RETURNING state",
                    (result, down.id, number, now),
                ).fetchone()
                down.submitted.setdefault(number, []).append(result)
                down.states[result] = state
                self._by_smsc_id[result] = down.id
            extra = {"msg_id": down.msg_id, "ue": down.ue}
            if not errors:
                self.counters.inc("down", "submitted")
                self._log.debug("submitted to the SMSC", extra={**extra, "parts": len(down.parts)})
                self._maybe_finish(down)
                return
            fatal = next(
                (e for e in errors if not isinstance(e, SmppError) or not e.retryable), None
            )
            if fatal is not None:
                cause = (
                    f"SMPP_STATUS_0x{fatal.status:02X}"
                    if isinstance(fatal, SmppSubmitError)
                    else f"SMPP_ERROR: {fatal}"
                )
                if not isinstance(fatal, SmppError):
                    self._log.error("unexpected submit failure", exc_info=fatal, extra=extra)
                self._log.warning("the SMSC refused the message", extra={**extra, "cause": cause})
                self._finish(down, cause)
                return
            if now - down.created > self.settings.submit_ttl:
                self._log.warning("giving up on a message never accepted by the SMSC", extra=extra)
                self._finish(down, "EXPIRED")
                return
        self._retry_later(down, errors[0])

    def _retry_later(self, down: _Down, error: BaseException) -> None:
        cfg = self.settings.smpp
        down.attempts += 1
        self.counters.inc("down", "retried")
        delay = min(cfg.reconnect_min * 2 ** min(down.attempts - 1, 20), cfg.reconnect_max)
        if down.attempts == 1 or down.attempts % 10 == 0:
            self._log.warning(
                "submit to the SMSC failed; will retry",
                extra={
                    "msg_id": down.msg_id,
                    "ue": down.ue,
                    "reason": str(error),
                    "attempts": down.attempts,
                    "retry_in_s": delay,
                },
            )
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            if handle is not None:
                self._timers.discard(handle)
            self._queue.put_nowait(down.id)

        handle = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(handle)

    def _maybe_finish(self, down: _Down) -> None:
        """Inside a transaction: finish `down` if every part is submitted and (when a report
        was asked for) every part has a final receipt."""
        if len(down.submitted) < len(down.parts):
            return
        if not down.report:
            self._finish(down, None)
            return
        failure: str | None = None
        for ids in down.submitted.values():
            states = [down.states.get(i) for i in ids]
            if "DELIVRD" in states:
                continue
            if any(s is None for s in states):
                return
            if failure is None:
                failure = states[0]
        self._finish(down, failure)

    def _finish(self, down: _Down, failure: str | None) -> None:
        """Inside a transaction: mark `down` done and queue its report if one was asked for."""
        conn = self.db.conn
        conn.execute("UPDATE downlink SET done = ? WHERE id = ?", (time.time(), down.id))
        conn.execute("DELETE FROM parts WHERE down_id = ?", (down.id,))
        if down.report:
            self.server.send_report(
                DeliveryStatusReport(
                    oriAddr=Address(ADDR_UE, down.ue),
                    destAddr=down.originator,
                    msgId=down.msg_id,
                    delivSt=REPT_DELY_FAILED if failure else REPT_DELY_SUCCESS,
                    failureCause=failure,
                )
            )

        def forget() -> None:
            self._active.pop(down.id, None)
            if not self._active:
                self._no_downlink.set()
            for ids in down.submitted.values():
                for smsc_id in ids:
                    self._by_smsc_id.pop(smsc_id, None)
            if failure:
                self.counters.inc("down", "failed")
            elif down.report:
                self.counters.inc("down", "delivered")

        self.db.after_commit(forget)
        if down.report:
            self._log.info(
                "message outcome",
                extra={
                    "msg_id": down.msg_id,
                    "ue": down.ue,
                    "failure_cause": failure,
                    "delivered": failure is None,
                },
            )

    # -- deliver_sm: receipts and MO -------------------------------------------------------------

    async def _on_deliver(self, pdu: DeliverSm) -> None:
        """The deliver_sm_resp goes out when this returns; raising asks for a redelivery."""
        if is_receipt(pdu.esm_class):
            self._on_receipt(pdu)
        else:
            self._on_mo(pdu)

    def _on_receipt(self, pdu: DeliverSm) -> None:
        try:
            receipt = parse_receipt(pdu.short_message.decode("ascii", errors="replace"), pdu.tlvs)
        except ReceiptParseError as exc:
            self._log.warning("unreadable delivery receipt ignored", extra={"reason": str(exc)})
            return
        if receipt.outcome is ReceiptOutcome.INTERMEDIATE:
            return
        smsc_id = receipt.message_id
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO parts (smsc_id, down_id, part, state, updated)"
                " VALUES (?,NULL,NULL,?,?) ON CONFLICT (smsc_id) DO UPDATE SET"
                " state = excluded.state, updated = excluded.updated",
                (smsc_id, receipt.state, time.time()),
            )
            down_id = self._by_smsc_id.get(smsc_id)
            down = self._active.get(down_id) if down_id is not None else None
            if down is None:
                return  # not ours, or the submit_sm_resp is still on its way (kept above)
            down.states[smsc_id] = receipt.state
            self._maybe_finish(down)

    def _on_mo(self, pdu: DeliverSm) -> None:
        ue = self._ue_by_msisdn.get(_msisdn_key(pdu.source_addr))
        if ue is None:
            self.counters.inc("up", "failed")
            self._log.warning(
                "MO SMS from an MSISDN with no UE mapping dropped",
                extra={"msisdn": pdu.source_addr},
            )
            return
        try:
            ud = parse_user_data(pdu.payload, pdu.esm_class, pdu.data_coding)
        except SmsEncodingError as exc:
            self._log.warning("undecodable MO SMS dropped", extra={"ue": ue, "reason": str(exc)})
            return
        now = time.time()
        with self.db.transaction() as conn:
            concat = ud.concat
            if concat is not None and concat.total > 1:
                conn.execute(
                    "INSERT OR REPLACE INTO mo_parts VALUES (?,?,?,?,?,?,?,?)",
                    (
                        pdu.source_addr,
                        pdu.destination_addr,
                        concat.reference,
                        concat.total,
                        concat.sequence,
                        ud.data_coding,
                        ud.payload,
                        now,
                    ),
                )
                done = self._reassembler.add(pdu.source_addr, pdu.destination_addr, ud, now)
                if done is None:
                    return
                conn.execute(
                    "DELETE FROM mo_parts WHERE originator = ? AND destination = ?"
                    " AND reference = ? AND total = ?",
                    (pdu.source_addr, pdu.destination_addr, concat.reference, concat.total),
                )
                text = done.text
            else:
                text = decode_payload(ud.payload, ud.data_coding)
            message = UEMessageDelivery(
                oriAddr=Address(ADDR_UE, ue),
                destAddr=self.settings.mo_to,
                msgId=new_message_id(),
                stoAndFwInd=True,
                payload=text,
            )
            self.server.send_message(message)
            self.db.after_commit(lambda: self.counters.inc("up", "submitted"))
        self._log.info("MO SMS received", extra={"msg_id": message.msgId, "ue": ue})

    # -- reports from the server -----------------------------------------------------------------

    async def _on_report(self, report: DeliveryStatusReport) -> None:
        dest = report.destAddr
        msisdn = self._ues.get(dest.addr) if dest.addrType == ADDR_UE else None
        if msisdn is None:
            raise NotFound(f"UE {dest.addr!r} is not served by this gateway")
        delivered = report.delivSt == REPT_DELY_SUCCESS
        self._log.info(
            "delivery report for UE-originated message",
            extra={
                "msg_id": report.msgId,
                "ue": dest.addr,
                "deliv_st": report.delivSt,
                "failure_cause": report.failureCause,
                "reporter": report.oriAddr.addr,
            },
        )
        if self.settings.report_sms:
            outcome = "delivered" if delivered else "not delivered"
            if report.failureCause and not delivered:
                outcome += f" ({report.failureCause})"
            self._accept(
                report.oriAddr,
                f"report:{report.msgId}",
                dest.addr,
                msisdn,
                f"MSGin5G report {report.msgId}: {outcome}",
                False,
            )

    # -- housekeeping ----------------------------------------------------------------------------

    async def _sweep(self) -> None:
        s = self.settings
        while True:
            await asyncio.sleep(s.sweep_interval)
            now = time.time()
            expired = self._reassembler.expire(now)
            with self.db.transaction() as conn:
                for gone in expired:
                    conn.execute(
                        "DELETE FROM mo_parts WHERE originator = ? AND destination = ?"
                        " AND reference = ? AND total = ?",
                        (gone.originator, gone.destination, gone.reference, gone.total),
                    )
                    self.counters.inc("up", "failed")
                    self._log.warning(
                        "incomplete concatenated MO SMS dropped",
                        extra={
                            "msisdn": gone.originator,
                            "received": list(gone.received),
                            "total": gone.total,
                        },
                    )
                self._expire_segments(conn, now - s.reassembly_timeout)
                conn.execute("DELETE FROM downlink WHERE done < ?", (now - s.retention,))
                conn.execute(
                    "DELETE FROM parts WHERE down_id IS NULL AND updated < ?",
                    (now - s.retention,),
                )

    def _expire_segments(self, conn: sqlite3.Connection, cutoff: float) -> None:
        """Inside a transaction: give up segment sets started before `cutoff`; report the
        failure to the sender when a report was asked for (DESIGN 2.4)."""
        for originator, seg_id, ue, msg_id, report in conn.execute(
            "SELECT originator, seg_id, ue, MIN(msg_id), MAX(report) FROM segments"
            " GROUP BY originator, seg_id, ue HAVING MIN(created) < ?",
            (cutoff,),
        ).fetchall():
            conn.execute(
                "DELETE FROM segments WHERE originator = ? AND seg_id = ? AND ue = ?",
                (originator, seg_id, ue),
            )
            self.counters.inc("down", "failed")
            self._log.warning(
                "incomplete segmented message dropped", extra={"msg_id": msg_id, "ue": ue}
            )
            if report:
                self.server.send_report(
                    DeliveryStatusReport(
                        oriAddr=Address(ADDR_UE, ue),
                        destAddr=_address_decode(originator),
                        msgId=msg_id,
                        delivSt=REPT_DELY_FAILED,
                        failureCause="SEGMENT_REASSEMBLY_TIMEOUT",
                    )
                )

    # -- for tests and benchmarks ----------------------------------------------------------------

    @property
    def pending_downlink(self) -> int:
        return len(self._active)

    async def idle(self) -> None:
        """Wait until every downlink is finished and the uplink is drained."""
        await self._no_downlink.wait()
        await self.server.drained()
