# SPDX-License-Identifier: Apache-2.0
"""Typed settings, validated at start-up: defaults < config file < environment < CLI flags.

The config file is TOML (see docs/examples/msgin5g.toml). Environment variables are
`MSGIN5G_<KEY>` for the `[server]` keys (the pinned `MSGIN5G_HTTP`, `MSGIN5G_COAP`,
`MSGIN5G_DATA_DIR`, `MSGIN5G_INSECURE`, ...) and `MSGIN5G_<SECTION>_<KEY>` for the others.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

CONFIG_VERSION = 1


class SettingsError(Exception):
    """The configuration is invalid; the message says which key and why."""


class ServerSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    http: str = "127.0.0.1:8080"
    coap: str = "127.0.0.1:5683"
    data_dir: str = "./msgin5g-data"
    insecure: bool = False
    loop: str = "uvloop"
    """Event loop: "uvloop" (faster, the default where it is installed) or "asyncio" (ADR 0002)."""
    api_root: str = ""
    """Absolute apiRoot for Location headers; empty = taken from the request's Host."""
    max_body_bytes: int = 1_048_576
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    """PEM CA bundle; when set, HTTPS clients must present a certificate it signed (ADR 0016)."""
    coaps: str = ""
    """CoAP over DTLS-PSK (coaps://) listen address HOST:PORT, usually port 5684; empty: off."""


class StoreSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: str = ""
    """Empty: the embedded SQLite store under data_dir (ADR 0003). `postgresql://USER
    [:PASSWORD]@HOST[:PORT]/DB`: the PostgreSQL store (`--store`, ADR 0017)."""
    synchronous: str = "NORMAL"
    """SQLite only: NORMAL survives process crashes (kill -9); FULL also survives power loss.
    PostgreSQL commits as its server's synchronous_commit says (default: durable)."""
    schema: str = "public"
    """PostgreSQL only: the schema holding the tables, created at start if missing."""
    pool_size: int = 10
    """PostgreSQL only: connections in the pool."""
    wal_limit_mib: int = 64
    """SQLite only: once the write-ahead log passes this size, it is started over (and its
    file cut back to it) while the server holds its commits for a moment (ADR 0019)."""


class ClusterSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Several instances on one PostgreSQL store, work moved over NATS JetStream (ADR 0018)."""

    nats_url: str = ""
    """Empty: a single instance. nats://HOST:PORT (`--nats`): join the cluster; needs
    store.url (PostgreSQL)."""
    instance_id: str = ""
    """This instance's name in the lease table; empty: HOSTNAME-PID. Unique per instance."""
    shards: int = 64
    """Recipients are hashed into this many shards, leased to the live instances. The same
    value on every instance."""
    lease_ttl_s: float = 5.0
    """A dead instance's shards are taken over this long after its last heartbeat."""
    heartbeat_s: float = 1.0
    rescan_s: float = 5.0
    """How often an instance re-reads which of its recipients have stored work (covers a
    lost doorbell)."""


class DeliverySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    default_ttl_s: float = 86_400.0
    """Store-and-forward lifetime when the sender gives no exprTime."""
    max_ttl_s: float = 7 * 86_400.0
    forward_window_s: float = 60.0
    """Lifetime of a message sent without store-and-forward to a reachable recipient."""
    report_ttl_s: float = 86_400.0
    idempotency_window_s: float = 86_400.0
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0
    as_window: int = 32
    """Deliveries in flight at once to one Application Server."""
    callback_timeout_s: float = 10.0
    sweep_interval_s: float = 1.0


class UeSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """MSGin5G-1 (CoAP, DESIGN 2.3/2.4): what the server does toward MSGin5G UEs."""

    max_segment_size: int = 2048
    """Octets of payload per segment for a UE that announced no maxSegSize (TS 22.262)."""
    reassembly_timeout_s: float = 60.0
    """Time from the first segment of a UE-originated message until the set is given up."""
    max_body_bytes: int = 65_536
    """Largest CoAP request body (after Block1 reassembly); larger ones get 4.13."""
    ack_timeout_s: float = 2.0
    """RFC 7252 ACK_TIMEOUT of the server's Confirmable notifications."""
    max_retransmit: int = 4
    """RFC 7252 MAX_RETRANSMIT: a notification unacknowledged after this many retransmissions
    ends the UE's observation; the item stays stored for its next observation."""
    psk_file: str = ""
    """TOML file of the UEs' DTLS pre-shared keys: [[psk]] identity, key or key_hex,
    ue_svc_id (docs/security.md). A ueSvcId listed there is only served over DTLS."""
    psk_reload_interval_s: float = 5.0
    """How often the server checks psk_file for changes and takes them without a restart
    (SIGHUP does it at once); sessions of removed or re-keyed identities end. 0 = only on
    SIGHUP."""
    require_dtls: bool = False
    """True: plain CoAP answers every MSGin5G-1 request with 4.01; UEs must use coaps."""
    dtls_max_sessions: int = 2000
    """DTLS sessions kept at once; the least recently used goes when a new UE needs room."""
    dtls_idle_timeout_s: float = 3600.0
    """A DTLS session without traffic this long is dropped (the UE handshakes again)."""
    max_stored_messages: int = 10_000
    """Deliveries that may wait for one UE; a message beyond it is refused at acceptance with
    DELY_FAILED STORAGE_QUOTA_EXCEEDED (nothing acknowledged is dropped). 0 = no limit."""
    max_requests_in_progress: int = 1024
    """CoAP requests handled at once; beyond it the server answers 5.03 with Max-Age at once
    instead of letting requests time out (RFC 7252 5.9.3.4). 0 = no limit."""
    overload_max_age_s: int = 2
    """Max-Age (seconds) of such a 5.03: when the UE should try again."""


class GroupSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """MSGin5G groups (TS 23.554 8.7.4)."""

    max_members: int = 10_000
    """Largest group; a larger member list is refused with 400."""
    fan_out_chunk: int = 500
    """Member deliveries queued per commit while a group message fans out."""


class TopicSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Messaging Topics (TS 23.554 8.8; TS 29.538 MSGS_TopiclistEvent)."""

    default_ttl_s: float = 86_400.0
    """Lifetime of a topic (or topic-list) subscription that asked for no exprTime."""
    max_ttl_s: float = 30 * 86_400.0
    """A requested exprTime further away is cut to this; the ack says what was granted."""
    notify_attempts: int = 4
    """Tries of one topic-list notification (backoff 0.5 s, doubling) before it is dropped."""
    max_subscriptions_per_subscriber: int = 1000
    """Topics one UE or AS may subscribe to; more is refused with 403. 0 = no limit."""
    max_topiclist_subscriptions: int = 100
    """Topic-list subscriptions one originator may hold; more is refused with 403. 0 = none."""


class BroadcastSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Broadcast (TS 23.554 8.7.6 / MSGin5G-7): where messages to `BC` addresses go."""

    gateway: str = ""
    """apiRoot of the Broadcast Message Gateway (msgg-bgdelivery); empty: broadcast is off."""


class PeerSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One interconnected MSGin5G Server (TS 23.554 5.2-4, 8.7.5; ADR 0013)."""

    name: str
    api_root: str
    """The peer's apiRoot, e.g. "http://s2.example:8080"."""
    addresses: tuple[str, ...] = ()
    """The peer's users: patterns over "KIND:value" with * and ? (e.g. "UE:*@plmn2")."""
    topics: bool = True
    """Follow the peer's topic list, so that topic messages reach its subscribers."""


class PeeringSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Server interconnection (MSGin5G-8): this server's name and its peers."""

    name: str = "msgin5g"
    """This server's name: its address toward peers (`{PEER, name}`)."""
    api_root: str = ""
    """This server's apiRoot as peers reach it (for notification URIs); empty: from --http."""
    refresh_s: float = 300.0
    """Interval between renewals of this server's topic-list subscriptions at its peers."""
    peers: tuple[PeerSettings, ...] = ()


class OutboundSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """TLS of the server's HTTP client toward gateways, AS callbacks and peers (ADR 0016)."""

    ca_file: str = ""
    """PEM CA bundle that https:// peers are verified against; empty: the system store."""
    client_cert: str = ""
    """PEM client certificate presented to https:// peers that ask for one."""
    client_key: str = ""


class AuthClientSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One client of the HTTP APIs (`[[auth.clients]]`, ADR 0015)."""

    client_id: str
    role: str = "AS"
    """AS, GATEWAY, PEER or ADMIN; gives the default scopes."""
    secret_hash: str = ""
    """`msgin5g auth hash-secret` output; needed for the built-in token endpoint."""
    as_svc_ids: tuple[str, ...] = ()
    """The asSvcIds this client may register and send as."""
    addresses: tuple[str, ...] = ()
    """Parties it speaks for: "KIND:value" patterns with * and ? (e.g. "UE:gw1-*")."""
    scopes: tuple[str, ...] = ()
    """apiNames it may get tokens for; empty: the role's defaults."""


class AuthSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """OAuth 2.0 client credentials on the HTTP APIs (TS 29.538 clause 10; ADR 0015)."""

    mode: str = "off"
    """off, builtin (this server issues tokens at /oauth2/token) or jwks (an external issuer)."""
    issuer: str = "msgin5g"
    """The `iss` tokens must carry (and the built-in issuer writes)."""
    audience: str = "msgin5g"
    """The `aud` tokens must carry: this server's NF instance id or name."""
    jwks: str = ""
    """jwks mode: the issuer's JWK Set, a file path or an http(s) URL."""
    token_ttl_s: float = 3600.0
    """Lifetime of tokens from the built-in issuer."""
    leeway_s: float = 30.0
    """Clock skew allowed on exp/nbf."""
    clients: tuple[AuthClientSettings, ...] = ()
    token_url: str = ""
    """This process as a client (toward gateways and peers): the token endpoint to use."""
    client_id: str = ""
    client_secret: str = ""
    """Prefer MSGIN5G_AUTH_CLIENT_SECRET or client_secret_file over the config file."""
    client_secret_file: str = ""


class LimitSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Admission limits of the HTTP APIs (ADR 0015); the body limit is server.max_body_bytes."""

    rate: float = 0.0
    """Requests per second per client (per remote address without authentication); 0: off."""
    burst: int = 100
    """Requests a client may send at once above its rate."""
    max_in_flight: int = 4096
    """Requests processed at once before the server answers 429 NF_CONGESTION_RISK; 0: off."""


class LogSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    level: str = "INFO"
    format: str = "json"


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    version: int = CONFIG_VERSION
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    store: StoreSettings = msgspec.field(default_factory=StoreSettings)
    cluster: ClusterSettings = msgspec.field(default_factory=ClusterSettings)
    delivery: DeliverySettings = msgspec.field(default_factory=DeliverySettings)
    ue: UeSettings = msgspec.field(default_factory=UeSettings)
    groups: GroupSettings = msgspec.field(default_factory=GroupSettings)
    topics: TopicSettings = msgspec.field(default_factory=TopicSettings)
    broadcast: BroadcastSettings = msgspec.field(default_factory=BroadcastSettings)
    peering: PeeringSettings = msgspec.field(default_factory=PeeringSettings)
    outbound: OutboundSettings = msgspec.field(default_factory=OutboundSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    limits: LimitSettings = msgspec.field(default_factory=LimitSettings)
    log: LogSettings = msgspec.field(default_factory=LogSettings)

    def data_path(self) -> Path:
        return Path(self.server.data_dir).expanduser()


_SECTIONS = (
    "server",
    "store",
    "cluster",
    "delivery",
    "ue",
    "groups",
    "broadcast",
    "topics",
    "peering",
    "outbound",
    "auth",
    "limits",
    "log",
)


def _environment(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    server_keys = set(ServerSettings.__struct_fields__)
    for name, value in environ.items():
        if not name.startswith("MSGIN5G_"):
            continue
        key = name[len("MSGIN5G_") :].lower()
        if key in server_keys:
            out.setdefault("server", {})[key] = value
            continue
        section, _, rest = key.partition("_")
        if section in _SECTIONS and rest:
            out.setdefault(section, {})[rest] = value
    return out


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load(
    config_file: str | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build Settings from the file, the environment and CLI `overrides`; raises SettingsError."""
    env = os.environ if environ is None else environ
    config_file = config_file or env.get("MSGIN5G_CONFIG")
    raw: dict[str, Any] = {}
    if config_file:
        try:
            raw = tomllib.loads(Path(config_file).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read config file {config_file}: {exc}") from exc
    raw = _merge(raw, _environment(env))
    raw = _merge(raw, {k: dict(v) for k, v in (overrides or {}).items() if v})
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid configuration: {exc}") from exc
    _validate(settings)
    return settings


def split_hostport(value: str, what: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise SettingsError(f"{what} must be HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _validate(settings: Settings) -> None:
    if settings.version != CONFIG_VERSION:
        raise SettingsError(f"config version {settings.version} is not supported (want 1)")
    http_host, _ = split_hostport(settings.server.http, "server.http (--http)")
    coap_host, _ = split_hostport(settings.server.coap, "server.coap (--coap)")
    if settings.server.loop not in ("asyncio", "uvloop"):
        raise SettingsError("server.loop must be asyncio or uvloop")
    if settings.store.synchronous.upper() not in ("NORMAL", "FULL"):
        raise SettingsError("store.synchronous must be NORMAL or FULL")
    if settings.store.wal_limit_mib < 1:
        raise SettingsError("store.wal_limit_mib must be at least 1")
    _validate_store(settings.store)
    _validate_cluster(settings.cluster, settings.store)
    if bool(settings.server.tls_cert) != bool(settings.server.tls_key):
        raise SettingsError("server.tls_cert and server.tls_key go together")
    if settings.server.max_body_bytes < 1024:
        raise SettingsError("server.max_body_bytes must be at least 1024")
    if settings.ue.max_segment_size < 16:
        raise SettingsError("ue.max_segment_size must be at least 16")
    if settings.ue.max_body_bytes < 1024:
        raise SettingsError("ue.max_body_bytes must be at least 1024")
    if settings.ue.ack_timeout_s <= 0 or settings.ue.max_retransmit < 0:
        raise SettingsError("ue.ack_timeout_s must be > 0 and ue.max_retransmit >= 0")
    topics = settings.topics
    if not 0 < topics.default_ttl_s <= topics.max_ttl_s:
        raise SettingsError("topics.default_ttl_s must be > 0 and <= topics.max_ttl_s")
    if topics.notify_attempts < 1:
        raise SettingsError("topics.notify_attempts must be at least 1")
    limits = {
        "ue.max_stored_messages": settings.ue.max_stored_messages,
        "ue.max_requests_in_progress": settings.ue.max_requests_in_progress,
        "topics.max_subscriptions_per_subscriber": topics.max_subscriptions_per_subscriber,
        "topics.max_topiclist_subscriptions": topics.max_topiclist_subscriptions,
    }
    for name, value in limits.items():
        if value < 0:
            raise SettingsError(f"{name} must be >= 0 (0 = no limit)")
    if settings.ue.overload_max_age_s < 0:
        raise SettingsError("ue.overload_max_age_s must be >= 0")
    _validate_peering(settings.peering)
    _validate_transport_security(settings)
    _validate_auth(settings.auth, settings.limits)
    # Anything reachable from another machine without authentication must be an explicit
    # choice; bearer tokens (auth.mode) authenticate the HTTP APIs (ADR 0015).
    exposed = [
        h
        for h, authenticated in (
            (http_host, settings.auth.mode != "off"),
            (coap_host, settings.ue.require_dtls),  # plain CoAP then refuses everything
        )
        if not is_loopback(h) and not authenticated
    ]
    if exposed and not settings.server.insecure:
        raise SettingsError(
            f"refusing to listen on non-loopback address {exposed[0]} without authentication;"
            " pass --insecure (MSGIN5G_INSECURE=1) to accept that risk"
        )


def _validate_peering(peering: PeeringSettings) -> None:
    names = [peer.name for peer in peering.peers]
    if len(set(names)) != len(names) or peering.name in names:
        raise SettingsError("peering.peers names must be unique and differ from peering.name")
    if not peering.name or ":" in peering.name:
        raise SettingsError("peering.name must be non-empty and without ':'")
    if peering.refresh_s <= 0:
        raise SettingsError("peering.refresh_s must be > 0")
    for peer in peering.peers:
        if not peer.api_root.startswith(("http://", "https://")):
            raise SettingsError(f"peering.peers {peer.name!r}: api_root must be an http(s) URL")
        for pattern in peer.addresses:
            kind, sep, value = pattern.partition(":")
            if not sep or not kind or not value:
                raise SettingsError(
                    f"peering.peers {peer.name!r}: address pattern {pattern!r} must be KIND:value"
                )


def _validate_transport_security(settings: Settings) -> None:
    server, ue, outbound = settings.server, settings.ue, settings.outbound
    if server.tls_client_ca and not server.tls_cert:
        raise SettingsError("server.tls_client_ca needs server.tls_cert and server.tls_key")
    if server.coaps:
        split_hostport(server.coaps, "server.coaps (--coaps)")
        if not ue.psk_file:
            raise SettingsError("server.coaps needs ue.psk_file (the UEs' pre-shared keys)")
    if ue.require_dtls and not server.coaps:
        raise SettingsError("ue.require_dtls needs server.coaps")
    if ue.dtls_max_sessions < 1 or ue.dtls_idle_timeout_s <= 0:
        raise SettingsError("ue.dtls_max_sessions must be >= 1 and ue.dtls_idle_timeout_s > 0")
    if ue.psk_reload_interval_s < 0:
        raise SettingsError("ue.psk_reload_interval_s must be >= 0")
    if bool(outbound.client_cert) != bool(outbound.client_key):
        raise SettingsError("outbound.client_cert and outbound.client_key go together")


def _validate_auth(auth: AuthSettings, limits: LimitSettings) -> None:
    from msgin5g.security.passwords import valid_hash
    from msgin5g.security.principal import ALL_SCOPES, ROLES

    if auth.mode not in ("off", "builtin", "jwks"):
        raise SettingsError("auth.mode must be off, builtin or jwks")
    if auth.mode == "jwks" and not auth.jwks:
        raise SettingsError("auth.mode = jwks needs auth.jwks (a file path or URL)")
    if auth.mode != "off" and not (auth.issuer and auth.audience):
        raise SettingsError("auth.issuer and auth.audience must not be empty")
    ids = [c.client_id for c in auth.clients]
    if len(set(ids)) != len(ids) or not all(ids):
        raise SettingsError("auth.clients client_id values must be non-empty and unique")
    for client in auth.clients:
        where = f"auth.clients {client.client_id!r}"
        if client.role not in ROLES:
            raise SettingsError(f"{where}: role must be one of {', '.join(sorted(ROLES))}")
        if client.secret_hash and not valid_hash(client.secret_hash):
            raise SettingsError(f"{where}: secret_hash is not from `msgin5g auth hash-secret`")
        if unknown := set(client.scopes) - ALL_SCOPES:
            raise SettingsError(f"{where}: unknown scopes {sorted(unknown)}")
        if bad := [p for p in client.addresses if ":" not in p]:
            raise SettingsError(f"{where}: address pattern {bad[0]!r} must be KIND:value")
    if auth.token_url and not auth.client_id:
        raise SettingsError("auth.token_url needs auth.client_id (and a client secret)")
    if limits.rate < 0 or limits.burst < 1 or limits.max_in_flight < 0:
        raise SettingsError("limits.rate >= 0, limits.burst >= 1, limits.max_in_flight >= 0")


def _validate_cluster(cluster: ClusterSettings, store: StoreSettings) -> None:
    if not cluster.nats_url:
        return
    if not cluster.nats_url.startswith(("nats://", "tls://")):
        raise SettingsError("cluster.nats_url (--nats) must be nats://HOST:PORT or tls://...")
    if not store.url:
        raise SettingsError("cluster.nats_url (--nats) needs the PostgreSQL store (--store)")
    if not 1 <= cluster.shards <= 4096:
        raise SettingsError("cluster.shards must be between 1 and 4096")
    if cluster.heartbeat_s <= 0 or cluster.lease_ttl_s < 2 * cluster.heartbeat_s:
        raise SettingsError("cluster.lease_ttl_s must be at least twice cluster.heartbeat_s > 0")
    if cluster.rescan_s <= 0:
        raise SettingsError("cluster.rescan_s must be positive")


def _validate_store(store: StoreSettings) -> None:
    if store.url and not store.url.startswith(("postgresql://", "postgres://")):
        raise SettingsError(
            f"store.url (--store) must be empty or postgresql://..., got {mask_url(store.url)!r}"
        )
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", store.schema):
        raise SettingsError("store.schema must be a lower-case identifier ([a-z_][a-z0-9_]*)")
    if store.pool_size < 2:
        raise SettingsError("store.pool_size must be at least 2")


def mask_url(url: str) -> str:
    """`url` with the password of its user-info part, or a `password=` parameter, as `***`."""
    url = re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", url)
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    # Up to the last "@": a password with a raw "/" or "@" is masked whole (over-masking a
    # query that holds an "@" is the safe side).
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def describe(settings: Settings) -> dict[str, Any]:
    """The effective settings for the start-up log, with secrets masked."""
    out: dict[str, Any] = msgspec.to_builtins(settings)
    auth = out["auth"]
    for key in ("client_secret",):
        if auth.get(key):
            auth[key] = "***"
    for client in auth["clients"]:
        if client.get("secret_hash"):
            client["secret_hash"] = "***"
    if out["server"].get("tls_key"):
        out["server"]["tls_key"] = "***"
    out["store"]["url"] = mask_url(out["store"]["url"])
    out["cluster"]["nats_url"] = mask_url(out["cluster"]["nats_url"])
    return out
