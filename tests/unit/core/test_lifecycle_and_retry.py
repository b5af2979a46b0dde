# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msgin5g.core.errors import IllegalTransition
from msgin5g.core.lifecycle import TERMINAL, TRANSITIONS, Event, State, advance
from msgin5g.core.retry import ExpiryPolicy, RetryPolicy


def test_delivered_message_cannot_be_dispatched_again() -> None:
    with pytest.raises(IllegalTransition):
        advance(State.DELIVERED, Event.DISPATCH)


@given(st.lists(st.sampled_from(list(Event)), max_size=30))
def test_terminal_states_are_absorbing(events: list[Event]) -> None:
    state = State.PENDING
    for event in events:
        try:
            new = advance(state, event)
        except IllegalTransition:
            continue
        assert state not in TERMINAL, "no edge may leave a terminal state"
        state = new


def test_every_non_terminal_state_can_reach_an_end() -> None:
    for state in State:
        if state in TERMINAL:
            continue
        assert any(src == state and dst in TERMINAL for (src, _e), dst in TRANSITIONS.items())


@given(st.integers(min_value=1, max_value=200), st.floats(min_value=0, max_value=0.999))
def test_backoff_grows_and_is_capped(attempts: int, rnd: float) -> None:
    policy = RetryPolicy(initial=0.5, factor=2.0, maximum=30.0, jitter=0.2)
    delay = policy.delay(attempts, rnd)
    assert 0.5 <= delay <= 30.0 * 1.2
    assert policy.delay(attempts + 1, 0.0) >= policy.delay(attempts, 0.0)


def test_expiry_rules() -> None:
    policy = ExpiryPolicy(default_ttl=100, max_ttl=1000, forward_window=10)
    now = 1_000_000.0
    assert policy.message_expiry(now, True, None) == now + 100
    assert policy.message_expiry(now, True, now + 50) == now + 50
    assert policy.message_expiry(now, True, now + 5000) == now + 1000
    assert policy.message_expiry(now, False, None) == now + 10
    assert policy.message_expiry(now, False, now + 3) == now + 3
