# SPDX-License-Identifier: Apache-2.0
"""Operations endpoints (our extension): /healthz, /readyz, /metrics, /openapi.json."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from msgin5g.api.app import Operation
from msgin5g.api.http import Request, Response
from msgin5g.api.openapi import document
from msgin5g.observability import Metrics


def operations(metrics: Metrics, ready: Callable[[], bool]) -> list[Operation]:
    openapi_body = msgspec.json.encode(document())

    async def healthz(_request: Request) -> Response:
        return Response(200, b'{"status":"ok"}')

    async def readyz(_request: Request) -> Response:
        if ready():
            return Response(200, b'{"status":"ready"}')
        return Response(503, b'{"status":"starting"}', headers=[(b"retry-after", b"1")])

    async def metrics_text(_request: Request) -> Response:
        text = await metrics.render()
        return Response(200, text.encode(), b"text/plain; version=0.0.4; charset=utf-8")

    async def openapi(_request: Request) -> Response:
        return Response(200, openapi_body)

    return [
        Operation("GET", "/healthz", "healthz", healthz),
        Operation("GET", "/readyz", "readyz", readyz),
        Operation("GET", "/metrics", "metrics", metrics_text),
        Operation("GET", "/openapi.json", "openapi", openapi),
    ]
