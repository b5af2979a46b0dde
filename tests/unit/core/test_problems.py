# SPDX-License-Identifier: Apache-2.0
"""msgspec decoding errors become 400 with JSON Pointers (TS 29.500 5.2.7.2)."""

from __future__ import annotations

import msgspec
import pytest

from msgin5g.api.problems import decode_error
from msgin5g.wire.msgs import ASMessageDelivery, ASRegistration

MANDATORY = frozenset({"oriAddr", "destAddr", "msgId", "stoAndFwInd"})
OK = b'{"oriAddr":{"addrType":"AS","addr":"a"},"destAddr":{"addrType":"UE","addr":"u"},'


@pytest.mark.parametrize(
    ("body", "cause", "pointer"),
    [
        (OK + b'"stoAndFwInd":true}', "MANDATORY_IE_MISSING", "/msgId"),
        (b'{"oriAddr":{"addrType":"AS"}}', "MANDATORY_IE_MISSING", "/oriAddr/addr"),
        (OK + b'"msgId":7,"stoAndFwInd":true}', "MANDATORY_IE_INCORRECT", "/msgId"),
        (OK + b'"msgId":"","stoAndFwInd":true}', "MANDATORY_IE_INCORRECT", "/msgId"),
        (OK + b'"msgId":"m","stoAndFwInd":"yes"}', "MANDATORY_IE_INCORRECT", "/stoAndFwInd"),
        (
            OK + b'"msgId":"m","stoAndFwInd":true,"latency":"x"}',
            "OPTIONAL_IE_INCORRECT",
            "/latency",
        ),
        (
            OK + b'"msgId":"m","stoAndFwInd":true,"segParams":{"segNumb":"1"}}',
            "OPTIONAL_IE_INCORRECT",
            "/segParams/segNumb",
        ),
        (b"[]", "MANDATORY_IE_INCORRECT", ""),
    ],
)
def test_validation_errors(body: bytes, cause: str, pointer: str) -> None:
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.json.decode(body, type=ASMessageDelivery)
    error = decode_error(info.value, MANDATORY)
    assert error.cause == cause
    assert error.fields[0].pointer == pointer


def test_array_items_get_indexed_pointers() -> None:
    body = b'{"asSvcId":"a","asProf":{"appProviders":["p",3]}}'
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.json.decode(body, type=ASRegistration)
    error = decode_error(info.value, frozenset({"asSvcId"}))
    assert error.fields[0].pointer == "/asProf/appProviders/1"


def test_malformed_json() -> None:
    with pytest.raises(msgspec.DecodeError) as info:
        msgspec.json.decode(b'{"oriAddr":', type=ASMessageDelivery)
    assert decode_error(info.value, MANDATORY).cause == "INVALID_MSG_FORMAT"
