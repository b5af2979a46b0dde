# SPDX-License-Identifier: Apache-2.0
"""Target resolution as a table (TS 23.554 5.3.2.2)."""

from __future__ import annotations

import pytest

from msgin5g.core.message import Address
from msgin5g.core.routing import Path, Route, Rule, Unroutable, resolve

KNOWN_AS = Route(Path.APPLICATION_SERVER, reachable=True)


def as_rule(address: Address) -> Route | None:
    return KNOWN_AS if address.value == "app-b" else None


RULES: dict[str, tuple[Rule, ...]] = {"AS": (as_rule,)}


@pytest.mark.parametrize(
    ("recipient", "expected"),
    [
        (Address("AS", "app-b"), KNOWN_AS),
        (Address("AS", "nobody"), "UNKNOWN_RECIPIENT"),
        (Address("UE", "ue-1"), "UNKNOWN_RECIPIENT"),
        (Address("GROUP", "g"), "UNKNOWN_RECIPIENT"),
        (Address("TOPIC", "t"), "NO_SUBSCRIBERS"),
        (Address("BC", "area-1"), "BROADCAST_NOT_SUPPORTED"),
        (Address("SATELLITE", "x"), "UNSUPPORTED_ADDRESS_TYPE"),
    ],
)
def test_resolution(recipient: Address, expected: Route | str) -> None:
    got = resolve(recipient, RULES)
    if isinstance(expected, Route):
        assert got == expected
    else:
        assert isinstance(got, Unroutable)
        assert got.cause.startswith(expected)


def test_first_rule_that_knows_the_recipient_wins() -> None:
    second = Route(Path.GATEWAY, reachable=False)
    rules: dict[str, tuple[Rule, ...]] = {"AS": (as_rule, lambda a: second)}
    assert resolve(Address("AS", "app-b"), rules) == KNOWN_AS
    assert resolve(Address("AS", "other"), rules) == second
