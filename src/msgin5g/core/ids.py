"""Time-ordered message ids: RFC 9562 UUIDv7 strings, ascending within a process (ADR 0024).

The sender chooses msgId (TS 29.538 ASMessageDelivery, UEMessageDelivery); the server keys
duplicate detection and report correlation on (originator, msgId) and keeps that record for
the idempotency window (ADR 0023). A random msgId (UUID4) lands at a random place of that
key, so each new one rewrites a page of a large store; ids that ascend with time are appended
at its end. The SDK, ``msgin5g send`` and the gateways make their msgIds here.

Layout (RFC 9562 5.7): 48 bits of Unix time in ms, version 7, 12 bits ``rand_a`` used as a
counter within one millisecond (6.2, method 1), the variant, 62 random bits. Within one process
every id sorts after the one before it, as text too (fixed-width lowercase hex), also when the
clock steps back or more than 2,048 ids are made in one millisecond (the timestamp then runs
ahead of the clock until the clock catches up).
"""

from __future__ import annotations

import os
import threading
import time

_COUNTER_MAX = 0xFFF
_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_message_id() -> str:
    """A fresh msgId: a UUIDv7 string such as ``0195f1d2-6b4c-7a31-9f0e-3c2d1b0a9f8e``."""
    global _last_ms, _counter
    entropy = int.from_bytes(os.urandom(10), "big")
    now_ms = time.time_ns() // 1_000_000
    with _lock:
        if now_ms > _last_ms:
            _last_ms = now_ms
            _counter = entropy >> 69  # a random start in the lower half leaves room to count
        elif _counter < _COUNTER_MAX:
            _counter += 1
        else:
            _last_ms += 1
            _counter = 0
        ms, counter = _last_ms, _counter
    value = (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | counter << 64
        | 0b10 << 62
        | entropy & 0x3FFF_FFFF_FFFF_FFFF
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
