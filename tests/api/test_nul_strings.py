# SPDX-License-Identifier: Apache-2.0
"""U+0000 in a JSON string is refused with 400 on every JSON API (no store column keeps it,
PostgreSQL's text refuses it), while the same text as an escaped backslash is just text."""

from __future__ import annotations

import httpx

DELIVER = "/msgs-msgdelivery/v1/deliver-as-message"


def message(msg_id: str, payload: str) -> dict[str, object]:
    return {
        "oriAddr": {"addrType": "AS", "addr": "app"},
        "destAddr": {"addrType": "UE", "addr": "ue-1"},
        "msgId": msg_id,
        "payload": payload,
        "stoAndFwInd": True,
    }


async def test_nul_in_any_string_is_a_400_not_a_store_failure(client: httpx.AsyncClient) -> None:
    for body in (
        message("a\x00b", "x"),
        message("m-1", "bin\x00ary"),
        {**message("m-2", "x"), "appId": "\x00"},
        {"asSvcId": "as\x00", "targetUri": "http://127.0.0.1:9/cb"},
    ):
        path = DELIVER if "msgId" in body else "/msgs-asregistration/v1/registrations"
        r = await client.post(path, json=body)
        assert r.status_code == 400, r.text
        assert r.json()["cause"] == "INVALID_MSG_FORMAT"
        assert "U+0000" in r.json()["detail"]


async def test_an_escaped_backslash_u0000_is_ordinary_text(client: httpx.AsyncClient) -> None:
    r = await client.post(DELIVER, json=message("m-3", "literal \\u0000 text"))
    assert r.status_code == 200, r.text
