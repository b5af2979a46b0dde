# SPDX-License-Identifier: Apache-2.0
"""Validate real httpx exchanges with a gateway against the official TS29538_MSGG_*.yaml files,
read in place (the msgg counterpart of tests/support/oas.py, whose helpers it reuses).

    from tests.support import oas_msgg
    oas_msgg.validate(response)                      # the response must conform
    oas_msgg.validate(response, check_request=True)  # ... and so must the request
    httpx.AsyncClient(event_hooks=oas_msgg.EVENT_HOOKS)
"""

from __future__ import annotations

from typing import Any

import httpx
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.templating.paths.finders import APICallPathFinder

from tests.support import oas

SPEC_FILES: dict[str, str] = {
    "msgg-l3gdelivery": "TS29538_MSGG_L3GDelivery.yaml",
    "msgg-n3gdelivery": "TS29538_MSGG_N3GDelivery.yaml",
    "msgg-bgdelivery": "TS29538_MSGG_BGDelivery.yaml",
}


def validate(response: httpx.Response, *, check_request: bool = False) -> None:
    """Assert that `response` conforms to its msgg operation (ProblemDetails for errors
    outside any operation, and for statuses the operation does not document)."""
    request = response.request
    first = request.url.path.lstrip("/").split("/", 1)[0]
    if first not in SPEC_FILES:
        assert response.status_code >= 400, f"{request.url.path} is not a msgg API path"
        oas.validate_problem(response)
        return
    openapi = oas.load(SPEC_FILES[first])
    req = oas.mock_request(request)
    try:
        found = APICallPathFinder(openapi.spec).find(req.method, req.host_url + req.path)
    except PathError:
        assert response.status_code >= 400, request.url.path
        oas.validate_problem(response)
        return
    if check_request:
        openapi.validate_request(req)
    openapi.validate_response(req, oas.mock_response(response))
    status = response.status_code
    documented = set((found.operation / "responses").keys())
    if str(status) not in documented and f"{status // 100}XX" not in documented:
        assert status >= 400, f"{status} is not a documented response of {request.url.path}"
    if status >= 400:
        oas.validate_problem(response)


async def validate_hook(response: httpx.Response) -> None:
    await response.aread()
    if response.request.url.path in oas.OWN_PATHS and response.is_success:
        return
    validate(response, check_request=response.is_success)


EVENT_HOOKS: dict[str, list[Any]] = {"response": [validate_hook]}
