# SPDX-License-Identifier: Apache-2.0
"""The composition root: builds adapters from Settings, then services, then the app (STYLE 3.7).

This is the only module that knows the concrete classes. `ServerApp` owns the lifecycle of
every background part: `start()` opens the store and resumes stored work, `stop()` drains.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import time
import uuid
from collections.abc import Sequence

from msgin5g.api import (
    ext_groups,
    ext_gwueregistration,
    msgs_asregistration,
    msgs_msgdelivery,
    msgs_topiclistevent,
    operations,
)
from msgin5g.api.app import AsgiApp
from msgin5g.api.coap_msgin5g1 import Msgin5g1Resources
from msgin5g.api.translate import WireRenderer
from msgin5g.coap import CoapEndpoint, EndpointConfig, TransmissionParameters
from msgin5g.core.message import AS, BROADCAST, GROUP, TOPIC, UE, Address, Delivery, Message
from msgin5g.core.retry import ExpiryPolicy, RetryPolicy
from msgin5g.core.routing import Path, Route, Rule
from msgin5g.core.segmentation import segment_message
from msgin5g.observability import Metrics
from msgin5g.outbound.http_client import HttpClientPool
from msgin5g.outbound.http_delivery import HttpDeliveryTransport
from msgin5g.outbound.topic_notify import HttpTopicListNotifier
from msgin5g.outbound.ue_coap import UeInbox
from msgin5g.ports import Transport
from msgin5g.services.delivery import MessageService
from msgin5g.services.dispatch import Dispatcher
from msgin5g.services.groups import GroupFanOut, GroupRegistry
from msgin5g.services.registration import AsRegistry
from msgin5g.services.segmentation import SegmentService
from msgin5g.services.topics import TopicFanOut, TopicRegistry
from msgin5g.services.ue_registry import UeRegistry
from msgin5g.settings import Settings, describe, split_hostport
from msgin5g.storage.sqlite import SqliteStore
from msgin5g.wire.ext import GW_LEGACY_3GPP

log = logging.getLogger(__name__)


class ServerApp:
    """The MSGin5G Server: store, registry, dispatcher, services and the ASGI app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        d = settings.delivery
        self.metrics = Metrics()
        self.store = SqliteStore(
            settings.data_path() / "msgin5g.sqlite3",
            clock=time.time,
            synchronous=settings.store.synchronous,
        )
        self.http_pool = HttpClientPool(timeout=d.callback_timeout_s)
        self.registry = AsRegistry(self.store, on_registered=self._recipient_online)
        self._as_transports: dict[str, HttpDeliveryTransport] = {}
        self._gateway_transports: dict[str, HttpDeliveryTransport] = {}
        self.ue_registry = UeRegistry(
            self.store,
            on_registered=self._recipient_online,
            on_deregistered=self._ue_gone,
            default_max_segment_size=settings.ue.max_segment_size,
        )
        self.ue_inbox = UeInbox(on_observing=self._recipient_online)
        self.groups = GroupRegistry(self.store, max_members=settings.groups.max_members)
        self.topic_notifier = HttpTopicListNotifier(
            self.http_pool,
            attempts=settings.topics.notify_attempts,
            on_gone=self._topiclist_gone,
        )
        self.topics = TopicRegistry(
            self.store,
            self.topic_notifier,
            clock=time.time,
            new_id=lambda: uuid.uuid4().hex,
            default_ttl=settings.topics.default_ttl_s,
            max_ttl=settings.topics.max_ttl_s,
            sweep_interval=d.sweep_interval_s,
        )
        self.service = MessageService(
            self.store,
            self._submit,
            WireRenderer(),
            self._rules(),
            self.metrics,
            clock=time.time,
            expiry=ExpiryPolicy(
                default_ttl=d.default_ttl_s,
                max_ttl=d.max_ttl_s,
                forward_window=d.forward_window_s,
                report_ttl=d.report_ttl_s,
            ),
            idempotency_window=d.idempotency_window_s,
            segmenter=self._segment,
        )
        self.dispatcher = Dispatcher(
            self.store,
            self._transport_for,
            self.service.failure_report,
            self.metrics,
            clock=time.time,
            retry=RetryPolicy(initial=d.retry_initial_s, maximum=d.retry_max_s),
            window_for=lambda a: d.as_window if a.kind == AS else 1,
            sweep_interval=d.sweep_interval_s,
        )
        self.fan_out = GroupFanOut(
            self.groups, self.store, self._submit, chunk=settings.groups.fan_out_chunk
        )
        self.topic_fan_out = TopicFanOut(
            self.topics, self.store, self._submit, chunk=settings.groups.fan_out_chunk
        )
        self.segments = SegmentService(
            self.store,
            self.service,
            self._submit,
            clock=time.time,
            timeout=settings.ue.reassembly_timeout_s,
            sweep_interval=d.sweep_interval_s,
        )
        self.coap = CoapEndpoint(
            Msgin5g1Resources(
                self.ue_registry,
                self.ue_inbox,
                self.service,
                self.segments,
                self.store,
                self.metrics,
                topics=self.topics,
            ),
            params=TransmissionParameters(
                ack_timeout=settings.ue.ack_timeout_s, max_retransmit=settings.ue.max_retransmit
            ),
            config=EndpointConfig(max_body_size=settings.ue.max_body_bytes),
        )
        self._ready = False
        self.app = AsgiApp(
            [
                *msgs_asregistration.operations(self.registry, settings.server.api_root or None),
                *msgs_msgdelivery.operations(self.service),
                *ext_gwueregistration.operations(
                    self.ue_registry, settings.server.api_root or None
                ),
                *ext_groups.operations(self.groups, settings.server.api_root or None),
                *msgs_topiclistevent.operations(self.topics, settings.server.api_root or None),
                *operations.operations(self.metrics, lambda: self._ready),
            ],
            self.metrics,
            max_body=settings.server.max_body_bytes,
        )
        self._gauges()

    # wiring ------------------------------------------------------------------------------------

    def _submit(self, deliveries: Sequence[Delivery]) -> None:
        self.dispatcher.submit(deliveries)

    def _recipient_online(self, recipient: Address) -> None:
        self.dispatcher.wake(recipient)

    async def _topiclist_gone(self, subscription_id: str) -> None:
        await self.topics.drop_watch(subscription_id)

    async def _ue_gone(self, recipient: Address) -> None:
        await self.ue_inbox.end(recipient.value)

    def _segment(self, message: Message) -> Sequence[Message]:
        if message.recipient.kind != UE:
            return (message,)
        registration = self.ue_registry.get(message.recipient.value)
        if registration is not None and registration.via_gateway:
            return (message,)  # the gateway fits the message to its bearer (SMS parts, ...)
        size = self.ue_registry.max_segment_size(message.recipient.value)
        return segment_message(message, size, lambda: uuid.uuid4().hex)

    def _rules(self) -> dict[str, Sequence[Rule]]:
        def registered_as(address: Address) -> Route | None:
            if self.registry.get(address.value) is None:
                return None
            return Route(Path.APPLICATION_SERVER, self.dispatcher.reachable(address))

        def registered_ue(address: Address) -> Route | None:
            registration = self.ue_registry.get(address.value)
            if registration is None:
                return None
            path = Path.GATEWAY if registration.via_gateway else Path.MSGIN5G_UE
            return Route(path, self.dispatcher.reachable(address))

        # A UE Service ID that never registered is an unknown recipient, as an unregistered
        # AS is (DELY_FAILED UNKNOWN_RECIPIENT); a registered UE that is not observing gets
        # DELY_STORED with stoAndFwInd (ADR draft "MSGin5G UE target resolution").
        def known_group(address: Address) -> Route | None:
            if self.groups.members(address.value) is None:
                return None
            return Route(Path.GROUP_FAN_OUT, reachable=True)

        # A topic exists while it has a current subscriber; without one the message fails with
        # NO_SUBSCRIBERS rather than waiting for a subscriber that may never come (ADR 0011).
        def subscribed_topic(address: Address) -> Route | None:
            if not self.topics.subscribers(address.value):
                return None
            return Route(Path.TOPIC_FAN_OUT, reachable=True)

        # Broadcast areas are the Broadcast Message Gateway's to know (it answers 404 for an
        # area it does not serve, which fails the message with a report).
        def broadcast_area(address: Address) -> Route | None:
            if not self.settings.broadcast.gateway:
                return None
            return Route(Path.BROADCAST, self.dispatcher.reachable(address))

        return {
            AS: (registered_as,),
            UE: (registered_ue,),
            GROUP: (known_group,),
            TOPIC: (subscribed_topic,),
            BROADCAST: (broadcast_area,),
        }

    def _transport_for(self, recipient: Address) -> Transport | None:
        if recipient.kind == BROADCAST:
            root = self.settings.broadcast.gateway.rstrip("/")
            return self._gateway_transport("BMG", root) if root else None
        if recipient.kind == GROUP:
            return self.fan_out if self.groups.members(recipient.value) is not None else None
        if recipient.kind == TOPIC:
            # Always the fan-out: it answers NO_SUBSCRIBERS when the last one left meanwhile.
            return self.topic_fan_out
        if recipient.kind == UE:
            ue = self.ue_registry.get(recipient.value)
            if ue is None:
                return None
            if ue.gateway_api_root is not None:
                return self._gateway_transport(ue.gateway_type or "", ue.gateway_api_root)
            return self.ue_inbox.transport_for(recipient.value)
        if recipient.kind != AS:
            return None
        registration = self.registry.get(recipient.value)
        if registration is None or not registration.target_uri:
            return None
        transport = self._as_transports.get(recipient.value)
        if transport is None:
            service_id = recipient.value

            def target() -> str | None:
                current = self.registry.get(service_id)
                return current.target_uri if current else None

            transport = HttpDeliveryTransport(
                self.http_pool, target, timeout=self.settings.delivery.callback_timeout_s
            )
            self._as_transports[recipient.value] = transport
        return transport

    def _gateway_transport(self, gateway_type: str, api_root: str) -> Transport:
        """msgg-l3gdelivery (L3G) or msgg-n3gdelivery (N3G) at the gateway's apiRoot."""
        key = f"{gateway_type}|{api_root}"
        transport = self._gateway_transports.get(key)
        if transport is None:
            api = {
                GW_LEGACY_3GPP: "msgg-l3gdelivery",
                "BMG": "msgg-bgdelivery",
            }.get(gateway_type, "msgg-n3gdelivery")
            base = f"{api_root}/{api}/v1"
            transport = HttpDeliveryTransport(
                self.http_pool, lambda: base, timeout=self.settings.delivery.callback_timeout_s
            )
            self._gateway_transports[key] = transport
        return transport

    def _gauges(self) -> None:
        async def depth() -> float:
            return float((await self.store.stats(time.time()))[0])

        async def oldest() -> float:
            return (await self.store.stats(time.time()))[1]

        async def lanes() -> float:
            return float(self.dispatcher.lanes)

        async def registrations() -> float:
            return float(len(self.registry))

        async def ue_registrations() -> float:
            return float(len(self.ue_registry))

        async def ue_observing() -> float:
            return float(len(self.ue_inbox))

        async def commits() -> float:
            return float(self.store.commits)

        async def committed() -> float:
            return float(self.store.committed_ops)

        self.metrics.gauge("msgin5g_store_commits_total", commits)
        self.metrics.gauge("msgin5g_store_writes_total", committed)
        self.metrics.gauge("msgin5g_store_depth", depth)
        self.metrics.gauge("msgin5g_store_oldest_age_seconds", oldest)
        self.metrics.gauge("msgin5g_lanes", lanes)
        self.metrics.gauge("msgin5g_as_registrations", registrations)
        self.metrics.gauge("msgin5g_ue_registrations", ue_registrations)
        self.metrics.gauge("msgin5g_ue_observing", ue_observing)

        async def topics() -> float:
            return float(len(self.topics))

        self.metrics.gauge("msgin5g_topics", topics)

    # lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.open()
        await self.registry.load()
        await self.ue_registry.load()
        await self.groups.load()
        await self.topics.load()
        await self.topics.start()
        await self.dispatcher.start()
        await self.segments.start()
        host, port = split_hostport(self.settings.server.coap, "server.coap")
        await self.coap.start(host, port)
        self._ready = True
        log.info("MSGin5G Server started", extra={"settings": describe(self.settings)})

    async def stop(self) -> None:
        self._ready = False
        await self.coap.stop()
        await self.segments.stop()
        await self.dispatcher.stop()
        for transport in (*self._as_transports.values(), *self._gateway_transports.values()):
            await transport.aclose()
        await self.http_pool.aclose()
        await self.store.close()
        log.info("MSGin5G Server stopped")


def _check_port_free(host: str, port: int) -> None:
    """Fail fast when another process listens on the HTTP port: granian binds with
    SO_REUSEPORT, which would otherwise let two servers share one port silently."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None


async def serve(settings: Settings) -> None:
    """Run the server until SIGINT/SIGTERM: HTTP (h2c + HTTP/1.1, or TLS with ALPN h2)."""
    from granian.constants import HTTPModes, Interfaces
    from granian.server.embed import Server as Granian

    host, port = split_hostport(settings.server.http, "server.http")
    _check_port_free(host, port)
    server = ServerApp(settings)
    await server.start()
    # The hot paths allocate many short-lived objects; collect the young generation less
    # often and keep start-up objects out of every collection (ADR 0002).
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    tls = {}
    if settings.server.tls_cert:
        from pathlib import Path as FsPath

        tls = {
            "ssl_cert": FsPath(settings.server.tls_cert),
            "ssl_key": FsPath(settings.server.tls_key),
        }
    http = Granian(
        server.app,
        address=host,
        port=port,
        interface=Interfaces.ASGINL,
        http=HTTPModes.auto,
        websockets=False,
        backlog=2048,
        log_enabled=False,
        **tls,  # type: ignore[arg-type]
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, http.stop)
    try:
        log.info(
            "listening",
            extra={
                "http": settings.server.http,
                "tls": bool(tls),
                "data_dir": settings.server.data_dir,
            },
        )
        await http.serve()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await server.stop()
