# SPDX-License-Identifier: Apache-2.0
"""MSGS_ASRegistration and MSGS_MSGDelivery bodies (TS 29.538 clauses 8.1.5 and 8.2.5)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from msgin5g.wire.common import (
    Address,
    MessageSegmentParameters,
    NonEmpty,
    StoreAndForwardParameters,
)
from msgin5g.wire.problem import ProblemDetails

NonEmptyList = Annotated[list[str], msgspec.Meta(min_length=1)]


class ASProfile(msgspec.Struct, omit_defaults=True):
    """`ASProfile`: descriptive profile of an AS (`appSenarios` is spelled as in the schema)."""

    appName: str | None = None
    appProviders: NonEmptyList | None = None
    appSenarios: NonEmptyList | None = None
    appCategory: str | None = None
    asStatus: str | None = None


class ASRegistration(msgspec.Struct, omit_defaults=True):
    """`ASRegistration`: body of MSGS_ASRegistration_Request."""

    asSvcId: NonEmpty
    appId: str | None = None
    targetUri: str | None = None
    asProf: ASProfile | None = None


class ASRegistrationAck(msgspec.Struct, omit_defaults=True):
    """`ASRegistrationAck`: `result` is a ProblemDetails even on success (clause 8.1.5.2.3)."""

    asSvcId: str
    result: ProblemDetails


class ASMessageDelivery(msgspec.Struct, omit_defaults=True):
    """`ASMessageDelivery`: body of MSGS_MSGDelivery_ASODelivery."""

    oriAddr: Address
    destAddr: Address
    msgId: NonEmpty
    stoAndFwInd: bool
    appId: str | None = None
    delivStReqInd: bool | None = None
    payload: str | None = None
    priority: str | None = None
    segInd: bool | None = None
    segParams: MessageSegmentParameters | None = None
    stoAndFwParams: StoreAndForwardParameters | None = None
    latency: int | None = None


class UEMessageDelivery(msgspec.Struct, omit_defaults=True):
    """`UEMessageDelivery`: body of MSGS_MSGDelivery_UEODelivery (sent by L3G/N3G)."""

    oriAddr: Address
    destAddr: Address
    msgId: NonEmpty
    stoAndFwInd: bool
    appId: str | None = None
    delivStReqInd: bool | None = None
    payload: str | None = None
    segInd: bool | None = None
    segParams: MessageSegmentParameters | None = None
    stoAndFwParams: StoreAndForwardParameters | None = None


class MessageDeliveryAck(msgspec.Struct, omit_defaults=True):
    """`MessageDeliveryAck`: `status` absent when forwarded at once (DESIGN 2.1)."""

    oriAddr: Address
    msgId: str
    status: str | None = None
    failureCause: str | None = None
