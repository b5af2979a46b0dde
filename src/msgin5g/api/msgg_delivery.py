# SPDX-License-Identifier: Apache-2.0
"""MSGG_L3GDelivery and MSGG_N3GDelivery (TS 29.538 9.1 and 9.2, OpenAPI 1.1.0-alpha).

The two APIs have the same shape, so one module serves both, parameterised by the apiName
(`msgg-l3gdelivery` or `msgg-n3gdelivery`) and by the gateway's two callbacks:

* `POST {apiRoot}/<apiName>/v1/deliver-message`, body `L3gMessageDelivery` /
  `N3gMessageDelivery` (GTDelivery): 204 once the gateway has taken the message;
* `POST {apiRoot}/<apiName>/v1/deliver-report`, body `DeliveryStatusReport`
  (GTDeliveryReport): 204.

The callbacks raise `core.errors.NotFound` for a UE the gateway does not serve (404), and
`api.http.HttpError` for 413/503; body errors become 400 ProblemDetails with JSON Pointers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

import msgspec

from msgin5g.api.app import Operation
from msgin5g.api.http import Request, Response
from msgin5g.api.problems import decode_error
from msgin5g.wire.common import DeliveryStatusReport
from msgin5g.wire.msgg import GatewayMessageDelivery

__all__ = ["L3G_API", "N3G_API", "MessageHandler", "ReportHandler", "operations"]

L3G_API: Final = "msgg-l3gdelivery"
N3G_API: Final = "msgg-n3gdelivery"

MessageHandler = Callable[[GatewayMessageDelivery], Awaitable[None]]
"""Takes one message; returns once it is durably accepted (the 204 follows)."""
ReportHandler = Callable[[DeliveryStatusReport], Awaitable[None]]
"""Takes one delivery status report for a UE the gateway serves."""

_MESSAGE_MANDATORY = frozenset({"oriAddr", "destAddr", "msgId"})
_REPORT_MANDATORY = frozenset({"oriAddr", "destAddr", "msgId", "delivSt"})
_message_decode = msgspec.json.Decoder(GatewayMessageDelivery).decode
_report_decode = msgspec.json.Decoder(DeliveryStatusReport).decode


def operations(
    api_name: str, on_message: MessageHandler, on_report: ReportHandler
) -> list[Operation]:
    """The two operations of `api_name` (L3G_API or N3G_API) under `/<apiName>/v1`."""
    if api_name not in (L3G_API, N3G_API):
        raise ValueError(f"not a gateway delivery API: {api_name!r}")
    base = f"/{api_name}/v1"
    short = "l3g" if api_name == L3G_API else "n3g"

    async def deliver_message(request: Request) -> Response:
        try:
            body = _message_decode(request.body)
        except msgspec.DecodeError as exc:
            raise decode_error(exc, _MESSAGE_MANDATORY) from None
        await on_message(body)
        return Response(204, b"", None)

    async def deliver_report(request: Request) -> Response:
        try:
            body = _report_decode(request.body)
        except msgspec.DecodeError as exc:
            raise decode_error(exc, _REPORT_MANDATORY) from None
        await on_report(body)
        return Response(204, b"", None)

    return [
        Operation("POST", f"{base}/deliver-message", f"{short}.message", deliver_message, True),
        Operation("POST", f"{base}/deliver-report", f"{short}.report", deliver_report, True),
    ]
