# SPDX-License-Identifier: Apache-2.0
"""Fuzz the sans-IO CoAP parsers (RFC 7252 §3, RFC 7959 §2.2) and the MSGin5G-1 JSON decoding
(DESIGN 2.3): malformed input raises only the documented error, never anything else."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msgin5g.api import coap_msgin5g1 as m1
from msgin5g.coap.block import Block1Assembler, Block1Complete, Block1Continue
from msgin5g.coap.message import BlockOption, CoapFormatError, Message, decode, encode
from msgin5g.core.errors import InvalidRequest
from tests.fuzz.strategies import json_bytes, msgin5g1_bodies, requests

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(max_size=200))
def test_decode_random_bytes_raises_only_format_error(data: bytes) -> None:
    try:
        message = decode(data)
    except CoapFormatError:
        return
    # Whatever decodes re-encodes to a datagram that decodes to the same message.
    assert decode(encode(message)) == message


@FAST
@given(requests(), st.integers(0, 40), st.binary(max_size=3))
def test_decode_mutated_requests(message: Message, cut: int, junk: bytes) -> None:
    data = encode(message)
    assert decode(data) == message
    for variant in (data[:cut], data[:cut] + junk + data[cut:], bytes([data[0] | 0x0F]) + data[1:]):
        with contextlib.suppress(CoapFormatError):
            decode(variant)


@FAST
@given(st.binary(max_size=5))
def test_block_option_decode(value: bytes) -> None:
    try:
        block = BlockOption.decode(value)
    except CoapFormatError:
        return
    assert 0 <= block.szx <= 6
    assert BlockOption.decode(block.encode()) == block


@FAST
@given(
    st.lists(
        st.tuples(st.integers(0, 40), st.booleans(), st.integers(0, 7), st.binary(max_size=300)),
        max_size=12,
    ),
    st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_block1_assembler_never_exceeds_limit(
    blocks: list[tuple[int, bool, int, bytes]], size1: int | None
) -> None:
    assembler = Block1Assembler(1000, max_szx=6, lifetime=10.0, max_entries=4)
    for num, more, szx, payload in blocks:
        try:
            block = BlockOption.decode(BlockOption(num, more, min(szx, 6)).encode())
        except CoapFormatError:  # pragma: no cover - the encoder never makes these
            continue
        result = assembler.feed("k", block, payload, size1, 0.0)
        if isinstance(result, Block1Complete):
            assert len(result.body) <= 1000
        if isinstance(result, Block1Continue):
            assert result.block.szx <= 6
    assert len(assembler) <= 1


_DECODERS = [
    (m1._registration, m1._REG_MANDATORY),
    (m1._msg, m1._MSG_MANDATORY),
    (m1._aggregated, frozenset({"msgType", "aggregated"})),
    (m1._imdn, m1._IMDN_MANDATORY),
    (m1._segment_control, m1._SEG_MANDATORY),
    (m1._topic_request, m1._TOPIC_MANDATORY),
    (m1._typed, m1._MSG_MANDATORY),
]


@pytest.mark.parametrize("index", range(len(_DECODERS)))
@settings(max_examples=100, deadline=None)
@given(body=msgin5g1_bodies() | st.binary(max_size=80).map(lambda b: b"{" + b))
def test_msgin5g1_json_decoding_raises_only_invalid_request(index: int, body: object) -> None:
    decoder, mandatory = _DECODERS[index]
    data = body if isinstance(body, bytes) else json_bytes(body)
    cause = detail = "ok"
    try:
        m1._decoded(decoder, data, mandatory)
    except InvalidRequest as exc:
        cause, detail = exc.cause, exc.detail
    assert cause in {
        "ok",
        "INVALID_MSG_FORMAT",
        "MANDATORY_IE_MISSING",
        "MANDATORY_IE_INCORRECT",
        "OPTIONAL_IE_INCORRECT",
    }
    assert detail
