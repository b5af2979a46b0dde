# SPDX-License-Identifier: Apache-2.0
"""Our extension API for Non-MSGin5G UE registration by gateways (DESIGN 2.5).

TS 23.554 8.2.3 describes gateways registering the UEs they serve; TS 29.538 Rel-18 defines no
API for it, so this is ours, marked `x-msgin5g-extension` in the served OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from msgin5g.wire.common import Address, NonEmpty

GW_LEGACY_3GPP = "L3G"
GW_NON_3GPP = "N3G"


class GatewayUeRegistration(msgspec.Struct, omit_defaults=True):
    """Body of POST /ext-gwueregistration/v1/registrations: UEs served by one gateway."""

    gwType: NonEmpty
    gwApiRoot: NonEmpty
    ueSvcIds: Annotated[list[NonEmpty], msgspec.Meta(min_length=1, max_length=10_000)]


class GatewayUeRegistered(msgspec.Struct):
    ueSvcId: str
    registrationId: str


class GatewayUeRegistrationAck(msgspec.Struct):
    registrations: list[GatewayUeRegistered]


class GroupDefinition(msgspec.Struct, omit_defaults=True):
    """Body of PUT /ext-groups/v1/groups/{groupId}: the members, replacing any before."""

    members: list[Address]


class Group(msgspec.Struct):
    """A group as GET /ext-groups/v1/groups/{groupId} returns it."""

    groupId: str
    members: list[Address]
