# SPDX-License-Identifier: Apache-2.0
"""Which peer server an address is homed on (ADR 0013)."""

from __future__ import annotations

from msgin5g.core.message import Address
from msgin5g.core.peering import PeerDirectory


def test_patterns_match_the_address_key_exactly_and_first_peer_wins() -> None:
    peers = PeerDirectory(
        [("plmn2", ["UE:*@plmn2", "AS:plmn2-*"]), ("plmn3", ["UE:*@plmn*", "AS:app-?"])]
    )
    assert peers.home_of(Address("UE", "dev@plmn2")) == "plmn2"
    assert peers.home_of(Address("UE", "dev@plmn3")) == "plmn3"
    assert peers.home_of(Address("AS", "plmn2-billing")) == "plmn2"
    assert peers.home_of(Address("AS", "app-1")) == "plmn3"
    assert peers.home_of(Address("AS", "app-12")) is None  # ? is one character
    assert peers.home_of(Address("AS", "dev@plmn2")) is None  # the kind is part of the key
    assert peers.home_of(Address("UE", "DEV@PLMN2".lower())) == "plmn2"
    assert peers.home_of(Address("UE", "dev@PLMN2")) is None  # compared exactly (DESIGN 2.1)
    assert peers.homed_elsewhere(Address("UE", "dev@plmn2"))
    assert not peers.homed_elsewhere(Address("UE", "local-ue"))


def test_no_peers_means_nothing_is_homed_elsewhere() -> None:
    peers = PeerDirectory([])
    assert not peers.homed_elsewhere(Address("UE", "x@plmn2"))
    assert peers.home_of(Address("UE", "x@plmn2")) is None


def test_cache_stays_bounded_and_answers_stay_right() -> None:
    peers = PeerDirectory([("p", ["UE:p-*"])], cache_size=8)
    for i in range(100):
        assert peers.home_of(Address("UE", f"p-{i}")) == "p"
        assert peers.home_of(Address("UE", f"q-{i}")) is None
    assert len(peers._cache) <= 8
