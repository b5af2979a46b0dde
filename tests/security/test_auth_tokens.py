# SPDX-License-Identifier: Apache-2.0
"""Bearer tokens on the HTTP APIs (RFC 6750, RFC 7519; ADR 0015), with real signed tokens
against a real JWK Set file: valid, missing, forged, expired, wrong aud/iss/scope, alg=none,
HS256 with the public key (algorithm confusion), an unknown client, and key rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import RSAAlgorithm

from msgin5g.bootstrap import ServerApp
from msgin5g.core.message import AS, Address
from tests.security.conftest import KID, Issuer, as_message, bearer, new_rsa_key, write_jwks

DELIVER = "/msgs-msgdelivery/v1/deliver-as-message"
SCOPE = "msgs-msgdelivery"


async def post(api: httpx.AsyncClient, token: str | None, msg_id: str = "m-1") -> httpx.Response:
    headers = bearer(token) if token is not None else {}
    return await api.post(DELIVER, json=as_message("as1", ("AS", "as2"), msg_id), headers=headers)


def refused(response: httpx.Response, status: int, cause: str, error: str | None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["cause"] == cause
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    if error is None:
        assert "error=" not in challenge
    else:
        assert f'error="{error}"' in challenge


async def test_a_valid_token_is_served(
    api: httpx.AsyncClient, issuer: Issuer, server_app: ServerApp
) -> None:
    response = await post(api, issuer.mint("as1", SCOPE))
    assert response.status_code == 200, response.text
    assert await server_app.store.find_message(Address(AS, "as1"), "m-1") is not None


async def test_a_request_without_token_gets_401(api: httpx.AsyncClient) -> None:
    refused(await post(api, None), 401, "MISSING_TOKEN", None)
    response = await api.post(DELIVER, json={}, headers={"authorization": "Basic YTpi"})
    refused(response, 401, "MISSING_TOKEN", None)


async def test_a_token_signed_by_another_key_gets_401(
    api: httpx.AsyncClient, issuer: Issuer, server_app: ServerApp
) -> None:
    forged = issuer.mint("as1", SCOPE, key=new_rsa_key())
    refused(await post(api, forged), 401, "INVALID_TOKEN", "invalid_token")
    assert await server_app.store.find_message(Address(AS, "as1"), "m-1") is None


async def test_a_tampered_token_gets_401(api: httpx.AsyncClient, issuer: Issuer) -> None:
    header, payload, signature = issuer.mint("as2", SCOPE).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "as1"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = f"{header}.{forged_payload}.{signature}"
    refused(await post(api, forged), 401, "INVALID_TOKEN", "invalid_token")


async def test_an_expired_token_gets_401(api: httpx.AsyncClient, issuer: Issuer) -> None:
    expired = issuer.mint("as1", SCOPE, lifetime=-120)  # beyond the 30 s leeway
    response = await post(api, expired)
    refused(response, 401, "INVALID_TOKEN", "invalid_token")
    assert "expired" in response.json()["detail"]


async def test_a_token_not_yet_valid_gets_401(api: httpx.AsyncClient, issuer: Issuer) -> None:
    future = issuer.mint("as1", SCOPE, nbf=int(time.time()) + 600)
    refused(await post(api, future), 401, "INVALID_TOKEN", "invalid_token")


async def test_a_token_for_another_audience_gets_401(
    api: httpx.AsyncClient, issuer: Issuer
) -> None:
    response = await post(api, issuer.mint("as1", SCOPE, aud="another-nf"))
    refused(response, 401, "INVALID_TOKEN", "invalid_token")
    assert "aud" in response.json()["detail"]


async def test_a_token_from_another_issuer_gets_401(api: httpx.AsyncClient, issuer: Issuer) -> None:
    response = await post(api, issuer.mint("as1", SCOPE, iss="https://evil.test"))
    refused(response, 401, "INVALID_TOKEN", "invalid_token")


async def test_a_token_without_exp_gets_401(api: httpx.AsyncClient, issuer: Issuer) -> None:
    claims = {"iss": "https://ccf.test", "aud": "msgin5g-test", "sub": "as1", "scope": SCOPE}
    token = jwt.encode(claims, issuer.key, algorithm="RS256", headers={"kid": KID})
    refused(await post(api, token), 401, "INVALID_TOKEN", "invalid_token")


async def test_a_token_for_another_api_gets_403_insufficient_scope(
    api: httpx.AsyncClient, issuer: Issuer
) -> None:
    token = issuer.mint("as1", "msgs-asregistration msgs-topiclistevent")
    response = await post(api, token)
    refused(response, 403, "INSUFFICIENT_SCOPE", "insufficient_scope")


async def test_a_scope_the_client_is_not_configured_for_is_not_granted(
    api: httpx.AsyncClient, issuer: Issuer
) -> None:
    # The issuer says ext-groups, but client as1 (role AS) is not configured for it.
    token = issuer.mint("as1", "ext-groups msgs-msgdelivery")
    response = await api.put(
        "/ext-groups/v1/groups/g1",
        json={"members": [{"addrType": "UE", "addr": "u1"}]},
        headers=bearer(token),
    )
    assert response.status_code == 403
    assert response.json()["cause"] == "INSUFFICIENT_SCOPE"


def _unsigned(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': KID})}.{part(claims)}."


async def test_an_unsigned_alg_none_token_gets_401(api: httpx.AsyncClient) -> None:
    token = _unsigned(
        {
            "iss": "https://ccf.test",
            "aud": "msgin5g-test",
            "sub": "as1",
            "scope": SCOPE,
            "exp": int(time.time()) + 300,
        }
    )
    response = await post(api, token)
    refused(response, 401, "INVALID_TOKEN", "invalid_token")
    assert "'none'" in response.json()["detail"]


async def test_hs256_signed_with_the_public_key_gets_401(
    api: httpx.AsyncClient, issuer: Issuer
) -> None:
    # Algorithm confusion: the attacker knows the public JWK and uses it as an HMAC secret.
    public = json.dumps(RSAAlgorithm.to_jwk(issuer.key.public_key(), as_dict=True)).encode()

    def part(data: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=")

    claims = {
        "iss": "https://ccf.test",
        "aud": "msgin5g-test",
        "sub": "as1",
        "scope": SCOPE,
        "exp": int(time.time()) + 300,
    }
    signing_input = part({"alg": "HS256", "typ": "JWT", "kid": KID}) + b"." + part(claims)
    mac = hmac.new(public, signing_input, hashlib.sha256).digest()
    token = (signing_input + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()
    refused(await post(api, token), 401, "INVALID_TOKEN", "invalid_token")


async def test_an_algorithm_other_than_the_keys_gets_401(
    api: httpx.AsyncClient, issuer: Issuer
) -> None:
    token = issuer.mint("as1", SCOPE, alg="PS256")  # same RSA key, the JWK says RS256
    refused(await post(api, token), 401, "INVALID_TOKEN", "invalid_token")
    es = issuer.mint("as1", SCOPE, key=ec.generate_private_key(ec.SECP256R1()), alg="ES256")
    refused(await post(api, es), 401, "INVALID_TOKEN", "invalid_token")


async def test_garbage_tokens_get_401(api: httpx.AsyncClient) -> None:
    for token in ("x", "a.b.c", "e30.e30.", "é" * 10):
        response = await api.post(
            DELIVER, json={}, headers={"authorization": f"Bearer {token}".encode()}
        )
        refused(response, 401, "INVALID_TOKEN", "invalid_token")


async def test_a_client_the_server_does_not_know_gets_403(
    api: httpx.AsyncClient, issuer: Issuer
) -> None:
    response = await post(api, issuer.mint("stranger", SCOPE))
    assert response.status_code == 403
    assert response.json()["cause"] == "UNKNOWN_CLIENT"


async def test_operations_endpoints_need_no_token(plain: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert (await plain.get(path)).status_code == 200, path


async def test_a_rotated_key_is_picked_up_from_the_jwks_file(
    api: httpx.AsyncClient, issuer: Issuer, server_app: ServerApp
) -> None:
    new_key = new_rsa_key()
    write_jwks(issuer.jwks_path, [(KID, issuer.key), ("key-2", new_key)])
    server_app.security.keys._refreshed_at = -1e9  # type: ignore[union-attr]  # skip throttle
    token = issuer.mint("as1", SCOPE, key=new_key, kid="key-2")
    assert (await post(api, token)).status_code == 200
