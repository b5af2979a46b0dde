# SPDX-License-Identifier: Apache-2.0
"""The authenticated caller of one request and what it is granted (ADR 0015).

Scopes are apiNames (TS 29.538 11.1: the pre-V18.4.0 per-API scopes); a role gives the default
scopes a client gets when its configuration names none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from msgin5g.core.peering import address_patterns

AS_ROLE: Final = "AS"
GATEWAY_ROLE: Final = "GATEWAY"
PEER_ROLE: Final = "PEER"
ADMIN_ROLE: Final = "ADMIN"
ROLES: Final = frozenset({AS_ROLE, GATEWAY_ROLE, PEER_ROLE, ADMIN_ROLE})

SERVER_SCOPES: Final = frozenset(
    {
        "msgs-asregistration",
        "msgs-msgdelivery",
        "msgs-topiclistevent",
        "ext-gwueregistration",
        "ext-groups",
        "ext-peering",
    }
)
GATEWAY_API_SCOPES: Final = frozenset({"msgg-l3gdelivery", "msgg-n3gdelivery", "msgg-bgdelivery"})
ALL_SCOPES: Final = SERVER_SCOPES | GATEWAY_API_SCOPES

DEFAULT_SCOPES: Final = {
    AS_ROLE: frozenset({"msgs-asregistration", "msgs-msgdelivery", "msgs-topiclistevent"}),
    GATEWAY_ROLE: frozenset({"ext-gwueregistration", "msgs-msgdelivery"}),
    PEER_ROLE: frozenset({"msgs-msgdelivery", "msgs-topiclistevent", "ext-peering"})
    | GATEWAY_API_SCOPES,
    ADMIN_ROLE: ALL_SCOPES,
}

PROTECTED_PREFIXES: Final = ("msgs-", "msgg-", "ext-")


def scope_of(path: str) -> str | None:
    """The scope (apiName) guarding `path`, or None for the public operations endpoints."""
    first = path[1:].partition("/")[0]
    return first if first.startswith(PROTECTED_PREFIXES) else None


@dataclass(frozen=True, slots=True)
class Principal:
    """A client as configured (`[[auth.clients]]`) and narrowed by its token's scopes."""

    client_id: str
    role: str
    scopes: frozenset[str]
    as_svc_ids: frozenset[str] = frozenset()
    addresses: tuple[str, ...] = ()
    """Patterns over "KIND:value" with * and ? (e.g. "UE:gw1-*"), as in `[peering]`."""

    @property
    def admin(self) -> bool:
        return self.role == ADMIN_ROLE

    def owns_as(self, as_svc_id: str) -> bool:
        """May register and act as the Application Server `as_svc_id`."""
        return self.admin or as_svc_id in self.as_svc_ids

    def speaks_for(self, kind: str, value: str) -> bool:
        """May act as the party `kind:value`: an AS by its granted asSvcIds, any party
        (a gateway's UEs, a peer server's users) by the address patterns."""
        if (kind == "AS" and value in self.as_svc_ids) or self.role == ADMIN_ROLE:
            return True
        return address_patterns(self.addresses).matches_key(f"{kind}:{value}")
