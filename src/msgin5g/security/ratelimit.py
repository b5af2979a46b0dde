# SPDX-License-Identifier: Apache-2.0
"""Per-client token buckets: `rate` requests per second with bursts of `burst` (ADR 0015);
with several instances each enforces its share (`share`).

`take` is O(1): a bucket is refilled lazily from the time since its last use. Idle buckets
(full again) are dropped when the table grows past `max_keys`, so a scan of many source
addresses cannot grow memory without bound.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class RateLimiter:
    """Token buckets keyed by client id (or by remote address for unauthenticated callers)."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self._rate = self.rate = rate
        self._burst = self.burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, list[float]] = {}

    def share(self, instances: int) -> None:
        """Enforce 1/`instances` of the configured rate and burst here. Several instances behind
        a load balancer that spreads each client's requests (per request, docs/deployment.md)
        then hold the client near the configured rate in all (ADR 0018)."""
        n = max(1, instances)
        self._rate = self.rate / n
        self._burst = max(1.0, self.burst / n)

    def take(self, key: str) -> int:
        """0 when a request of `key` may pass now, else the whole seconds to wait (Retry-After)."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._prune(now)
            self._buckets[key] = [self._burst - 1.0, now]
            return 0
        tokens = min(self._burst, bucket[0] + (now - bucket[1]) * self._rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0
        bucket[0] = tokens
        return max(1, math.ceil((1.0 - tokens) / self._rate))

    def _prune(self, now: float) -> None:
        full = self._burst / self._rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b[1] < full}
        if len(self._buckets) >= self._max_keys:
            self._buckets.clear()
