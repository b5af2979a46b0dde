# SPDX-License-Identifier: Apache-2.0
"""The UE pre-shared key file (ue.psk_file) and the transport-security settings checks: clear
errors that never show a key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from msgin5g.bootstrap import ServerApp
from msgin5g.coap.dtls_keys import PskFileError, UePsk, load_psk_file
from msgin5g.settings import SettingsError, load

SECRET = "s3cr3t-never-shown"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "psks.toml"
    path.write_text(text)
    return path


def test_text_and_hex_keys_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f'[[psk]]\nidentity = "dev-1"\nkey = "{SECRET}"\nue_svc_id = "ue-1"\n'
        '[[psk]]\nidentity = "dev-2"\nkey_hex = "00ff10"\nue_svc_id = "ue-2"\n',
    )
    assert load_psk_file(path) == (
        UePsk("dev-1", SECRET.encode(), "ue-1"),
        UePsk("dev-2", b"\x00\xff\x10", "ue-2"),
    )
    assert SECRET not in repr(load_psk_file(path))


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ("", "no [[psk]] entries"),
        (f'[[psk]]\nkey = "{SECRET}"\nue_svc_id = "u"\n', "identity must be"),
        (f'[[psk]]\nidentity = "d"\nkey = "{SECRET}"\n', "ue_svc_id must be"),
        ('[[psk]]\nidentity = "d"\nue_svc_id = "u"\n', "exactly one of key and key_hex"),
        (
            f'[[psk]]\nidentity = "d"\nkey = "{SECRET}"\nkey_hex = "00"\nue_svc_id = "u"\n',
            "exactly one of key and key_hex",
        ),
        ('[[psk]]\nidentity = "d"\nkey_hex = "zz-s3cr3t"\nue_svc_id = "u"\n', "not hexadecimal"),
        (f'[[psk]]\nidentity = "d"\nkey = "{SECRET * 3}"\nue_svc_id = "u"\n', "1..32 octets"),
        ('[[psk]]\nidentity = "d"\nkey = ""\nue_svc_id = "u"\n', "1..32 octets"),
        (
            f'[[psk]]\nidentity = "d"\nkey = "{SECRET}"\nue_svc_id = "u"\n' * 2,
            "appears twice",
        ),
        (
            f'[[psk]]\nidentity = "d"\nkey = "{SECRET}"\nue_svc_id = "u"\nsecret = "x"\n',
            "unknown keys",
        ),
        (f'[[psk]]\nidentity = "d"\nkey = "{SECRET}\nue_svc_id = "u"\n', "invalid TOML"),
        ("psk = 3\n", "no [[psk]] entries"),
    ],
)
def test_invalid_files_are_refused_without_showing_the_key(
    tmp_path: Path, entries: str, message: str
) -> None:
    with pytest.raises(PskFileError) as caught:
        load_psk_file(write(tmp_path, entries))
    assert message in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PskFileError, match="cannot read the PSK file"):
        load_psk_file(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"server": {"coaps": "127.0.0.1:5684"}}, "server.coaps needs ue.psk_file"),
        ({"server": {"coaps": "nonsense"}, "ue": {"psk_file": "x"}}, "HOST:PORT"),
        ({"ue": {"require_dtls": True}}, "ue.require_dtls needs server.coaps"),
        ({"ue": {"dtls_max_sessions": 0}}, "ue.dtls_max_sessions"),
        ({"server": {"tls_client_ca": "ca.pem"}}, "server.tls_client_ca needs server.tls_cert"),
        ({"outbound": {"client_cert": "c.pem"}}, "outbound.client_cert and outbound.client_key"),
    ],
)
def test_transport_security_settings_are_checked(
    overrides: dict[str, dict[str, object]], message: str
) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        load(None, overrides, environ={})


def test_environment_sets_the_new_keys() -> None:
    settings = load(
        None,
        environ={
            "MSGIN5G_COAPS": "127.0.0.1:5684",
            "MSGIN5G_UE_PSK_FILE": "/etc/msgin5g/psks.toml",
            "MSGIN5G_UE_REQUIRE_DTLS": "true",
            "MSGIN5G_OUTBOUND_CA_FILE": "/etc/ssl/ca.pem",
        },
    )
    assert settings.server.coaps == "127.0.0.1:5684"
    assert settings.ue.psk_file == "/etc/msgin5g/psks.toml"
    assert settings.ue.require_dtls is True
    assert settings.outbound.ca_file == "/etc/ssl/ca.pem"


def test_plain_coap_may_face_the_network_only_when_dtls_is_required() -> None:
    exposed = {"server": {"coap": "0.0.0.0:5683", "coaps": "0.0.0.0:5684"}}
    with pytest.raises(SettingsError, match=re.escape("non-loopback address 0.0.0.0")):
        load(None, {**exposed, "ue": {"psk_file": "p.toml"}}, environ={})
    settings = load(None, {**exposed, "ue": {"psk_file": "p.toml", "require_dtls": True}}, {})
    assert settings.ue.require_dtls
    assert not settings.server.insecure


def test_server_refuses_a_bad_psk_file_with_a_settings_error(tmp_path: Path) -> None:
    path = write(tmp_path, f'[[psk]]\nidentity = "d"\nkey = "{SECRET * 3}"\nue_svc_id = "u"\n')
    settings = load(
        None,
        {"server": {"data_dir": str(tmp_path / "data")}, "ue": {"psk_file": str(path)}},
        environ={},
    )
    with pytest.raises(SettingsError, match=re.escape("ue.psk_file:")) as caught:
        ServerApp(settings)
    assert "s3cr3t" not in str(caught.value)
