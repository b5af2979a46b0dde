# SPDX-License-Identifier: Apache-2.0
"""Typed settings, validated at start-up: defaults < config file < environment < CLI flags.

The config file is TOML (see docs/examples/msgin5g.toml). Environment variables are
`MSGIN5G_<KEY>` for the `[server]` keys (the pinned `MSGIN5G_HTTP`, `MSGIN5G_COAP`,
`MSGIN5G_DATA_DIR`, `MSGIN5G_INSECURE`, ...) and `MSGIN5G_<SECTION>_<KEY>` for the others.
"""

from __future__ import annotations

import ipaddress
import os
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


class StoreSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    synchronous: str = "NORMAL"
    """NORMAL survives process crashes (kill -9); FULL also survives power loss."""


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


class BroadcastSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Broadcast (TS 23.554 8.7.6 / MSGin5G-7): where messages to `BC` addresses go."""

    gateway: str = ""
    """apiRoot of the Broadcast Message Gateway (msgg-bgdelivery); empty: broadcast is off."""


class LogSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    level: str = "INFO"
    format: str = "json"


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    version: int = CONFIG_VERSION
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    store: StoreSettings = msgspec.field(default_factory=StoreSettings)
    delivery: DeliverySettings = msgspec.field(default_factory=DeliverySettings)
    ue: UeSettings = msgspec.field(default_factory=UeSettings)
    groups: GroupSettings = msgspec.field(default_factory=GroupSettings)
    topics: TopicSettings = msgspec.field(default_factory=TopicSettings)
    broadcast: BroadcastSettings = msgspec.field(default_factory=BroadcastSettings)
    log: LogSettings = msgspec.field(default_factory=LogSettings)

    def data_path(self) -> Path:
        return Path(self.server.data_dir).expanduser()


_SECTIONS = ("server", "store", "delivery", "ue", "groups", "broadcast", "topics", "log")


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
    # No authentication exists yet (it comes with the security work): anything reachable
    # from another machine must be an explicit choice.
    exposed = [h for h in (http_host, coap_host) if not is_loopback(h)]
    if exposed and not settings.server.insecure:
        raise SettingsError(
            f"refusing to listen on non-loopback address {exposed[0]} without authentication;"
            " pass --insecure (MSGIN5G_INSECURE=1) to accept that risk"
        )


def describe(settings: Settings) -> dict[str, Any]:
    """The effective settings for the start-up log, with secrets masked."""
    out: dict[str, Any] = msgspec.to_builtins(settings)
    if out["server"].get("tls_key"):
        out["server"]["tls_key"] = "***"
    return out
