# SPDX-License-Identifier: Apache-2.0
"""The one table of MSGin5G-1 errors to CoAP codes (DESIGN 2.3), and the notification body."""

from __future__ import annotations

import json

import pytest

from msgin5g.api.coap_msgin5g1 import error_response
from msgin5g.coap import ContentFormat, OptionNumber
from msgin5g.coap.message import format_code
from msgin5g.core.errors import (
    Forbidden,
    IllegalTransition,
    InvalidRequest,
    MsgIn5GError,
    NotFound,
    Overloaded,
    StorageFailure,
)
from msgin5g.core.message import UE, Address, Delivery, DeliveryKind, Priority
from msgin5g.outbound.ue_coap import notification_body


@pytest.mark.parametrize(
    ("error", "code", "cause", "max_age"),
    [
        (InvalidRequest("bad", cause="MANDATORY_IE_MISSING"), "4.00", "MANDATORY_IE_MISSING", None),
        (NotFound("who"), "4.04", "TARGET_NOT_FOUND", None),
        (Forbidden("no"), "4.03", "UNSPECIFIED_MSG_FAILURE", None),
        (Overloaded("busy", retry_after=3), "5.03", "NF_CONGESTION", 3),
        (StorageFailure("disk"), "5.03", "INSUFFICIENT_RESOURCES", 1),
        (IllegalTransition("bug"), "5.00", "SYSTEM_FAILURE", None),
    ],
)
def test_error_response(error: MsgIn5GError, code: str, cause: str, max_age: int | None) -> None:
    response = error_response(error)
    assert format_code(response.code) == code
    assert response.content_format == ContentFormat.JSON
    assert json.loads(response.payload) == {"cause": cause, "detail": error.detail}
    ages = [v for n, v in response.options if n == OptionNumber.MAX_AGE]
    assert ages == ([] if max_age is None else [bytes([max_age])])


@pytest.mark.parametrize(
    ("kind", "body", "expected"),
    [
        (DeliveryKind.MESSAGE, b'{"msgId":"m"}', {"msgType": "MSG", "msgId": "m"}),
        (
            DeliveryKind.REPORT,
            b'{"msgId":"m","delivSt":"X"}',
            {"msgType": "IMDN", "msgId": "m", "delivSt": "X"},
        ),
        (DeliveryKind.MESSAGE, b"{}", {"msgType": "MSG"}),
    ],
)
def test_notification_body(kind: DeliveryKind, body: bytes, expected: dict[str, str]) -> None:
    delivery = Delivery(
        delivery_id=1,
        kind=kind,
        recipient=Address(UE, "ue-1"),
        body=body,
        priority=Priority.MIDDLE,
        expires_at=0.0,
        origin=Address(UE, "ue-2"),
        message_id="m",
        wants_report=False,
    )
    assert json.loads(notification_body(delivery)) == expected
