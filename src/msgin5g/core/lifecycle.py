# SPDX-License-Identifier: Apache-2.0
"""The stored-delivery state machine as one transition table (TS 23.554 8.3.6 store and forward).

    PENDING ──dispatch──▶ IN_FLIGHT ──ack──▶ DELIVERED
       ▲  │                  │ ├─retry──▶ PENDING
       │  └─expire──▶ EXPIRED│ ├─reject─▶ FAILED
       └──────────── restart ┘ └─expire─▶ EXPIRED

IN_FLIGHT is never persisted: after a crash the item is PENDING again, which is what makes
delivery at least once.
"""

from __future__ import annotations

import enum

from msgin5g.core.errors import IllegalTransition


class State(enum.Enum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"


class Event(enum.Enum):
    DISPATCH = "dispatch"
    ACK = "ack"
    RETRY = "retry"
    REJECT = "reject"
    EXPIRE = "expire"
    CANCEL = "cancel"


TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.PENDING, Event.DISPATCH): State.IN_FLIGHT,
    (State.PENDING, Event.EXPIRE): State.EXPIRED,
    (State.PENDING, Event.REJECT): State.FAILED,
    (State.IN_FLIGHT, Event.ACK): State.DELIVERED,
    (State.IN_FLIGHT, Event.RETRY): State.PENDING,
    (State.IN_FLIGHT, Event.REJECT): State.FAILED,
    (State.IN_FLIGHT, Event.EXPIRE): State.EXPIRED,
    (State.IN_FLIGHT, Event.CANCEL): State.PENDING,
}

TERMINAL = frozenset({State.DELIVERED, State.FAILED, State.EXPIRED})


def advance(state: State, event: Event) -> State:
    """Return the state after `event`; raises IllegalTransition for an edge not in the table."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(f"{event.value} is not allowed in state {state.value}") from None
