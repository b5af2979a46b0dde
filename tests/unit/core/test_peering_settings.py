# SPDX-License-Identifier: Apache-2.0
"""`[peering]` configuration (ADR 0013): peers come from the config file and are checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from msgin5g.settings import SettingsError, load

GOOD = """
[peering]
name = "plmn1"
[[peering.peers]]
name = "plmn2"
api_root = "http://127.0.0.1:9000"
addresses = ["UE:*@plmn2", "AS:plmn2-*"]
"""


def test_peers_load_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(GOOD)
    peering = load(str(config), environ={}).peering
    assert peering.name == "plmn1"
    (peer,) = peering.peers
    assert (peer.name, peer.api_root, peer.addresses, peer.topics) == (
        "plmn2",
        "http://127.0.0.1:9000",
        ("UE:*@plmn2", "AS:plmn2-*"),
        True,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('"http://127.0.0.1:9000"', '"ftp://x"'), "api_root"),
        (('"UE:*@plmn2"', '"*@plmn2"'), "KIND:value"),
        (('name = "plmn2"', 'name = "plmn1"'), "unique"),
    ],
)
def test_bad_peer_configuration_is_refused_with_the_key(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(GOOD.replace(*change))
    with pytest.raises(SettingsError, match=message):
        load(str(config), environ={})
