# SPDX-License-Identifier: Apache-2.0
"""`[auth]` and `[limits]` settings (ADR 0015): validation, the non-loopback rule, masking."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from msgin5g.security.passwords import hash_secret, valid_hash, verify_secret
from msgin5g.settings import SettingsError, describe, load


def settings(**sections: Any) -> Any:
    return load(overrides=sections, environ={})


def test_secret_hashes_verify_only_the_right_secret() -> None:
    stored = hash_secret("correct horse battery staple")
    assert valid_hash(stored)
    assert verify_secret("correct horse battery staple", stored)
    assert not verify_secret("correct horse battery stapl", stored)
    assert not verify_secret("anything", "plain-text-secret")
    assert hash_secret("same") != hash_secret("same")  # salted


@pytest.mark.parametrize(
    ("auth", "limits", "message"),
    [
        ({"mode": "oauth"}, {}, "auth.mode"),
        ({"mode": "jwks"}, {}, "auth.jwks"),
        ({"clients": [{"client_id": "a", "role": "ROOT"}]}, {}, "role"),
        ({"clients": [{"client_id": "a"}, {"client_id": "a"}]}, {}, "unique"),
        ({"clients": [{"client_id": "a", "secret_hash": "s3cret"}]}, {}, "secret_hash"),
        ({"clients": [{"client_id": "a", "scopes": ["msgs-everything"]}]}, {}, "scopes"),
        ({"clients": [{"client_id": "a", "addresses": ["ue-*"]}]}, {}, "KIND:value"),
        ({"token_url": "http://127.0.0.1:1/oauth2/token"}, {}, "client_id"),
        ({}, {"burst": 0}, "limits"),
        ({}, {"rate": -1}, "limits"),
    ],
)
def test_bad_settings_are_refused_with_the_key(
    auth: dict[str, Any], limits: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        settings(auth=auth, limits=limits)


def test_authentication_allows_a_non_loopback_http_address() -> None:
    with pytest.raises(SettingsError, match="without authentication"):
        settings(server={"http": "0.0.0.0:8080"})
    enabled = settings(server={"http": "0.0.0.0:8080"}, auth={"mode": "builtin"})
    assert enabled.auth.mode == "builtin"
    # CoAP is not covered by bearer tokens.
    with pytest.raises(SettingsError, match="without authentication"):
        settings(server={"coap": "0.0.0.0:5683"}, auth={"mode": "builtin"})


def test_describe_masks_secrets_and_hashes() -> None:
    stored = hash_secret("a client secret of enough length")
    described = describe(
        settings(
            auth={
                "mode": "builtin",
                "client_id": "srv",
                "client_secret": "the-server-secret",
                "token_url": "http://127.0.0.1:1/oauth2/token",
                "clients": [{"client_id": "as1", "secret_hash": stored}],
            }
        )
    )
    text = repr(described)
    assert "the-server-secret" not in text
    assert stored not in text
    assert described["auth"]["clients"][0]["client_id"] == "as1"


def test_environment_variables_reach_the_sections() -> None:
    loaded = load(
        environ={
            "MSGIN5G_AUTH_MODE": "jwks",
            "MSGIN5G_AUTH_JWKS": "/etc/msgin5g/jwks.json",
            "MSGIN5G_LIMITS_RATE": "50",
            "MSGIN5G_LIMITS_MAX_IN_FLIGHT": "10",
        }
    )
    assert loaded.auth.jwks == "/etc/msgin5g/jwks.json"
    assert loaded.limits.rate == 50
    assert loaded.limits.max_in_flight == 10


def test_cli_hash_secret_and_check_show_no_secret(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "msgin5g.cli.main", "auth"]
    hashed = subprocess.run(
        [*run, "hash-secret"], input="a long client secret 123\n", capture_output=True, text=True
    )
    assert hashed.returncode == 0, hashed.stderr
    stored = hashed.stdout.strip()
    assert verify_secret("a long client secret 123", stored)
    short = subprocess.run([*run, "hash-secret"], input="short\n", capture_output=True, text=True)
    assert short.returncode == 2

    config = tmp_path / "m.toml"
    config.write_text(
        '[auth]\nmode = "builtin"\nclient_id = "srv"\nclient_secret = "srv-secret-xyz"\n'
        'token_url = "http://127.0.0.1:1/oauth2/token"\n'
        f'[[auth.clients]]\nclient_id = "as1"\nas_svc_ids = ["as1"]\nsecret_hash = "{stored}"\n'
        "[limits]\nrate = 20\n"
    )
    checked = subprocess.run(
        [*run, "check", "--config", str(config)], capture_output=True, text=True, env={}
    )
    assert checked.returncode == 0, checked.stderr
    summary = json.loads(checked.stdout)
    assert summary["auth"] == "builtin"
    assert summary["clients"][0] == {
        "client_id": "as1",
        "role": "AS",
        "secret": "configured",
        "as_svc_ids": ["as1"],
        "addresses": [],
        "scopes": "role defaults",
    }
    assert summary["rate_limit_per_s"] == 20
    assert stored not in checked.stdout
    assert "srv-secret-xyz" not in checked.stdout
