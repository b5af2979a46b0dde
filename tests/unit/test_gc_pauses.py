# SPDX-License-Identifier: Apache-2.0
"""The collector's pauses as metrics (msgin5g.gc_pauses)."""

from __future__ import annotations

import asyncio
import gc
import itertools

from msgin5g.gc_pauses import GcPauses
from msgin5g.observability import Metrics


def test_each_collection_is_counted_with_its_pause_by_generation() -> None:
    metrics = Metrics()
    # every reading of the clock is 0.25 s after the one before: each pause lasts 0.25 s
    pauses = GcPauses(metrics, clock=itertools.count(0.0, 0.25).__next__)
    pauses.install()
    try:
        gc.collect(2)
        gc.collect(2)
    finally:
        pauses.uninstall()
    full = metrics.value("msgin5g_gc_collections_total", generation="2")
    assert full >= 2
    assert metrics.value("msgin5g_gc_pause_seconds_total", generation="2") == 0.25 * full
    text = asyncio.run(metrics.render())
    assert "msgin5g_gc_pause_longest_seconds 0.25" in text
    assert 'msgin5g_gc_collections_total{generation="0"}' in text


def test_nothing_is_counted_once_uninstalled() -> None:
    metrics = Metrics()
    pauses = GcPauses(metrics)
    pauses.install()
    pauses.install()  # once only
    assert gc.callbacks.count(pauses._on_gc) == 1
    pauses.uninstall()
    gc.collect(2)
    assert metrics.value("msgin5g_gc_collections_total", generation="2") == 0
    assert pauses._on_gc not in gc.callbacks
