# SPDX-License-Identifier: Apache-2.0
"""One HTTP client per peer origin, HTTP/2 first (TS 29.500 5.2) with HTTP/1.1 fallback.

Cleartext origins are tried with HTTP/2 prior knowledge (h2c); a peer that answers the
connection preface with something that is not HTTP/2 is remembered as HTTP/1.1-only and the
request is sent again at once over HTTP/1.1 (DESIGN 2.2: both kinds of receivers work).
TLS origins negotiate h2 or http/1.1 by ALPN, verified against a CA bundle and presenting a
client certificate when configured (`[outbound]`, ADR 0016).
"""

from __future__ import annotations

import logging
import ssl
from typing import Protocol
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


class Authorizer(Protocol):
    """Supplies the `Authorization` value toward one origin (security.client.TokenSource)."""

    async def authorization(self) -> bytes: ...

    def invalidate(self) -> None: ...


def client_tls_context(
    ca_file: str = "", client_cert: str = "", client_key: str = ""
) -> ssl.SSLContext:
    """The TLS context of https:// peers: verified against `ca_file` (PEM; the system store
    when empty), presenting `client_cert`/`client_key` (PEM) to peers that ask for one.

    Raises:
        OSError, ssl.SSLError: a file is missing or not a valid certificate or key.
    """
    context = ssl.create_default_context(cafile=ca_file or None)
    if client_cert:
        context.load_cert_chain(client_cert, client_key or None)
    return context


class HttpClientPool:
    """Keeps connections per origin and learns which HTTP version each origin speaks."""

    def __init__(
        self, *, timeout: float = 10.0, verify: bool | str | ssl.SSLContext = True
    ) -> None:
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        self._verify = verify
        self._limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
        self._h1_only: set[str] = set()
        self._clients: dict[tuple[str, str], httpx.AsyncClient] = {}
        self._authorizers: dict[str, Authorizer] = {}

    def authorize(self, origin: str, authorizer: Authorizer) -> None:
        """Send a bearer token from `authorizer` with every request to `origin` (ADR 0015)."""
        self._authorizers[origin.rstrip("/")] = authorizer

    def authorizer(self, origin: str) -> Authorizer | None:
        return self._authorizers.get(origin) if self._authorizers else None

    async def auth_header(self, origin: str) -> bytes | None:
        """The Authorization value toward `origin`; PeerUnavailable when no token comes."""
        authorizer = self.authorizer(origin)
        if authorizer is None:
            return None
        try:
            return await authorizer.authorization()
        except Exception as exc:  # a token endpoint failure is a retryable hand-over failure
            raise PeerUnavailable(f"no access token: {exc}") from None

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
        authorizer = self.authorizer(origin)
        if authorizer is not None:
            headers["authorization"] = (await self.auth_header(origin) or b"").decode()
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
