# SPDX-License-Identifier: Apache-2.0
"""MSGG_L3GDelivery / MSGG_N3GDelivery bodies (TS 29.538 clauses 9.1.5, 9.2.5).

The same shape is our binding for server-to-AS delivery at `{targetUri}/deliver-message`
(DESIGN 2.2), so one Struct serves both.
"""

from __future__ import annotations

import msgspec

from msgin5g.wire.common import Address, MessageSegmentParameters, NonEmpty


class GatewayMessageDelivery(msgspec.Struct, omit_defaults=True):
    """`L3gMessageDelivery` / `N3gMessageDelivery` (identical fields)."""

    oriAddr: Address
    destAddr: Address
    msgId: NonEmpty
    appId: str | None = None
    delivStReqInd: bool | None = None
    payload: str | None = None
    segInd: bool | None = None
    segParams: MessageSegmentParameters | None = None
