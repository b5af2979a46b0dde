# SPDX-License-Identifier: Apache-2.0
"""Child-process end to end (ADR 0015): `msgin5g server` with the built-in issuer; curl gets a
token (HTTP Basic) and sends over h2c with it; a second server in jwks mode fetches the first
one's /oauth2/jwks URL and accepts the same token; the log names what is on, never a secret."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from msgin5g.sdk.as_client import AsClient
from msgin5g.security.client import TokenSource, TokenUnavailable, bearer_auth
from msgin5g.security.passwords import hash_secret
from tests.security.conftest import as_message
from tests.support.procs import ServerProcess

pytestmark = pytest.mark.e2e

SECRET = "e2e-secret-0123456789abcdef"


def write_config(path: Path, *, with_secret: bool) -> Path:
    secret = f'secret_hash = "{hash_secret(SECRET)}"\n' if with_secret else ""
    path.write_text(
        "[auth]\n"
        'audience = "msgin5g-e2e"\n'
        "[[auth.clients]]\n"
        'client_id = "as1"\n'
        'role = "AS"\n'
        'as_svc_ids = ["as1"]\n' + secret
    )
    return path


def curl(*args: str) -> tuple[int, str]:
    out = subprocess.run(
        ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    body, _, code = out.rpartition("\n")
    return int(code), body


@pytest.fixture
def issuing(tmp_path: Path) -> Iterator[ServerProcess]:
    config = write_config(tmp_path / "a.toml", with_secret=True)
    env = {"MSGIN5G_CONFIG": str(config), "MSGIN5G_AUTH_MODE": "builtin"}
    proc = ServerProcess(tmp_path / "a-data", env=env).start()
    try:
        yield proc
    finally:
        proc.stop()


def deliver(server: ServerProcess, token: str | None, msg_id: str) -> tuple[int, str]:
    auth = ["-H", f"authorization: Bearer {token}"] if token else []
    return curl(
        "--http2-prior-knowledge",
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        *auth,
        "--data",
        json.dumps(as_message("as1", ("UE", "u1"), msg_id)),
        f"{server.url}/msgs-msgdelivery/v1/deliver-as-message",
    )


def test_curl_with_a_token_from_the_builtin_issuer(issuing: ServerProcess, tmp_path: Path) -> None:
    code, body = curl(
        "-u",
        f"as1:{SECRET}",
        "--data",
        "grant_type=client_credentials&scope=msgs-msgdelivery",
        f"{issuing.url}/oauth2/token",
    )
    assert code == 200, body
    token = json.loads(body)["access_token"]

    code, body = deliver(issuing, token, "m-1")
    assert code == 200, body
    assert json.loads(body)["msgId"] == "m-1"
    code, body = deliver(issuing, None, "m-2")
    assert code == 401
    assert json.loads(body)["cause"] == "MISSING_TOKEN"
    code, body = deliver(issuing, token[:-4] + "AAAA", "m-3")
    assert code == 401

    # A server trusting the first one as its issuer (jwks mode, key set by URL).
    config = write_config(tmp_path / "b.toml", with_secret=False)
    env = {
        "MSGIN5G_CONFIG": str(config),
        "MSGIN5G_AUTH_MODE": "jwks",
        "MSGIN5G_AUTH_JWKS": f"{issuing.url}/oauth2/jwks",
    }
    relying = ServerProcess(tmp_path / "b-data", env=env).start()
    try:
        code, body = deliver(relying, token, "m-4")
        assert code == 200, body
        code, body = deliver(relying, None, "m-5")
        assert code == 401
    finally:
        relying.stop()
    log = issuing.log() + relying.log()
    assert '"auth": "builtin"' in log or '"auth":"builtin"' in log
    assert SECRET not in log
    assert "scrypt$" not in log


async def test_sdk_and_cli_get_and_send_tokens(issuing: ServerProcess, tmp_path: Path) -> None:
    secret_file = tmp_path / "as1.secret"
    secret_file.write_text(SECRET + "\n")
    auth = bearer_auth(f"{issuing.url}/oauth2/token", "as1", str(secret_file))
    async with AsClient(issuing.url, "as1", auth=auth) as client:
        ack = await client.send("UE:u1", "via the SDK", msg_id="sdk-1", store=True)
    assert ack["msgId"] == "sdk-1"
    async with AsClient(issuing.url, "as1") as anonymous:
        with pytest.raises(Exception, match="401"):
            await anonymous.send("UE:u1", "no token", msg_id="sdk-2", store=True)

    env = {**os.environ, "MSGIN5G_AUTH_CLIENT_SECRET": SECRET}
    command = [sys.executable, "-m", "msgin5g.cli.main", "send", "--server", issuing.url]
    args = ["--from", "as1", "--to", "UE:u1", "--payload", "cli", "--store"]
    token = ["--token-url", f"{issuing.url}/oauth2/token", "--client-id", "as1"]
    done = await asyncio.to_thread(
        subprocess.run, [*command, *args, *token], env=env, capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["oriAddr"] == {"addrType": "AS", "addr": "as1"}
    refused = await asyncio.to_thread(
        subprocess.run, [*command, *args], env=env, capture_output=True, timeout=30
    )
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["cause"] == "MISSING_TOKEN"
    assert SECRET.encode() not in done.stdout + done.stderr


async def test_token_source_caches_refreshes_and_reports_refusals(issuing: ServerProcess) -> None:
    url = f"{issuing.url}/oauth2/token"
    source = TokenSource(url, "as1", SECRET)
    first = await source.authorization()
    assert first.startswith(b"Bearer ")
    assert await source.authorization() is first  # cached until near expiry
    source.invalidate()
    assert await source.authorization() != first  # a new token (new jti)
    assert SECRET not in repr(source)
    wrong = TokenSource(url, "as1", "not-the-secret")
    with pytest.raises(TokenUnavailable, match="401 invalid_client") as refused:
        await wrong.authorization()
    assert "not-the-secret" not in str(refused.value)
