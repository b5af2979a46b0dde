# SPDX-License-Identifier: Apache-2.0
"""Address patterns, and which peer MSGin5G Server an address is homed on (TS 23.554 8.7.5
step 2: the server "analyses the target" and finds it belongs to another server; ADR 0013).

A pattern matches the address key `KIND:value` with `*` and `?` wildcards, case-sensitively
(addresses are compared exactly, DESIGN 2.1). The same patterns name a peer's users
(`[[peering.peers]] addresses`) and what a client may speak for (`[[auth.clients]] addresses`,
ADR 0015). The first peer whose pattern matches wins; answers are cached, so the hot path costs
one dict lookup.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from fnmatch import translate

from msgin5g.core.message import Address


class AddressPatterns:
    """A set of `KIND:value` patterns compiled into one expression."""

    def __init__(self, patterns: Iterable[str]) -> None:
        joined = "|".join(f"(?:{translate(p)})" for p in patterns)
        self._regex = re.compile(joined) if joined else None

    def __bool__(self) -> bool:
        return self._regex is not None

    def matches_key(self, key: str) -> bool:
        return self._regex is not None and self._regex.match(key) is not None


@functools.lru_cache(maxsize=1024)
def address_patterns(patterns: tuple[str, ...]) -> AddressPatterns:
    """The compiled form of `patterns`, shared by every holder of the same tuple."""
    return AddressPatterns(patterns)


class PeerDirectory:
    """Maps addresses to the name of the peer server they are homed on, if any."""

    def __init__(self, peers: Iterable[tuple[str, Sequence[str]]], *, cache_size: int = 65_536):
        self._peers = [(name, address_patterns(tuple(p))) for name, p in peers if p]
        self._cache: dict[str, str | None] = {}
        self._cache_size = cache_size

    def home_of(self, address: Address) -> str | None:
        """The peer `address` is homed on, or None when it is not a peer's user."""
        key = address.key
        try:
            return self._cache[key]
        except KeyError:
            pass
        home = next((name for name, patterns in self._peers if patterns.matches_key(key)), None)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[key] = home
        return home

    def homed_elsewhere(self, address: Address) -> bool:
        return bool(self._peers) and self.home_of(address) is not None
