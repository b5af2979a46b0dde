# SPDX-License-Identifier: Apache-2.0
"""Counters and gauges in the Prometheus text exposition format, and the JSON log formatter.

A `Metrics` object is created once in bootstrap and passed to whoever counts (STYLE 3.11);
there are no module-level singletons. Counters are plain dict increments: cheap enough for
the hot paths.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable

Labels = tuple[tuple[str, str], ...]

HELP: dict[str, tuple[str, str]] = {
    "msgin5g_http_requests_total": ("counter", "HTTP requests by API operation and status"),
    "msgin5g_messages_total": (
        "counter",
        "Messages by outcome at acceptance (accepted, stored, failed, duplicate)",
    ),
    "msgin5g_reports_total": ("counter", "Delivery status reports by outcome"),
    "msgin5g_deliveries_total": (
        "counter",
        "Hand-overs to recipients by outcome (delivered, retried, failed, expired)",
    ),
    "msgin5g_store_depth": ("gauge", "Deliveries queued in the store"),
    "msgin5g_store_commits_total": ("counter", "Store transactions committed (group commits)"),
    "msgin5g_store_writes_total": ("counter", "Store write operations committed"),
    "msgin5g_store_queue_folds_total": (
        "counter",
        "SQLite store: bulk folds of new deliveries into the queue index (ADR 0022)",
    ),
    "msgin5g_store_queue_fold_seconds_total": (
        "counter",
        "SQLite store: event-loop time spent in queue index folds",
    ),
    "msgin5g_store_queue_unindexed": (
        "gauge",
        "SQLite store: committed deliveries waiting for the next fold",
    ),
    "msgin5g_store_message_moves_total": (
        "counter",
        "SQLite store: bulk moves of recent message records into the keyed table (ADR 0023)",
    ),
    "msgin5g_store_message_move_seconds_total": (
        "counter",
        "SQLite store: event-loop time spent in moves of recent message records",
    ),
    "msgin5g_store_recent_messages": (
        "gauge",
        "SQLite store: committed message records waiting for the next move",
    ),
    "msgin5g_store_oldest_age_seconds": ("gauge", "Age of the oldest queued delivery"),
    "msgin5g_gc_collections_total": ("counter", "Garbage collections by generation"),
    "msgin5g_gc_pause_seconds_total": (
        "counter",
        "Seconds the garbage collector held the process, by generation",
    ),
    "msgin5g_gc_pause_longest_seconds": ("gauge", "The longest garbage collection since start"),
    "msgin5g_lanes": ("gauge", "Recipients with work in memory"),
    "msgin5g_as_registrations": ("gauge", "Registered Application Servers"),
    "msgin5g_gateway_messages_total": (
        "counter",
        "Gateway messages by direction and outcome (submitted, delivered, failed, retried)",
    ),
    "msgin5g_gateway_sms_downlink_pending": ("gauge", "SMS gateway: messages not yet receipted"),
    "msgin5g_gateway_sms_uplink_pending": ("gauge", "SMS gateway: outbox items for the server"),
    "msgin5g_gateway_sms_binds_up": ("gauge", "SMS gateway: SMPP binds currently bound"),
    "msgin5g_gateway_mqtt_connected": ("gauge", "MQTT gateway: 1 when connected to the broker"),
    "msgin5g_gateway_mqtt_devices": ("gauge", "MQTT gateway: devices registered"),
    "msgin5g_ue_psk_reloads_total": (
        "counter",
        "Reloads of ue.psk_file by outcome (failed: invalid file, the keys in use stay)",
    ),
    "msgin5g_ue_registrations": ("gauge", "Registered UEs (MSGin5G UEs and gateway-served)"),
    "msgin5g_ue_observing": ("gauge", "MSGin5G UEs observing their inbox at this instance"),
    "msgin5g_topics": ("gauge", "Topics with at least one subscriber"),
    "msgin5g_cluster_shards_held": ("gauge", "Cluster: shard leases this instance holds"),
    "msgin5g_cluster_live_instances": ("gauge", "Cluster: instances with a live heartbeat"),
    "msgin5g_cluster_doorbells_sent_total": (
        "counter",
        "Cluster: doorbells published to the owner of a recipient",
    ),
    "msgin5g_cluster_doorbells_received_total": (
        "counter",
        "Cluster: doorbells received for recipients run here",
    ),
    "msgin5g_cluster_registry_reloads_total": (
        "counter",
        "Cluster: whole registry reloads after a change elsewhere or a NATS reconnect",
    ),
    "msgin5g_cluster_registry_refreshes_total": (
        "counter",
        "Cluster: UE registrations re-read by key after a change elsewhere",
    ),
    "msgin5g_cluster_rescans_full_total": (
        "counter",
        "Cluster: reads of all recipients with stored work",
    ),
    "msgin5g_cluster_rescans_recent_total": (
        "counter",
        "Cluster: reads of the recipients with work stored since the last scans",
    ),
}


class Series:
    """One labelled counter; hot paths keep a reference and call `inc()`."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Metrics:
    """Named counters with labels, plus gauges read at scrape time."""

    def __init__(self) -> None:
        self._counters: dict[str, dict[Labels, Series]] = {}
        self._gauges: dict[str, Callable[[], Awaitable[float]]] = {}

    def counter(self, name: str, **labels: str) -> Series:
        """The series for `name` with `labels`, created on first use."""
        series = self._counters.setdefault(name, {})
        key = tuple(sorted(labels.items()))
        found = series.get(key)
        if found is None:
            found = series[key] = Series()
        return found

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self.counter(name, **labels).inc(amount)

    def value(self, name: str, **labels: str) -> float:
        found = self._counters.get(name, {}).get(tuple(sorted(labels.items())))
        return found.value if found is not None else 0.0

    def gauge(self, name: str, read: Callable[[], Awaitable[float]]) -> None:
        self._gauges[name] = read

    async def render(self) -> str:
        lines: list[str] = []
        for name, series in sorted(self._counters.items()):
            _describe(lines, name)
            for labels, found in sorted(series.items()):
                lines.append(f"{name}{_fmt(labels)} {found.value:g}")
        for name, read in sorted(self._gauges.items()):
            _describe(lines, name)
            lines.append(f"{name} {await read():g}")
        return "\n".join(lines) + "\n"


def _describe(lines: list[str], name: str) -> None:
    kind, text = HELP.get(name, ("untyped", name))
    lines.append(f"# HELP {name} {text}")
    lines.append(f"# TYPE {name} {kind}")


def _fmt(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{v}"' for k, v in labels)
    return "{" + inner + "}"


_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and every `extra` field."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)
