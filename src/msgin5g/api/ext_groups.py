# SPDX-License-Identifier: Apache-2.0
"""MSGin5G groups: create, read, replace and delete (our extension; TS 23.554 8.7.4 leaves
group management to SEAL, which this API stands in for).

PUT /ext-groups/v1/groups/{groupId} creates (201) or replaces (200) the member list; GET reads
it; DELETE removes it (204). Members are TS 29.538 Addresses (UE or AS).
"""

from __future__ import annotations

import msgspec

from msgin5g.api.app import Operation
from msgin5g.api.http import Request, Response
from msgin5g.api.problems import decode_error
from msgin5g.api.translate import address, wire_address
from msgin5g.core.errors import NotFound
from msgin5g.security import policy
from msgin5g.services.groups import GroupRegistry
from msgin5g.wire.ext import Group, GroupDefinition

BASE = "/ext-groups/v1"
_decode = msgspec.json.Decoder(GroupDefinition).decode
_encode = msgspec.json.Encoder().encode


def operations(groups: GroupRegistry, api_root: str | None) -> list[Operation]:
    def body(group_id: str) -> bytes:
        members = groups.members(group_id) or ()
        return _encode(Group(groupId=group_id, members=[wire_address(m) for m in members]))

    async def put(request: Request) -> Response:
        policy.require_admin(request.principal)
        group_id = request.params["groupId"]
        try:
            definition = _decode(request.body)
        except msgspec.DecodeError as exc:
            raise decode_error(exc, frozenset({"members"})) from None
        created = await groups.save(group_id, [address(m) for m in definition.members])
        headers = []
        if created:
            location = f"{request.base_url(api_root)}{BASE}/groups/{group_id}"
            headers.append((b"location", location.encode()))
        return Response(201 if created else 200, body(group_id), headers=headers)

    async def get(request: Request) -> Response:
        policy.require_admin(request.principal)
        group_id = request.params["groupId"]
        if groups.members(group_id) is None:
            raise NotFound(f"no group {group_id!r}", cause="TARGET_NOT_FOUND")
        return Response(200, body(group_id))

    async def delete(request: Request) -> Response:
        policy.require_admin(request.principal)
        await groups.delete(request.params["groupId"])
        return Response(204, content_type=None)

    path = f"{BASE}/groups/{{groupId}}"
    return [
        Operation("PUT", path, "groups.put", put, True),
        Operation("GET", path, "groups.get", get),
        Operation("DELETE", path, "groups.delete", delete),
    ]
