# SPDX-License-Identifier: Apache-2.0
"""Which peer MSGin5G Server an address is homed on (TS 23.554 8.7.5 step 2: the server
"analyses the target" and finds it belongs to another server; ADR 0013).

Peers are configured with patterns over the address key `KIND:value` (`*` and `?` wildcards,
exact case). The first peer whose pattern matches wins; answers are cached, so the hot path
costs one dict lookup.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from fnmatch import translate

from msgin5g.core.message import Address


class PeerDirectory:
    """Maps addresses to the name of the peer server they are homed on, if any."""

    def __init__(self, peers: Iterable[tuple[str, Sequence[str]]], *, cache_size: int = 65_536):
        self._peers = [
            (name, re.compile("|".join(f"(?:{translate(p)})" for p in patterns)))
            for name, patterns in peers
            if patterns
        ]
        self._cache: dict[str, str | None] = {}
        self._cache_size = cache_size

    def home_of(self, address: Address) -> str | None:
        """The peer `address` is homed on, or None when it is not a peer's user."""
        key = address.key
        try:
            return self._cache[key]
        except KeyError:
            pass
        home = next((name for name, pattern in self._peers if pattern.match(key)), None)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[key] = home
        return home

    def homed_elsewhere(self, address: Address) -> bool:
        return bool(self._peers) and self.home_of(address) is not None
