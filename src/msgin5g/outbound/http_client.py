# SPDX-License-Identifier: Apache-2.0
"""One HTTP client per peer origin, HTTP/2 first (TS 29.500 5.2) with HTTP/1.1 fallback.

Cleartext origins are tried with HTTP/2 prior knowledge (h2c); a peer that answers the
connection preface with something that is not HTTP/2 is remembered as HTTP/1.1-only and the
request is sent again at once over HTTP/1.1 (DESIGN 2.2: both kinds of receivers work).
TLS origins negotiate h2 or http/1.1 by ALPN.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import httpx

log = logging.getLogger(__name__)

_PROTOCOL_ERRORS = (
    httpx.RemoteProtocolError,
    httpx.LocalProtocolError,
    httpx.ReadError,
    httpx.WriteError,
)


class PeerUnavailable(Exception):
    """The peer could not be reached or did not answer in time (worth retrying)."""


class HttpClientPool:
    """Keeps connections per origin and learns which HTTP version each origin speaks."""

    def __init__(self, *, timeout: float = 10.0, verify: bool | str = True) -> None:
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        self._verify = verify
        self._limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
        self._h1_only: set[str] = set()
        self._clients: dict[tuple[str, str], httpx.AsyncClient] = {}

    def _client(self, origin: str, mode: str) -> httpx.AsyncClient:
        client = self._clients.get((origin, mode))
        if client is None:
            if mode == "h2c":
                client = httpx.AsyncClient(
                    http1=False, http2=True, timeout=self._timeout, limits=self._limits
                )
            elif mode == "tls":
                client = httpx.AsyncClient(
                    http2=True, timeout=self._timeout, limits=self._limits, verify=self._verify
                )
            else:
                client = httpx.AsyncClient(timeout=self._timeout, limits=self._limits)
            self._clients[(origin, mode)] = client
        return client

    async def post_json(self, url: str, body: bytes) -> httpx.Response:
        """POST `body` as application/json; raises PeerUnavailable when no answer came."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        headers = {"content-type": "application/json"}
        if parts.scheme == "https":
            mode = "tls"
        elif origin in self._h1_only:
            mode = "h1"
        else:
            mode = "h2c"
        try:
            try:
                return await self._client(origin, mode).post(url, content=body, headers=headers)
            except _PROTOCOL_ERRORS:
                if mode == "tls":
                    raise
                # The peer did not understand what we spoke: try the other version once and
                # remember it (a peer that changes its stack is re-learned the same way).
                other = "h1" if mode == "h2c" else "h2c"
                log.info("peer protocol mismatch, switching", extra={"origin": origin, "to": other})
                if other == "h1":
                    self._h1_only.add(origin)
                else:
                    self._h1_only.discard(origin)
                await self._drop(origin, mode)
                return await self._client(origin, other).post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise PeerUnavailable(f"{type(exc).__name__}: {exc or 'no answer'}") from exc

    async def _drop(self, origin: str, mode: str) -> None:
        client = self._clients.pop((origin, mode), None)
        if client is not None:
            await client.aclose()

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
