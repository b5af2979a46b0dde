# SPDX-License-Identifier: Apache-2.0
"""The built-in authorization server (the embedded default for what a CAPIF core function or
the NRF does): `POST /oauth2/token` with the client credentials grant (RFC 6749 4.4; the
TS 29.510 AccessTokenReq/AccessTokenRsp shape) and `GET /oauth2/jwks` (RFC 7517).

Clients authenticate with HTTP Basic (RFC 6749 2.3.1) or `client_id`/`client_secret` in the
form. Errors follow RFC 6749 5.2 (`{"error": ...}`); secrets never appear in logs or errors.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from urllib.parse import parse_qs, unquote_plus

import jwt

from msgin5g.api.app import Operation
from msgin5g.api.http import Request, Response
from msgin5g.security.clients import ClientRegistry, ConfiguredClient
from msgin5g.security.keys import SigningKey
from msgin5g.security.passwords import verify_secret

log = logging.getLogger(__name__)

FORM = b"application/x-www-form-urlencoded"
_NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]


class TokenError(Exception):
    def __init__(self, status: int, error: str, description: str, *, basic: bool = False) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.basic = basic

    def response(self) -> Response:
        body = json.dumps({"error": self.error, "error_description": self.description}).encode()
        headers = list(_NO_STORE)
        if self.basic:
            headers.append((b"www-authenticate", b'Basic realm="msgin5g"'))
        return Response(self.status, body, b"application/json", headers)


class TokenIssuer:
    """Signs access tokens for configured clients with the server's key."""

    def __init__(
        self,
        key: SigningKey,
        clients: ClientRegistry,
        *,
        issuer: str,
        audience: str,
        ttl_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._clients = clients
        self._issuer = issuer
        self._audience = audience
        self._ttl = int(ttl_s)
        self._clock = clock
        self._known: dict[str, bytes] = {}
        """client id -> SHA-256 of its last verified secret: scrypt once per client."""

    def jwks(self) -> dict[str, list[dict[str, object]]]:
        return {"keys": [self._key.public_jwk()]}

    def issue(self, client: ConfiguredClient, scopes: frozenset[str]) -> str:
        now = int(self._clock())
        claims = {
            "iss": self._issuer,
            "sub": client.principal.client_id,
            "client_id": client.principal.client_id,
            "aud": self._audience,
            "scope": " ".join(sorted(scopes)),
            "iat": now,
            "nbf": now,
            "exp": now + self._ttl,
            "jti": secrets.token_urlsafe(12),
        }
        return jwt.encode(
            claims, self._key.private_key, algorithm=self._key.alg, headers={"kid": self._key.kid}
        )

    async def token(self, request: Request) -> Response:
        try:
            form = _form(request)
            if form.get("grant_type") != "client_credentials":
                raise TokenError(
                    400, "unsupported_grant_type", "only client_credentials is supported"
                )
            client = await self._authenticate(request, form)
            wanted = frozenset(form.get("scope", "").split())
            allowed = client.principal.scopes
            if wanted - allowed:
                raise TokenError(
                    400,
                    "invalid_scope",
                    f"scope not granted to this client: {' '.join(sorted(wanted - allowed))}",
                )
            scopes = wanted or allowed
        except TokenError as exc:
            return exc.response()
        body = {
            "access_token": self.issue(client, scopes),
            "token_type": "Bearer",
            "expires_in": self._ttl,
            "scope": " ".join(sorted(scopes)),
        }
        log.info(
            "token issued",
            extra={"client_id": client.principal.client_id, "scope": body["scope"]},
        )
        return Response(200, json.dumps(body).encode(), b"application/json", list(_NO_STORE))

    async def _authenticate(self, request: Request, form: dict[str, str]) -> ConfiguredClient:
        basic = request.headers.get(b"authorization", b"")
        if basic[:6].lower() == b"basic ":
            try:
                pair = base64.b64decode(basic[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise TokenError(
                    401, "invalid_client", "malformed Basic credentials", basic=True
                ) from None
            raw_id, sep, raw_secret = pair.partition(":")
            if not sep:
                raise TokenError(401, "invalid_client", "malformed Basic credentials", basic=True)
            client_id, secret, used_basic = unquote_plus(raw_id), unquote_plus(raw_secret), True
        else:
            client_id = form.get("client_id") or form.get("nfInstanceId", "")
            secret, used_basic = form.get("client_secret", ""), False
        client = self._clients.get(client_id)
        if client is None or not client.secret_hash or not secret:
            raise TokenError(
                401, "invalid_client", "client authentication failed", basic=used_basic
            )
        digest = hashlib.sha256(secret.encode()).digest()
        known = self._known.get(client_id)
        if known is None or not hmac.compare_digest(known, digest):
            if not await asyncio.to_thread(verify_secret, secret, client.secret_hash):
                log.info("token refused: bad client secret", extra={"client_id": client_id})
                raise TokenError(
                    401, "invalid_client", "client authentication failed", basic=used_basic
                )
            self._known[client_id] = digest
        return client

    def operations(self) -> list[Operation]:
        jwks_body = json.dumps(self.jwks()).encode()

        async def jwks(_request: Request) -> Response:
            return Response(200, jwks_body, b"application/jwk-set+json")

        return [
            Operation("POST", "/oauth2/token", "oauth2.token", self.token),
            Operation("GET", "/oauth2/jwks", "oauth2.jwks", jwks),
        ]


def _form(request: Request) -> dict[str, str]:
    ctype = request.headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    if ctype != FORM:
        raise TokenError(400, "invalid_request", "the body must be form-encoded (RFC 6749 4.4.2)")
    try:
        parsed = parse_qs(request.body.decode(), strict_parsing=bool(request.body))
    except (UnicodeDecodeError, ValueError):
        raise TokenError(400, "invalid_request", "the form cannot be parsed") from None
    if any(len(v) > 1 for v in parsed.values()):
        raise TokenError(400, "invalid_request", "a parameter is repeated (RFC 6749 3.2)")
    return {k: v[0] for k, v in parsed.items()}
