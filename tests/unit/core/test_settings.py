# SPDX-License-Identifier: Apache-2.0
"""Settings precedence: defaults < file < environment < flags; unsafe binds are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from msgin5g.settings import SettingsError, describe, load


def test_precedence(tmp_path: Path) -> None:
    config = tmp_path / "m.toml"
    config.write_text(
        'version = 1\n[server]\nhttp = "127.0.0.1:1000"\ndata_dir = "/f"\n'
        "[delivery]\nas_window = 4\n"
    )
    env = {"MSGIN5G_HTTP": "127.0.0.1:2000", "MSGIN5G_DELIVERY_AS_WINDOW": "9"}
    s = load(str(config), {"server": {"data_dir": "/flag"}}, env)
    assert s.server.http == "127.0.0.1:2000"
    assert s.server.data_dir == "/flag"
    assert s.delivery.as_window == 9
    assert s.server.coap == "127.0.0.1:5683"


def test_config_file_from_environment(tmp_path: Path) -> None:
    config = tmp_path / "m.toml"
    config.write_text('[server]\ncoap = "127.0.0.1:6000"\n')
    assert load(None, None, {"MSGIN5G_CONFIG": str(config)}).server.coap == "127.0.0.1:6000"


@pytest.mark.parametrize(
    ("overrides", "env", "message"),
    [
        ({"server": {"http": "0.0.0.0:8080"}}, {}, "without authentication"),
        ({"server": {"coap": "10.1.2.3:5683"}}, {}, "without authentication"),
        ({"server": {"http": "nonsense"}}, {}, "HOST:PORT"),
        ({}, {"MSGIN5G_DELIVERY_AS_WINDOW": "many"}, "invalid configuration"),
        ({"store": {"synchronous": "OFF"}}, {}, "NORMAL or FULL"),
        ({}, {"MSGIN5G_STORE_WAL_LIMIT_MIB": "0"}, "wal_limit_mib must be at least 1"),
        ({"server": {"tls_cert": "c.pem"}}, {}, "go together"),
    ],
)
def test_invalid_settings_are_refused(
    overrides: dict[str, dict[str, str]], env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        load(None, overrides, env)


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "m.toml"
    config.write_text("[server]\nhtpp = 1\n")
    with pytest.raises(SettingsError, match="htpp"):
        load(str(config), None, {})


def test_insecure_allows_non_loopback_and_secrets_are_masked() -> None:
    s = load(
        None,
        {"server": {"http": "0.0.0.0:8080", "insecure": True, "tls_cert": "c", "tls_key": "k"}},
        {},
    )
    assert describe(s)["server"]["tls_key"] == "***"


def test_shipped_sample_config_is_valid_and_matches_the_defaults() -> None:
    sample = Path(__file__).resolve().parents[3] / "docs" / "examples" / "msgin5g.toml"
    assert load(str(sample), None, {}) == load(None, None, {})
