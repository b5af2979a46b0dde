# SPDX-License-Identifier: Apache-2.0
"""The ECBE request the Broadcast Message Gateway builds, and the CBC simulator's strict check."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from msgin5g.gateways.cbs import pages
from msgin5g.gateways.cbs.cbc_sim import CbcSimulator, EcbeError, validate_message
from msgin5g.gateways.cbs.gateway import (
    BroadcastGatewaySettings,
    CbcScope,
    build_request,
    category_of,
    parse_area,
)
from msgin5g.gateways.common import GatewaySettings
from msgin5g.settings import SettingsError

SETTINGS = BroadcastGatewaySettings(
    gateway=GatewaySettings(gw_type="N3G", server_url="http://127.0.0.1:1", data_dir=Path(".")),
    cbc_url="http://127.0.0.1:2",
    areas={"A": CbcScope()},
)


def test_parse_area() -> None:
    assert parse_area("city=plmn") == ("city", CbcScope())
    assert parse_area("x=cgi:262-1-100-7,262-01-100-8") == (
        "x",
        CbcScope(((262, 1, 100, 7), (262, 1, 100, 8))),
    )
    for bad in ("plmn", "=plmn", "a=cell", "a=cgi:", "a=cgi:1-2-3", "a=cgi:1-2-3-70000"):
        with pytest.raises(ValueError, match=r"area|expected"):
            parse_area(bad)


def test_category() -> None:
    assert category_of("HIGH") == "high_priority"
    assert category_of("LOW") == "background"
    assert category_of("MIDDLE") == "normal"
    assert category_of(None) == "normal"
    assert category_of("FUTURE") == "normal"


def test_build_request_plmn_gsm7() -> None:
    body = build_request(SETTINGS, CbcScope(), 1000, 5, "hello", "HIGH")
    assert validate_message(body) == 1000
    assert body["category"] == "high_priority"
    assert body["scope"] == {"scope_plmn": {}}
    assert body["repetition_period"] == 10
    assert body["num_of_bcast"] == 10
    msg = body["smscb_message"]
    assert msg["serial_nr"] == {
        "serial_nr_decoded": {"geo_scope": "plmn_wide", "msg_code": 5, "update_nr": 0}
    }
    encoded = msg["payload"]["payload_encoded"]
    assert encoded["dcs"] == pages.DCS_GSM7
    page_bytes = [bytes.fromhex(p["data"]) for p in encoded["pages"]]
    assert pages.decode(encoded["dcs"], page_bytes) == "hello"


def test_build_request_cells_ucs2() -> None:
    scope = CbcScope(((262, 1, 100, 7),))
    body = build_request(SETTINGS, scope, 4095, 2000, "Привет", None)
    assert validate_message(body) == 4095
    assert body["scope"] == {
        "scope_cell_list": {"cgi": [{"mcc": 262, "mnc": 1, "lac": 100, "ci": 7}]}
    }
    msg = body["smscb_message"]
    assert msg["serial_nr"]["serial_nr_decoded"]["geo_scope"] == "cell_wide"
    assert msg["serial_nr"]["serial_nr_decoded"]["msg_code"] == 2000 % 1024
    assert msg["payload"]["payload_encoded"]["dcs"] == pages.DCS_UCS2


def _mutate(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    *parents, last = path.split("/")
    node: Any = out
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is KeyError:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return out


GOOD = build_request(SETTINGS, CbcScope(((1, 2, 3, 4),)), 7, 1, "x" * 200, None)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("cbe_name", KeyError),
        ("cbe_name", 5),
        ("category", "urgent"),
        ("repetition_period", 0),
        ("repetition_period", 4096),
        ("repetition_period", True),
        ("num_of_bcast", -1),
        ("num_of_bcast", "1"),
        ("extra", 1),
        ("scope", {}),
        ("scope", {"scope_plmn": {}, "scope_cell_list": {"cgi": []}}),
        ("scope/scope_cell_list/cgi", []),
        ("scope/scope_cell_list/cgi/0/mcc", 1000),
        ("scope/scope_cell_list/cgi/0/ci", KeyError),
        ("smscb_message/message_id", 65536),
        ("smscb_message/serial_nr", {"serial_nr_encoded": "1"}),
        ("smscb_message/serial_nr/serial_nr_decoded/geo_scope", "world"),
        ("smscb_message/serial_nr/serial_nr_decoded/update_nr", 16),
        ("smscb_message/payload/payload_encoded/dcs", 256),
        ("smscb_message/payload/payload_encoded/pages", []),
        ("smscb_message/payload/payload_encoded/pages", [{"data": "00"}] * 16),
        ("smscb_message/payload/payload_encoded/pages/0/data", "0g"),
        ("smscb_message/payload/payload_encoded/pages/0/data", "00" * 83),
        (
            "smscb_message/payload",
            {"payload_decoded": {"character_set": "latin1", "data_utf8": "x"}},
        ),
        ("smscb_message/payload", {"payload_decoded": {"character_set": "gsm"}}),
    ],
)
def test_simulator_rejects(path: str, value: Any) -> None:
    bad = _mutate(GOOD, path, value)
    with pytest.raises(EcbeError):
        validate_message(bad)
    status, answer = CbcSimulator().handle("POST", "/api/ecbe/v1/message", json.dumps(bad).encode())
    assert status == 400
    assert "error" in json.loads(answer)


def test_simulator_accepts_decoded_and_deletes() -> None:
    sim = CbcSimulator()
    decoded = _mutate(
        GOOD,
        "smscb_message/payload",
        {"payload_decoded": {"character_set": "gsm", "language": "en", "data_utf8": "hi"}},
    )
    decoded = _mutate(decoded, "smscb_message/serial_nr", {"serial_nr_encoded": 12})
    raw = json.dumps(decoded).encode()
    assert sim.handle("POST", "/api/ecbe/v1/message", raw) == (201, b"")
    assert sim.handle("POST", "/api/ecbe/v1/message", raw)[0] == 409
    assert sim.handle("DELETE", "/api/ecbe/v1/message/7", b"")[0] == 200
    assert sim.handle("DELETE", "/api/ecbe/v1/message/7", b"")[0] == 404
    assert sim.handle("POST", "/api/ecbe/v1/message", b"{")[0] == 400
    assert sim.handle("GET", "/api/ecbe/v1/message", b"")[0] == 405
    assert sim.deleted == [7]


def test_settings_validate() -> None:
    SETTINGS.validate()
    bad = [
        BroadcastGatewaySettings(
            gateway=SETTINGS.gateway, cbc_url="ftp://x", areas={"A": CbcScope()}
        ),
        BroadcastGatewaySettings(gateway=SETTINGS.gateway, cbc_url="http://x"),
        BroadcastGatewaySettings(
            gateway=SETTINGS.gateway, cbc_url="http://x", areas={"A": CbcScope()}, default_area="B"
        ),
        BroadcastGatewaySettings(
            gateway=SETTINGS.gateway,
            cbc_url="http://x",
            areas={"A": CbcScope()},
            repetition_period=0,
        ),
    ]
    for settings in bad:
        with pytest.raises(SettingsError):
            settings.validate()
