# SPDX-License-Identifier: Apache-2.0
"""Non-MSGin5G UE registration by gateways (TS 23.554 8.2.3/8.2.4; our extension, DESIGN 2.5).

POST /ext-gwueregistration/v1/registrations registers (or re-registers) the UEs one gateway
serves, with the gateway's type (L3G: msgg-l3gdelivery, N3G: msgg-n3gdelivery) and apiRoot;
DELETE /ext-gwueregistration/v1/registrations/{registrationId} removes one UE.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from msgin5g.api.app import Operation
from msgin5g.api.http import Request, Response
from msgin5g.api.problems import decode_error
from msgin5g.api.translate import check_api_root
from msgin5g.core.errors import InvalidField, InvalidRequest
from msgin5g.security import policy
from msgin5g.wire.ext import (
    GW_LEGACY_3GPP,
    GW_NON_3GPP,
    GatewayUeRegistered,
    GatewayUeRegistration,
    GatewayUeRegistrationAck,
)

BASE = "/ext-gwueregistration/v1"
_decode = msgspec.json.Decoder(GatewayUeRegistration).decode
_encode = msgspec.json.Encoder().encode
_MANDATORY = frozenset({"gwType", "gwApiRoot", "ueSvcIds"})


class GatewayUeRegistrar(Protocol):
    """What the handlers need of the UE registry."""

    async def register_via_gateway(
        self, gateway_type: str, api_root: str, ue_service_ids: Sequence[str]
    ) -> list[tuple[str, str]]:
        """Register the UEs; returns (ueSvcId, registrationId) pairs."""
        ...

    async def deregister(self, registration_id: str) -> object:
        """Remove one registration; raises NotFound for an unknown id."""
        ...

    def ue_of(self, registration_id: str) -> str | None:
        """The ueSvcId of a current registration (for the owner check), None if unknown."""
        ...


def operations(registrar: GatewayUeRegistrar, api_root: str | None) -> list[Operation]:
    async def register(request: Request) -> Response:
        try:
            body = _decode(request.body)
        except msgspec.DecodeError as exc:
            raise decode_error(exc, _MANDATORY) from None
        if body.gwType not in (GW_LEGACY_3GPP, GW_NON_3GPP):
            raise InvalidRequest(
                "/gwType must be L3G or N3G",
                cause="MANDATORY_IE_INCORRECT",
                fields=[InvalidField("/gwType", "expected L3G or N3G")],
            )
        check_api_root(body.gwApiRoot, "/gwApiRoot")
        policy.check_ues(request.principal, body.ueSvcIds)
        pairs = await registrar.register_via_gateway(
            body.gwType, body.gwApiRoot.rstrip("/"), body.ueSvcIds
        )
        ack = GatewayUeRegistrationAck(
            registrations=[GatewayUeRegistered(ueSvcId=u, registrationId=r) for u, r in pairs]
        )
        location = f"{request.base_url(api_root)}{BASE}/registrations"
        return Response(201, _encode(ack), headers=[(b"location", location.encode())])

    async def deregister(request: Request) -> Response:
        registration_id = request.params["registrationId"]
        if request.principal is not None:
            ue = registrar.ue_of(registration_id)
            owned = ue is not None and request.principal.speaks_for("UE", ue)
            policy.check_owner(request.principal, owned, f"registration {registration_id!r}")
        await registrar.deregister(registration_id)
        return Response(204, content_type=None)

    return [
        Operation("POST", f"{BASE}/registrations", "gwueregistration.request", register, True),
        Operation(
            "DELETE",
            f"{BASE}/registrations/{{registrationId}}",
            "gwueregistration.deregister",
            deregister,
        ),
    ]
