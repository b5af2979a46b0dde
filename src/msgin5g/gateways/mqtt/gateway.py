# SPDX-License-Identifier: Apache-2.0
"""The Non-3GPP Message Gateway over MQTT: MSGG_N3GDelivery v1 (TS 29.538 9.2) on one side,
an MQTT 3.1.1 client of the broker the devices use on the other (TS 23.554 8.6.1, 8.7.2).

Topics (``msgin5g`` prefix) and bodies, the JSON objects of our CoAP binding (DESIGN 2.3):

* ``msgin5g/{ueSvcId}/down`` (gateway -> device, QoS 1): ``{"msgType":"MSG", "oriAddr",
  "destAddr", "msgId", "appId"?, "payload", "delivStReqInd"?, "segInd"?, "segParams"?}`` for
  ``deliver-message``; ``{"msgType":"IMDN", "oriAddr", "destAddr", "msgId", "delivSt",
  "failureCause"?}`` for ``deliver-report`` (a report on a message the device sent).
* ``msgin5g/{ueSvcId}/up`` (device -> gateway, QoS 1): a ``MSG`` (``destAddr``, ``msgId``,
  ``payload``, ``appId``?, ``delivStReqInd``?, ``stoAndFwInd``? (default false, as over
  CoAP), ``segInd``?, ``segParams``?) becomes ``deliver-ue-message``; an ``IMDN`` (``destAddr`` =
  the original sender, ``msgId``, ``delivSt``, ``failureCause``?) becomes ``deliver-report``.
  ``oriAddr`` is always ``{UE, ueSvcId}`` from the topic; a body naming another UE is
  dropped (a device cannot speak for another). Malformed bodies are logged and dropped.
* ``msgin5g/{ueSvcId}/status`` (device, retained, QoS 1): how a device announces itself.
  ``online`` registers the UE with the server (DESIGN 2.5); a device's Last Will should
  publish ``offline`` (retained), which changes nothing: the device stays registered and its
  messages wait at the broker. An empty retained message or ``gone`` deregisters it. The first
  ``up`` message of an unknown device registers it too. Static devices (``--ue``) are
  registered at start and never deregistered.

Decisions:

* Who holds messages for an offline device: the broker. ``deliver-message`` is answered 204 only
  after the broker's PUBACK for a QoS 1 PUBLISH; a device that subscribed once with a
  persistent session (``clean_session`` false, MQTT 5 ``clean_start`` false with a session
  expiry) and QoS 1 gets it, byte for byte as published, when it connects again. The broker
  runs with persistence so that queue survives a broker restart. The server's store holds
  what the gateway could not hand to the broker: a broker that is down or does not PUBACK in
  ``publish_timeout`` makes the gateway answer 503 (Retry-After), and the server retries.
  The gateway itself keeps no downlink queue.
* Uplink is acknowledged late: the gateway's session is persistent too (fixed client id,
  ``clean_session`` false), and it sends the PUBACK for a device's PUBLISH only after the
  message is committed to its outbox (paho's manual acknowledgement), so neither a gateway
  crash nor a broker restart loses what a device sent; the outbox is then retried until the
  server acknowledges (:mod:`msgin5g.gateways.common`).
* Connection loss to the broker: reconnect with backoff (the broker replays unacknowledged
  uplink PUBLISHes of the persistent session).

Metrics: ``msgin5g_gateway_messages_total{gateway="mqtt"}`` by direction and outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiomqtt
import msgspec

from msgin5g.api.app import HttpApp
from msgin5g.api.http import HttpError
from msgin5g.api.msgg_delivery import N3G_API
from msgin5g.core.errors import NotFound
from msgin5g.gateways.common import (
    GatewayCounters,
    GatewayDb,
    GatewaySettings,
    Registrar,
    ServerClient,
    build_app,
)
from msgin5g.observability import Metrics
from msgin5g.outbound.http_client import HttpClientPool
from msgin5g.wire.common import (
    ADDR_UE,
    Address,
    DeliveryStatusReport,
    MessageSegmentParameters,
    NonEmpty,
    StoreAndForwardParameters,
)
from msgin5g.wire.msgg import GatewayMessageDelivery
from msgin5g.wire.msgs import UEMessageDelivery

__all__ = ["MqttGateway", "MqttGatewaySettings"]

log = logging.getLogger(__name__)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS devices (
    ue TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    seen REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class MqttGatewaySettings:
    """Settings of the MQTT gateway. Times in seconds."""

    gateway: GatewaySettings
    broker_host: str
    broker_port: int = 1883
    ues: tuple[str, ...] = ()
    """Static devices (UE Service IDs) registered at start."""
    client_id: str = "msgin5g-n3g"
    username: str | None = None
    password: str | None = None
    prefix: str = "msgin5g"
    keepalive: int = 30
    publish_timeout: float = 5.0
    reconnect_min: float = 0.2
    reconnect_max: float = 5.0


# -- the device JSON bodies (DESIGN 2.3 field names) ---------------------------------------------


class DownMsg(GatewayMessageDelivery, tag_field="msgType", tag="MSG"):
    """MSG toward a device: the N3gMessageDelivery fields plus `msgType`."""


class DownImdn(DeliveryStatusReport, tag_field="msgType", tag="IMDN"):
    """IMDN toward a device: the DeliveryStatusReport fields plus `msgType`."""


class _Typed(msgspec.Struct):
    msgType: str


class _UpMsg(msgspec.Struct, omit_defaults=True):
    msgType: str
    destAddr: Address
    msgId: NonEmpty
    oriAddr: Address | None = None
    stoAndFwInd: bool = False
    appId: str | None = None
    delivStReqInd: bool | None = None
    payload: str | None = None
    segInd: bool | None = None
    segParams: MessageSegmentParameters | None = None
    stoAndFwParams: StoreAndForwardParameters | None = None


class _UpImdn(msgspec.Struct):
    msgType: str
    destAddr: Address
    msgId: NonEmpty
    delivSt: NonEmpty
    oriAddr: Address | None = None
    failureCause: str | None = None


_encode = msgspec.json.Encoder().encode
_typed = msgspec.json.Decoder(_Typed).decode
_up_msg = msgspec.json.Decoder(_UpMsg).decode
_up_imdn = msgspec.json.Decoder(_UpImdn).decode


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()


class MqttGateway:
    """The N3G gateway process: HTTP API, MQTT client, uplink outbox and registration."""

    def __init__(
        self,
        settings: MqttGatewaySettings,
        *,
        metrics: Metrics | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self._log = logger or log
        gw = settings.gateway
        self.counters = GatewayCounters(self.metrics, "mqtt")
        self.db = GatewayDb(Path(gw.data_dir) / "mqtt-gateway.sqlite3", _SCHEMA)
        self._http = HttpClientPool(timeout=gw.request_timeout)
        self.server = ServerClient(gw, self.db, self._http, self.counters, logger=self._log)
        self.registrar = Registrar(gw, logger=self._log)
        self.devices: dict[str, str] = {}
        """UE Service ID -> "static" or "device" (announced itself)."""
        self._client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self.app: HttpApp = build_app(
            N3G_API,
            self._on_message,
            self._on_report,
            self.metrics,
            # Ready once subscribed to the devices' topics: an uplink published after /readyz
            # says 200 is never missed (and not ready while the broker is unreachable).
            lambda: self._started and self.connected.is_set(),
            max_body=gw.max_body_bytes,
        )

        async def connected() -> float:
            return 1.0 if self.connected.is_set() else 0.0

        async def devices() -> float:
            return float(len(self.devices))

        self.metrics.gauge("msgin5g_gateway_mqtt_connected", connected)
        self.metrics.gauge("msgin5g_gateway_mqtt_devices", devices)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self.db.open()
        now = time.time()
        with self.db.transaction() as conn:
            for ue in self.settings.ues:
                conn.execute(
                    "INSERT INTO devices VALUES (?, 'static', ?) ON CONFLICT (ue) DO UPDATE"
                    " SET source = 'static'",
                    (ue, now),
                )
        self.devices = dict(self.db.query("SELECT ue, source FROM devices"))
        await self.server.start()
        await self.registrar.start()
        self.registrar.add(self.devices)
        self._task = asyncio.create_task(self._run(), name="mqtt-client")
        self._started = True
        self._log.info(
            "MQTT gateway started",
            extra={
                "broker": f"{self.settings.broker_host}:{self.settings.broker_port}",
                "devices": len(self.devices),
            },
        )

    async def stop(self) -> None:
        self._started = False
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.registrar.stop()
        await self.server.stop()
        await self._http.aclose()
        self.db.close()
        self._log.info("MQTT gateway stopped")

    # -- the broker connection -------------------------------------------------------------------

    async def _run(self) -> None:
        s = self.settings
        delay = s.reconnect_min
        while True:
            client = aiomqtt.Client(
                s.broker_host,
                s.broker_port,
                identifier=s.client_id,
                clean_session=False,
                keepalive=s.keepalive,
                username=s.username,
                password=s.password,
                protocol=aiomqtt.ProtocolVersion.V311,
                timeout=s.publish_timeout,
            )
            # PUBACK only once a device's message is in the outbox (see the module docstring).
            # aiomqtt does not expose it, so this reaches the paho client underneath.
            paho = client._client
            paho.manual_ack_set(True)
            try:
                async with client:
                    await client.subscribe(f"{s.prefix}/+/up", qos=1)
                    await client.subscribe(f"{s.prefix}/+/status", qos=1)
                    self._client = client
                    self.connected.set()
                    delay = s.reconnect_min
                    self._log.info(
                        "connected to the MQTT broker",
                        extra={"broker": f"{s.broker_host}:{s.broker_port}"},
                    )
                    async for message in client.messages:
                        if self._on_publish(message):
                            paho.ack(message.mid, message.qos)
            except aiomqtt.MqttError as exc:
                self._log.warning(
                    "MQTT broker connection lost or refused; reconnecting",
                    extra={
                        "broker": f"{s.broker_host}:{s.broker_port}",
                        "reason": str(exc),
                        "retry_in_s": delay,
                    },
                )
            finally:
                self._client = None
                self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, s.reconnect_max)

    def _on_publish(self, message: aiomqtt.Message) -> bool:
        """Handle one PUBLISH from the broker; True when it may be acknowledged."""
        parts = message.topic.value.split("/")
        if len(parts) != 3 or parts[0] != self.settings.prefix or not parts[1]:
            return True
        ue, kind = parts[1], parts[2]
        body = _payload_bytes(message.payload)
        try:
            if kind == "status":
                self._on_status(ue, body)
            elif kind == "up":
                self._on_up(ue, body)
        except msgspec.DecodeError as exc:
            self.counters.inc("up", "failed")
            self._log.warning(
                "malformed device message dropped", extra={"ue": ue, "reason": str(exc)}
            )
        except Exception:
            self._log.exception("device message not taken; the broker will resend it")
            return False
        return True

    def _on_status(self, ue: str, body: bytes) -> None:
        status = body.decode("utf-8", errors="replace").strip().lower()
        if status == "online":
            with self.db.transaction():
                self._device_online(ue)
        elif status in ("", "gone"):
            if self.devices.get(ue) == "device":
                with self.db.transaction() as conn:
                    conn.execute("DELETE FROM devices WHERE ue = ?", (ue,))
                self.devices.pop(ue, None)
                self.registrar.remove(ue)
                self._log.info("device left", extra={"ue": ue})
        else:
            self._log.info("device status", extra={"ue": ue, "status": status})

    def _device_online(self, ue: str) -> None:
        """Inside a transaction: remember `ue` and register it with the server."""
        if ue in self.devices:
            return
        self.db.conn.execute(
            "INSERT OR IGNORE INTO devices VALUES (?, 'device', ?)", (ue, time.time())
        )

        def known() -> None:
            self.devices[ue] = "device"
            self.registrar.add([ue])
            self._log.info("device announced itself; registering it", extra={"ue": ue})

        self.db.after_commit(known)

    def _on_up(self, ue: str, body: bytes) -> None:
        msg_type = _typed(body).msgType
        me = Address(ADDR_UE, ue)
        if msg_type == "MSG":
            msg = _up_msg(body)
            if msg.oriAddr is not None and msg.oriAddr != me:
                self._spoofed(ue, msg.oriAddr, msg.msgId)
                return
            with self.db.transaction():
                self._device_online(ue)
                self.server.send_message(
                    UEMessageDelivery(
                        oriAddr=me,
                        destAddr=msg.destAddr,
                        msgId=msg.msgId,
                        stoAndFwInd=msg.stoAndFwInd,
                        appId=msg.appId,
                        delivStReqInd=msg.delivStReqInd,
                        payload=msg.payload,
                        segInd=msg.segInd,
                        segParams=msg.segParams,
                        stoAndFwParams=msg.stoAndFwParams,
                    )
                )
            self.counters.inc("up", "submitted")
            self._log.info("device message received", extra={"msg_id": msg.msgId, "ue": ue})
        elif msg_type == "IMDN":
            imdn = _up_imdn(body)
            if imdn.oriAddr is not None and imdn.oriAddr != me:
                self._spoofed(ue, imdn.oriAddr, imdn.msgId)
                return
            with self.db.transaction():
                self._device_online(ue)
                self.server.send_report(
                    DeliveryStatusReport(
                        oriAddr=me,
                        destAddr=imdn.destAddr,
                        msgId=imdn.msgId,
                        delivSt=imdn.delivSt,
                        failureCause=imdn.failureCause,
                    )
                )
            self.counters.inc("up", "submitted")
            self._log.info("device report received", extra={"msg_id": imdn.msgId, "ue": ue})
        else:
            self.counters.inc("up", "failed")
            self._log.warning(
                "device message of unknown msgType dropped", extra={"ue": ue, "type": msg_type}
            )

    def _spoofed(self, ue: str, claimed: Address, msg_id: str) -> None:
        self.counters.inc("up", "failed")
        self._log.warning(
            "device message naming another originator dropped",
            extra={"ue": ue, "claimed": claimed.addr, "msg_id": msg_id},
        )

    # -- downlink: server -> device --------------------------------------------------------------

    def _device_for(self, address: Address) -> str:
        if address.addrType != ADDR_UE or address.addr not in self.devices:
            raise NotFound(f"UE {address.addr!r} is not served by this gateway")
        return address.addr

    async def _on_message(self, body: GatewayMessageDelivery) -> None:
        ue = self._device_for(body.destAddr)
        frame = DownMsg(**msgspec.structs.asdict(body))
        await self._publish(ue, _encode(frame), body.msgId)

    async def _on_report(self, report: DeliveryStatusReport) -> None:
        ue = self._device_for(report.destAddr)
        frame = DownImdn(**msgspec.structs.asdict(report))
        await self._publish(ue, _encode(frame), report.msgId)

    async def _publish(self, ue: str, payload: bytes, msg_id: str) -> None:
        """PUBLISH QoS 1 and wait for the broker's PUBACK; 503 when the broker is away."""
        s = self.settings
        topic = f"{s.prefix}/{ue}/down"
        try:
            async with asyncio.timeout(s.publish_timeout):
                await self.connected.wait()
                client = self._client
                if client is None:
                    raise aiomqtt.MqttError("not connected")
                await client.publish(topic, payload, qos=1, timeout=s.publish_timeout)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            self.counters.inc("down", "retried")
            self._log.warning(
                "MQTT broker did not take the message; the server will retry",
                extra={"msg_id": msg_id, "ue": ue, "reason": str(exc) or "timeout"},
            )
            raise HttpError(
                503,
                "the MQTT broker is not reachable",
                cause="SERVICE_UNAVAILABLE",
                headers=[(b"retry-after", b"1")],
            ) from None
        self.counters.inc("down", "submitted")
        self._log.debug("published to the device", extra={"msg_id": msg_id, "ue": ue})
