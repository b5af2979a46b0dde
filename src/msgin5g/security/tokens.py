# SPDX-License-Identifier: Apache-2.0
"""Bearer token validation (RFC 6750, RFC 7519, TS 33.122 Annex C) for every protected API.

A token is a JWS-signed JWT with `iss`, `aud`, `exp`, a client id (`client_id` or `sub`) and a
space-separated `scope` of apiNames. Only asymmetric algorithms are accepted, and only the one
the key declares (no `none`, no HS with a public key). A verified token is cached under its
raw text until it expires, so the per-request cost is one dict lookup (DESIGN 4).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from msgin5g.api.http import HttpError
from msgin5g.security.jwks import KeySet
from msgin5g.security.principal import Principal

ClientLookup = Callable[[str], Principal | None]
"""A configured client's grants by client id (None: not a client of this server)."""

_MAX_CACHE = 50_000


class AuthError(HttpError):
    """401 with `WWW-Authenticate: Bearer error=...` (RFC 6750 3.1) or 403 insufficient_scope."""

    def __init__(self, status: int, error: str, detail: str, *, cause: str) -> None:
        challenge = f'Bearer realm="msgin5g", error="{error}"'
        super().__init__(
            status, detail, cause=cause, headers=[(b"www-authenticate", challenge.encode())]
        )


def missing_token() -> AuthError:
    error = AuthError(401, "", "a bearer token is required", cause="MISSING_TOKEN")
    error.headers = [(b"www-authenticate", b'Bearer realm="msgin5g"')]
    return error


def invalid_token(detail: str) -> AuthError:
    return AuthError(401, "invalid_token", detail, cause="INVALID_TOKEN")


def insufficient_scope(scope: str) -> AuthError:
    return AuthError(
        403,
        "insufficient_scope",
        f"the token does not grant scope {scope}",
        cause="INSUFFICIENT_SCOPE",
    )


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    expires_at: float


class TokenValidator:
    """Verifies bearer tokens against the issuer's keys and maps them to configured clients."""

    def __init__(
        self,
        keys: KeySet,
        clients: ClientLookup,
        *,
        issuer: str,
        audience: str,
        leeway_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._clients = clients
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_s
        self._clock = clock
        self._cache: dict[bytes, _Verified] = {}

    def cached(self, token: bytes) -> Principal | None:
        """The principal of an already verified, unexpired token; O(1)."""
        hit = self._cache.get(token)
        if hit is None:
            return None
        if hit.expires_at + self._leeway <= self._clock():
            del self._cache[token]
            return None
        return hit.principal

    async def verify(self, token: bytes) -> Principal:
        """Verify `token` fully; raises AuthError (401/403) when it is not acceptable."""
        text = token.strip().decode("ascii", "replace")
        try:
            header = jwt.get_unverified_header(text)
        except jwt.PyJWTError:
            raise invalid_token("the token is not a JWS-signed JWT") from None
        kid = header.get("kid")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg == "none" or alg.startswith("HS"):
            raise invalid_token(f"algorithm {alg!r} is not accepted")
        key = self._keys.get(kid if isinstance(kid, str) else None)
        if key is None and await self._keys.refresh():
            key = self._keys.get(kid if isinstance(kid, str) else None)
        if key is None:
            raise invalid_token("the token is signed with an unknown key")
        if key.algorithm_name != alg:
            raise invalid_token(f"algorithm {alg!r} does not match the key")
        try:
            claims: dict[str, Any] = jwt.decode(
                text,
                key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise invalid_token("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise invalid_token("the token is not meant for this server (aud)") from None
        except jwt.InvalidIssuerError:
            raise invalid_token("the token comes from another issuer (iss)") from None
        except jwt.PyJWTError as exc:
            raise invalid_token(f"the token is not valid: {exc}") from None
        principal = self._principal(claims)
        if len(self._cache) >= _MAX_CACHE:
            self._evict()
        self._cache[token] = _Verified(principal, float(claims["exp"]))
        return principal

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        client_id = claims.get("client_id") or claims.get("sub")
        if not isinstance(client_id, str) or not client_id:
            raise invalid_token("the token names no client (client_id or sub)")
        client = self._clients(client_id)
        if client is None:
            raise AuthError(
                403,
                "invalid_token",
                f"client {client_id!r} is not known here",
                cause="UNKNOWN_CLIENT",
            )
        raw_scope = claims.get("scope", "")
        granted = frozenset(raw_scope.split()) if isinstance(raw_scope, str) else frozenset()
        return Principal(
            client_id=client.client_id,
            role=client.role,
            scopes=granted & client.scopes,
            as_svc_ids=client.as_svc_ids,
            addresses=client.addresses,
        )

    def _evict(self) -> None:
        now = self._clock()
        self._cache = {t: v for t, v in self._cache.items() if v.expires_at > now}
        if len(self._cache) >= _MAX_CACHE:
            self._cache.clear()
