# SPDX-License-Identifier: Apache-2.0
"""msgspec decoding errors become 400 with JSON Pointers (TS 29.500 5.2.7.2)."""

from __future__ import annotations

import msgspec
import pytest

from msgin5g.api.http import HttpError, read_body
from msgin5g.api.problems import decode_error, from_exception
from msgin5g.core.errors import Forbidden, NotFound, Overloaded, StorageFailure
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


@pytest.mark.parametrize(
    ("error", "status", "cause", "retry_after"),
    [
        (Overloaded("busy", retry_after=3), 429, "NF_CONGESTION", b"3"),
        (StorageFailure("disk full"), 503, "INSUFFICIENT_RESOURCES", b"1"),
        (NotFound("gone"), 404, "TARGET_NOT_FOUND", None),
        (Forbidden("no"), 403, "UNSPECIFIED_MSG_FAILURE", None),
        (RuntimeError("a bug"), 500, "SYSTEM_FAILURE", None),
    ],
)
def test_error_table(error: Exception, status: int, cause: str, retry_after: bytes | None) -> None:
    response = from_exception(error)
    assert response.status == status
    assert response.content_type == b"application/problem+json"
    body = msgspec.json.decode(response.body)
    assert body["status"] == status
    assert body["cause"] == cause
    assert dict(response.headers).get(b"retry-after") == retry_after
    if status == 500:
        assert "a bug" not in body["detail"], "internal details are not leaked"


async def test_content_length_that_disagrees_with_the_body_is_411() -> None:
    chunks = [{"type": "http.request", "body": b"{}", "more_body": False}]

    async def receive() -> dict[str, object]:
        return chunks.pop(0)

    with pytest.raises(HttpError) as info:
        await read_body(
            receive,
            {b"content-type": b"application/json", b"content-length": b"10"},
            1024,
            needs_json=True,
        )
    assert info.value.status == 411
    assert info.value.cause == "INCORRECT_LENGTH"
