# SPDX-License-Identifier: Apache-2.0
"""MSGS_ASRegistration (TS 29.538 8.1): POST /registrations, DELETE /registrations/{id}."""

from __future__ import annotations

import msgspec

from msgin5g.api.app import Operation
from msgin5g.api.http import Request, Response
from msgin5g.api.problems import decode_error
from msgin5g.api.translate import check_target_uri
from msgin5g.security import policy
from msgin5g.services.registration import AsRegistry
from msgin5g.wire.msgs import ASRegistration, ASRegistrationAck
from msgin5g.wire.problem import ProblemDetails

BASE = "/msgs-asregistration/v1"
_decode = msgspec.json.Decoder(ASRegistration).decode
_encode = msgspec.json.Encoder().encode
_MANDATORY = frozenset({"asSvcId"})


def operations(registry: AsRegistry, api_root: str | None) -> list[Operation]:
    async def register(request: Request) -> Response:
        try:
            body = _decode(request.body)
        except msgspec.DecodeError as exc:
            raise decode_error(exc, _MANDATORY) from None
        policy.check_as_service(request.principal, body.asSvcId)
        check_target_uri(body.targetUri)
        profile = _encode(body.asProf) if body.asProf is not None else None
        saved = await registry.register(body.asSvcId, body.appId, body.targetUri, profile)
        location = f"{request.base_url(api_root)}{BASE}/registrations/{saved.registration_id}"
        ack = ASRegistrationAck(
            asSvcId=saved.as_service_id, result=ProblemDetails(status=201, title="Created")
        )
        return Response(201, _encode(ack), headers=[(b"location", location.encode())])

    async def deregister(request: Request) -> Response:
        registration_id = request.params["registrationId"]
        principal = request.principal
        if principal is not None:
            # Only the registrations of the caller's own asSvcIds (ADR 0015).
            own = (registry.get(a) for a in principal.as_svc_ids)
            owned = any(r is not None and r.registration_id == registration_id for r in own)
            policy.check_owner(principal, owned, f"registration {registration_id!r}")
        await registry.deregister(registration_id)
        return Response(204, content_type=None)

    return [
        Operation("POST", f"{BASE}/registrations", "asregistration.request", register, True),
        Operation(
            "DELETE",
            f"{BASE}/registrations/{{registrationId}}",
            "asregistration.deregister",
            deregister,
        ),
    ]
