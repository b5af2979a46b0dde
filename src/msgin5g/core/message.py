# SPDX-License-Identifier: Apache-2.0
"""Value objects of the MSGin5G domain (TS 23.554 clause 8.3 information elements).

The core speaks full words; `api/translate.py` maps the abbreviated TS 29.538 field names
(`oriAddr`, `stoAndFwInd`, ...) onto these.
"""

from __future__ import annotations

import enum

import msgspec

# Address kinds (TS 29.538 AddressType). Unknown kinds are carried, never rejected.
UE = "UE"
AS = "AS"
GROUP = "GROUP"
BROADCAST = "BC"
TOPIC = "TOPIC"
PEER = "PEER"
"""Not a TS 29.538 kind: a peer MSGin5G Server as the recipient of the topic messages its
subscribers are owed (ADR 0013). It appears on the wire only in reports about such a copy."""


class Address(msgspec.Struct, frozen=True, gc=False):
    """An MSGin5G party. `value` is opaque and compared exactly (DESIGN 2.1)."""

    kind: str
    value: str

    @property
    def key(self) -> str:
        """A stable one-string form, used as the recipient key of queues and stores."""
        return f"{self.kind}:{self.value}"

    @classmethod
    def from_key(cls, key: str) -> Address:
        kind, _, value = key.partition(":")
        return cls(kind, value)


class Priority(enum.IntEnum):
    """Application priority (TS 29.538 Priority); lower value goes first."""

    HIGH = 0
    MIDDLE = 1
    LOW = 2

    @classmethod
    def parse(cls, text: str | None) -> Priority:
        """Unknown or absent priority strings count as MIDDLE (extensible enum)."""
        if text is None:
            return cls.MIDDLE
        try:
            return cls[text]
        except KeyError:
            return cls.MIDDLE


class Segment(msgspec.Struct, frozen=True, gc=False):
    """Segment parameters of one part of a segmented message (TS 23.554 8.5)."""

    segment_id: str | None
    number: int | None
    total: int | None
    last: bool | None


class Message(msgspec.Struct, frozen=True, gc=False):
    """An MSGin5G message as accepted by the server."""

    originator: Address
    recipient: Address
    message_id: str
    store_and_forward: bool
    app_id: str | None = None
    payload: str | None = None
    wants_report: bool = False
    priority: Priority = Priority.MIDDLE
    segment: Segment | None = None
    expires_at: float | None = None
    """Sender's bound (epoch seconds) from `stoAndFwParams.exprTime`; None = operator default."""
    latency_ms: int | None = None


class ReportStatus(enum.Enum):
    """ReportDeliveryStatus values the core acts on."""

    DELIVERED = "REPT_DELY_SUCCESS"
    FAILED = "REPT_DELY_FAILED"


class Report(msgspec.Struct, frozen=True, gc=False):
    """A delivery status report: `reporter` received `message_id` that `recipient` sent."""

    reporter: Address
    recipient: Address
    message_id: str
    status: str
    failure_cause: str | None = None


class AckStatus(enum.Enum):
    """How the server answered a message (MessageDeliveryAck.status)."""

    FORWARDED = None
    STORED = "DELY_STORED"
    FAILED = "DELY_FAILED"


class Acceptance(msgspec.Struct, frozen=True, gc=False):
    """The server's answer to one message or report: status plus failure cause."""

    status: AckStatus
    failure_cause: str | None = None


class AsRegistration(msgspec.Struct, frozen=True, gc=False):
    """A registered Application Server (TS 23.554 8.2.5)."""

    registration_id: str
    as_service_id: str
    app_id: str | None
    target_uri: str | None
    profile_json: bytes | None = None
    """The ASProfile as received, kept verbatim."""


class DeliveryKind(enum.Enum):
    """What a queued delivery carries to its recipient."""

    MESSAGE = "message"
    REPORT = "report"


class Delivery(msgspec.Struct, frozen=True, gc=False):
    """One durable work item: `body` (wire JSON) to hand to `recipient`.

    `origin` and `message_id` name the message the item belongs to, so a failure can be
    reported back to the originator when `wants_report` is set.
    """

    delivery_id: int
    kind: DeliveryKind
    recipient: Address
    body: bytes
    priority: Priority
    expires_at: float
    origin: Address
    message_id: str
    wants_report: bool
    attempts: int = 0


class UeRegistration(msgspec.Struct, frozen=True, gc=False):
    """A registered MSGin5G UE (TS 23.554 8.2.1, Table 8.2.1-1 MSGin5G Client Profile).

    `max_segment_size` is the client's supported maximum segment size in octets (None: the
    server default); `communication_availability` and `triggering_info` are the client's JSON
    objects as received, kept verbatim.
    """

    registration_id: str
    ue_service_id: str
    max_segment_size: int | None = None
    communication_availability: bytes | None = None
    triggering_info: bytes | None = None
    gateway_type: str | None = None
    """For a Non-MSGin5G UE (TS 23.554 8.2.3): "L3G" or "N3G", the gateway that serves it."""
    gateway_api_root: str | None = None
    """The serving gateway's apiRoot, where msgg-l3gdelivery / msgg-n3gdelivery live."""

    @property
    def via_gateway(self) -> bool:
        return self.gateway_api_root is not None
