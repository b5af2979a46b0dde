# SPDX-License-Identifier: Apache-2.0
"""MSGin5G UE registration and de-registration (TS 23.554 8.2.1 / 8.2.2, MSGin5G-1 REG).

The registry keeps every registration in memory for target resolution and writes through to
the store. Registering a `ueSvcId` again replaces its registration with a new `regId` (a UE
that restarted starts afresh; a late DELETE of the old `regId` then finds nothing). Stored
messages for a de-registered UE stay queued until they expire or the UE registers again.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence

from msgin5g.core.errors import InvalidRequest, NotFound
from msgin5g.core.message import UE, Address, UeRegistration
from msgin5g.core.segmentation import DEFAULT_MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE
from msgin5g.ports import MessageStore

log = logging.getLogger(__name__)


class UeRegistry:
    """In-memory view of the registered MSGin5G UEs, written through to the store."""

    def __init__(
        self,
        store: MessageStore,
        *,
        on_registered: Callable[[Address], None],
        on_deregistered: Callable[[Address], Awaitable[None]],
        default_max_segment_size: int = DEFAULT_MAX_SEGMENT_SIZE,
        on_changed: Callable[[Sequence[str]], None] = lambda _ids: None,
    ) -> None:
        self._store = store
        self._on_changed = on_changed
        """Called with the ueSvcIds of every committed change (other instances refresh
        those, ADR 0018)."""
        self._on_registered = on_registered
        self._on_deregistered = on_deregistered
        self._default_max_segment_size = default_max_segment_size
        self._by_ue: dict[str, UeRegistration] = {}

    async def load(self) -> None:
        """(Re)load every registration from the store."""
        self._by_ue = {r.ue_service_id: r for r in await self._store.load_ue_registrations()}

    async def refresh(self, ue_service_ids: Sequence[str]) -> None:
        """Re-read the registrations of `ue_service_ids` from the store (changed at another
        instance): one query, however many registrations the store holds."""
        found = await self._store.find_ue_registrations(ue_service_ids)
        current = {r.ue_service_id: r for r in found}
        for ue_service_id in ue_service_ids:
            registration = current.get(ue_service_id)
            if registration is None:
                self._by_ue.pop(ue_service_id, None)
            else:
                self._by_ue[ue_service_id] = registration

    def get(self, ue_service_id: str) -> UeRegistration | None:
        return self._by_ue.get(ue_service_id)

    def __len__(self) -> int:
        return len(self._by_ue)

    def max_segment_size(self, ue_service_id: str) -> int:
        """The segment size for messages to `ue_service_id`: its maxSegSize, else the default."""
        registration = self._by_ue.get(ue_service_id)
        if registration is None or registration.max_segment_size is None:  # gateway UEs too
            return self._default_max_segment_size
        return registration.max_segment_size

    async def register(
        self,
        ue_service_id: str,
        *,
        max_segment_size: int | None = None,
        communication_availability: bytes | None = None,
        triggering_info: bytes | None = None,
    ) -> UeRegistration:
        """Register `ue_service_id`, replacing an earlier registration; committed on return.

        Raises:
            InvalidRequest: `max_segment_size` is below MIN_SEGMENT_SIZE octets.
        """
        if max_segment_size is not None and max_segment_size < MIN_SEGMENT_SIZE:
            raise InvalidRequest(
                f"maxSegSize must be at least {MIN_SEGMENT_SIZE} octets",
                cause="OPTIONAL_IE_INCORRECT",
            )
        registration = UeRegistration(
            registration_id=secrets.token_urlsafe(12),
            ue_service_id=ue_service_id,
            max_segment_size=max_segment_size,
            communication_availability=communication_availability,
            triggering_info=triggering_info,
        )
        replaced = await self._store.save_ue_registration(registration)
        self._by_ue[ue_service_id] = registration
        self._on_changed((ue_service_id,))
        log.info(
            "UE registered",
            extra={
                "ueSvcId": ue_service_id,
                "registrationId": registration.registration_id,
                "replaced": replaced.registration_id if replaced else None,
            },
        )
        self._on_registered(Address(UE, ue_service_id))
        return registration

    async def register_via_gateway(
        self, gateway_type: str, api_root: str, ue_service_ids: Sequence[str]
    ) -> list[tuple[str, str]]:
        """Register Non-MSGin5G UEs on behalf of their gateway (TS 23.554 8.2.3).

        Idempotent: a UE already registered by the same gateway keeps its registration id.
        Returns (ueSvcId, registrationId) pairs in the order given.
        """
        out: list[tuple[str, str]] = []
        new: list[UeRegistration] = []
        for ue_service_id in dict.fromkeys(ue_service_ids):
            current = self._by_ue.get(ue_service_id)
            if (
                current is not None
                and current.gateway_type == gateway_type
                and current.gateway_api_root == api_root
            ):
                out.append((ue_service_id, current.registration_id))
                continue
            registration = UeRegistration(
                registration_id=secrets.token_urlsafe(12),
                ue_service_id=ue_service_id,
                gateway_type=gateway_type,
                gateway_api_root=api_root,
            )
            new.append(registration)
            out.append((ue_service_id, registration.registration_id))
        # Saved concurrently, so that the store commits them in a few batches rather than
        # one commit per UE (a gateway may register thousands at once).
        results = await asyncio.gather(
            *(self._store.save_ue_registration(r) for r in new), return_exceptions=True
        )
        failure: BaseException | None = None
        for registration, result in zip(new, results, strict=True):
            if isinstance(result, BaseException):
                failure = failure or result
                continue
            self._by_ue[registration.ue_service_id] = registration
            self._on_registered(Address(UE, registration.ue_service_id))
        if new:
            self._on_changed([r.ue_service_id for r in new])
        if failure is not None:
            raise failure
        log.info(
            "UEs registered by a gateway",
            extra={"gateway": api_root, "gwType": gateway_type, "count": len(out)},
        )
        return out

    def ue_of(self, registration_id: str) -> str | None:
        """The ueSvcId of the current registration `registration_id` (linear; deregistration
        is rare), None when no current registration has that id."""
        for registration in self._by_ue.values():
            if registration.registration_id == registration_id:
                return registration.ue_service_id
        return None

    async def deregister(self, registration_id: str) -> UeRegistration:
        """Remove a registration; raises NotFound for an unknown (or replaced) `regId`."""
        removed = await self._store.delete_ue_registration(registration_id)
        if removed is None:
            raise NotFound(f"no UE registration {registration_id!r}", cause="TARGET_NOT_FOUND")
        current = self._by_ue.get(removed.ue_service_id)
        if current is not None and current.registration_id == registration_id:
            del self._by_ue[removed.ue_service_id]
        self._on_changed((removed.ue_service_id,))
        log.info(
            "UE deregistered",
            extra={"ueSvcId": removed.ue_service_id, "registrationId": registration_id},
        )
        await self._on_deregistered(Address(UE, removed.ue_service_id))
        return removed
