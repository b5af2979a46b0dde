# SPDX-License-Identifier: Apache-2.0
"""The built-in token endpoint (RFC 6749 4.4 client credentials, ADR 0015): right and wrong
secrets, HTTP Basic, scopes, the JWK Set, the key kept across restarts, no secret in logs."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from msgin5g.bootstrap import ServerApp
from msgin5g.security.passwords import hash_secret
from tests.security.conftest import as_message, bearer
from tests.support.inprocess import BASE_URL, running_server

SECRET = "s3cret-of-as1-0123456789"
GW_SECRET = "s3cret-of-gw1-0123456789"
TOKEN = "/oauth2/token"


@pytest.fixture(scope="module")
def clients() -> list[dict[str, Any]]:
    return [
        {
            "client_id": "as1",
            "role": "AS",
            "as_svc_ids": ["as1"],
            "secret_hash": hash_secret(SECRET),
        },
        {
            "client_id": "gw1",
            "role": "GATEWAY",
            "addresses": ["UE:gw1-*"],
            "secret_hash": hash_secret(GW_SECRET),
        },
        {"client_id": "ext", "role": "AS", "as_svc_ids": ["ext"]},  # no secret: jwks-only
    ]


def builtin(clients: list[dict[str, Any]]) -> dict[str, Any]:
    return {"auth": {"mode": "builtin", "audience": "srv-1", "clients": clients}}


@pytest.fixture
async def app(tmp_path: Path, clients: list[dict[str, Any]]) -> AsyncIterator[ServerApp]:
    async with running_server(tmp_path, builtin(clients)) as server:
        yield server


@pytest.fixture
async def http(app: ServerApp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app.app), base_url=BASE_URL
    ) as client:
        yield client


async def get_token(http: httpx.AsyncClient, **form: str) -> httpx.Response:
    return await http.post(TOKEN, data={"grant_type": "client_credentials", **form})


async def test_right_secret_gets_a_token_the_apis_accept(
    http: httpx.AsyncClient, app: ServerApp
) -> None:
    response = await get_token(http, client_id="as1", client_secret=SECRET)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert set(body["scope"].split()) == {
        "msgs-asregistration",
        "msgs-msgdelivery",
        "msgs-topiclistevent",
    }
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "srv-1"
    assert claims["sub"] == "as1"
    message = as_message("as1", ("UE", "u1"), "m-1")
    sent = await http.post(
        "/msgs-msgdelivery/v1/deliver-as-message",
        json=message,
        headers=bearer(body["access_token"]),
    )
    assert sent.status_code == 200, sent.text


async def test_http_basic_client_authentication(http: httpx.AsyncClient) -> None:
    basic = base64.b64encode(f"gw1:{GW_SECRET}".encode()).decode()
    response = await http.post(
        TOKEN,
        data={"grant_type": "client_credentials", "scope": "ext-gwueregistration"},
        headers={"authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "ext-gwueregistration"
    wrong = base64.b64encode(b"gw1:nope").decode()
    refused = await http.post(
        TOKEN,
        data={"grant_type": "client_credentials"},
        headers={"authorization": f"Basic {wrong}"},
    )
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Basic")
    assert refused.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        pytest.param(
            {"client_id": "as1", "client_secret": "wrong"}, 401, "invalid_client", id="wrong-secret"
        ),
        pytest.param(
            {"client_id": "as1", "client_secret": GW_SECRET},
            401,
            "invalid_client",
            id="other-secret",
        ),
        pytest.param({"client_id": "as1"}, 401, "invalid_client", id="no-secret"),
        pytest.param(
            {"client_id": "nobody", "client_secret": SECRET}, 401, "invalid_client", id="unknown"
        ),
        pytest.param(
            {"client_id": "ext", "client_secret": "x"}, 401, "invalid_client", id="jwks-only"
        ),
        pytest.param(
            {"client_id": "as1", "client_secret": SECRET, "scope": "ext-groups"},
            400,
            "invalid_scope",
            id="scope-not-granted",
        ),
        pytest.param(
            {"client_id": "as1", "client_secret": SECRET, "grant_type": "password"},
            400,
            "unsupported_grant_type",
            id="grant-type",
        ),
    ],
)
async def test_refusals(
    http: httpx.AsyncClient, form: dict[str, str], status: int, error: str
) -> None:
    response = await get_token(http, **form)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert SECRET not in response.text
    assert "access_token" not in response.json()


async def test_the_request_must_be_a_form(http: httpx.AsyncClient) -> None:
    response = await http.post(
        TOKEN,
        json={"grant_type": "client_credentials", "client_id": "as1", "client_secret": SECRET},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    repeated = await http.post(
        TOKEN,
        content=f"grant_type=client_credentials&client_id=as1&client_id=gw1&client_secret={SECRET}",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert repeated.status_code == 400
    assert repeated.json()["error"] == "invalid_request"


async def test_the_jwks_verifies_the_tokens(http: httpx.AsyncClient) -> None:
    token = (await get_token(http, client_id="as1", client_secret=SECRET)).json()["access_token"]
    jwks = (await http.get("/oauth2/jwks")).json()
    assert len(jwks["keys"]) == 1
    assert "d" not in jwks["keys"][0]  # the public half only
    key = jwt.PyJWKSet.from_dict(jwks).keys[0]
    claims = jwt.decode(token, key, algorithms=["ES256"], audience="srv-1", issuer="msgin5g")
    assert claims["client_id"] == "as1"


async def test_tokens_survive_a_restart_and_the_key_file_is_private(
    tmp_path: Path, clients: list[dict[str, Any]]
) -> None:
    async with (
        running_server(tmp_path, builtin(clients)) as first,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=first.app), base_url=BASE_URL) as http,
    ):
        token = (await get_token(http, client_id="as1", client_secret=SECRET)).json()
    key_file = tmp_path / "data" / "auth-signing-key.pem"
    assert key_file.stat().st_mode & 0o077 == 0
    async with (
        running_server(tmp_path, builtin(clients)) as second,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=second.app), base_url=BASE_URL) as http,
    ):
        message = as_message("as1", ("UE", "u1"), "m-2")
        sent = await http.post(
            "/msgs-msgdelivery/v1/deliver-as-message",
            json=message,
            headers=bearer(token["access_token"]),
        )
        assert sent.status_code == 200, sent.text


async def test_secrets_never_reach_the_log(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await get_token(http, client_id="as1", client_secret=SECRET)
    await get_token(http, client_id="as1", client_secret=SECRET + "x")
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "token issued" in text
    assert SECRET not in text
