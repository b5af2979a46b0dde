# SPDX-License-Identifier: Apache-2.0
"""Shapes shared by every TS 29.538 Rel-18 API (clause 7.2; OpenAPI 1.1.0-alpha drafts).

`Address` is defined in TS29538_MSGG_L3GDelivery.yaml; `MessageSegmentParameters`,
`StoreAndForwardParameters` and `DeliveryStatusReport` in TS29538_MSGS_MSGDelivery.yaml.
Enumerations are 3GPP extensible enums (any string is accepted), so they are plain `str`
here; the known values are constants.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]

# AddressType (TS 29.538 clause 9.1.5.3.3)
ADDR_UE = "UE"
ADDR_AS = "AS"
ADDR_GROUP = "GROUP"
ADDR_BC = "BC"
ADDR_TOPIC = "TOPIC"

# DeliveryStatus (clause 8.2.5.3.3) and ReportDeliveryStatus (clause 8.2.5.3.4)
DELY_FAILED = "DELY_FAILED"
DELY_STORED = "DELY_STORED"
REPT_DELY_SUCCESS = "REPT_DELY_SUCCESS"
REPT_DELY_FAILED = "REPT_DELY_FAILED"

# Priority (clause 8.2.5.3.5)
PRIORITY_HIGH = "HIGH"
PRIORITY_MIDDLE = "MIDDLE"
PRIORITY_LOW = "LOW"


class Address(msgspec.Struct, frozen=True):
    """`Address`: an addressable MSGin5G party (UE, AS, group, broadcast area or topic)."""

    addrType: NonEmpty
    addr: NonEmpty


class MessageSegmentParameters(msgspec.Struct, omit_defaults=True):
    """`MessageSegmentParameters`: identifies one segment of a segmented message."""

    segId: str | None = None
    totalSegCount: int | None = None
    segNumb: int | None = None
    lastSegFlag: bool | None = None


class StoreAndForwardParameters(msgspec.Struct, omit_defaults=True):
    """`StoreAndForwardParameters`: `exprTime` bounds how long the server may keep a message."""

    exprTime: datetime | None = None


class DeliveryStatusReport(msgspec.Struct, omit_defaults=True):
    """`DeliveryStatusReport`: `oriAddr` issued the report about `msgId` for `destAddr`."""

    oriAddr: Address
    destAddr: Address
    msgId: NonEmpty
    delivSt: NonEmpty
    failureCause: str | None = None
