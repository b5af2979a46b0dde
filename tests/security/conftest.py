# SPDX-License-Identifier: Apache-2.0
"""Real keys, a real JWK Set file and real signed tokens for the authentication tests."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from msgin5g.bootstrap import ServerApp
from tests.support import oas
from tests.support.inprocess import BASE_URL, running_server

ISSUER = "https://ccf.test"
AUDIENCE = "msgin5g-test"
KID = "key-1"

CLIENTS: list[dict[str, Any]] = [
    {"client_id": "as1", "role": "AS", "as_svc_ids": ["as1"]},
    {"client_id": "as2", "role": "AS", "as_svc_ids": ["as2"]},
    {"client_id": "gw1", "role": "GATEWAY", "addresses": ["UE:gw1-*"]},
    {"client_id": "gw2", "role": "GATEWAY", "addresses": ["UE:gw2-*"]},
    {"client_id": "ops", "role": "ADMIN"},
]

Mint = Callable[..., str]


@dataclass(frozen=True)
class Issuer:
    """A token issuer of the test: its private key and the JWKS file the server reads."""

    key: rsa.RSAPrivateKey
    jwks_path: Path

    def mint(
        self,
        client_id: str,
        scope: str,
        *,
        key: Any = None,
        alg: str = "RS256",
        kid: str | None = KID,
        lifetime: float = 300.0,
        **claims: Any,
    ) -> str:
        now = time.time()
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": client_id,
            "scope": scope,
            "iat": int(now),
            "exp": int(now + lifetime),
            **claims,
        }
        headers = {"kid": kid} if kid else None
        return jwt.encode(payload, key or self.key, algorithm=alg, headers=headers)


def write_jwks(path: Path, keys: list[tuple[str, rsa.RSAPrivateKey]]) -> None:
    jwks = []
    for kid, key in keys:
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        jwks.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
    path.write_text(json.dumps({"keys": jwks}))


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return new_rsa_key()


@pytest.fixture
def issuer(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> Issuer:
    path = tmp_path / "jwks.json"
    write_jwks(path, [(KID, rsa_key)])
    return Issuer(rsa_key, path)


@pytest.fixture
def limits() -> dict[str, Any]:
    """The `[limits]` section of the server; a test module overrides this fixture."""
    return {}


@pytest.fixture
async def server_app(
    tmp_path: Path, issuer: Issuer, limits: dict[str, Any]
) -> AsyncIterator[ServerApp]:
    auth = {
        "mode": "jwks",
        "jwks": str(issuer.jwks_path),
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "clients": CLIENTS,
    }
    async with running_server(tmp_path, {"auth": auth, "limits": limits}) as app:
        yield app


@pytest.fixture
async def api(server_app: ServerApp) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose every response is checked against the official OpenAPI files."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=server_app.app),
        base_url=BASE_URL,
        event_hooks=oas.EVENT_HOOKS,
    ) as client:
        yield client


@pytest.fixture
async def plain(server_app: ServerApp) -> AsyncIterator[httpx.AsyncClient]:
    """A client for our extension APIs (no official file to check against)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=server_app.app), base_url=BASE_URL
    ) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def as_message(ori: str, dest: tuple[str, str], msg_id: str) -> dict[str, Any]:
    return {
        "oriAddr": {"addrType": "AS", "addr": ori},
        "destAddr": {"addrType": dest[0], "addr": dest[1]},
        "msgId": msg_id,
        "stoAndFwInd": True,
        "payload": "hello",
    }
