# SPDX-License-Identifier: Apache-2.0
"""MSGin5G groups and group fan-out (TS 23.554 8.7.4; group management is SEAL's role there).

A message to `{GROUP, id}` is committed once, as one delivery to the group itself, and
acknowledged. The group's lane then expands it: member deliveries are added in chunks, each
its own commit, so a group of 10,000 never holds the loop for long, and a fan-out that a crash
interrupted resumes without queueing a member twice. Each member's delivery goes its own way
(AS, CoAP UE, gateway) with store-and-forward, and each member reports on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from msgin5g.core.errors import InvalidField, InvalidRequest, NotFound
from msgin5g.core.message import GROUP, Address, Delivery
from msgin5g.ports import MessageStore, SendOutcome, SendResult
from msgin5g.services.fanout import fan_out

log = logging.getLogger(__name__)


class GroupRegistry:
    """The groups and their members, in memory and written through to the store."""

    def __init__(
        self,
        store: MessageStore,
        *,
        max_members: int = 10_000,
        on_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._max_members = max_members
        self._on_changed = on_changed
        """Called after every committed change (other instances reload, ADR 0018)."""
        self._groups: dict[str, tuple[Address, ...]] = {}

    async def load(self) -> list[str]:
        """(Re)load every group; returns the ids of those created or changed since the last
        load (another instance's work, ADR 0018)."""
        before = self._groups
        self._groups = await self._store.load_groups()
        return [g for g, members in self._groups.items() if before.get(g) != members]

    def members(self, group_id: str) -> tuple[Address, ...] | None:
        return self._groups.get(group_id)

    def __len__(self) -> int:
        return len(self._groups)

    async def save(self, group_id: str, members: Sequence[Address]) -> bool:
        """Create or replace; returns True when created. Raises InvalidRequest when too big."""
        unique = tuple(dict.fromkeys(members))
        if len(unique) > self._max_members:
            raise InvalidRequest(
                f"a group may have at most {self._max_members} members",
                cause="OPTIONAL_IE_INCORRECT",
                fields=[InvalidField("/members", f"more than {self._max_members} members")],
            )
        if any(m.kind == GROUP for m in unique):
            raise InvalidRequest(
                "a group cannot contain a group",
                cause="OPTIONAL_IE_INCORRECT",
                fields=[InvalidField("/members", "nested group")],
            )
        created = await self._store.save_group(group_id, unique)
        self._groups[group_id] = unique
        self._on_changed()
        log.info("group saved", extra={"groupId": group_id, "members": len(unique)})
        return created

    async def delete(self, group_id: str) -> None:
        if not await self._store.delete_group(group_id):
            raise NotFound(f"no group {group_id!r}", cause="TARGET_NOT_FOUND")
        self._groups.pop(group_id, None)
        self._on_changed()


class GroupFanOut:
    """`Transport` for `{GROUP, id}` recipients: queues one delivery per member."""

    def __init__(
        self,
        groups: GroupRegistry,
        store: MessageStore,
        submit: Callable[[Sequence[Delivery]], None],
        *,
        chunk: int = 500,
    ) -> None:
        self._groups = groups
        self._store = store
        self._submit = submit
        self._chunk = chunk

    async def send(self, delivery: Delivery) -> SendOutcome:
        members = self._groups.members(delivery.recipient.value)
        if members is None:
            return SendOutcome(SendResult.REJECTED, "UNKNOWN_RECIPIENT: the group was deleted")
        queued = await fan_out(delivery, members, self._store, self._submit, chunk=self._chunk)
        log.info(
            "group message fanned out",
            extra={
                "groupId": delivery.recipient.value,
                "msgId": delivery.message_id,
                "originator": delivery.origin.key,
                "members": len(members),
                "queued": queued,
            },
        )
        return SendOutcome(SendResult.DELIVERED)
