# SPDX-License-Identifier: Apache-2.0
"""AS registration and deregistration (TS 29.538 8.1 MSGS_ASRegistration, TS 23.554 8.2.5).

The registry keeps every registration in memory for target resolution and writes through to
the store. Registering an `asSvcId` again updates it and keeps its registration id; stored
messages for a deregistered AS wait for it to come back until they expire (ADR 0005).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

from msgin5g.core.errors import NotFound
from msgin5g.core.message import AS, Address, AsRegistration
from msgin5g.ports import MessageStore

log = logging.getLogger(__name__)


class AsRegistry:
    """In-memory view of the registered Application Servers, written through to the store."""

    def __init__(
        self,
        store: MessageStore,
        on_registered: Callable[[Address], None],
        *,
        on_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._on_registered = on_registered
        self._on_changed = on_changed
        """Called after every committed change (other instances reload, ADR 0018)."""
        self._by_service: dict[str, AsRegistration] = {}

    async def load(self) -> list[str]:
        """(Re)load every registration from the store; returns the asSvcIds registered or
        changed since the last load (another instance's work, ADR 0018)."""
        before = self._by_service
        self._by_service = {r.as_service_id: r for r in await self._store.load_as_registrations()}
        return [k for k, r in self._by_service.items() if before.get(k) != r]

    def get(self, as_service_id: str) -> AsRegistration | None:
        return self._by_service.get(as_service_id)

    def __len__(self) -> int:
        return len(self._by_service)

    async def register(
        self,
        as_service_id: str,
        app_id: str | None,
        target_uri: str | None,
        profile_json: bytes | None,
    ) -> AsRegistration:
        """Register or update; returns the registration with its (stable) id."""
        saved = await self._store.save_as_registration(
            AsRegistration(
                registration_id=secrets.token_urlsafe(12),
                as_service_id=as_service_id,
                app_id=app_id,
                target_uri=target_uri,
                profile_json=profile_json,
            )
        )
        self._by_service[as_service_id] = saved
        self._on_changed()
        log.info(
            "AS registered",
            extra={"asSvcId": as_service_id, "registrationId": saved.registration_id},
        )
        self._on_registered(Address(AS, as_service_id))
        return saved

    async def deregister(self, registration_id: str) -> AsRegistration:
        """Remove a registration; raises NotFound for an unknown id."""
        removed = await self._store.delete_as_registration(registration_id)
        if removed is None:
            raise NotFound(f"no AS registration {registration_id!r}", cause="TARGET_NOT_FOUND")
        current = self._by_service.get(removed.as_service_id)
        if current is not None and current.registration_id == registration_id:
            del self._by_service[removed.as_service_id]
        self._on_changed()
        log.info(
            "AS deregistered",
            extra={"asSvcId": removed.as_service_id, "registrationId": registration_id},
        )
        return removed
