# SPDX-License-Identifier: Apache-2.0
"""Builds the HTTP admission parts from Settings (`[auth]`, `[limits]`) for bootstrap."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from msgin5g.security.client import TokenSource, read_secret
from msgin5g.security.clients import ClientRegistry, configured_client
from msgin5g.security.jwks import KeySet
from msgin5g.security.keys import load_or_create
from msgin5g.security.principal import PEER_ROLE
from msgin5g.security.ratelimit import RateLimiter
from msgin5g.security.token_endpoint import TokenIssuer
from msgin5g.security.tokens import TokenValidator
from msgin5g.settings import AuthSettings, LimitSettings


@dataclass(frozen=True, slots=True)
class HttpSecurity:
    validator: TokenValidator | None
    issuer: TokenIssuer | None
    limiter: RateLimiter | None
    max_in_flight: int
    keys: KeySet | None

    async def start(self) -> None:
        """Load an external JWK Set once before serving (a failure is retried on demand)."""
        if self.keys is not None and self.issuer is None:
            await self.keys.refresh(force=True)

    def summary(self) -> dict[str, Any]:
        """What is enabled, for the start-up log and `msgin5g check` (no secrets)."""
        return {
            "auth": "off" if self.validator is None else ("builtin" if self.issuer else "jwks"),
            "jwks": self.keys.source if self.keys is not None else None,
            "rate_limit": self.limiter is not None,
            "max_in_flight": self.max_in_flight,
        }


def clients_from(auth: AuthSettings) -> ClientRegistry:
    return ClientRegistry(
        configured_client(
            c.client_id,
            c.role,
            secret_hash=c.secret_hash,
            scopes=c.scopes,
            as_svc_ids=c.as_svc_ids,
            addresses=c.addresses,
        )
        for c in auth.clients
    )


def http_security(auth: AuthSettings, limits: LimitSettings, data_dir: Path) -> HttpSecurity:
    limiter = RateLimiter(limits.rate, limits.burst) if limits.rate > 0 else None
    if auth.mode == "off":
        return HttpSecurity(None, None, limiter, limits.max_in_flight, None)
    clients = clients_from(auth)
    issuer = None
    if auth.mode == "builtin":
        key = load_or_create(data_dir)
        keys = KeySet(static=[key.public_jwk()])
        issuer = TokenIssuer(
            key, clients, issuer=auth.issuer, audience=auth.audience, ttl_s=auth.token_ttl_s
        )
    else:
        keys = KeySet(auth.jwks)
    validator = TokenValidator(
        keys, clients.principal, issuer=auth.issuer, audience=auth.audience, leeway_s=auth.leeway_s
    )
    return HttpSecurity(validator, issuer, limiter, limits.max_in_flight, keys)


def origin_of(url: str) -> str:
    """scheme://host[:port] of `url`, the key of HttpClientPool.authorize."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def outbound_token_source(auth: AuthSettings) -> TokenSource | None:
    """The server's own client credentials toward gateways and peers (`auth.token_url`)."""
    if not auth.token_url:
        return None
    secret = read_secret(auth.client_secret, auth.client_secret_file)
    return TokenSource(auth.token_url, auth.client_id, secret)


def gateway_validator(
    jwks: str, issuer: str, audience: str, client_ids: list[str]
) -> TokenValidator:
    """A gateway's check of its callers (the servers in `client_ids`, role PEER: msgg-*)."""
    clients = ClientRegistry(configured_client(c, PEER_ROLE) for c in client_ids)
    return TokenValidator(KeySet(jwks), clients.principal, issuer=issuer, audience=audience)
