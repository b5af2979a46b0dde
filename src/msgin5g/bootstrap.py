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
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from msgin5g.api import (
    ext_groups,
    ext_gwueregistration,
    ext_peering,
    msgs_asregistration,
    msgs_msgdelivery,
    msgs_topiclistevent,
    operations,
)
from msgin5g.api.app import HttpApp
from msgin5g.api.coap_msgin5g1 import Msgin5g1Resources, UeAccess
from msgin5g.api.serving import check_port_free, serve_until_stopped
from msgin5g.api.translate import WireRenderer
from msgin5g.coap import CoapEndpoint, EndpointConfig, TransmissionParameters
from msgin5g.coap.dtls_keys import PskFileError, UePsk, load_psk_file
from msgin5g.coap.psk_watch import PskWatch
from msgin5g.core.message import (
    AS,
    BROADCAST,
    GROUP,
    PEER,
    TOPIC,
    UE,
    Address,
    Delivery,
    Message,
)
from msgin5g.core.peering import PeerDirectory
from msgin5g.core.retry import ExpiryPolicy, RetryPolicy
from msgin5g.core.routing import Path, Route, Rule
from msgin5g.core.segmentation import segment_message
from msgin5g.gc_pauses import GcPauses
from msgin5g.observability import Metrics
from msgin5g.outbound.http_client import HttpClientPool, client_tls_context
from msgin5g.outbound.http_delivery import HttpDeliveryTransport
from msgin5g.outbound.peer_delivery import PeerDeliveryTransport
from msgin5g.outbound.peer_topiclist import PeerTopicLists
from msgin5g.outbound.topic_notify import HttpTopicListNotifier
from msgin5g.outbound.ue_coap import UeInbox
from msgin5g.ports import Transport
from msgin5g.security.setup import http_security, origin_of, outbound_token_source
from msgin5g.services.delivery import MessageService
from msgin5g.services.dispatch import Dispatcher
from msgin5g.services.groups import GroupFanOut, GroupRegistry
from msgin5g.services.peering import RemoteTopics, TopicListFollower
from msgin5g.services.quotas import StoredMessageQuota
from msgin5g.services.registration import AsRegistry
from msgin5g.services.segmentation import SegmentService
from msgin5g.services.topics import TopicFanOut, TopicRegistry
from msgin5g.services.ue_registry import UeRegistry
from msgin5g.settings import Settings, SettingsError, describe, split_hostport
from msgin5g.storage.sqlite import SqliteStore

if TYPE_CHECKING:
    from msgin5g.cluster.node import ClusterNode
    from msgin5g.coap.dtls import DtlsServer
    from msgin5g.storage.postgres import PostgresStore
from msgin5g.wire.ext import GW_LEGACY_3GPP

log = logging.getLogger(__name__)


class ServerApp:
    """The MSGin5G Server: store, registry, dispatcher, services and the ASGI app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        d = settings.delivery
        self.metrics = Metrics()
        self.store = _store(settings)
        self.http_pool = HttpClientPool(
            timeout=d.callback_timeout_s, verify=_outbound_tls(settings)
        )
        self.token_source = outbound_token_source(settings.auth)
        if self.token_source is not None:  # our token toward peers and gateways (ADR 0015)
            for peer in settings.peering.peers:
                self.http_pool.authorize(origin_of(peer.api_root), self.token_source)
            if settings.broadcast.gateway:
                self.http_pool.authorize(origin_of(settings.broadcast.gateway), self.token_source)
        self.cluster: ClusterNode | None = None  # set below when [cluster] is on (ADR 0018)
        self.registry = AsRegistry(
            self.store, on_registered=self._recipient_online, on_changed=self._changed("as")
        )
        self._as_transports: dict[str, HttpDeliveryTransport] = {}
        self._gateway_transports: dict[str, HttpDeliveryTransport] = {}
        self.ue_registry = UeRegistry(
            self.store,
            on_registered=self._recipient_online,
            on_deregistered=self._ue_gone,
            default_max_segment_size=settings.ue.max_segment_size,
            on_changed=self._ue_changed,
        )
        self.ue_inbox = UeInbox(on_observing=self._recipient_online)
        self.groups = GroupRegistry(
            self.store,
            max_members=settings.groups.max_members,
            on_changed=self._changed("groups"),
        )
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
            on_changed=self._changed("topics"),
            max_topics_per_subscriber=settings.topics.max_subscriptions_per_subscriber,
            max_watches_per_origin=settings.topics.max_topiclist_subscriptions,
        )
        peering = settings.peering
        self.peers = PeerDirectory([(p.name, p.addresses) for p in peering.peers])
        self.remote_topics = RemoteTopics()
        self._peer_transports: dict[str, PeerDeliveryTransport] = {}
        followed = {p.name: p.api_root for p in peering.peers if p.topics}
        self.topic_follower = TopicListFollower(
            PeerTopicLists(self.http_pool, peering.name, followed),
            list(followed),
            self._notification_uri,
            clock=time.time,
            refresh=peering.refresh_s,
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
            homed_elsewhere=self.peers.homed_elsewhere if peering.peers else None,
            relayed_rules=self._rules(local_only=True),
            quota=StoredMessageQuota(
                self.store, settings.ue.max_stored_messages, clock=time.monotonic
            ),
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
            ownership=self._cluster(),
            hand_over_limit=self._hand_over_limit(),
        )
        if self.cluster is not None:
            self.cluster.attach(self.dispatcher)
        self.fan_out = GroupFanOut(
            self.groups, self.store, self._submit, chunk=settings.groups.fan_out_chunk
        )
        self.topic_fan_out = TopicFanOut(
            self.topics,
            self.store,
            self._submit,
            chunk=settings.groups.fan_out_chunk,
            peers=self._topic_peers if peering.peers else None,
        )
        self.segments = SegmentService(
            self.store,
            self.service,
            self._submit,
            clock=time.time,
            timeout=settings.ue.reassembly_timeout_s,
            sweep_interval=d.sweep_interval_s,
        )
        psks = _ue_psks(settings)
        self._access = UeAccess(
            {psk.identity: psk.ue_svc_id for psk in psks}, require_dtls=settings.ue.require_dtls
        )
        self._dtls: DtlsServer | None = None  # serving coaps (start)
        self.psk_watch = (
            PskWatch(
                settings.ue.psk_file,
                psks,
                self._take_psks,
                interval=settings.ue.psk_reload_interval_s,
                metrics=self.metrics,
            )
            if settings.ue.psk_file
            else None
        )
        resources = Msgin5g1Resources(
            self.ue_registry,
            self.ue_inbox,
            self.service,
            self.segments,
            self.store,
            self.metrics,
            topics=self.topics,
            access=self._access,
        )
        coap_params = TransmissionParameters(
            ack_timeout=settings.ue.ack_timeout_s, max_retransmit=settings.ue.max_retransmit
        )
        coap_config = EndpointConfig(
            max_body_size=settings.ue.max_body_bytes,
            max_in_progress=settings.ue.max_requests_in_progress,
            overload_max_age=settings.ue.overload_max_age_s,
        )
        self.coap = CoapEndpoint(resources, params=coap_params, config=coap_config)
        # CoAP over DTLS-PSK (RFC 7252 §9.1, ADR 0016): the same resources on a second port.
        self.coaps = (
            CoapEndpoint(resources, params=coap_params, config=coap_config)
            if settings.server.coaps
            else None
        )
        self._ready = False
        self.security = http_security(settings.auth, settings.limits, settings.data_path())
        self.app = HttpApp(
            [
                *(self.security.issuer.operations() if self.security.issuer else ()),
                *msgs_asregistration.operations(self.registry, settings.server.api_root or None),
                *msgs_msgdelivery.operations(self.service),
                *ext_gwueregistration.operations(
                    self.ue_registry, settings.server.api_root or None
                ),
                *ext_groups.operations(self.groups, settings.server.api_root or None),
                *msgs_topiclistevent.operations(self.topics, settings.server.api_root or None),
                *ext_peering.operations(
                    self.remote_topics,
                    {p.name: p.api_root for p in peering.peers},
                    self.topic_follower,
                ),
                *operations.operations(self.metrics, lambda: self._ready),
            ],
            self.metrics,
            max_body=settings.server.max_body_bytes,
            validator=self.security.validator,
            limiter=self.security.limiter,
            max_in_flight=self.security.max_in_flight,
        )
        self._gauges()

    # wiring ------------------------------------------------------------------------------------

    def _submit(self, deliveries: Sequence[Delivery]) -> None:
        self.dispatcher.submit(deliveries)

    def _live_instances(self, count: int) -> None:
        """Each instance enforces its share of the per-client rate limit (ADR 0018)."""
        limiter = self.security.limiter
        if limiter is not None:
            limiter.share(count)
            log.info(
                "rate limit shared by %d instances: %.6g requests/s per client here",
                count,
                limiter.rate / max(1, count),
            )

    def _hand_over_limit(self) -> float:
        """The longest one hand-over can take: an HTTP callback's timeout, or a CoAP
        notification's ACK (MAX_TRANSMIT_WAIT) and then its blocks being fetched (as long
        again), plus one lease TTL for the clocks of two instances to differ (ADR 0018)."""
        ue, d = self.settings.ue, self.settings.delivery
        coap = TransmissionParameters(
            ack_timeout=ue.ack_timeout_s, max_retransmit=ue.max_retransmit
        )
        limit = max(d.callback_timeout_s, 2 * coap.max_transmit_wait)
        return limit + self.settings.cluster.lease_ttl_s

    def _cluster(self) -> ClusterNode | None:
        """The cluster node when [cluster] nats_url is set (ADR 0018), else None."""
        c = self.settings.cluster
        if not c.nats_url:
            return None
        from msgin5g.cluster.node import ClusterNode, default_instance_id  # `cluster` extra

        def is_coap_ue(address: Address) -> bool:
            registration = self.ue_registry.get(address.value) if address.kind == UE else None
            return registration is not None and not registration.via_gateway

        async def reload_registry(name: str) -> list[Address] | None:
            """Reload registry `name`; the recipients that may now take stored work, or None
            when that is not known (then every recipient is looked at)."""
            if name == "as":
                return [Address(AS, a) for a in await self.registry.load()]
            if name == "groups":
                return [Address(GROUP, g) for g in await self.groups.load()]
            if name == "topics":
                return [Address(TOPIC, t) for t in await self.topics.load()]
            await self.ue_registry.load()  # after a reconnect: which UEs changed is not known
            return None

        async def refresh_registry(name: str, keys: list[str]) -> None:
            assert name == "ue"  # cluster.node.KEYED
            await self.ue_registry.refresh(keys)

        self.cluster = ClusterNode(
            store_url=self.settings.store.url,
            schema=self.settings.store.schema,
            nats_url=c.nats_url,
            instance_id=c.instance_id or default_instance_id(),
            shards=c.shards,
            lease_ttl=c.lease_ttl_s,
            heartbeat=c.heartbeat_s,
            rescan=c.rescan_s,
            is_coap_ue=is_coap_ue,
            observing_here=self.ue_inbox.observing,
            work_after=self.store.recipients_with_work_after,
            reload_registry=reload_registry,
            refresh_registry=refresh_registry,
            on_live_instances=self._live_instances,
            end_observation=self.ue_inbox.end,
        )
        node = self.cluster

        readings: dict[str, Callable[[], float]] = {
            "msgin5g_cluster_shards_held": lambda: len(node.leases.held),
            "msgin5g_cluster_live_instances": lambda: node.leases.live_instances,
            "msgin5g_cluster_doorbells_sent_total": lambda: node.doorbells_sent,
            "msgin5g_cluster_doorbells_received_total": lambda: node.doorbells_received,
            "msgin5g_cluster_registry_reloads_total": lambda: node.registry_reloads["whole"],
            "msgin5g_cluster_registry_refreshes_total": lambda: node.registry_reloads["keys"],
            "msgin5g_cluster_rescans_full_total": lambda: node.rescans["full"],
            "msgin5g_cluster_rescans_recent_total": lambda: node.rescans["recent"],
        }
        for name, read in readings.items():
            self.metrics.gauge(name, _reading(read))
        return node

    def _changed(self, registry: str) -> Callable[[], None]:
        def changed() -> None:
            if self.cluster is not None:
                self.cluster.changed(registry)

        return changed

    def _ue_changed(self, ue_service_ids: Sequence[str]) -> None:
        if self.cluster is not None:
            self.cluster.changed("ue", ue_service_ids)

    def _recipient_online(self, recipient: Address) -> None:
        if (
            self.cluster is not None
            and recipient.kind == UE
            and self.ue_inbox.observing(recipient.value)
        ):
            self.cluster.observing(recipient.value)
        self.dispatcher.wake(recipient)

    async def _topiclist_gone(self, subscription_id: str) -> None:
        await self.topics.drop_watch(subscription_id)

    async def _ue_gone(self, recipient: Address) -> None:
        await self.ue_inbox.end(recipient.value)

    def _segment(self, message: Message) -> Sequence[Message]:
        if message.recipient.kind != UE:
            return (message,)
        registration = self.ue_registry.get(message.recipient.value)
        if registration is None or registration.via_gateway:
            # A gateway fits the message to its bearer (SMS parts, ...); a peer server, for a
            # UE homed there, to the UE.
            return (message,)
        size = self.ue_registry.max_segment_size(message.recipient.value)
        return segment_message(message, size, _new_segment_id)

    def _notification_uri(self, peer: str) -> str:
        """Where `peer` sends the topic-list notifications of our subscription there."""
        server = self.settings.server
        root = self.settings.peering.api_root or server.api_root
        if not root:
            root = f"{'https' if server.tls_cert else 'http'}://{server.http}"
        return root.rstrip("/") + ext_peering.notification_path(peer)

    def _topic_peers(self, delivery: Delivery) -> Sequence[Address]:
        """The peers owed a copy of a topic message: those that have the topic, for a message
        of this server's own users (a peer's message is not forwarded again, ADR 0013)."""
        if self.peers.homed_elsewhere(delivery.origin):
            return ()
        return [Address(PEER, p) for p in self.remote_topics.peers_for(delivery.recipient.value)]

    def _rules(self, *, local_only: bool = False) -> dict[str, Sequence[Rule]]:
        """Target resolution (TS 23.554 5.3.2.2); `local_only` leaves out the peers, for
        messages a peer forwarded (TS 23.554 8.7.5)."""

        # Routes are immutable: each rule answers with one of two made here, indexed by
        # reachability (a frozen dataclass costs a few hundred ns to build, per message).
        as_routes = _routes(Path.APPLICATION_SERVER)
        ue_routes = _routes(Path.MSGIN5G_UE)
        gateway_routes = _routes(Path.GATEWAY)
        peer_routes = _routes(Path.PEER_SERVER)
        broadcast_routes = _routes(Path.BROADCAST)
        group_route = Route(Path.GROUP_FAN_OUT, reachable=True)
        topic_route = Route(Path.TOPIC_FAN_OUT, reachable=True)

        def registered_as(address: Address) -> Route | None:
            if self.registry.get(address.value) is None:
                return None
            return as_routes[self.dispatcher.reachable(address)]

        def registered_ue(address: Address) -> Route | None:
            registration = self.ue_registry.get(address.value)
            if registration is None:
                return None
            routes = gateway_routes if registration.via_gateway else ue_routes
            return routes[self.dispatcher.reachable(address)]

        # A UE Service ID that never registered is an unknown recipient, as an unregistered
        # AS is (DELY_FAILED UNKNOWN_RECIPIENT); a registered UE that is not observing gets
        # DELY_STORED with stoAndFwInd (ADR draft "MSGin5G UE target resolution").
        def known_group(address: Address) -> Route | None:
            if self.groups.members(address.value) is None:
                return None
            return group_route

        # A topic exists while it has a current subscriber; without one the message fails with
        # NO_SUBSCRIBERS rather than waiting for a subscriber that may never come (ADR 0011).
        def subscribed_topic(address: Address) -> Route | None:
            if not self.topics.subscribers(address.value) and (
                local_only or not self.remote_topics.peers_for(address.value)
            ):
                return None
            return topic_route

        # A UE or AS this server does not know but a peer's address pattern claims is that
        # peer's user (TS 23.554 8.7.5 step 2).
        def peer_user(address: Address) -> Route | None:
            if self.peers.home_of(address) is None:
                return None
            return peer_routes[self.dispatcher.reachable(address)]

        # Broadcast areas are the Broadcast Message Gateway's to know (it answers 404 for an
        # area it does not serve, which fails the message with a report).
        def broadcast_area(address: Address) -> Route | None:
            if not self.settings.broadcast.gateway:
                return None
            return broadcast_routes[self.dispatcher.reachable(address)]

        with_peers = self.settings.peering.peers and not local_only
        peers: tuple[Rule, ...] = (peer_user,) if with_peers else ()
        return {
            AS: (registered_as, *peers),
            UE: (registered_ue, *peers),
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
        if recipient.kind == PEER:
            return self._peer_transport(recipient.value)
        if recipient.kind == UE:
            ue = self.ue_registry.get(recipient.value)
            if ue is None:
                return self._peer_transport(self.peers.home_of(recipient))
            if ue.gateway_api_root is not None:
                return self._gateway_transport(ue.gateway_type or "", ue.gateway_api_root)
            return self.ue_inbox.transport_for(recipient.value)
        if recipient.kind != AS:
            return None
        registration = self.registry.get(recipient.value)
        if registration is None:
            return self._peer_transport(self.peers.home_of(recipient))
        if not registration.target_uri:
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

    def _peer_transport(self, peer: str | None) -> Transport | None:
        """Forwarding to a configured peer server (outbound/peer_delivery.py)."""
        if peer is None:
            return None
        transport = self._peer_transports.get(peer)
        if transport is None:
            root = next((p.api_root for p in self.settings.peering.peers if p.name == peer), None)
            if root is None:
                return None

            def stale(topic: str) -> None:
                self.remote_topics.forget(peer, topic)

            transport = PeerDeliveryTransport(
                self.http_pool,
                root,
                timeout=self.settings.delivery.callback_timeout_s,
                on_stale=stale,
            )
            self._peer_transports[peer] = transport
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
            if self.token_source is not None:
                self.http_pool.authorize(origin_of(api_root), self.token_source)
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
        store = self.store
        if isinstance(store, SqliteStore):  # deferred queue indexing (ADR 0022)
            self.metrics.gauge("msgin5g_store_queue_folds_total", _reading(lambda: store.folds))
            self.metrics.gauge(
                "msgin5g_store_queue_fold_seconds_total", _reading(lambda: store.fold_seconds)
            )
            self.metrics.gauge("msgin5g_store_queue_unindexed", _reading(lambda: store.unindexed))
            # recent messages (ADR 0023)
            self.metrics.gauge("msgin5g_store_message_moves_total", _reading(lambda: store.moves))
            self.metrics.gauge(
                "msgin5g_store_message_move_seconds_total", _reading(lambda: store.move_seconds)
            )
            self.metrics.gauge(
                "msgin5g_store_recent_messages", _reading(lambda: store.recent_messages)
            )
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
        if self.cluster is not None:
            await self.cluster.start()
        await self.segments.start()
        data = self.settings.data_path()
        restored = self.coap.keep_message_ids(data / "coap-message-ids.journal")
        if self.coaps is not None:
            restored += self.coaps.keep_message_ids(data / "coaps-message-ids.journal")
        if restored:
            log.info("CoAP message ids continue for %d UE endpoints (RFC 7252 4.4)", restored)
        host, port = split_hostport(self.settings.server.coap, "server.coap")
        await self.coap.start(host, port)
        if self.coaps is not None:
            from msgin5g.coap.dtls import DtlsConfig, serve_coaps

            host, port = split_hostport(self.settings.server.coaps, "server.coaps")
            ue = self.settings.ue
            self._dtls = await serve_coaps(
                self.coaps,
                host,
                port,
                {psk.identity: psk.key for psk in self._psks()},
                DtlsConfig(max_sessions=ue.dtls_max_sessions, idle_timeout=ue.dtls_idle_timeout_s),
            )
        if self.psk_watch is not None:
            await self.psk_watch.start()
        await self.security.start()
        await self.topic_follower.start()
        self._ready = True
        log.info(
            "MSGin5G Server started",
            extra={
                "settings": describe(self.settings),
                "security": self.security.summary(),
                "transport_security": self.transport_security(),
            },
        )

    def transport_security(self) -> dict[str, object]:
        """What is enabled of TLS and DTLS (for the start-up log; no secrets)."""
        server, ue, outbound = self.settings.server, self.settings.ue, self.settings.outbound
        return {
            "https": bool(server.tls_cert),
            "https_client_certificates": bool(server.tls_client_ca),
            "coaps": server.coaps or None,
            "ue_psk_identities": len(self._psks()),
            "ue_require_dtls": ue.require_dtls,
            "outbound_ca_file": bool(outbound.ca_file),
            "outbound_client_certificate": bool(outbound.client_cert),
        }

    def reload(self) -> None:
        """SIGHUP: take a changed ue.psk_file now (ADR 0016); nothing else is reloaded."""
        if self.psk_watch is None:
            log.info("SIGHUP: nothing to reload (no ue.psk_file)")
            return
        self.psk_watch.reload()

    def _psks(self) -> tuple[UePsk, ...]:
        return self.psk_watch.current if self.psk_watch is not None else ()

    def _take_psks(self, psks: tuple[UePsk, ...]) -> int:
        """A reloaded PSK file (PskWatch): who may act as whom, and the DTLS keys. The DTLS
        layer ends the sessions of identities removed or re-keyed; those of identities now
        bound to another ueSvcId end too. Returns how many ended."""
        owners = {psk.identity: psk.ue_svc_id for psk in self._psks()}
        self._access.replace({psk.identity: psk.ue_svc_id for psk in psks})
        if self._dtls is None:
            return 0
        moved = {p.identity for p in psks if owners.get(p.identity, p.ue_svc_id) != p.ue_svc_id}
        return self._dtls.update_keys({psk.identity: psk.key for psk in psks}, moved)

    async def stop(self) -> None:
        self._ready = False
        if self.psk_watch is not None:
            await self.psk_watch.stop()
        await self.topic_follower.stop()
        await self.coap.stop()
        if self.coaps is not None:
            await self.coaps.stop()
        await self.topics.stop()
        await self.segments.stop()
        await self.dispatcher.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        for transport in (*self._as_transports.values(), *self._gateway_transports.values()):
            await transport.aclose()
        for peer in self._peer_transports.values():
            await peer.aclose()
        await self.http_pool.aclose()
        await self.store.close()
        log.info("MSGin5G Server stopped")


def _routes(path: Path) -> tuple[Route, Route]:
    """The two routes of `path`, indexed by reachability (False, True)."""
    return (Route(path, reachable=False), Route(path, reachable=True))


def _new_segment_id() -> str:
    return uuid.uuid4().hex


def _outbound_tls(settings: Settings) -> bool | ssl.SSLContext:
    """The TLS context toward https:// peers from [outbound]; raises SettingsError."""
    outbound = settings.outbound
    if not outbound.ca_file and not outbound.client_cert:
        return True
    try:
        return client_tls_context(outbound.ca_file, outbound.client_cert, outbound.client_key)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(f"[outbound] TLS files: {exc}") from None


def _ue_psks(settings: Settings) -> tuple[UePsk, ...]:
    """The UEs' DTLS pre-shared keys from ue.psk_file; raises SettingsError."""
    if not settings.ue.psk_file:
        return ()
    try:
        return load_psk_file(settings.ue.psk_file)
    except PskFileError as exc:
        raise SettingsError(f"ue.psk_file: {exc}") from None


def _store(settings: Settings) -> SqliteStore | PostgresStore:
    """The store `store.url` selects: PostgreSQL for a postgresql:// URL (ADR 0017), else the
    embedded SQLite file under the data dir (ADR 0003)."""
    store = settings.store
    if store.url:
        from msgin5g.storage.postgres import PostgresStore  # the `postgres` extra

        return PostgresStore(
            store.url, clock=time.time, schema=store.schema, pool_size=store.pool_size
        )
    return SqliteStore(
        settings.data_path() / "msgin5g.sqlite3",
        clock=time.time,
        synchronous=store.synchronous,
        wal_limit=store.wal_limit_mib << 20,
    )


async def serve(settings: Settings) -> None:
    """Run the server until SIGINT/SIGTERM: HTTP (h2c + HTTP/1.1, or TLS with ALPN h2)."""
    from granian.constants import HTTPModes, Interfaces
    from granian.server.embed import Server as Granian

    host, port = split_hostport(settings.server.http, "server.http")
    check_port_free(host, port)
    server = ServerApp(settings)
    await server.start()
    pauses = GcPauses(server.metrics)  # on /metrics, the start-up collection below included
    pauses.install()
    # The hot paths allocate many short-lived objects; collect the young generation less
    # often and keep start-up objects out of every collection (ADR 0002).
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    tls: dict[str, object] = {}
    if settings.server.tls_cert:
        from pathlib import Path as FsPath

        tls = {
            "ssl_cert": FsPath(settings.server.tls_cert),
            "ssl_key": FsPath(settings.server.tls_key),
        }
        if settings.server.tls_client_ca:  # mutual TLS: a client certificate is required
            tls["ssl_ca"] = FsPath(settings.server.tls_client_ca)
            tls["ssl_client_verify"] = True
    http = Granian(
        server.app,
        address=host,
        port=port,
        interface=Interfaces.RSGI,
        http=HTTPModes.auto,
        websockets=False,
        backlog=2048,
        log_enabled=False,
        **tls,  # type: ignore[arg-type]
    )
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def on_signal() -> None:
        stopping.set()
        http.stop()  # type: ignore[no-untyped-call]

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    loop.add_signal_handler(signal.SIGHUP, server.reload)
    try:
        log.info(
            "listening",
            extra={
                "http": settings.server.http,
                "tls": bool(tls),
                "data_dir": settings.server.data_dir,
            },
        )
        await serve_until_stopped(http.serve(), stopping)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await server.stop()
        pauses.uninstall()


def _reading(read: Callable[[], float]) -> Callable[[], Awaitable[float]]:
    """A metrics gauge that reads a plain value."""

    async def value() -> float:
        return float(read())

    return value
