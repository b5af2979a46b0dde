# SPDX-License-Identifier: Apache-2.0
"""MSGS_ASRegistration (TS 29.538 8.1) through the real ASGI app, in process.

Every response is validated against TS29538_MSGS_ASRegistration.yaml (read in place) by the
client's event hook (tests/support/oas.py); a success also needs a request the file accepts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from tests.support import oas
from tests.support.inprocess import asgi_client, running_server

REGISTRATIONS = "/msgs-asregistration/v1/registrations"
DELIVER = "/msgs-msgdelivery/v1/deliver-as-message"
LOCATION = re.compile(r"^/msgs-asregistration/v1/registrations/(?P<id>[^/]+)$")


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


async def register(client: httpx.AsyncClient, as_svc_id: str, **extra: Any) -> str:
    """Register and return the registrationId (the last segment of Location)."""
    response = await client.post(REGISTRATIONS, json={"asSvcId": as_svc_id, **extra})
    assert response.status_code == 201, response.text
    match = LOCATION.match(urlsplit(response.headers["location"]).path)
    assert match, response.headers["location"]
    return match["id"]


async def metric(client: httpx.AsyncClient, line_prefix: str) -> float:
    text = (await client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_prefix} not in /metrics:\n{text}")


# registration -------------------------------------------------------------------------------


async def test_register_answers_201_with_absolute_location_and_ack(
    client: httpx.AsyncClient,
) -> None:
    body = {
        "asSvcId": "as-weather",
        "appId": "app.weather",
        "targetUri": "http://127.0.0.1:9/cb",
        "asProf": {
            "appName": "Weather",
            "appProviders": ["ACME"],
            "appSenarios": ["metering"],
            "appCategory": "iot",
            "asStatus": "active",
        },
    }
    response = await client.post(REGISTRATIONS, json=body)

    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    location = urlsplit(response.headers["location"])
    assert (location.scheme, location.netloc) == ("http", "testserver")
    assert LOCATION.match(location.path), location.path
    ack = response.json()
    assert ack["asSvcId"] == "as-weather"
    assert ack["result"]["status"] == 201


async def test_minimal_registration_and_unknown_attributes_are_accepted(
    client: httpx.AsyncClient,
) -> None:
    """Only asSvcId is mandatory; attributes of later versions are ignored (TS 29.501 4.3)."""
    await register(client, "as-min")
    await register(client, "as-future", futureIe={"x": 1})


async def test_location_uses_the_configured_api_root(tmp_path: Path) -> None:
    overrides = {"server": {"api_root": "https://msgin5g.example.net/"}}
    async with running_server(tmp_path, overrides) as app, asgi_client(app) as c:
        response = await c.post(REGISTRATIONS, json={"asSvcId": "as-root"})
    assert response.status_code == 201
    assert response.headers["location"].startswith(
        "https://msgin5g.example.net/msgs-asregistration/v1/registrations/"
    )


async def test_registering_the_same_as_again_updates_it_in_place(
    client: httpx.AsyncClient,
) -> None:
    first = await register(client, "as-1", targetUri="http://127.0.0.1:9/a")
    again = await register(client, "as-1", appId="app-2")
    other = await register(client, "as-2")

    assert again == first
    assert other != first
    assert await metric(client, "msgin5g_as_registrations") == 2

    # The update took effect: without a targetUri the AS is not reachable, so a message that
    # may be stored is stored instead of forwarded.
    message = {
        "oriAddr": {"addrType": "AS", "addr": "as-2"},
        "destAddr": {"addrType": "AS", "addr": "as-1"},
        "msgId": "m-after-update",
        "stoAndFwInd": True,
    }
    response = await client.post(DELIVER, json=message)
    assert response.json().get("status") == "DELY_STORED", response.text


# deregistration -----------------------------------------------------------------------------


async def test_deregister_answers_204_then_404(client: httpx.AsyncClient) -> None:
    registration_id = await register(client, "as-gone")

    response = await client.delete(f"{REGISTRATIONS}/{registration_id}")
    assert response.status_code == 204
    assert response.content == b""

    again = await client.delete(f"{REGISTRATIONS}/{registration_id}")
    assert_problem(again, 404, "TARGET_NOT_FOUND")
    assert await metric(client, "msgin5g_as_registrations") == 0


@pytest.mark.parametrize("registration_id", ["no-such-id", "%20", "x" * 300])
async def test_deregister_unknown_id_is_404(
    client: httpx.AsyncClient, registration_id: str
) -> None:
    response = await client.delete(f"{REGISTRATIONS}/{registration_id}")
    assert_problem(response, 404, "TARGET_NOT_FOUND")


async def test_messages_to_a_deregistered_as_fail_as_unknown_recipient(
    client: httpx.AsyncClient,
) -> None:
    registration_id = await register(client, "as-left")
    response = await client.delete(f"{REGISTRATIONS}/{registration_id}")
    assert response.status_code == 204
    message = {
        "oriAddr": {"addrType": "AS", "addr": "as-sender"},
        "destAddr": {"addrType": "AS", "addr": "as-left"},
        "msgId": "m-1",
        "stoAndFwInd": True,
    }
    ack = (await client.post(DELIVER, json=message)).json()
    assert ack["status"] == "DELY_FAILED"
    assert "UNKNOWN_RECIPIENT" in ack["failureCause"]


# errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "cause", "param"),
    [
        pytest.param({}, "MANDATORY_IE_MISSING", "/asSvcId", id="missing-asSvcId"),
        pytest.param({"appId": "a"}, "MANDATORY_IE_MISSING", "/asSvcId", id="only-appId"),
        pytest.param({"asSvcId": 5}, "MANDATORY_IE_INCORRECT", "/asSvcId", id="asSvcId-int"),
        pytest.param({"asSvcId": ""}, "MANDATORY_IE_INCORRECT", "/asSvcId", id="asSvcId-empty"),
        pytest.param(
            {"asSvcId": "a", "targetUri": "not a uri"},
            "OPTIONAL_IE_INCORRECT",
            "/targetUri",
            id="targetUri-relative",
        ),
        *(
            pytest.param(
                {"asSvcId": "a", "targetUri": uri},
                "OPTIONAL_IE_INCORRECT",
                "/targetUri",
                id=f"targetUri-{uri}",
            )
            for uri in (
                "/cb",
                "ftp://as.example/cb",
                "http://[::1",
                "http://as:99999/cb",
                "http://:80/",
            )
        ),
        pytest.param(
            {"asSvcId": "a", "targetUri": 7},
            "OPTIONAL_IE_INCORRECT",
            "/targetUri",
            id="targetUri-int",
        ),
        pytest.param(
            {"asSvcId": "a", "asProf": {"appProviders": []}},
            "OPTIONAL_IE_INCORRECT",
            "/asProf/appProviders",
            id="appProviders-empty",
        ),
        pytest.param(
            {"asSvcId": "a", "asProf": {"appSenarios": [1]}},
            "OPTIONAL_IE_INCORRECT",
            "/asProf/appSenarios/0",
            id="appSenarios-item-int",
        ),
    ],
)
async def test_invalid_registration_body_is_400_with_json_pointer(
    client: httpx.AsyncClient, body: dict[str, Any], cause: str, param: str
) -> None:
    response = await client.post(REGISTRATIONS, json=body)
    assert_problem(response, 400, cause, param)


@pytest.mark.parametrize("raw", [b"{", b"", b"\x00", b'{"asSvcId": "a",}'])
async def test_malformed_json_is_400_invalid_msg_format(
    client: httpx.AsyncClient, raw: bytes
) -> None:
    response = await client.post(
        REGISTRATIONS, content=raw, headers={"content-type": "application/json"}
    )
    assert_problem(response, 400, "INVALID_MSG_FORMAT")


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
async def test_non_json_content_type_is_415(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post(REGISTRATIONS, content=b'{"asSvcId": "a"}', headers=headers)
    assert response.status_code == 415
    oas.validate_problem(response)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", REGISTRATIONS, "POST"),
        ("PUT", REGISTRATIONS, "POST"),
        ("GET", f"{REGISTRATIONS}/some-id", "DELETE"),
        ("PATCH", f"{REGISTRATIONS}/some-id", "DELETE"),
        ("POST", f"{REGISTRATIONS}/some-id", "DELETE"),
    ],
)
async def test_other_methods_are_405_with_allow(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    oas.validate_problem(response)


@pytest.mark.parametrize(
    ("path", "status", "cause"),
    [
        ("/msgs-asregistration/v2/registrations", 400, "INVALID_API"),
        ("/msgs-asregistration/v1/registration", 404, "RESOURCE_URI_STRUCTURE_NOT_FOUND"),
        ("/msgs-asregistration/v1/registrations/a/b", 404, "RESOURCE_URI_STRUCTURE_NOT_FOUND"),
        ("/msgs-asregistration/v1/registrations/", 404, "RESOURCE_URI_STRUCTURE_NOT_FOUND"),
        ("/msgs-asregistration", 404, "RESOURCE_URI_STRUCTURE_NOT_FOUND"),
    ],
)
async def test_bad_paths(client: httpx.AsyncClient, path: str, status: int, cause: str) -> None:
    response = await client.post(path, json={"asSvcId": "a"})
    assert_problem(response, status, cause)
