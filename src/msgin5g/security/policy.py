# SPDX-License-Identifier: Apache-2.0
"""Authorization rules of the MSGin5G Server's APIs (TS 29.538 8.1.3/8.2.3 step "authorize the
caller"; ADR 0015). Each rule raises `Forbidden` (403) with an upper-snake-case cause.

`principal` None means authentication is off: every rule passes. ADMIN passes every rule.
"""

from __future__ import annotations

from collections.abc import Iterable

from msgin5g.core.errors import Forbidden
from msgin5g.core.message import UE, Address
from msgin5g.security.principal import ADMIN_ROLE, Principal

UNAUTHORIZED_ORIGINATOR = "UNAUTHORIZED_ORIGINATOR"
UNAUTHORIZED_REPORTER = "UNAUTHORIZED_REPORTER"
UNAUTHORIZED_AS_SERVICE = "UNAUTHORIZED_AS_SERVICE"
UNAUTHORIZED_UE = "UNAUTHORIZED_UE"
NOT_OWNER = "NOT_OWNER"
ADMIN_ONLY = "ADMIN_ONLY"


def speaks_for(principal: Principal, party: Address) -> bool:
    """Whether the client may act as `party`: its asSvcIds, or its address patterns."""
    return principal.speaks_for(party.kind, party.value)


def check_originator(principal: Principal | None, origin: Address) -> None:
    """deliver-as-message / deliver-ue-message: `oriAddr` must be the caller's own."""
    if principal is not None and not principal.speaks_for(origin.kind, origin.value):
        raise Forbidden(
            f"client {principal.client_id!r} may not send as {origin.kind} {origin.value!r}",
            cause=UNAUTHORIZED_ORIGINATOR,
        )


def check_reporter(principal: Principal | None, reporter: Address) -> None:
    """deliver-report: the reporter (`oriAddr`) must be the caller's own; the service then
    checks that the message was addressed to that reporter (NOT_A_RECIPIENT)."""
    if principal is not None and not speaks_for(principal, reporter):
        raise Forbidden(
            f"client {principal.client_id!r} may not report as {reporter.kind} {reporter.value!r}",
            cause=UNAUTHORIZED_REPORTER,
        )


def check_as_service(principal: Principal | None, as_svc_id: str) -> None:
    """AS registration: only for an asSvcId granted to the client."""
    if principal is not None and not principal.owns_as(as_svc_id):
        raise Forbidden(
            f"client {principal.client_id!r} is not granted asSvcId {as_svc_id!r}",
            cause=UNAUTHORIZED_AS_SERVICE,
        )


def check_ues(principal: Principal | None, ue_svc_ids: Iterable[str]) -> None:
    """Gateway UE registration: every UE must match the gateway client's patterns."""
    if principal is None:
        return
    for ue in ue_svc_ids:
        if not principal.speaks_for(UE, ue):
            raise Forbidden(
                f"client {principal.client_id!r} does not serve UE {ue!r}", cause=UNAUTHORIZED_UE
            )


def check_owner(principal: Principal | None, owned: bool, what: str) -> None:
    """Deregistration and the like: only the client the resource belongs to."""
    if principal is not None and not owned and not principal.admin:
        raise Forbidden(
            f"{what} does not belong to client {principal.client_id!r}", cause=NOT_OWNER
        )


def require_admin(principal: Principal | None) -> None:
    """Group management (ext-groups) is an operator's task."""
    if principal is not None and principal.role != ADMIN_ROLE:
        raise Forbidden(f"client {principal.client_id!r} is not an administrator", cause=ADMIN_ONLY)
