# SPDX-License-Identifier: Apache-2.0
"""Which shard a recipient falls in, and how many shards each live instance should hold
(ADR 0018). Pure functions: every instance must compute the same answers."""

from __future__ import annotations

import hashlib
import math


def shard_of(recipient_key: str, shards: int) -> int:
    """The shard (0..shards-1) of a recipient key; stable across processes and releases."""
    digest = hashlib.blake2b(recipient_key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def fair_share(shards: int, live_instances: int) -> int:
    """The most shards one instance holds when `live_instances` share `shards`."""
    return math.ceil(shards / max(1, live_instances))
