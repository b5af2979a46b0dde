# SPDX-License-Identifier: Apache-2.0
"""Target resolution (TS 23.554 5.3.2.2): which delivery path a recipient address takes.

Rules are tried in order per address kind; the first that knows the recipient wins. A
recipient no rule knows is a failure with a cause the sender sees in `failureCause`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from msgin5g.core.message import AS, BROADCAST, GROUP, TOPIC, UE, Address


class Path(enum.Enum):
    """A delivery path of TS 23.554 5.3.2.2 / 8.7."""

    APPLICATION_SERVER = "as"
    MSGIN5G_UE = "ue"
    GATEWAY = "gateway"
    GROUP_FAN_OUT = "group"
    BROADCAST = "broadcast"
    TOPIC_FAN_OUT = "topic"
    PEER_SERVER = "peer"


@dataclass(frozen=True, slots=True)
class Route:
    """A resolved recipient: the path and whether it can take a message right now."""

    path: Path
    reachable: bool


@dataclass(frozen=True, slots=True)
class Unroutable:
    """No path: `cause` is the failureCause returned to the sender."""

    cause: str


Rule = Callable[[Address], Route | None]


NOT_YET_SUPPORTED = {
    BROADCAST: "BROADCAST_NOT_SUPPORTED: no Broadcast Message Gateway is configured",
}


def resolve(recipient: Address, rules: dict[str, Sequence[Rule]]) -> Route | Unroutable:
    """Resolve `recipient` with the ordered `rules` registered for its address kind."""
    for rule in rules.get(recipient.kind, ()):
        route = rule(recipient)
        if route is not None:
            return route
    if recipient.kind in NOT_YET_SUPPORTED:
        return Unroutable(NOT_YET_SUPPORTED[recipient.kind])
    if recipient.kind == AS:
        return Unroutable(
            f"UNKNOWN_RECIPIENT: no Application Server {recipient.value!r} is registered"
        )
    if recipient.kind == UE:
        return Unroutable(f"UNKNOWN_RECIPIENT: no UE {recipient.value!r} is registered")
    if recipient.kind == GROUP:
        return Unroutable(f"UNKNOWN_RECIPIENT: no group {recipient.value!r} exists")
    if recipient.kind == TOPIC:
        # A topic exists while it has a current subscriber (TS 23.554 8.8.1); see ADR 0011.
        return Unroutable(f"NO_SUBSCRIBERS: topic {recipient.value!r} has no current subscriber")
    return Unroutable(f"UNSUPPORTED_ADDRESS_TYPE: address type {recipient.kind!r} is not supported")
