# SPDX-License-Identifier: Apache-2.0
"""This process as an OAuth 2.0 client (RFC 6749 4.4): gets an access token with its client
credentials from a token endpoint and keeps it until shortly before it expires (ADR 0015).

Used by the server toward gateways and peer servers, and by gateways, the AS SDK and the CLI
toward the server. The secret comes from the environment or a file, not the command line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

SECRET_ENV = "MSGIN5G_AUTH_CLIENT_SECRET"


class TokenUnavailable(Exception):
    """The token endpoint refused or could not be reached; the message names why."""


def read_secret(secret: str = "", secret_file: str = "", *, env: str = SECRET_ENV) -> str:
    """A secret: given, else from `secret_file`, else from the environment variable `env`
    (the client secret's by default); raises OSError for an unreadable file."""
    if secret:
        return secret
    if secret_file:
        return Path(secret_file).expanduser().read_text().strip()
    return os.environ.get(env, "")


class TokenSource:
    """An `Authorization` header value for requests, refreshed `margin_s` before expiry."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str = "",
        margin_s: float = 60.0,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = token_url
        self._client_id = client_id
        self._secret = client_secret
        self._scope = scope
        self._margin = margin_s
        self._timeout = timeout
        self._clock = clock
        self._value: bytes | None = None
        self._valid_until = 0.0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:  # never show the secret
        return f"TokenSource({self._url!r}, client_id={self._client_id!r})"

    async def authorization(self) -> bytes:
        """`Bearer <token>`; fetches a new token when the cached one is (nearly) expired."""
        if self._value is not None and self._clock() < self._valid_until:
            return self._value
        async with self._lock:
            if self._value is None or self._clock() >= self._valid_until:
                await self._fetch()
            assert self._value is not None
            return self._value

    def invalidate(self) -> None:
        """Forget the token (the peer answered 401): the next request fetches a new one."""
        self._value = None

    async def _fetch(self) -> None:
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.post(
                    self._url, data=form, auth=(self._client_id, self._secret)
                )
        except httpx.HTTPError as exc:
            raise TokenUnavailable(f"token endpoint {self._url}: {type(exc).__name__}") from None
        if response.status_code != 200:
            try:
                error = response.json().get("error", "")
            except ValueError:
                error = ""
            raise TokenUnavailable(
                f"token endpoint {self._url} answered {response.status_code} {error}".strip()
            )
        body = response.json()
        token = body.get("access_token")
        if not isinstance(token, str) or body.get("token_type", "").lower() != "bearer":
            raise TokenUnavailable(f"token endpoint {self._url} gave no bearer token")
        lifetime = float(body.get("expires_in", 300))
        self._value = f"Bearer {token}".encode()
        self._valid_until = self._clock() + max(lifetime - self._margin, lifetime / 2)
        log.info(
            "access token obtained", extra={"client_id": self._client_id, "expires_in": lifetime}
        )


class BearerAuth(httpx.Auth):
    """httpx authentication with a TokenSource: one fresh token and retry on a 401."""

    def __init__(self, source: TokenSource) -> None:
        self._source = source

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["authorization"] = (await self._source.authorization()).decode()
        response = yield request
        if response.status_code == 401:
            self._source.invalidate()
            request.headers["authorization"] = (await self._source.authorization()).decode()
            yield request


def bearer_auth(token_url: str, client_id: str, secret_file: str = "") -> BearerAuth | None:
    """BearerAuth from CLI options (the secret from a file or $MSGIN5G_AUTH_CLIENT_SECRET);
    None when no token endpoint is given. Raises TokenUnavailable when the secret is missing."""
    if not token_url:
        return None
    secret = read_secret(secret_file=secret_file)
    if not client_id or not secret:
        raise TokenUnavailable(
            f"--token-url needs --client-id and a secret (--client-secret-file or ${SECRET_ENV})"
        )
    return BearerAuth(TokenSource(token_url, client_id, secret))
