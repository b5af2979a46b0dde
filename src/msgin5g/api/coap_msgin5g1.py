# SPDX-License-Identifier: Apache-2.0
"""MSGin5G-1 over CoAP: the resources of our TS 24.538 profile (DESIGN 2.3, pinned).

    POST   /msgin5g/v1/registrations            REG        -> 2.01 + Location-Path
    DELETE /msgin5g/v1/registrations/{regId}                -> 2.02
    GET    /msgin5g/v1/ues/{ueSvcId}/inbox      Observe 0  -> 2.05 {"pending":n}, notifications
    POST   /msgin5g/v1/messages                 MSG        -> 2.04 MSGRESP
    POST   /msgin5g/v1/reports                  IMDN       -> 2.04 MSGRESP
    POST   /msgin5g/v1/segments                 SEGREC / SEGCONFIR -> 2.04
    POST   /msgin5g/v1/topics                   TOPICSUB / TOPICUNSUB -> 2.04 (TS 23.554 8.8)

Bodies are JSON (Content-Format 50) with `msgType` and the TS 29.538 field names. Errors:
4.00 `{"cause","detail"}`, 4.04 unknown registration or UE, 4.05 wrong method, 4.13 too large
(the CoAP endpoint, from its max_body_size), 4.15 a Content-Format other than 50, 5.03 when
the store cannot commit. Every 2.01/2.04 is sent after the store committed what it answers.

UE authentication (our extension of DESIGN 2.3; ADR 0016, docs/security.md): a request that
came over DTLS-PSK carries the PSK identity, which may act only as the ueSvcId provisioned for
it; acting as another UE (REG, DEREG, inbox observe, MSG/IMDN/topics `oriAddr`) is 4.03
`{"cause":"NOT_OWNER"}`. Over plain CoAP, a ueSvcId provisioned for DTLS, or any request at all
when DTLS is required, is 4.01 `{"cause":"UNAUTHENTICATED"}`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import msgspec

from msgin5g.api import translate
from msgin5g.api.problems import decode_error
from msgin5g.coap import CoapRequest, CoapResponse, Code, ContentFormat, OptionNumber
from msgin5g.coap.message import encode_uint, format_code
from msgin5g.core.errors import (
    Forbidden,
    InvalidRequest,
    MsgIn5GError,
    NotFound,
    Overloaded,
    StorageFailure,
)
from msgin5g.core.message import UE, Acceptance, Address, Message, Priority
from msgin5g.observability import Metrics, Series
from msgin5g.outbound.ue_coap import UeInbox
from msgin5g.ports import MessageStore
from msgin5g.services.delivery import MessageService
from msgin5g.services.segmentation import SegmentService
from msgin5g.services.topics import TopicRegistry
from msgin5g.services.ue_registry import UeRegistry
from msgin5g.wire import common as w
from msgin5g.wire.msgs import UEMessageDelivery

log = logging.getLogger(__name__)

T = TypeVar("T")

BASE = ("msgin5g", "v1")

# -- MSGin5G-1 bodies (TS 24.538 7.1 message types; TS 29.538 field names) ---------------------


class Typed(msgspec.Struct):
    """What every body has; `aggregated` marks the aggregated MSG form."""

    msgType: str
    aggregated: msgspec.Raw = msgspec.Raw()
    """Left undecoded here; empty when absent."""


class Registration(msgspec.Struct):
    """REG: `commAvail` and `trigInfo` are kept verbatim (TS 23.554 Tables 8.2.1-2/-3)."""

    msgType: str
    ueSvcId: w.NonEmpty
    maxSegSize: int | None = None
    commAvail: msgspec.Raw = msgspec.Raw()
    trigInfo: msgspec.Raw = msgspec.Raw()


class RegistrationAck(msgspec.Struct):
    msgType: str
    regId: str
    ueSvcId: str


class Msg(msgspec.Struct, omit_defaults=True):
    """MSG: a UE-originated message or one segment of it. `stoAndFwInd` defaults to false."""

    msgType: str
    oriAddr: w.Address
    destAddr: w.Address
    msgId: w.NonEmpty
    stoAndFwInd: bool = False
    appId: str | None = None
    delivStReqInd: bool | None = None
    payload: str | None = None
    priority: str | None = None
    segInd: bool | None = None
    segParams: w.MessageSegmentParameters | None = None
    stoAndFwParams: w.StoreAndForwardParameters | None = None


class AggregatedMsg(msgspec.Struct):
    msgType: str
    aggregated: Annotated[list[Msg], msgspec.Meta(min_length=1)]


class MsgResp(msgspec.Struct, omit_defaults=True):
    """MSGRESP: `status` absent = accepted (forwarded), as in MessageDeliveryAck."""

    msgType: str
    msgId: str | None = None
    status: str | None = None
    failureCause: str | None = None
    aggregated: list[MsgResp] | None = None


class Imdn(msgspec.Struct):
    """IMDN: a DeliveryStatusReport from the UE (`oriAddr` is the UE)."""

    msgType: str
    oriAddr: w.Address
    destAddr: w.Address
    msgId: w.NonEmpty
    delivSt: w.NonEmpty
    failureCause: str | None = None


class SegmentControl(msgspec.Struct):
    """SEGREC `{"segId","missing":[n,...]}` or SEGCONFIR `{"segId"}`."""

    msgType: str
    segId: w.NonEmpty
    missing: list[int] | None = None


class TopicRequest(msgspec.Struct, omit_defaults=True):
    """TOPICSUB / TOPICUNSUB: the UE (`oriAddr`) subscribes to or leaves `msgTopics`; the
    fields of TS 29.538 TopicSubscription / TopicUnsubscription."""

    msgType: str
    oriAddr: w.Address
    msgTopics: Annotated[list[str], msgspec.Meta(min_length=1)]
    exprTime: datetime | None = None


class TopicResp(msgspec.Struct, omit_defaults=True):
    msgType: str
    subStat: str
    exprTime: datetime | None = None


class Error(msgspec.Struct):
    cause: str
    detail: str


class Unauthenticated(MsgIn5GError):
    """The request needs an authenticated (DTLS) peer: 4.01."""

    cause = "UNAUTHENTICATED"


class UeAccess:
    """Which PSK identity may act as which ueSvcId, and whether plain CoAP is refused."""

    def __init__(self, owners: Mapping[str, str] | None = None, *, require_dtls: bool = False):
        self._owners = dict(owners or {})
        self.provisioned = frozenset(self._owners.values())
        self.require_dtls = require_dtls

    def replace(self, owners: Mapping[str, str]) -> None:
        """Take a reloaded PSK file's identities from the next request on."""
        self._owners = dict(owners)
        self.provisioned = frozenset(self._owners.values())

    def check(self, identity: str | None, ue_service_id: str) -> None:
        """Raises Unauthenticated (4.01) or Forbidden NOT_OWNER (4.03)."""
        if identity is None:
            if ue_service_id in self.provisioned:
                raise Unauthenticated(f"UE {ue_service_id!r} is provisioned for DTLS: use coaps://")
            return
        if self._owners.get(identity) != ue_service_id:
            raise Forbidden(
                f"the DTLS identity {identity!r} may not act as UE {ue_service_id!r}",
                cause="NOT_OWNER",
            )

    def owned(self, identity: str) -> str | None:
        """The ueSvcId provisioned for ``identity``."""
        return self._owners.get(identity)


_typed = msgspec.json.Decoder(Typed).decode
_registration = msgspec.json.Decoder(Registration).decode
_msg = msgspec.json.Decoder(Msg).decode
_aggregated = msgspec.json.Decoder(AggregatedMsg).decode
_imdn = msgspec.json.Decoder(Imdn).decode
_segment_control = msgspec.json.Decoder(SegmentControl).decode
_topic_request = msgspec.json.Decoder(TopicRequest).decode
_encode = msgspec.json.Encoder().encode
_RESOURCES = frozenset({"registrations", "ues", "messages", "reports", "segments", "topics"})

_MSG_MANDATORY = frozenset({"msgType", "oriAddr", "destAddr", "msgId"})
_IMDN_MANDATORY = frozenset({"msgType", "oriAddr", "destAddr", "msgId", "delivSt"})
_REG_MANDATORY = frozenset({"msgType", "ueSvcId"})
_SEG_MANDATORY = frozenset({"msgType", "segId"})
_TOPIC_MANDATORY = frozenset({"msgType", "oriAddr", "msgTopics"})


def _json(code: int, body: msgspec.Struct) -> CoapResponse:
    return CoapResponse(code, _encode(body), ContentFormat.JSON)


def error_response(exc: Exception) -> CoapResponse:
    """The one mapping of errors to CoAP codes for MSGin5G-1."""
    if isinstance(exc, InvalidRequest):
        return _json(Code.BAD_REQUEST, Error(exc.cause, exc.detail))
    if isinstance(exc, NotFound):
        return _json(Code.NOT_FOUND, Error(exc.cause, exc.detail))
    if isinstance(exc, Forbidden):
        return _json(Code.FORBIDDEN, Error(exc.cause, exc.detail))
    if isinstance(exc, Unauthenticated):
        return _json(Code.UNAUTHORIZED, Error(exc.cause, exc.detail))
    if isinstance(exc, Overloaded | StorageFailure):
        retry = exc.retry_after if isinstance(exc, Overloaded) else 1
        return CoapResponse(
            Code.SERVICE_UNAVAILABLE,
            _encode(Error(exc.cause, exc.detail)),
            ContentFormat.JSON,
            options=((OptionNumber.MAX_AGE, encode_uint(retry)),),
        )
    assert isinstance(exc, MsgIn5GError)
    return _json(Code.INTERNAL_SERVER_ERROR, Error(exc.cause, exc.detail))


def _expect(msg_type: str, wanted: str | tuple[str, ...]) -> None:
    allowed = (wanted,) if isinstance(wanted, str) else wanted
    if msg_type not in allowed:
        raise InvalidRequest(
            f"msgType must be {' or '.join(allowed)} here, got {msg_type!r}",
            cause="MANDATORY_IE_INCORRECT",
        )


def _response_for(msg_id: str, acceptance: Acceptance) -> MsgResp:
    return MsgResp(
        "MSGRESP", msg_id, status=acceptance.status.value, failureCause=acceptance.failure_cause
    )


class Msgin5g1Resources:
    """The CoAP `RequestHandler` of MSGin5G-1."""

    def __init__(
        self,
        registry: UeRegistry,
        inbox: UeInbox,
        service: MessageService,
        segments: SegmentService,
        store: MessageStore,
        metrics: Metrics,
        topics: TopicRegistry | None = None,
        access: UeAccess | None = None,
    ) -> None:
        self._access = access or UeAccess()
        self._registry = registry
        self._inbox = inbox
        self._service = service
        self._segments = segments
        self._store = store
        self._metrics = metrics
        self._counted: dict[tuple[str, int], Series] = {}  # (resource, code): its series
        self._topics = topics
        self._posts: dict[str, Callable[[bytes, str | None], Awaitable[CoapResponse]]] = {
            "registrations": self._register,
            "messages": self._message,
            "reports": self._report,
            "segments": self._segment_control,
            "topics": self._topic,
        }

    async def handle(self, request: CoapRequest) -> CoapResponse:
        rest = request.path[2:] if request.path[:2] == BASE else ()
        response = await self._route(request, rest) if rest else CoapResponse(Code.NOT_FOUND)
        resource = rest[0] if rest and rest[0] in _RESOURCES else "other"
        series = self._counted.get((resource, response.code))
        if series is None:
            series = self._counted[(resource, response.code)] = self._metrics.counter(
                "msgin5g_coap_requests_total", resource=resource, code=format_code(response.code)
            )
        series.inc()
        return response

    async def _route(self, request: CoapRequest, rest: tuple[str, ...]) -> CoapResponse:
        method = request.method
        try:
            if self._access.require_dtls and request.peer_identity is None:
                raise Unauthenticated("this server serves UEs over DTLS only: use coaps://")
            match (method, rest):
                case (
                    Code.POST,
                    ("registrations" | "messages" | "reports" | "segments" | "topics",),
                ):
                    if request.content_format not in (None, ContentFormat.JSON):
                        return _json(
                            Code.UNSUPPORTED_CONTENT_FORMAT,
                            Error("UNSUPPORTED_MEDIA_TYPE", "bodies are application/json (50)"),
                        )
                    return await self._posts[rest[0]](request.payload, request.peer_identity)
                case (Code.DELETE, ("registrations", registration_id)):
                    self._check_deregistration(request.peer_identity, registration_id)
                    await self._registry.deregister(registration_id)
                    return CoapResponse(Code.DELETED)
                case (Code.GET, ("ues", ue_service_id, "inbox")):
                    return await self._inbox_resource(request, ue_service_id)
                case (
                    _,
                    ("registrations" | "messages" | "reports" | "segments" | "topics",)
                    | ("registrations", _)
                    | ("ues", _, "inbox"),
                ):
                    return CoapResponse(Code.METHOD_NOT_ALLOWED)
                case _:
                    return CoapResponse(Code.NOT_FOUND)
        except MsgIn5GError as exc:
            if isinstance(exc, Forbidden | Unauthenticated):
                log.info(
                    "MSGin5G-1 request refused: %s",
                    exc.detail,
                    extra={"cause": exc.cause, "remote": str(request.remote)},
                )
            elif not isinstance(exc, InvalidRequest | NotFound):
                log.warning("MSGin5G-1 request failed: %s", exc)
            return error_response(exc)

    # resources ---------------------------------------------------------------------------------

    def _check_deregistration(self, identity: str | None, registration_id: str) -> None:
        access = self._access
        if identity is not None:
            owned = access.owned(identity)
            current = self._registry.get(owned) if owned is not None else None
            if current is None or current.registration_id != registration_id:
                raise Forbidden(
                    f"registration {registration_id!r} is not the one of the DTLS identity"
                    f" {identity!r}",
                    cause="NOT_OWNER",
                )
            return
        for ue_service_id in access.provisioned:
            current = self._registry.get(ue_service_id)
            if current is not None and current.registration_id == registration_id:
                access.check(None, ue_service_id)

    async def _register(self, body: bytes, identity: str | None) -> CoapResponse:
        reg = _decoded(_registration, body, _REG_MANDATORY)
        _expect(reg.msgType, "REG")
        self._access.check(identity, reg.ueSvcId)
        registration = await self._registry.register(
            reg.ueSvcId,
            max_segment_size=reg.maxSegSize,
            communication_availability=bytes(reg.commAvail) if reg.commAvail else None,
            triggering_info=bytes(reg.trigInfo) if reg.trigInfo else None,
        )
        return CoapResponse(
            Code.CREATED,
            _encode(RegistrationAck("REG", registration.registration_id, reg.ueSvcId)),
            ContentFormat.JSON,
            location_path=(*BASE, "registrations", registration.registration_id),
        )

    async def _inbox_resource(self, request: CoapRequest, ue_service_id: str) -> CoapResponse:
        self._access.check(request.peer_identity, ue_service_id)
        if self._registry.get(ue_service_id) is None:
            raise NotFound(f"UE {ue_service_id!r} is not registered", cause="TARGET_NOT_FOUND")
        pending = await self._store.pending_count(Address(UE, ue_service_id))
        if request.wants_observation:
            self._inbox.attach(ue_service_id, request.accept_observation())
        return CoapResponse(Code.CONTENT, b'{"pending":%d}' % pending, ContentFormat.JSON)

    async def _message(self, body: bytes, identity: str | None) -> CoapResponse:
        if b'"aggregated"' not in body:  # the common case in one decode
            try:
                one = _msg(body)
            except msgspec.DecodeError:
                pass  # the path below names what is wrong
            else:
                self._check_origin(identity, one.oriAddr)
                return _json(Code.CHANGED, _response_for(one.msgId, await self._accept(one)))
        typed = _decoded(_typed, body, _MSG_MANDATORY)
        _expect(typed.msgType, "MSG")
        if typed.aggregated:
            bundle = _decoded(_aggregated, body, frozenset({"msgType", "aggregated"}))
            for m in bundle.aggregated:
                self._check_origin(identity, m.oriAddr)
            answers = [_response_for(m.msgId, await self._accept(m)) for m in bundle.aggregated]
            return _json(Code.CHANGED, MsgResp("MSGRESP", aggregated=answers))
        msg = _decoded(_msg, body, _MSG_MANDATORY)
        self._check_origin(identity, msg.oriAddr)
        return _json(Code.CHANGED, _response_for(msg.msgId, await self._accept(msg)))

    async def _accept(self, msg: Msg) -> Acceptance:
        _expect(msg.msgType, "MSG")
        message = self._core_message(msg)
        self._require_registered(message.originator)
        if message.segment is not None:
            if message.segment.segment_id is None:
                raise InvalidRequest(
                    "segParams/segId is required when segInd is true",
                    cause="OPTIONAL_IE_INCORRECT",
                )
            return await self._segments.accept_segment(message)
        return await self._service.accept(message)

    @staticmethod
    def _core_message(msg: Msg) -> Message:
        message = translate.ue_message(
            UEMessageDelivery(
                oriAddr=msg.oriAddr,
                destAddr=msg.destAddr,
                msgId=msg.msgId,
                stoAndFwInd=msg.stoAndFwInd,
                appId=msg.appId,
                delivStReqInd=msg.delivStReqInd,
                payload=msg.payload,
                segInd=msg.segInd,
                segParams=msg.segParams,
                stoAndFwParams=msg.stoAndFwParams,
            )
        )
        if msg.priority is None:
            return message
        return msgspec.structs.replace(message, priority=Priority.parse(msg.priority))

    def _check_origin(self, identity: str | None, origin: w.Address) -> None:
        if identity is None and not self._access.provisioned:
            return  # no PSKs configured: nothing to check on the hot path
        address = translate.address(origin)
        if address.kind == UE:
            self._access.check(identity, address.value)
        elif identity is not None:
            raise Forbidden("oriAddr must be the UE of the DTLS identity", cause="NOT_OWNER")

    async def _report(self, body: bytes, identity: str | None) -> CoapResponse:
        imdn = _decoded(_imdn, body, _IMDN_MANDATORY)
        _expect(imdn.msgType, "IMDN")
        report = translate.report(
            w.DeliveryStatusReport(
                oriAddr=imdn.oriAddr,
                destAddr=imdn.destAddr,
                msgId=imdn.msgId,
                delivSt=imdn.delivSt,
                failureCause=imdn.failureCause,
            )
        )
        if report.reporter.kind != UE:
            raise InvalidRequest("oriAddr/addrType must be UE", cause="MANDATORY_IE_INCORRECT")
        self._access.check(identity, report.reporter.value)
        self._require_registered(report.reporter)
        acceptance = await self._service.accept_report(report)
        return _json(Code.CHANGED, _response_for(imdn.msgId, acceptance))

    async def _segment_control(self, body: bytes, identity: str | None) -> CoapResponse:
        control = _decoded(_segment_control, body, _SEG_MANDATORY)
        _expect(control.msgType, ("SEGREC", "SEGCONFIR"))
        if control.msgType == "SEGREC":
            if not control.missing:
                raise InvalidRequest(
                    "SEGREC needs missing: [segNumb, ...]", cause="MANDATORY_IE_MISSING"
                )
            count = await self._segments.recover(control.segId, control.missing)
            if count == 0:
                raise NotFound(f"no kept segments of {control.segId!r}", cause="TARGET_NOT_FOUND")
            return CoapResponse(Code.CHANGED, b'{"resent":%d}' % count, ContentFormat.JSON)
        await self._segments.confirm(control.segId)
        return CoapResponse(Code.CHANGED)

    async def _topic(self, body: bytes, identity: str | None) -> CoapResponse:
        if self._topics is None:
            raise NotFound("topics are not available on this server", cause="TARGET_NOT_FOUND")
        request = _decoded(_topic_request, body, _TOPIC_MANDATORY)
        _expect(request.msgType, ("TOPICSUB", "TOPICUNSUB"))
        ue = translate.address(request.oriAddr)
        if ue.kind != UE:
            raise InvalidRequest("oriAddr/addrType must be UE", cause="MANDATORY_IE_INCORRECT")
        self._access.check(identity, ue.value)
        self._require_registered(ue)
        if request.msgType == "TOPICUNSUB":
            await self._topics.unsubscribe(ue, request.msgTopics)
            return _json(Code.CHANGED, TopicResp("TOPICUNSUBRESP", "UNSUBSCRIBED"))
        requested = request.exprTime
        if requested is not None and requested.tzinfo is None:
            raise InvalidRequest(
                "exprTime must carry a UTC offset (RFC 3339)", cause="OPTIONAL_IE_INCORRECT"
            )
        granted = await self._topics.subscribe(
            ue, request.msgTopics, requested.timestamp() if requested is not None else None
        )
        return _json(
            Code.CHANGED,
            TopicResp("TOPICSUBRESP", "SUBSCRIBED", datetime.fromtimestamp(granted, UTC)),
        )

    def _require_registered(self, ue: Address) -> None:
        if self._registry.get(ue.value) is None:
            raise NotFound(f"UE {ue.value!r} is not registered", cause="TARGET_NOT_FOUND")


def _decoded(decode: Callable[[bytes], T], body: bytes, mandatory: frozenset[str]) -> T:
    try:
        return decode(body)
    except msgspec.DecodeError as exc:
        raise decode_error(exc, mandatory) from None
