# SPDX-License-Identifier: Apache-2.0
"""MSGS_MSGDelivery (TS 29.538 8.2) and the common HTTP rules through the real ASGI app.

Every response is validated against TS29538_MSGS_MSGDelivery.yaml (read in place) by the
client's event hook (tests/support/oas.py); a success also needs a request the file accepts.
Errors outside any 3GPP operation are checked as TS 29.571 ProblemDetails.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from openapi_core.exceptions import OpenAPIError
from tests.support import oas
from tests.support.inprocess import BASE_URL

API = "/msgs-msgdelivery/v1"
DELIVER_AS = f"{API}/deliver-as-message"
DELIVER_UE = f"{API}/deliver-ue-message"
REPORT = f"{API}/deliver-report"
REGISTRATIONS = "/msgs-asregistration/v1/registrations"
UNREACHABLE = "http://127.0.0.1:9/cb"
"""A targetUri nothing listens on (discard port): the AS counts as reachable until tried."""
BODY_LIMIT = 1024


@pytest.fixture
def settings_overrides() -> dict[str, dict[str, Any]]:
    return {"server": {"max_body_bytes": BODY_LIMIT}}


def addr(kind: str, value: str) -> dict[str, str]:
    return {"addrType": kind, "addr": value}


def message(dest: dict[str, str], msg_id: str = "m-1", **extra: Any) -> dict[str, Any]:
    """An ASMessageDelivery from AS "as-src" (stoAndFwInd false unless given)."""
    return {
        "oriAddr": addr("AS", "as-src"),
        "destAddr": dest,
        "msgId": msg_id,
        "stoAndFwInd": False,
        **extra,
    }


def without(body: dict[str, Any], pointer: str) -> dict[str, Any]:
    """A deep copy of `body` without the member at JSON Pointer `pointer`."""
    out: dict[str, Any] = json.loads(json.dumps(body))
    *parents, last = pointer.strip("/").split("/")
    target = out
    for key in parents:
        target = target[key]
    del target[last]
    return out


def replaced(body: dict[str, Any], pointer: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(body))
    *parents, last = pointer.strip("/").split("/")
    target = out
    for key in parents:
        target = target.setdefault(key, {})
    target[last] = value
    return out


def assert_problem(
    response: httpx.Response, status: int, cause: str, param: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = oas.validate_problem(response)
    assert body["cause"] == cause, body
    assert body.get("detail"), body
    if param is not None:
        assert body["invalidParams"][0]["param"] == param, body
    return body


def assert_ack(
    response: httpx.Response, body: dict[str, Any], status: str | None
) -> dict[str, Any]:
    """A 200 MessageDeliveryAck echoing oriAddr and msgId, with the given `status`."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    ack: dict[str, Any] = response.json()
    assert ack["oriAddr"] == body["oriAddr"]
    assert ack["msgId"] == body["msgId"]
    assert ack.get("status") == status, ack
    if status == "DELY_FAILED":
        assert ack["failureCause"], ack
    else:
        assert "failureCause" not in ack, ack
    return ack


async def register(client: httpx.AsyncClient, as_svc_id: str, **extra: Any) -> None:
    response = await client.post(REGISTRATIONS, json={"asSvcId": as_svc_id, **extra})
    assert response.status_code == 201, response.text


async def metrics(client: httpx.AsyncClient) -> dict[str, float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    out: dict[str, float] = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


# the oracle itself --------------------------------------------------------------------------


def _fake(
    status: int, body: Any, content_type: str = "application/json", path: str = DELIVER_AS
) -> httpx.Response:
    request = httpx.Request("POST", f"{BASE_URL}{path}")
    return httpx.Response(
        status,
        content=json.dumps(body).encode(),
        headers={"content-type": content_type},
        request=request,
    )


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(_fake(200, {"msgId": "m"}), id="ack-without-oriAddr"),
        pytest.param(_fake(200, {"oriAddr": addr("AS", "a"), "msgId": 1}), id="msgId-int"),
        pytest.param(_fake(200, {"oriAddr": {"addr": "a"}, "msgId": "m"}), id="addr-no-type"),
        pytest.param(_fake(400, {"status": 400}), id="problem-as-json"),
        pytest.param(
            _fake(400, {"status": "400"}, "application/problem+json"), id="problem-status-str"
        ),
        pytest.param(
            _fake(400, {"status": 400, "invalidParams": []}, "application/problem+json"),
            id="invalidParams-empty",
        ),
        pytest.param(_fake(201, {"oriAddr": addr("AS", "a"), "msgId": "m"}), id="undocumented"),
        pytest.param(
            _fake(201, {"asSvcId": "a", "result": {"status": 201}}, path=REGISTRATIONS),
            id="created-without-location",
        ),
    ],
)
def test_the_schema_oracle_rejects_nonconforming_responses(response: httpx.Response) -> None:
    """oas.validate is strict enough to catch the mistakes these tests are meant to catch."""
    response.read()
    with pytest.raises((OpenAPIError, AssertionError)):
        oas.validate(response)


# deliver-as-message: outcomes ---------------------------------------------------------------


async def test_message_to_a_reachable_as_is_acknowledged_without_status(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "as-dest", targetUri=UNREACHABLE)
    body = message(
        addr("AS", "as-dest"),
        appId="app-1",
        payload="aGVsbG8=",
        delivStReqInd=True,
        priority="HIGH",
        latency=500,
        segInd=True,
        segParams={"segId": "s", "totalSegCount": 2, "segNumb": 1, "lastSegFlag": False},
    )
    assert_ack(await client.post(DELIVER_AS, json=body), body, None)
    assert (await metrics(client))['msgin5g_messages_total{outcome="accepted"}'] == 1


@pytest.mark.parametrize(
    ("store_and_forward", "status", "cause"),
    [(True, "DELY_STORED", None), (False, "DELY_FAILED", "RECIPIENT_UNREACHABLE")],
)
async def test_message_to_an_as_without_target_uri(
    client: httpx.AsyncClient, store_and_forward: bool, status: str, cause: str | None
) -> None:
    await register(client, "as-offline")
    expires = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    body = message(
        addr("AS", "as-offline"),
        stoAndFwInd=store_and_forward,
        stoAndFwParams={"exprTime": expires},
    )
    ack = assert_ack(await client.post(DELIVER_AS, json=body), body, status)
    if cause:
        assert cause in ack["failureCause"]


@pytest.mark.parametrize(
    ("dest", "cause"),
    [
        pytest.param(addr("AS", "as-nobody"), "UNKNOWN_RECIPIENT", id="unknown-AS"),
        pytest.param(addr("UE", "ue-nobody"), "UNKNOWN_RECIPIENT", id="unknown-UE"),
        pytest.param(addr("GROUP", "g-1"), "UNKNOWN_RECIPIENT", id="unknown-GROUP"),
        pytest.param(addr("TOPIC", "t-1"), "NO_SUBSCRIBERS", id="TOPIC-no-subscriber"),
        pytest.param(addr("BC", "area-1"), "BROADCAST", id="BC"),
        pytest.param(addr("SATELLITE", "x"), "UNSUPPORTED_ADDRESS_TYPE", id="unknown-addrType"),
    ],
)
@pytest.mark.parametrize("store_and_forward", [True, False])
async def test_undeliverable_recipients_fail_with_a_cause(
    client: httpx.AsyncClient, dest: dict[str, str], cause: str, store_and_forward: bool
) -> None:
    body = message(dest, stoAndFwInd=store_and_forward)
    ack = assert_ack(await client.post(DELIVER_AS, json=body), body, "DELY_FAILED")
    assert cause in ack["failureCause"]


@pytest.mark.parametrize("priority", ["HIGH", "MIDDLE", "LOW", "URGENT", "low"])
async def test_any_priority_string_is_accepted(client: httpx.AsyncClient, priority: str) -> None:
    """Priority is an extensible enum: an unknown value is not a 400."""
    await register(client, "as-dest", targetUri=UNREACHABLE)
    body = message(addr("AS", "as-dest"), priority=priority)
    assert_ack(await client.post(DELIVER_AS, json=body), body, None)


async def test_repeated_message_gets_the_same_ack_and_is_stored_once(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "as-offline")
    body = message(addr("AS", "as-offline"), "m-dup", stoAndFwInd=True)
    first = await client.post(DELIVER_AS, json=body)
    second = await client.post(DELIVER_AS, json=body)
    assert_ack(first, body, "DELY_STORED")
    assert second.json() == first.json()

    counts = await metrics(client)
    assert counts['msgin5g_messages_total{outcome="stored"}'] == 1
    assert counts['msgin5g_messages_total{outcome="duplicate"}'] == 1
    assert counts["msgin5g_store_depth"] == 1
    assert counts["msgin5g_store_queue_unindexed"] == 1  # until the next fold (ADR 0022)
    assert counts["msgin5g_store_recent_messages"] == 0  # one AS: straight to the key (ADR 0023)

    # The key is (oriAddr, msgId): the same msgId from another sender is a new message.
    other = replaced(body, "/oriAddr/addr", "as-other")
    assert_ack(await client.post(DELIVER_AS, json=other), other, "DELY_STORED")
    assert (await metrics(client))['msgin5g_messages_total{outcome="stored"}'] == 2


@pytest.mark.parametrize("store_and_forward", [True, False])
async def test_expiry_time_in_the_past_fails(
    client: httpx.AsyncClient, store_and_forward: bool
) -> None:
    await register(client, "as-offline")
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    body = message(
        addr("AS", "as-offline"), stoAndFwInd=store_and_forward, stoAndFwParams={"exprTime": past}
    )
    ack = assert_ack(await client.post(DELIVER_AS, json=body), body, "DELY_FAILED")
    assert "EXPIRED" in ack["failureCause"]


@pytest.mark.parametrize("expr_time", ["2030-01-01T00:00:00", "2030-01-01 00:00:00"])
async def test_expiry_time_without_offset_is_400(client: httpx.AsyncClient, expr_time: str) -> None:
    body = message(addr("AS", "x"), stoAndFwInd=True, stoAndFwParams={"exprTime": expr_time})
    response = await client.post(DELIVER_AS, json=body)
    assert response.status_code == 400
    problem = oas.validate_problem(response)
    assert problem["invalidParams"][0]["param"] == "/stoAndFwParams/exprTime"


# deliver-as-message / deliver-ue-message: body errors ---------------------------------------

VALID_AS = message(addr("AS", "as-dest"), stoAndFwParams={"exprTime": "2030-01-01T00:00:00Z"})
VALID_UE = {**VALID_AS, "oriAddr": addr("UE", "ue-1")}


@pytest.mark.parametrize(("path", "valid"), [(DELIVER_AS, VALID_AS), (DELIVER_UE, VALID_UE)])
@pytest.mark.parametrize(
    "pointer",
    [
        "/oriAddr",
        "/destAddr",
        "/msgId",
        "/stoAndFwInd",
        "/oriAddr/addrType",
        "/oriAddr/addr",
        "/destAddr/addrType",
        "/destAddr/addr",
    ],
)
async def test_missing_mandatory_ie_is_400_with_pointer(
    client: httpx.AsyncClient, path: str, valid: dict[str, Any], pointer: str
) -> None:
    response = await client.post(path, json=without(valid, pointer))
    assert_problem(response, 400, "MANDATORY_IE_MISSING", pointer)


@pytest.mark.parametrize(("path", "valid"), [(DELIVER_AS, VALID_AS), (DELIVER_UE, VALID_UE)])
@pytest.mark.parametrize(
    ("pointer", "value", "cause"),
    [
        ("/msgId", 5, "MANDATORY_IE_INCORRECT"),
        ("/msgId", "", "MANDATORY_IE_INCORRECT"),
        ("/msgId", None, "MANDATORY_IE_INCORRECT"),
        ("/stoAndFwInd", "yes", "MANDATORY_IE_INCORRECT"),
        ("/destAddr", "ue-1", "MANDATORY_IE_INCORRECT"),
        ("/destAddr/addr", 42, "MANDATORY_IE_INCORRECT"),
        ("/destAddr/addr", "", "MANDATORY_IE_INCORRECT"),
        ("/destAddr/addrType", ["UE"], "MANDATORY_IE_INCORRECT"),
        ("/payload", 1, "OPTIONAL_IE_INCORRECT"),
        ("/delivStReqInd", "true", "OPTIONAL_IE_INCORRECT"),
        ("/segParams/segNumb", "1", "OPTIONAL_IE_INCORRECT"),
        ("/stoAndFwParams/exprTime", "tomorrow", "OPTIONAL_IE_INCORRECT"),
    ],
)
async def test_wrong_type_is_400_ie_incorrect(
    client: httpx.AsyncClient,
    path: str,
    valid: dict[str, Any],
    pointer: str,
    value: Any,
    cause: str,
) -> None:
    response = await client.post(path, json=replaced(valid, pointer, value))
    assert_problem(response, 400, cause, pointer)


@pytest.mark.parametrize(("pointer", "value"), [("/latency", "fast"), ("/latency", 1.5)])
async def test_wrong_latency_is_400_optional_ie_incorrect(
    client: httpx.AsyncClient, pointer: str, value: Any
) -> None:
    response = await client.post(DELIVER_AS, json=replaced(VALID_AS, pointer, value))
    assert_problem(response, 400, "OPTIONAL_IE_INCORRECT", pointer)


@pytest.mark.parametrize("path", [DELIVER_AS, DELIVER_UE, REPORT])
@pytest.mark.parametrize("raw", [b"{", b"", b'{"msgId": "m",}', b"\xff\xfe", b"nul"])
async def test_malformed_json_is_400_invalid_msg_format(
    client: httpx.AsyncClient, path: str, raw: bytes
) -> None:
    response = await client.post(path, content=raw, headers={"content-type": "application/json"})
    assert_problem(response, 400, "INVALID_MSG_FORMAT")


@pytest.mark.parametrize("path", [DELIVER_AS, DELIVER_UE, REPORT])
@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"null", b"1"])
async def test_json_that_is_not_an_object_is_400(
    client: httpx.AsyncClient, path: str, raw: bytes
) -> None:
    response = await client.post(path, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    oas.validate_problem(response)


@pytest.mark.parametrize(
    ("path", "ori_type"), [(DELIVER_AS, "UE"), (DELIVER_AS, "GROUP"), (DELIVER_UE, "AS")]
)
async def test_originator_of_the_wrong_kind_is_400(
    client: httpx.AsyncClient, path: str, ori_type: str
) -> None:
    """deliver-as-message comes from an AS, deliver-ue-message from a UE (via its gateway)."""
    body = replaced(VALID_AS, "/oriAddr/addrType", ori_type)
    assert_problem(
        await client.post(path, json=body), 400, "MANDATORY_IE_INCORRECT", "/oriAddr/addrType"
    )


async def test_ue_message_to_a_registered_as(client: httpx.AsyncClient) -> None:
    await register(client, "as-dest", targetUri=UNREACHABLE)
    body = {**VALID_UE, "stoAndFwParams": {}}
    assert_ack(await client.post(DELIVER_UE, json=body), body, None)
    unknown = {**VALID_UE, "destAddr": addr("AS", "as-nobody"), "msgId": "m-2"}
    ack = assert_ack(await client.post(DELIVER_UE, json=unknown), unknown, "DELY_FAILED")
    assert "UNKNOWN_RECIPIENT" in ack["failureCause"]


# deliver-report -----------------------------------------------------------------------------


def report(msg_id: str, reporter: str = "as-dest", sender: str = "as-src") -> dict[str, Any]:
    return {
        "oriAddr": addr("AS", reporter),
        "destAddr": addr("AS", sender),
        "msgId": msg_id,
        "delivSt": "REPT_DELY_SUCCESS",
    }


async def test_report_for_an_unknown_message_fails(client: httpx.AsyncClient) -> None:
    body = report("never-sent")
    ack = assert_ack(await client.post(REPORT, json=body), body, "DELY_FAILED")
    assert "UNKNOWN_MESSAGE" in ack["failureCause"]


async def test_report_for_a_message_that_asked_for_one(client: httpx.AsyncClient) -> None:
    await register(client, "as-dest", targetUri=UNREACHABLE)
    sent = message(addr("AS", "as-dest"), "m-rep", delivStReqInd=True)
    assert_ack(await client.post(DELIVER_AS, json=sent), sent, None)

    body = report("m-rep")
    assert_ack(await client.post(REPORT, json=body), body, None)
    assert_ack(await client.post(REPORT, json=body), body, None)

    failed = {**body, "delivSt": "REPT_DELY_FAILED", "failureCause": "device rejected it"}
    assert_ack(await client.post(REPORT, json=failed), failed, None)

    # Only the recipient of the message may report on it.
    stranger = report("m-rep", reporter="as-stranger")
    ack = assert_ack(await client.post(REPORT, json=stranger), stranger, "DELY_FAILED")
    assert "NOT_A_RECIPIENT" in ack["failureCause"]


async def test_report_for_a_message_that_did_not_ask_for_one(client: httpx.AsyncClient) -> None:
    await register(client, "as-dest", targetUri=UNREACHABLE)
    sent = message(addr("AS", "as-dest"), "m-norep")
    assert_ack(await client.post(DELIVER_AS, json=sent), sent, None)
    body = report("m-norep")
    ack = assert_ack(await client.post(REPORT, json=body), body, "DELY_FAILED")
    assert "REPORT_NOT_REQUESTED" in ack["failureCause"]


@pytest.mark.parametrize("status", ["REPT_DELY_PARTIAL", "whatever"])
async def test_report_status_is_an_extensible_enum(client: httpx.AsyncClient, status: str) -> None:
    body = {**report("never-sent"), "delivSt": status}
    assert_ack(await client.post(REPORT, json=body), body, "DELY_FAILED")


@pytest.mark.parametrize(
    "pointer", ["/oriAddr", "/destAddr", "/msgId", "/delivSt", "/destAddr/addr"]
)
async def test_report_missing_mandatory_ie_is_400(client: httpx.AsyncClient, pointer: str) -> None:
    response = await client.post(REPORT, json=without(report("m"), pointer))
    assert_problem(response, 400, "MANDATORY_IE_MISSING", pointer)


@pytest.mark.parametrize(
    ("pointer", "value", "cause"),
    [
        ("/delivSt", True, "MANDATORY_IE_INCORRECT"),
        ("/msgId", 3, "MANDATORY_IE_INCORRECT"),
        ("/failureCause", 3, "OPTIONAL_IE_INCORRECT"),
    ],
)
async def test_report_wrong_type_is_400(
    client: httpx.AsyncClient, pointer: str, value: Any, cause: str
) -> None:
    response = await client.post(REPORT, json=replaced(report("m"), pointer, value))
    assert_problem(response, 400, cause, pointer)


# common HTTP rules ------------------------------------------------------------------------


@pytest.mark.parametrize("path", [DELIVER_AS, DELIVER_UE, REPORT, REGISTRATIONS])
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
async def test_wrong_content_type_is_415(
    client: httpx.AsyncClient, path: str, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post(path, content=json.dumps(VALID_AS).encode(), headers=headers)
    assert response.status_code == 415
    oas.validate_problem(response)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 256):
        yield data[i : i + 256]


@pytest.mark.parametrize("path", [DELIVER_AS, DELIVER_UE, REPORT, REGISTRATIONS])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_body_over_the_limit_is_413(
    client: httpx.AsyncClient, path: str, chunked: bool
) -> None:
    data = json.dumps({**VALID_AS, "payload": "x" * (BODY_LIMIT + 1)}).encode()
    if chunked:
        response = await client.post(
            path, content=_chunks(data), headers={"content-type": "application/json"}
        )
    else:
        response = await client.post(
            path, content=data, headers={"content-type": "application/json"}
        )
    assert response.status_code == 413
    oas.validate_problem(response)


async def test_body_just_under_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    await register(client, "as-dest", targetUri=UNREACHABLE)
    body = message(addr("AS", "as-dest"))
    size = len(json.dumps({**body, "payload": ""}).encode())
    body["payload"] = "x" * (BODY_LIMIT - size)
    assert len(json.dumps(body).encode()) == BODY_LIMIT
    assert_ack(await client.post(DELIVER_AS, json=body), body, None)


@pytest.mark.parametrize(
    ("method", "path", "status", "cause"),
    [
        ("POST", "/msgs-msgdelivery/v1/deliver-message", 404, "RESOURCE_URI_STRUCTURE_NOT_FOUND"),
        ("POST", "/msgs-msgdelivery/v1/", 404, "RESOURCE_URI_STRUCTURE_NOT_FOUND"),
        (
            "POST",
            "/msgs-msgdelivery/v1/deliver-as-message/x",
            404,
            "RESOURCE_URI_STRUCTURE_NOT_FOUND",
        ),
        ("GET", "/no/such/thing", 404, "RESOURCE_URI_STRUCTURE_NOT_FOUND"),
        ("POST", "/msgs-unknownapi/v1/deliver-as-message", 404, "RESOURCE_URI_STRUCTURE_NOT_FOUND"),
        ("POST", "/msgs-msgdelivery/v2/deliver-as-message", 400, "INVALID_API"),
        ("POST", "/msgs-msgdelivery/v0/deliver-report", 400, "INVALID_API"),
        ("GET", "/msgs-msgdelivery/v2/", 400, "INVALID_API"),
    ],
)
async def test_bad_paths(
    client: httpx.AsyncClient, method: str, path: str, status: int, cause: str
) -> None:
    response = await client.request(method, path, json=VALID_AS if method == "POST" else None)
    assert_problem(response, status, cause)


@pytest.mark.parametrize("path", [DELIVER_AS, DELIVER_UE, REPORT])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405_with_allow(
    client: httpx.AsyncClient, path: str, method: str
) -> None:
    response = await client.request(method, path)
    assert_problem(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == "POST"


async def test_http_errors_are_counted_in_metrics(client: httpx.AsyncClient) -> None:
    await client.post(DELIVER_AS, content=b"{", headers={"content-type": "application/json"})
    await client.get("/nowhere")
    counts = await metrics(client)
    assert counts['msgin5g_http_requests_total{operation="msgdelivery.aso",status="400"}'] == 1
    assert counts['msgin5g_http_requests_total{operation="unknown",status="404"}'] == 1


# operations endpoints (our extension) -------------------------------------------------------


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    for path, status in (("/healthz", "ok"), ("/readyz", "ready")):
        response = await client.get(path)
        assert response.status_code == 200
        assert response.json() == {"status": status}


async def test_metrics_is_prometheus_text(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = response.text.splitlines()
    assert "# TYPE msgin5g_messages_total counter" in lines
    assert "# TYPE msgin5g_as_registrations gauge" in lines
    for line in lines:
        if line.startswith("#"):
            assert line.startswith(("# HELP ", "# TYPE ")), line
            continue
        name, _, value = line.rpartition(" ")
        float(value)
        assert name.startswith("msgin5g_"), line


async def test_openapi_json_describes_the_ts29538_operations(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    assert "post" in paths["/msgs-asregistration/v1/registrations"]
    assert "delete" in paths["/msgs-asregistration/v1/registrations/{registrationId}"]
    for op in ("deliver-as-message", "deliver-ue-message", "deliver-report"):
        assert "post" in paths[f"{API}/{op}"]
    marked = [
        path
        for path, item in paths.items()
        for op in item.values()
        if isinstance(op, dict) and op.get("x-msgin5g-extension") is True
    ]
    assert {"/healthz", "/readyz", "/metrics"} <= set(marked)
    assert {p for p in paths if p.startswith("/ext-")} <= set(marked), "ours must be marked"
    for path in paths:
        if path.startswith(("/msgs-", "/msgg-")):
            assert path not in marked, f"{path} is 3GPP, not an extension"
    callbacks = paths["/msgs-asregistration/v1/registrations"]["post"]["callbacks"]
    for callback in callbacks.values():
        for item in callback.values():
            assert item["post"]["x-msgin5g-extension"] is True


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json"])
async def test_operations_endpoints_are_get_only(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post(path, json={})
    assert_problem(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == "GET"
