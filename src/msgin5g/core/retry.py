# SPDX-License-Identifier: Apache-2.0
"""Store-and-forward timing: when to try again, when a message expires (TS 23.554 8.3.6)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Capped exponential backoff. Units are seconds.

    `jitter` spreads retries of many items to one recipient (a fraction of the delay, taken
    from the caller's random value in [0, 1) so the policy stays deterministic in tests).
    """

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    jitter: float = 0.2

    def delay(self, attempts: int, random_value: float = 0.0) -> float:
        """Delay before attempt number `attempts + 1`, given `attempts` failures so far (>= 1)."""
        base = min(self.maximum, self.initial * self.factor ** max(0, attempts - 1))
        return base * (1.0 + self.jitter * random_value)


@dataclass(frozen=True, slots=True)
class ExpiryPolicy:
    """How long the server keeps a message it accepted. Units are seconds.

    - store-and-forward messages: the sender's `exprTime`, else `default_ttl`, never past
      `max_ttl` from acceptance;
    - messages without store-and-forward: `forward_window` (the time allowed to hand the
      message to a recipient that was reachable when it was accepted);
    - delivery status reports travelling back to a sender: `report_ttl`.
    """

    default_ttl: float = 86_400.0
    max_ttl: float = 7 * 86_400.0
    forward_window: float = 60.0
    report_ttl: float = 86_400.0

    def message_expiry(self, now: float, store_and_forward: bool, requested: float | None) -> float:
        """Absolute expiry (epoch seconds) of a message accepted at `now`."""
        if not store_and_forward:
            bound = now + self.forward_window
            return bound if requested is None else min(bound, requested)
        if requested is None:
            return now + self.default_ttl
        return min(requested, now + self.max_ttl)
