# SPDX-License-Identifier: Apache-2.0
"""The garbage collector's pauses as metrics, so a latency outlier can be matched to them.

Every collection holds the event loop. `gc.callbacks` tells when one starts and stops; this
counts the collections and their seconds per generation and keeps the longest:
`msgin5g_gc_collections_total{generation}`, `msgin5g_gc_pause_seconds_total{generation}` and
`msgin5g_gc_pause_longest_seconds`.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from msgin5g.observability import Metrics


class GcPauses:
    """Counts the collector's pauses into `metrics` while installed."""

    __slots__ = ("_clock", "_collections", "_longest", "_seconds", "_started")

    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._started = 0.0
        self._longest = 0.0
        generations = [str(g) for g in range(3)]
        self._collections = [
            metrics.counter("msgin5g_gc_collections_total", generation=g) for g in generations
        ]
        self._seconds = [
            metrics.counter("msgin5g_gc_pause_seconds_total", generation=g) for g in generations
        ]
        metrics.gauge("msgin5g_gc_pause_longest_seconds", self._read_longest)

    async def _read_longest(self) -> float:
        return self._longest

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = self._clock()
            return
        pause = self._clock() - self._started
        generation = info["generation"]
        self._collections[generation].value += 1
        self._seconds[generation].value += pause
        if pause > self._longest:
            self._longest = pause

    def install(self) -> None:
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def uninstall(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
