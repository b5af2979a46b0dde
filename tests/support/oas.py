# SPDX-License-Identifier: Apache-2.0
"""Validate real httpx exchanges against the official TS 29.538 OpenAPI files, read in place.

    from tests.support import oas
    oas.validate(response)                      # the response (and its operation) must conform
    oas.validate(response, check_request=True)  # ... and so must the request we sent
    oas.validate_problem(response)              # an error outside any 3GPP operation
    httpx.AsyncClient(event_hooks=oas.EVENT_HOOKS)  # validates every response it receives

The files are loaded from `OPENAPI_DIR` (shared/3gpp-openapi) with openapi-core, once per
file; their relative `$ref`s (TS29571_CommonData.yaml, TS29538_MSGG_L3GDelivery.yaml) resolve
beside them. The servers url is `{apiRoot}/<apiName>/v1`, so a request is presented as the
server origin plus the full path.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import httpx
from jsonschema_path import SchemaPath
from openapi_core import Config, OpenAPI
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.templating.paths.finders import APICallPathFinder
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.schemas import oas30_read_schema_validators_factory
from openapi_core.validation.schemas.validators import SchemaValidator

from tests.support.procs import OPENAPI_DIR

PROBLEM_JSON = "application/problem+json"

SPEC_FILES: dict[str, str] = {
    "msgs-asregistration": "TS29538_MSGS_ASRegistration.yaml",
    "msgs-msgdelivery": "TS29538_MSGS_MSGDelivery.yaml",
    "msgs-topiclistevent": "TS29538_MSGS_TopiclistEvent.yaml",
}
"""apiName -> the official file that defines it."""

COMMON_DATA = "TS29571_CommonData.yaml"

OWN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
"""The server's operations endpoints (our extension, not 3GPP): their successes are not checked."""


def spec_path(api_name: str) -> Path:
    """The official OpenAPI file of `api_name` (e.g. "msgs-msgdelivery")."""
    return OPENAPI_DIR / SPEC_FILES[api_name]


@functools.cache
def load(file_name: str) -> OpenAPI:
    """The OpenAPI object of one official file; problem bodies are parsed as JSON."""
    config = Config(extra_media_type_deserializers={PROBLEM_JSON: json.loads})
    return OpenAPI.from_file_path(str(OPENAPI_DIR / file_name), config=config)


@functools.cache
def _problem_validator() -> SchemaValidator:
    common = SchemaPath.from_file_path(str(OPENAPI_DIR / COMMON_DATA))
    schema = common / "components" / "schemas" / "ProblemDetails"
    return oas30_read_schema_validators_factory.create(common, schema)


def api_name_of(path: str) -> str | None:
    """The apiName a request path belongs to, if it is one of ours."""
    first = path.lstrip("/").split("/", 1)[0]
    return first if first in SPEC_FILES else None


def _headers(headers: httpx.Headers) -> dict[str, str]:
    return dict(headers.multi_items())


def mock_request(request: httpx.Request) -> MockRequest:
    """The openapi-core view of a request that was really sent."""
    url = request.url
    try:
        data = request.content
    except httpx.RequestNotRead:  # streamed (chunked) upload: the body is gone
        data = b""
    origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
    return MockRequest(
        origin,
        request.method,
        url.path,
        args=dict(url.params),
        headers=_headers(request.headers),
        data=data,
        content_type=request.headers.get("content-type", ""),
    )


def mock_response(response: httpx.Response) -> MockResponse:
    """The openapi-core view of a response that was really received."""
    return MockResponse(
        response.content,
        status_code=response.status_code,
        headers=_headers(response.headers),
        content_type=response.headers.get("content-type", ""),
    )


def validate(response: httpx.Response, *, check_request: bool = False) -> None:
    """Assert that `response` conforms to its operation in the official file.

    An error response to a path or method that no official operation has (an unknown path, a
    wrong API version, a wrong method) is checked as a TS 29.571 ProblemDetails instead. A
    success response outside the 3GPP APIs is a test mistake and fails.
    """
    request = response.request
    api = api_name_of(request.url.path)
    if api is None:
        assert response.status_code >= 400, f"{request.url.path} is not a 3GPP API path"
        validate_problem(response)
        return
    openapi = load(SPEC_FILES[api])
    req = mock_request(request)
    try:
        found = APICallPathFinder(openapi.spec).find(req.method, req.host_url + req.path)
    except PathError:
        # PathNotFound / OperationNotFound / ServerNotFound: not an official operation.
        assert response.status_code >= 400, (
            f"{request.method} {request.url.path} is not in {SPEC_FILES[api]}"
            f" but answered {response.status_code}"
        )
        validate_problem(response)
        return
    if check_request:
        openapi.validate_request(req)
    openapi.validate_response(req, mock_response(response))
    # The files end every operation with a `default` response that has no content, which
    # accepts anything: hold undocumented statuses to the TS 29.500 rule (an error with
    # ProblemDetails) instead.
    status = response.status_code
    documented = set((found.operation / "responses").keys())
    if str(status) not in documented and f"{status // 100}XX" not in documented:
        assert status >= 400, f"{status} is not a documented response of {request.url.path}"
        validate_problem(response)


def validate_problem(response: httpx.Response) -> dict[str, Any]:
    """Assert an application/problem+json TS 29.571 ProblemDetails whose status matches."""
    ctype = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    assert ctype == PROBLEM_JSON, f"content-type {ctype!r}, expected {PROBLEM_JSON}"
    body = response.json()
    _problem_validator().validate(body)
    assert body.get("status") == response.status_code, body
    return body  # type: ignore[no-any-return]


async def validate_hook(response: httpx.Response) -> None:
    """httpx response event hook: every response must conform to the official files.

    A success also needs a conforming request: a test that gets a 2xx for a request the files
    call invalid is testing something the files do not define.
    """
    await response.aread()
    if response.request.url.path in OWN_PATHS and response.is_success:
        return
    validate(response, check_request=response.is_success)


EVENT_HOOKS: dict[str, list[Any]] = {"response": [validate_hook]}
"""`httpx.AsyncClient(event_hooks=EVENT_HOOKS)` validates every response it receives."""
