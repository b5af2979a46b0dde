# SPDX-License-Identifier: Apache-2.0
"""The Broadcast Message Gateway over Cell Broadcast: MSGG_BGDelivery v1 (TS 29.538 clause 8,
MSGin5G-7) on one side, a REST client of a Cell Broadcast Centre with the osmo-cbc ECBE shape
(``POST/DELETE /api/ecbe/v1/message``, see :mod:`msgin5g.gateways.cbs.cbc_sim`) on the other.

``POST {apiRoot}/msgg-bgdelivery/v1/deliver-message`` with a ``BgMessageDelivery``:

* the target area is ``destAddr.addr`` when ``destAddr`` is given (normally ``{BC, <Broadcast
  Area ID>}``; any addrType is accepted, the area id is what counts), else the configured
  default area. An area that is not configured: 404 ``TARGET_NOT_FOUND``.
* areas map to a CBC scope by configuration: ``AREA=plmn`` (``scope_plmn``) or
  ``AREA=cgi:MCC-MNC-LAC-CI,...`` (``scope_cell_list``).
* ``priority`` HIGH -> category ``high_priority``, LOW -> ``background``, else ``normal``.
* the payload is split into CBS pages by :mod:`msgin5g.gateways.cbs.pages` and sent as
  ``payload_encoded`` (DCS 0x0F GSM 7-bit or 0x48 UCS-2, each page 82 octets in hex): the
  gateway, not the CBC, owns the character set choice and the 15-page limit, so a text that
  does not fit is refused up front (413 ``PAYLOAD_TOO_LARGE``) instead of being cut by the CBC.
  A missing ``payload`` is 400 ``MANDATORY_IE_MISSING``: there is nothing to broadcast.
* each message gets its own CBS ``message_id`` from a configured range (default 1000-4095,
  cyclic, the counter persisted), serial number ``{"serial_nr_decoded": {geo_scope plmn_wide
  or cell_wide, msg_code = allocation sequence mod 1024, update_nr 0}}``. The (oriAddr, msgId,
  segNumb) -> message_id map is kept in the gateway's SQLite store, so the broadcast can be
  withdrawn later (:meth:`BroadcastGateway.withdraw` issues the ECBE DELETE). When a
  message_id is reused after the range wrapped and the CBC still has the old message (409),
  the old one is deleted and the POST repeated once.
* 204 only after the CBC answered 201. CBC unreachable, timing out or answering 5xx/429: 503
  ``SERVICE_UNAVAILABLE`` with Retry-After, so the MSGin5G Server retries (the message keeps its
  message_id across retries). The CBC refusing our request with another 4xx is a gateway or
  configuration fault: 500 ``SYSTEM_FAILURE``, logged as an error.
* idempotent on (oriAddr, msgId, segNumb): a repeat of an accepted message is answered 204
  without a second broadcast; concurrent repeats wait for the first.
* ``delivStReqInd`` is ignored: MSGG_BGDelivery has no report path and cell broadcast has no
  per-UE receipt. Segments (``segInd``/``segParams``) are broadcast as separate CBS messages.
* the BMG registers nothing with the server (no UE registration); ``--server`` is only kept
  for symmetry with the other gateways and future use.

``repetition_period`` is in osmo-cbc units of 1.883 s (1-4095); ``num_of_bcast`` 0 means until
deleted. Metrics: ``msgin5g_gateway_messages_total{gateway="broadcast"}``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import msgspec

from msgin5g.api.app import HttpApp, Operation
from msgin5g.api.http import HttpError, Request, Response
from msgin5g.api.problems import decode_error
from msgin5g.core.errors import InvalidField, InvalidRequest, NotFound
from msgin5g.gateways.cbs import pages
from msgin5g.gateways.cbs.cbc_sim import ECBE_MESSAGE
from msgin5g.gateways.common import GatewayCounters, GatewayDb, GatewaySettings
from msgin5g.observability import Metrics
from msgin5g.wire.common import (
    PRIORITY_HIGH,
    PRIORITY_LOW,
    Address,
    MessageSegmentParameters,
    NonEmpty,
)

__all__ = [
    "BG_API",
    "BgMessageDelivery",
    "BroadcastGateway",
    "BroadcastGatewaySettings",
    "CbcScope",
    "build_request",
    "category_of",
    "parse_area",
]

log = logging.getLogger(__name__)

BG_API: Final = "msgg-bgdelivery"
DELIVER_MESSAGE: Final = f"/{BG_API}/v1/deliver-message"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS broadcasts (
    ori TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    seg INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    area TEXT NOT NULL,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (ori, msg_id, seg)
);
CREATE TABLE IF NOT EXISTS bg_counter (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    seq INTEGER NOT NULL
);
"""


class BgMessageDelivery(msgspec.Struct, omit_defaults=True):
    """``BgMessageDelivery`` (TS 29.538 8.1.5.2.2). Optional members may be absent, not null."""

    oriAddr: Address
    msgId: NonEmpty
    destAddr: Address | msgspec.UnsetType = msgspec.UNSET
    appId: str | msgspec.UnsetType = msgspec.UNSET
    delivStReqInd: bool | msgspec.UnsetType = msgspec.UNSET
    payload: str | msgspec.UnsetType = msgspec.UNSET
    segInd: bool | msgspec.UnsetType = msgspec.UNSET
    segParams: MessageSegmentParameters | msgspec.UnsetType = msgspec.UNSET
    priority: str | msgspec.UnsetType = msgspec.UNSET


@dataclass(frozen=True, slots=True)
class CbcScope:
    """A broadcast area's CBC scope: the whole PLMN, or a list of cells (mcc, mnc, lac, ci)."""

    cells: tuple[tuple[int, int, int, int], ...] = ()

    @property
    def plmn_wide(self) -> bool:
        return not self.cells

    def to_json(self) -> dict[str, Any]:
        if self.plmn_wide:
            return {"scope_plmn": {}}
        return {
            "scope_cell_list": {
                "cgi": [{"mcc": a, "mnc": b, "lac": c, "ci": d} for a, b, c, d in self.cells]
            }
        }


def parse_area(spec: str) -> tuple[str, CbcScope]:
    """``AREA=plmn`` or ``AREA=cgi:MCC-MNC-LAC-CI,...`` -> (area id, scope).

    Raises:
        ValueError: naming what is wrong.
    """
    area, sep, value = spec.partition("=")
    if not sep or not area:
        raise ValueError(f"expected AREA=plmn or AREA=cgi:MCC-MNC-LAC-CI,..., got {spec!r}")
    if value == "plmn":
        return area, CbcScope()
    if not value.startswith("cgi:") or value == "cgi:":
        raise ValueError(f"area {area!r}: expected plmn or cgi:MCC-MNC-LAC-CI,..., got {value!r}")
    cells: list[tuple[int, int, int, int]] = []
    for item in value.removeprefix("cgi:").split(","):
        parts = item.split("-")
        limits = (999, 999, 65535, 65535)
        if len(parts) != 4 or not all(
            p.isdigit() and int(p) <= m for p, m in zip(parts, limits, strict=True)
        ):
            raise ValueError(f"area {area!r}: a cell must be MCC-MNC-LAC-CI, got {item!r}")
        mcc, mnc, lac, ci = (int(p) for p in parts)
        cells.append((mcc, mnc, lac, ci))
    return area, CbcScope(tuple(cells))


def category_of(priority: str | None) -> str:
    """Priority HIGH -> high_priority, LOW -> background, anything else -> normal."""
    if priority == PRIORITY_HIGH:
        return "high_priority"
    if priority == PRIORITY_LOW:
        return "background"
    return "normal"


@dataclass(frozen=True, slots=True)
class BroadcastGatewaySettings:
    """Settings of the Broadcast Message Gateway."""

    gateway: GatewaySettings
    cbc_url: str
    """Base URL of the CBC's ECBE REST interface, e.g. http://127.0.0.1:12345."""
    areas: Mapping[str, CbcScope] = field(default_factory=dict)
    default_area: str | None = None
    cbe_name: str = "msgin5g"
    repetition_period: int = 10
    """In units of 1.883 s (osmo-cbc), 1..4095."""
    num_of_bcast: int = 10
    """Number of broadcasts, 0..65535; 0 = until deleted."""
    message_ids: tuple[int, int] = (1000, 4095)
    """Inclusive range the CBS message_id of each message is taken from."""

    def validate(self) -> None:
        from msgin5g.settings import SettingsError

        self.gateway.validate()
        if not self.cbc_url.startswith(("http://", "https://")):
            raise SettingsError(f"--cbc must be an http(s):// URL, got {self.cbc_url!r}")
        if not self.areas:
            raise SettingsError("at least one --area is needed")
        if self.default_area is not None and self.default_area not in self.areas:
            raise SettingsError(f"--default-area {self.default_area!r} is not a configured --area")
        if not 1 <= self.repetition_period <= 4095:
            raise SettingsError("--repetition-period must be in 1..4095 (units of 1.883 s)")
        if not 0 <= self.num_of_bcast <= 65535:
            raise SettingsError("--num-of-bcast must be in 0..65535")
        low, high = self.message_ids
        if not 0 <= low <= high <= 65535:
            raise SettingsError("the message_id range must lie in 0..65535")


def build_request(
    settings: BroadcastGatewaySettings,
    scope: CbcScope,
    message_id: int,
    seq: int,
    text: str,
    priority: str | None,
) -> dict[str, Any]:
    """The ECBE ``POST /api/ecbe/v1/message`` body for one message.

    Raises:
        pages.CbsEncodingError: the text needs more than 15 pages.
    """
    encoded = pages.encode(text)
    return {
        "cbe_name": settings.cbe_name,
        "category": category_of(priority),
        "repetition_period": settings.repetition_period,
        "num_of_bcast": settings.num_of_bcast,
        "scope": scope.to_json(),
        "smscb_message": {
            "message_id": message_id,
            "serial_nr": {
                "serial_nr_decoded": {
                    "geo_scope": "plmn_wide" if scope.plmn_wide else "cell_wide",
                    "msg_code": seq % 1024,
                    "update_nr": 0,
                }
            },
            "payload": {
                "payload_encoded": {
                    "dcs": encoded.dcs,
                    "pages": [{"data": page.hex()} for page in encoded.pages],
                }
            },
        },
    }


_decode_body = msgspec.json.Decoder(BgMessageDelivery).decode
_MANDATORY = frozenset({"oriAddr", "msgId"})
_KEY: Final = "ori = ? AND msg_id = ? AND seg = ?"


def _unavailable(detail: str) -> HttpError:
    return HttpError(503, detail, cause="SERVICE_UNAVAILABLE", headers=[(b"retry-after", b"1")])


class BroadcastGateway:
    """The BMG process: the msgg-bgdelivery API and the CBC client."""

    def __init__(
        self,
        settings: BroadcastGatewaySettings,
        *,
        metrics: Metrics | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self._log = logger or log
        gw = settings.gateway
        self.counters = GatewayCounters(self.metrics, "broadcast")
        self.db = GatewayDb(Path(gw.data_dir) / "broadcast-gateway.sqlite3", _SCHEMA)
        self._cbc = httpx.AsyncClient(
            base_url=settings.cbc_url.rstrip("/"), timeout=gw.request_timeout
        )
        self._inflight: dict[tuple[str, str, int], asyncio.Future[None]] = {}
        self._started = False
        self.app = self._build_app()

    def _build_app(self) -> HttpApp:
        async def deliver_message(request: Request) -> Response:
            try:
                body = _decode_body(request.body)
            except msgspec.DecodeError as exc:
                raise decode_error(exc, _MANDATORY) from None
            await self.deliver(body)
            return Response(204, b"", None)

        async def healthz(_request: Request) -> Response:
            return Response(200, b'{"status":"ok"}')

        async def readyz(_request: Request) -> Response:
            if self._started:
                return Response(200, b'{"status":"ready"}')
            return Response(503, b'{"status":"starting"}', headers=[(b"retry-after", b"1")])

        async def metrics_text(_request: Request) -> Response:
            text = await self.metrics.render()
            return Response(200, text.encode(), b"text/plain; version=0.0.4; charset=utf-8")

        return HttpApp(
            [
                Operation("POST", DELIVER_MESSAGE, "bg.message", deliver_message, True),
                Operation("GET", "/healthz", "healthz", healthz),
                Operation("GET", "/readyz", "readyz", readyz),
                Operation("GET", "/metrics", "metrics", metrics_text),
            ],
            self.metrics,
            max_body=self.settings.gateway.max_body_bytes,
        )

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self.db.open()
        self._started = True
        self._log.info(
            "broadcast gateway started",
            extra={"cbc": self.settings.cbc_url, "areas": sorted(self.settings.areas)},
        )

    async def stop(self) -> None:
        self._started = False
        await self._cbc.aclose()
        self.db.close()
        self._log.info("broadcast gateway stopped")

    # -- deliver-message -------------------------------------------------------------------------

    def _area_of(self, body: BgMessageDelivery) -> str:
        if isinstance(body.destAddr, Address):
            area = body.destAddr.addr
        elif self.settings.default_area is not None:
            area = self.settings.default_area
        else:
            raise NotFound("destAddr is absent and no default broadcast area is configured")
        if area not in self.settings.areas:
            raise NotFound(f"broadcast area {area!r} is not served by this gateway")
        return area

    async def deliver(self, body: BgMessageDelivery) -> None:
        """Broadcast one message; returns once the CBC accepted it (or had it already).

        Raises:
            NotFound: unknown area (404). InvalidRequest: no payload (400).
            HttpError: 413 too long for 15 pages, 503 CBC unavailable, 500 CBC refused.
        """
        area = self._area_of(body)
        if not isinstance(body.payload, str):
            raise InvalidRequest(
                "/payload is missing: a cell broadcast needs a payload",
                cause="MANDATORY_IE_MISSING",
                fields=[InvalidField("/payload", "mandatory for broadcast delivery")],
            )
        priority = body.priority if isinstance(body.priority, str) else None
        try:
            pages.encode(body.payload)  # refuse what does not fit before taking a message_id
        except pages.CbsEncodingError as exc:
            raise HttpError(413, str(exc), cause="PAYLOAD_TOO_LARGE") from None
        seg = (
            body.segParams.segNumb if isinstance(body.segParams, MessageSegmentParameters) else None
        )
        key = (f"{body.oriAddr.addrType}\x1f{body.oriAddr.addr}", body.msgId, seg or 0)
        pending = self._inflight.get(key)
        if pending is not None:
            # A concurrent repeat: the first request's outcome is ours too.
            try:
                await asyncio.shield(pending)
            except asyncio.CancelledError:
                if pending.cancelled():  # the first request went away, not this one
                    raise _unavailable("an earlier attempt of this message was cut short") from None
                raise
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            await self._broadcast(key, area, body.payload, priority)
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else needs to
            raise
        except BaseException:
            future.cancel()
            raise
        else:
            future.set_result(None)
        finally:
            del self._inflight[key]

    def _allocate(self, key: tuple[str, str, int], area: str) -> tuple[int, int, bool]:
        """(message_id, seq, already done) of `key`, allocating a new message_id.

        States: ``pending`` (not yet accepted by the CBC), ``accepted``, ``superseded`` (accepted,
        and its message_id was since given to a newer message) and ``withdrawn``.
        """
        rows = self.db.query(f"SELECT message_id, seq, state FROM broadcasts WHERE {_KEY}", key)
        if rows:
            message_id, seq, state = rows[0]
            return int(message_id), int(seq), state != "pending"
        low, high = self.settings.message_ids
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO bg_counter VALUES (0, 0) ON CONFLICT (id) DO UPDATE SET seq = seq + 1"
            )
            (seq,) = conn.execute("SELECT seq FROM bg_counter WHERE id = 0").fetchone()
            message_id = low + seq % (high - low + 1)
            conn.execute(
                "UPDATE broadcasts SET state = 'superseded'"
                " WHERE message_id = ? AND state = 'accepted'",
                (message_id,),
            )
            conn.execute(
                "INSERT INTO broadcasts VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                (*key, message_id, seq, area, time.time()),
            )
        return message_id, int(seq), False

    async def _broadcast(
        self, key: tuple[str, str, int], area: str, text: str, priority: str | None
    ) -> None:
        message_id, seq, done = self._allocate(key, area)
        extra = {"msg_id": key[1], "area": area, "message_id": message_id}
        if done:
            self._log.info("repeated broadcast message acknowledged again", extra=extra)
            return
        scope = self.settings.areas[area]
        body = build_request(self.settings, scope, message_id, seq, text, priority)
        status, content = await self._post(body, extra)
        if status == 409:
            # The message_id is still active at the CBC (the range wrapped, or an earlier
            # attempt of this very message got through unseen): withdraw it and post again.
            await self._delete(message_id, extra)
            status, content = await self._post(body, extra)
        if 200 <= status < 300:  # the ECBE answers 201
            with self.db.transaction() as conn:
                conn.execute(
                    f"UPDATE broadcasts SET state = 'accepted' WHERE {_KEY}",
                    key,
                )
            self.counters.inc("down", "submitted")
            self._log.info("broadcast accepted by the CBC", extra=extra)
            return
        if status == 429 or status >= 500:
            self.counters.inc("down", "retried")
            self._log.warning(
                "the CBC is not available; the server will retry", extra={**extra, "status": status}
            )
            raise _unavailable(f"the Cell Broadcast Centre answered {status}")
        self.counters.inc("down", "failed")
        self._log.error(
            "the CBC refused the broadcast",
            extra={**extra, "status": status, "body": content[:500].decode("utf-8", "replace")},
        )
        raise HttpError(
            500, f"the Cell Broadcast Centre refused the message ({status})", cause="SYSTEM_FAILURE"
        )

    async def _post(self, body: dict[str, Any], extra: dict[str, Any]) -> tuple[int, bytes]:
        try:
            response = await self._cbc.post(ECBE_MESSAGE, json=body)
        except httpx.HTTPError as exc:
            self.counters.inc("down", "retried")
            self._log.warning(
                "the CBC is unreachable; the server will retry",
                extra={**extra, "reason": f"{type(exc).__name__}: {exc}"},
            )
            raise _unavailable("the Cell Broadcast Centre is not reachable") from None
        return response.status_code, response.content

    async def _delete(self, message_id: int, extra: dict[str, Any]) -> bool:
        try:
            response = await self._cbc.delete(f"{ECBE_MESSAGE}/{message_id}")
        except httpx.HTTPError as exc:
            self._log.warning("CBC DELETE failed", extra={**extra, "reason": str(exc)})
            raise _unavailable("the Cell Broadcast Centre is not reachable") from None
        return response.status_code in (200, 204)

    async def withdraw(self, ori: Address, msg_id: str, seg: int = 0) -> bool:
        """Stop broadcasting a message (ECBE DELETE by its message_id).

        False when the message is unknown, not accepted yet, already withdrawn or superseded
        (its message_id now belongs to a newer message), or the CBC no longer has it.

        Raises:
            HttpError: 503, the CBC is not reachable.
        """
        key = (f"{ori.addrType}\x1f{ori.addr}", msg_id, seg)
        rows = self.db.query(
            f"SELECT message_id FROM broadcasts WHERE {_KEY} AND state = 'accepted'", key
        )
        if not rows:
            return False
        deleted = await self._delete(int(rows[0][0]), {"msg_id": msg_id})
        with self.db.transaction() as conn:
            conn.execute(f"UPDATE broadcasts SET state = 'withdrawn' WHERE {_KEY}", key)
        return deleted
