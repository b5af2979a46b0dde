# SPDX-License-Identifier: Apache-2.0
"""Plumbing shared by the message gateways (L3G: SMS, N3G: MQTT), TS 23.554 8.6/8.7.

* :class:`GatewaySettings`: what every gateway process needs (its HTTP listener, the
  MSGin5G Server's apiRoot, its data directory, retry timing).
* :class:`GatewayDb`: the gateway's own SQLite file (WAL, ``synchronous=NORMAL``): a commit is
  in the WAL before anything is acknowledged, so killing the process loses nothing it
  acknowledged. Single-threaded, used on the event loop; a transaction never spans an await.
* :class:`ServerClient`: the uplink toward the server, a durable outbox. A UE-originated
  message (`POST msgs-msgdelivery/v1/deliver-ue-message`) or a delivery status report
  (`POST msgs-msgdelivery/v1/deliver-report`) is written to the outbox in the same transaction
  as whatever made it (an MO SMS, a receipt, an MQTT PUBLISH), and the device's transport is
  acknowledged only after the commit. The outbox is then sent with at most
  ``uplink_concurrency`` requests in flight and retried with exponential backoff while the
  server is down or answers 5xx/429 (forever: nothing a device sent is dropped for lack of a
  server); a 2xx removes it, another 4xx is logged as an error and removed (resending the same
  bytes cannot succeed).
* :class:`Registrar`: registers the UEs the gateway serves with the server through our
  extension API (DESIGN 2.5): ``POST {server}/ext-gwueregistration/v1/registrations`` with
  ``{"gwType", "gwApiRoot", "ueSvcIds"}`` -> 201 ``{"registrations": [{"ueSvcId",
  "registrationId"}]}``, idempotent; ``DELETE .../registrations/{registrationId}`` -> 204.
  Until the server answers 201 it retries with backoff and logs a warning; it never gives up
  and re-posts every ``registration_refresh`` seconds (a server that lost its store learns the
  UEs again).
* :func:`build_app` and :func:`serve`: the msgg HTTP API plus /healthz, /readyz and /metrics,
  run by granian embedded in our own loop (the pattern of ``bootstrap.serve``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, Protocol
from urllib.parse import urlsplit

import httpx
import msgspec

from msgin5g.api import msgg_delivery
from msgin5g.api.app import HttpApp, Operation
from msgin5g.api.http import Request, Response
from msgin5g.api.serving import check_port_free, serve_until_stopped
from msgin5g.core.errors import StorageFailure
from msgin5g.observability import Metrics, Series
from msgin5g.outbound.h2c import H2cClient as UplinkHttp
from msgin5g.outbound.http_client import Authorizer, HttpClientPool, PeerUnavailable
from msgin5g.security.client import TokenUnavailable
from msgin5g.security.tokens import TokenValidator
from msgin5g.settings import SettingsError, is_loopback, split_hostport
from msgin5g.wire.common import DeliveryStatusReport
from msgin5g.wire.msgs import MessageDeliveryAck, UEMessageDelivery

__all__ = [
    "DELIVER_REPORT",
    "DELIVER_UE_MESSAGE",
    "REGISTRATIONS",
    "GatewayCounters",
    "GatewayDb",
    "GatewaySettings",
    "HttpGateway",
    "Registrar",
    "ServerClient",
    "UplinkHttp",
    "build_app",
    "serve",
]

log = logging.getLogger(__name__)

DELIVER_UE_MESSAGE: Final = "/msgs-msgdelivery/v1/deliver-ue-message"
DELIVER_REPORT: Final = "/msgs-msgdelivery/v1/deliver-report"
REGISTRATIONS: Final = "/ext-gwueregistration/v1/registrations"

GatewayType = Literal["L3G", "N3G"]


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Settings of one gateway process. Times in seconds.

    Raises:
        SettingsError: from :meth:`validate`, naming the flag and the reason.
    """

    gw_type: GatewayType
    server_url: str
    """apiRoot of the MSGin5G Server, e.g. http://127.0.0.1:8080."""
    http: str = "127.0.0.1:8181"
    """HOST:PORT the msgg API listens on (h2c and HTTP/1.1)."""
    data_dir: Path = Path("./msgin5g-gateway-data")
    api_root: str = ""
    """The gwApiRoot told to the server; empty = http://{http}."""
    insecure: bool = False
    max_body_bytes: int = 1_048_576
    retry_initial: float = 0.2
    retry_max: float = 10.0
    uplink_concurrency: int = 12
    request_timeout: float = 10.0
    registration_refresh: float = 300.0
    uplink_auth: Authorizer | None = field(default=None, repr=False, compare=False)
    """Bearer tokens toward the server (security.client.TokenSource; ADR 0015)."""
    validator: TokenValidator | None = field(default=None, repr=False, compare=False)
    """Checks the bearer tokens of callers of the msgg API (the server); None: open."""

    @property
    def gw_api_root(self) -> str:
        return (self.api_root or f"http://{self.http}").rstrip("/")

    @property
    def server_root(self) -> str:
        return self.server_url.rstrip("/")

    def validate(self) -> None:
        host, _ = split_hostport(self.http, "--http")
        if not self.server_url.startswith(("http://", "https://")):
            raise SettingsError(f"--server must be an http(s):// apiRoot, got {self.server_url!r}")
        if not is_loopback(host) and not self.insecure and self.validator is None:
            raise SettingsError(
                f"refusing to listen on non-loopback address {host} without authentication;"
                " pass --insecure to accept that risk"
            )
        if self.retry_initial <= 0 or self.retry_max < self.retry_initial:
            raise SettingsError("retry times must be > 0 and retry_max >= retry_initial")


class GatewayCounters:
    """`msgin5g_gateway_messages_total{gateway,direction,outcome}`: submitted, delivered,
    failed and retried, downlink (toward devices) and uplink (toward the server)."""

    def __init__(self, metrics: Metrics, gateway: str) -> None:
        self._metrics = metrics
        self._gateway = gateway
        self._series: dict[tuple[str, str], Series] = {}

    def inc(self, direction: Literal["down", "up"], outcome: str, amount: int = 1) -> None:
        key = (direction, outcome)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = self._metrics.counter(
                "msgin5g_gateway_messages_total",
                gateway=self._gateway,
                direction=direction,
                outcome=outcome,
            )
        series.value += amount

    def value(self, direction: str, outcome: str) -> float:
        return self._metrics.value(
            "msgin5g_gateway_messages_total",
            gateway=self._gateway,
            direction=direction,
            outcome=outcome,
        )


class GatewayDb:
    """The gateway's SQLite file. Call :meth:`open` first; use :meth:`transaction` to write."""

    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        self._schema = schema
        self._conn: sqlite3.Connection | None = None
        self._after: list[Callable[[], None]] = []
        self._in_transaction = False

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_OUTBOX_SCHEMA + self._schema)
        self._conn = conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageFailure("the gateway store is closed")
        return self._conn

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        return self.conn.execute(sql, tuple(params)).fetchall()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN ... COMMIT; callbacks given to :meth:`after_commit` run after the commit.

        Raises:
            StorageFailure: the commit failed (nothing of it is kept).
        """
        if self._in_transaction:
            raise RuntimeError("nested gateway transaction")
        conn = self.conn
        self._in_transaction = True
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                self._after.clear()
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StorageFailure(f"gateway store: {exc}") from exc
        finally:
            self._in_transaction = False
        callbacks, self._after = self._after, []
        for callback in callbacks:
            callback()

    def after_commit(self, callback: Callable[[], None]) -> None:
        if not self._in_transaction:
            raise RuntimeError("after_commit outside a transaction")
        self._after.append(callback)


_OUTBOX_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    body BLOB NOT NULL,
    msg_id TEXT NOT NULL,
    ue TEXT NOT NULL,
    created REAL NOT NULL,
    UNIQUE (path, ue, msg_id)
);
"""


@dataclass(slots=True)
class _Outgoing:
    path: str
    body: bytes
    msg_id: str
    ue: str
    attempts: int = 0


_encode = msgspec.json.Encoder().encode
_ack_decode = msgspec.json.Decoder(MessageDeliveryAck).decode


class ServerClient:
    """The durable uplink to the MSGin5G Server (MSGS_MSGDelivery UEODelivery and
    UEODeliveryReport). :meth:`send_message` and :meth:`send_report` must be called inside a
    :meth:`GatewayDb.transaction`; sending starts after its commit."""

    def __init__(
        self,
        settings: GatewaySettings,
        db: GatewayDb,
        http: HttpClientPool,
        counters: GatewayCounters,
        *,
        logger: logging.Logger | None = None,
    ) -> None:
        self._settings = settings
        self._db = db
        self._http = http
        self._uplink = UplinkHttp(settings.server_root, http, timeout=settings.request_timeout)
        if settings.uplink_auth is not None:
            parts = urlsplit(settings.server_root)
            http.authorize(f"{parts.scheme}://{parts.netloc}", settings.uplink_auth)
        self._counters = counters
        self._log = logger or log
        self._items: dict[int, _Outgoing] = {}
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._settled: list[int] = []
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def pending(self) -> int:
        """Uplink items not yet acknowledged by the server."""
        return len(self._items)

    def send_message(self, message: UEMessageDelivery) -> None:
        self._stage(DELIVER_UE_MESSAGE, _encode(message), message.msgId, message.oriAddr.addr)

    def send_report(self, report: DeliveryStatusReport) -> None:
        self._stage(DELIVER_REPORT, _encode(report), report.msgId, report.oriAddr.addr)

    def _stage(self, path: str, body: bytes, msg_id: str, ue: str) -> None:
        cursor = self._db.conn.execute(
            "INSERT OR IGNORE INTO outbox (path, body, msg_id, ue, created) VALUES (?,?,?,?,?)",
            (path, body, msg_id, ue, time.time()),
        )
        if cursor.rowcount != 1 or cursor.lastrowid is None:
            return  # the same item is already waiting (a transport redelivery)
        row_id = cursor.lastrowid
        item = _Outgoing(path, body, msg_id, ue)
        self._db.after_commit(lambda: self._enqueue(row_id, item))

    def _enqueue(self, row_id: int, item: _Outgoing) -> None:
        self._items[row_id] = item
        self._idle.clear()
        self._queue.put_nowait(row_id)

    async def start(self) -> None:
        """Resume what a previous run left in the outbox, then start sending."""
        for row_id, path, body, msg_id, ue in self._db.query(
            "SELECT id, path, body, msg_id, ue FROM outbox ORDER BY id"
        ):
            self._enqueue(row_id, _Outgoing(path, bytes(body), msg_id, ue))
        if self._items:
            self._log.info("resuming uplink outbox", extra={"pending": len(self._items)})
        self._workers = [
            asyncio.create_task(self._worker(), name=f"uplink-{i}")
            for i in range(self._settings.uplink_concurrency)
        ]

    async def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        self._delete_settled()
        await self._uplink.aclose()

    async def drained(self) -> None:
        """Wait until the server acknowledged everything (tests, benchmarks)."""
        await self._idle.wait()

    async def _worker(self) -> None:
        while True:
            row_id = await self._queue.get()
            item = self._items.get(row_id)
            if item is None:
                continue
            if await self._post(item):
                self._items.pop(row_id, None)
                # Settled rows are deleted in one transaction per loop turn; a crash before
                # that resends them, which the server's idempotency absorbs.
                if not self._settled:
                    asyncio.get_running_loop().call_soon(self._delete_settled)
                self._settled.append(row_id)
            else:
                self._retry_later(row_id, item)

    def _delete_settled(self) -> None:
        if not self._settled:
            return
        settled, self._settled = self._settled, []
        with self._db.transaction() as conn:
            conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in settled])
        if not self._items:
            self._idle.set()

    def _retry_later(self, row_id: int, item: _Outgoing) -> None:
        s = self._settings
        item.attempts += 1
        self._counters.inc("up", "retried")
        delay = min(s.retry_initial * 2 ** min(item.attempts - 1, 30), s.retry_max)
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            if handle is not None:
                self._timers.discard(handle)
            self._queue.put_nowait(row_id)

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    async def _post(self, item: _Outgoing) -> bool:
        """True when the item is settled (acknowledged, or refused for good)."""
        extra = {"msg_id": item.msg_id, "ue": item.ue, "path": item.path}
        try:
            status, content = await self._uplink.post(item.path, item.body)
        except PeerUnavailable as exc:
            self._log_retry(item, f"server unreachable: {exc}", extra)
            return False
        if 200 <= status < 300:
            self._counters.inc("up", "delivered")
            if item.path == DELIVER_UE_MESSAGE and status == 200:
                self._check_ack(content, extra)
            self._log.debug("uplink acknowledged", extra=extra)
            return True
        if status in (408, 425, 429) or status >= 500:
            self._log_retry(item, f"server answered {status}", extra)
            return False
        self._counters.inc("up", "failed")
        self._log.error(
            "server refused uplink item; dropping it",
            extra={**extra, "status": status, "body": content[:500].decode("utf-8", "replace")},
        )
        return True

    def _check_ack(self, content: bytes, extra: dict[str, str]) -> None:
        try:
            ack = _ack_decode(content)
        except msgspec.DecodeError:
            return
        if ack.status == "DELY_FAILED":
            self._log.warning(
                "server could not deliver the UE-originated message",
                extra={**extra, "failure_cause": ack.failureCause},
            )

    def _log_retry(self, item: _Outgoing, reason: str, extra: dict[str, str]) -> None:
        if item.attempts == 0 or item.attempts % 10 == 0:
            self._log.warning(
                "uplink to server failed; will retry",
                extra={**extra, "reason": reason, "attempts": item.attempts + 1},
            )


class _RegistrationEntry(msgspec.Struct):
    ueSvcId: str
    registrationId: str


class _RegistrationResult(msgspec.Struct):
    registrations: list[_RegistrationEntry] = msgspec.field(default_factory=list)


class Registrar:
    """Keeps the server told which UEs this gateway serves (DESIGN 2.5 extension API)."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        logger: logging.Logger | None = None,
    ) -> None:
        self._settings = settings
        self._log = logger or log
        self._wanted: set[str] = set()
        self.registration_ids: dict[str, str] = {}
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._client = httpx.AsyncClient(timeout=settings.request_timeout)
        self.registered = asyncio.Event()
        """Set after the server acknowledged the current set of UEs."""
        self.attempts = 0

    def add(self, ue_ids: Iterable[str]) -> None:
        new = set(ue_ids) - self._wanted
        if new:
            self._wanted |= new
            self.registered.clear()
            self._dirty.set()

    def remove(self, ue_id: str) -> None:
        """Stop serving `ue_id`: DELETE its registration (best effort, a few tries)."""
        self._wanted.discard(ue_id)
        registration_id = self.registration_ids.pop(ue_id, None)
        if registration_id is None:
            return
        task = asyncio.create_task(self._delete(ue_id, registration_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ue-registrar")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.aclose()

    async def _run(self) -> None:
        s = self._settings
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(s.registration_refresh):
                    await self._dirty.wait()
            delay = s.retry_initial
            while True:
                self._dirty.clear()
                wanted = sorted(self._wanted)
                if not wanted or await self._post(wanted):
                    if not self._dirty.is_set():
                        self.registered.set()
                        break
                    continue
                await asyncio.sleep(delay)
                delay = min(delay * 2, max(s.retry_max, 5.0))

    async def _post(self, ue_ids: list[str]) -> bool:
        s = self._settings
        url = s.server_root + REGISTRATIONS
        body = {"gwType": s.gw_type, "gwApiRoot": s.gw_api_root, "ueSvcIds": ue_ids}
        self.attempts += 1
        try:
            headers = {}
            if s.uplink_auth is not None:
                headers["authorization"] = (await s.uplink_auth.authorization()).decode()
            response = await self._client.post(url, json=body, headers=headers)
        except TokenUnavailable as exc:
            self._warn(str(exc), ue_ids)
            return False
        except httpx.HTTPError as exc:
            self._warn(f"server unreachable: {type(exc).__name__}: {exc}", ue_ids)
            return False
        if response.status_code not in (200, 201):
            self._warn(f"server answered {response.status_code}", ue_ids)
            return False
        try:
            result = msgspec.json.decode(response.content, type=_RegistrationResult)
        except msgspec.DecodeError:
            result = _RegistrationResult()
        for entry in result.registrations:
            self.registration_ids[entry.ueSvcId] = entry.registrationId
        self._log.info(
            "UEs registered with the server",
            extra={"ues": len(ue_ids), "gw_api_root": s.gw_api_root},
        )
        return True

    def _warn(self, reason: str, ue_ids: list[str]) -> None:
        if self.attempts <= 3 or self.attempts % 10 == 0:
            self._log.warning(
                "UE registration with the server failed; will retry",
                extra={"reason": reason, "ues": len(ue_ids), "attempts": self.attempts},
            )

    async def _delete(self, ue_id: str, registration_id: str) -> None:
        url = f"{self._settings.server_root}{REGISTRATIONS}/{registration_id}"
        for attempt in range(5):
            try:
                response = await self._client.delete(url)
                if response.status_code in (204, 404):
                    self._log.info("UE deregistered", extra={"ue": ue_id})
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(self._settings.retry_initial * 2**attempt)
        self._log.warning("UE deregistration failed", extra={"ue": ue_id})


# -- the HTTP side ------------------------------------------------------------------------------


def build_app(
    api_name: str,
    on_message: msgg_delivery.MessageHandler,
    on_report: msgg_delivery.ReportHandler,
    metrics: Metrics,
    ready: Callable[[], bool],
    *,
    max_body: int = 1_048_576,
) -> HttpApp:
    """The msgg API of `api_name` plus /healthz, /readyz and /metrics."""

    async def healthz(_request: Request) -> Response:
        return Response(200, b'{"status":"ok"}')

    async def readyz(_request: Request) -> Response:
        if ready():
            return Response(200, b'{"status":"ready"}')
        return Response(503, b'{"status":"starting"}', headers=[(b"retry-after", b"1")])

    async def metrics_text(_request: Request) -> Response:
        text = await metrics.render()
        return Response(200, text.encode(), b"text/plain; version=0.0.4; charset=utf-8")

    return HttpApp(
        [
            *msgg_delivery.operations(api_name, on_message, on_report),
            Operation("GET", "/healthz", "healthz", healthz),
            Operation("GET", "/readyz", "readyz", readyz),
            Operation("GET", "/metrics", "metrics", metrics_text),
        ],
        metrics,
        max_body=max_body,
    )


class HttpGateway(Protocol):
    """A gateway that :func:`serve` can run."""

    @property
    def app(self) -> HttpApp: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def serve(gateway: HttpGateway, listen: str) -> None:
    """Run `gateway` and its HTTP API (h2c + HTTP/1.1) until SIGINT/SIGTERM."""
    from granian.constants import HTTPModes, Interfaces
    from granian.server.embed import Server as Granian

    host, port = split_hostport(listen, "--http")
    check_port_free(host, port)
    await gateway.start()
    gc.collect()
    gc.freeze()
    http = Granian(
        gateway.app,
        address=host,
        port=port,
        interface=Interfaces.RSGI,
        http=HTTPModes.auto,
        websockets=False,
        backlog=2048,
        log_enabled=False,
    )
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def on_signal() -> None:
        stopping.set()
        http.stop()  # type: ignore[no-untyped-call]

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        log.info("gateway listening", extra={"http": listen})
        await serve_until_stopped(http.serve(), stopping)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await gateway.stop()
