# SPDX-License-Identifier: Apache-2.0
"""MSGS_MSGDelivery (TS 29.538 8.2): deliver-as-message, deliver-ue-message, deliver-report.

The hot path: decode with msgspec, translate, commit, answer MessageDeliveryAck (200).
"""

from __future__ import annotations

import msgspec

from msgin5g.api import translate
from msgin5g.api.app import Operation
from msgin5g.api.http import Request, Response
from msgin5g.api.problems import decode_error
from msgin5g.security import policy
from msgin5g.services.delivery import MessageService
from msgin5g.wire.common import DeliveryStatusReport
from msgin5g.wire.msgs import ASMessageDelivery, UEMessageDelivery

BASE = "/msgs-msgdelivery/v1"
_MESSAGE_MANDATORY = frozenset({"oriAddr", "destAddr", "msgId", "stoAndFwInd"})
_REPORT_MANDATORY = frozenset({"oriAddr", "destAddr", "msgId", "delivSt"})
_as_decode = msgspec.json.Decoder(ASMessageDelivery).decode
_ue_decode = msgspec.json.Decoder(UEMessageDelivery).decode
_report_decode = msgspec.json.Decoder(DeliveryStatusReport).decode


def operations(service: MessageService) -> list[Operation]:
    async def deliver_as_message(request: Request) -> Response:
        try:
            body = _as_decode(request.body)
        except msgspec.DecodeError as exc:
            raise decode_error(exc, _MESSAGE_MANDATORY) from None
        message = translate.as_message(body)
        policy.check_originator(request.principal, message.originator)
        acceptance = await service.accept(message)
        return Response(200, translate.ack(body.oriAddr, body.msgId, acceptance))

    async def deliver_ue_message(request: Request) -> Response:
        try:
            body = _ue_decode(request.body)
        except msgspec.DecodeError as exc:
            raise decode_error(exc, _MESSAGE_MANDATORY) from None
        message = translate.ue_message(body)
        policy.check_originator(request.principal, message.originator)
        acceptance = await service.accept(message)
        return Response(200, translate.ack(body.oriAddr, body.msgId, acceptance))

    async def deliver_report(request: Request) -> Response:
        try:
            body = _report_decode(request.body)
        except msgspec.DecodeError as exc:
            raise decode_error(exc, _REPORT_MANDATORY) from None
        report = translate.report(body)
        policy.check_reporter(request.principal, report.reporter)
        acceptance = await service.accept_report(report)
        return Response(200, translate.ack(body.oriAddr, body.msgId, acceptance))

    return [
        Operation(
            "POST", f"{BASE}/deliver-as-message", "msgdelivery.aso", deliver_as_message, True
        ),
        Operation(
            "POST", f"{BASE}/deliver-ue-message", "msgdelivery.ueo", deliver_ue_message, True
        ),
        Operation("POST", f"{BASE}/deliver-report", "msgdelivery.report", deliver_report, True),
    ]
