# SPDX-License-Identifier: Apache-2.0
"""Wire (TS 29.538 JSON) to core and back. The only place that knows both vocabularies."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

import msgspec

from msgin5g.core.errors import InvalidField, InvalidRequest
from msgin5g.core.message import (
    AS,
    UE,
    Acceptance,
    Address,
    Message,
    Priority,
    Report,
    Segment,
)
from msgin5g.wire import common as w
from msgin5g.wire.msgg import GatewayMessageDelivery
from msgin5g.wire.msgs import ASMessageDelivery, MessageDeliveryAck, UEMessageDelivery

_encoder = msgspec.json.Encoder()


def address(wire: w.Address) -> Address:
    return Address(wire.addrType, wire.addr)


def wire_address(core: Address) -> w.Address:
    return w.Address(addrType=core.kind, addr=core.value)


def _expiry(body: ASMessageDelivery | UEMessageDelivery) -> float | None:
    params = body.stoAndFwParams
    if params is None or params.exprTime is None:
        return None
    when: datetime = params.exprTime
    if when.tzinfo is None:
        pointer = "/stoAndFwParams/exprTime"
        raise InvalidRequest(
            f"{pointer} must carry a UTC offset (RFC 3339)",
            cause="OPTIONAL_IE_INCORRECT",
            fields=[InvalidField(pointer, "date-time without offset")],
        )
    return when.timestamp()


def _segment(params: w.MessageSegmentParameters | None) -> Segment | None:
    if params is None:
        return None
    return Segment(params.segId, params.segNumb, params.totalSegCount, params.lastSegFlag)


def _require_kind(addr: w.Address, kind: str, pointer: str, operation: str) -> None:
    if addr.addrType != kind:
        raise InvalidRequest(
            f"{pointer}/addrType must be {kind} for {operation}",
            cause="MANDATORY_IE_INCORRECT",
            fields=[InvalidField(f"{pointer}/addrType", f"expected {kind}")],
        )


def _message(
    body: ASMessageDelivery | UEMessageDelivery, priority: str | None, latency: int | None
) -> Message:
    return Message(
        originator=address(body.oriAddr),
        recipient=address(body.destAddr),
        message_id=body.msgId,
        store_and_forward=body.stoAndFwInd,
        app_id=body.appId,
        payload=body.payload,
        wants_report=bool(body.delivStReqInd),
        priority=Priority.parse(priority),
        segment=_segment(body.segParams) if body.segInd else None,
        expires_at=_expiry(body),
        latency_ms=latency,
    )


def as_message(body: ASMessageDelivery) -> Message:
    """MSGS_MSGDelivery_ASODelivery request to a core Message."""
    _require_kind(body.oriAddr, AS, "/oriAddr", "deliver-as-message")
    return _message(body, body.priority, body.latency)


def ue_message(body: UEMessageDelivery) -> Message:
    """MSGS_MSGDelivery_UEODelivery request (from a gateway) to a core Message."""
    _require_kind(body.oriAddr, UE, "/oriAddr", "deliver-ue-message")
    return _message(body, None, None)


def report(body: w.DeliveryStatusReport) -> Report:
    return Report(
        reporter=address(body.oriAddr),
        recipient=address(body.destAddr),
        message_id=body.msgId,
        status=body.delivSt,
        failure_cause=body.failureCause,
    )


def ack(ori_addr: w.Address, msg_id: str, acceptance: Acceptance) -> bytes:
    return _encoder.encode(
        MessageDeliveryAck(
            oriAddr=ori_addr,
            msgId=msg_id,
            status=acceptance.status._value_,  # `.value` runs Python code on 3.11
            failureCause=acceptance.failure_cause,
        )
    )


def check_api_root(uri: str | None, pointer: str) -> None:
    """An address the server will POST to must be an absolute http(s) URI with a host."""
    if uri is None:
        return
    try:
        parts = urlsplit(uri)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # "http://[::1" (unclosed IPv6 literal), a port out of range or not a number
        valid = False
    if not valid:
        raise InvalidRequest(
            f"{pointer} must be an absolute http or https URI",
            cause="OPTIONAL_IE_INCORRECT" if pointer == "/targetUri" else "MANDATORY_IE_INCORRECT",
            fields=[InvalidField(pointer, "not an absolute http(s) URI")],
        )


def check_target_uri(uri: str | None) -> None:
    """`targetUri` must be an absolute http(s) URI: the server will POST to it."""
    check_api_root(uri, "/targetUri")


class WireRenderer:
    """`Renderer`: the bodies queued for recipients, in the N3gMessageDelivery /
    DeliveryStatusReport shapes (DESIGN 2.2)."""

    def message(self, message: Message) -> bytes:
        segment = message.segment
        return _encoder.encode(
            GatewayMessageDelivery(
                oriAddr=wire_address(message.originator),
                destAddr=wire_address(message.recipient),
                msgId=message.message_id,
                appId=message.app_id,
                delivStReqInd=True if message.wants_report else None,
                payload=message.payload,
                segInd=True if segment else None,
                segParams=w.MessageSegmentParameters(
                    segId=segment.segment_id,
                    totalSegCount=segment.total,
                    segNumb=segment.number,
                    lastSegFlag=segment.last,
                )
                if segment
                else None,
            )
        )

    def report(self, report: Report) -> bytes:
        return _encoder.encode(
            w.DeliveryStatusReport(
                oriAddr=wire_address(report.reporter),
                destAddr=wire_address(report.recipient),
                msgId=report.message_id,
                delivSt=report.status,
                failureCause=report.failure_cause,
            )
        )
