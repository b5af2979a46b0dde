# SPDX-License-Identifier: Apache-2.0
"""RFC 7252 §3 codec and §4 message-layer bookkeeping, without sockets."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msgin5g.coap.message import (
    BlockOption,
    CoapFormatError,
    Code,
    DedupCache,
    Message,
    MessageIds,
    MessageType,
    OptionNumber,
    TransmissionParameters,
    decode,
    encode,
    encode_uint,
    format_code,
    retransmission_delays,
    string_options,
)

# RFC 7252 Appendix-style GET coap://host/temperature, CON, MID 0x7d34, token 0x20.
GET_TEMPERATURE = bytes.fromhex("41017d3420") + b"\xbbtemperature"


def test_decode_known_request() -> None:
    message = decode(GET_TEMPERATURE)
    assert message.mtype is MessageType.CON
    assert message.code == Code.GET
    assert message.mid == 0x7D34
    assert message.token == b"\x20"
    assert message.uri_path == ("temperature",)
    assert message.is_request
    assert encode(message) == GET_TEMPERATURE


def test_encode_sorts_options_and_uses_extended_fields() -> None:
    message = Message(
        MessageType.ACK,
        Code.CONTENT,
        1,
        b"tok",
        (
            (OptionNumber.SIZE1, encode_uint(70000)),  # delta 60-x needs the 13 form
            (OptionNumber.URI_PATH, b"a" * 300),  # length 300 needs the 14 form
            (OptionNumber.CONTENT_FORMAT, encode_uint(50)),
            (2000, b""),  # delta > 268 needs the 14 form
        ),
        b'{"a":1}',
    )
    again = decode(encode(message))
    assert again.options == tuple(sorted(message.options, key=lambda o: o[0]))
    assert again.size1 == 70000
    assert again.content_format == 50
    assert again.payload == b'{"a":1}'
    assert format_code(again.code) == "2.05"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "short"),
        (b"\x40\x01\x00", "short"),
        (b"\x80\x01\x00\x01", "version 2"),
        (b"\x49\x01\x00\x01" + b"x" * 9, "token length 9"),
        (b"\x44\x01\x00\x01ab", "truncated token"),
        (b"\x40\x00\x00\x01\xff", "empty message with bytes"),
        (b"\x41\x00\x00\x01x", "empty message with token"),
        (b"\x40\x01\x00\x01\xff", "marker without payload"),
        (b"\x40\x01\x00\x01\xf0", "delta 15"),
        (b"\x40\x01\x00\x01\x0f", "length 15"),
        (b"\x40\x01\x00\x01\xd0", "missing delta extension"),
        (b"\x40\x01\x00\x01\xe0\x01", "short delta extension"),
        (b"\x40\x01\x00\x01\xb3ab", "truncated value"),
        (b"\x40\x01\x00\x01\xe0\xff\xff\xe0\xff\xff", "option number above 65535"),
    ],
)
def test_decode_rejects_malformed(data: bytes, why: str) -> None:
    with pytest.raises(CoapFormatError):
        decode(data)


@given(st.binary(max_size=64))
def test_decode_arbitrary_bytes_is_a_message_or_format_error(data: bytes) -> None:
    try:
        message = decode(data)
    except CoapFormatError:
        return
    # The encoding is canonical: whatever decodes, encodes back to the same bytes.
    assert encode(message) == data


@given(st.binary(min_size=4, max_size=40))
def test_decode_header_like_bytes(data: bytes) -> None:
    data = bytes([0x40 | (data[0] & 0x3F)]) + data[1:]
    try:
        message = decode(data)
    except CoapFormatError:
        return
    assert encode(message) == data


options_strategy = st.lists(
    st.tuples(st.integers(0, 2000), st.binary(max_size=300)), max_size=6
).map(lambda opts: tuple(sorted(opts, key=lambda o: o[0])))


@given(
    mtype=st.sampled_from(MessageType),
    code=st.integers(1, 255),
    mid=st.integers(0, 0xFFFF),
    token=st.binary(max_size=8),
    options=options_strategy,
    payload=st.binary(max_size=200),
)
def test_round_trip(
    mtype: MessageType,
    code: int,
    mid: int,
    token: bytes,
    options: tuple[tuple[int, bytes], ...],
    payload: bytes,
) -> None:
    message = Message(mtype, code, mid, token, options, payload)
    assert decode(encode(message)) == message


@given(st.integers(0, (1 << 20) - 1), st.booleans(), st.integers(0, 6))
def test_block_option_round_trip(num: int, more: bool, szx: int) -> None:
    block = BlockOption(num, more, szx)
    assert BlockOption.decode(block.encode()) == block
    assert block.offset == num * block.size


def test_block_option_errors() -> None:
    with pytest.raises(CoapFormatError):
        BlockOption.decode(b"\x0f")  # SZX 7
    with pytest.raises(CoapFormatError):
        BlockOption.decode(b"\x00\x00\x00\x01")
    with pytest.raises(ValueError, match="out of range"):
        BlockOption(1 << 20, False, 0).encode()


def test_option_accessors() -> None:
    message = Message(
        MessageType.CON,
        Code.GET,
        7,
        b"",
        (
            (OptionNumber.OBSERVE, b""),
            *string_options(OptionNumber.URI_PATH, ("msgin5g", "v1", "ues")),
            *string_options(OptionNumber.URI_QUERY, ("a=1",)),
            (OptionNumber.ACCEPT, encode_uint(50)),
            (OptionNumber.BLOCK2, BlockOption(2, False, 6).encode()),
        ),
    )
    assert message.observe == 0
    assert message.uri_path == ("msgin5g", "v1", "ues")
    assert message.uri_query == ("a=1",)
    assert message.accept == 50
    assert message.block2 == BlockOption(2, False, 6)
    assert message.block1 is None
    assert message.content_format is None
    assert message.without_options(OptionNumber.OBSERVE).observe is None
    bad = Message(MessageType.CON, Code.GET, 1, b"", ((OptionNumber.URI_PATH, b"\xff"),))
    with pytest.raises(CoapFormatError):
        _ = bad.uri_path
    long_uint = Message(MessageType.CON, Code.GET, 1, b"", ((OptionNumber.MAX_AGE, b"12345"),))
    with pytest.raises(CoapFormatError):
        _ = long_uint.max_age


def test_encode_rejects_programming_errors() -> None:
    with pytest.raises(ValueError, match="token"):
        encode(Message(MessageType.CON, Code.GET, 1, b"123456789"))
    with pytest.raises(ValueError, match="range"):
        encode(Message(MessageType.CON, Code.GET, 70000))


def test_retransmission_delays_follow_rfc_7252_4_2() -> None:
    params = TransmissionParameters()
    delays = retransmission_delays(params, random.Random(1))
    assert len(delays) == params.max_retransmit + 1
    assert 2.0 <= delays[0] <= 3.0
    assert delays[1:] == [delays[0] * 2**i for i in range(1, 5)]
    assert params.max_transmit_wait == pytest.approx(93.0)
    assert TransmissionParameters.scaled(0.01).ack_timeout == pytest.approx(0.02)


def test_dedup_cache_lifetime_reply_and_bound() -> None:
    cache = DedupCache(lifetime=10.0, max_entries=3)
    assert not cache.seen(("a", 1), now=0.0)
    assert cache.seen(("a", 1), now=5.0)
    cache.set_reply(("a", 1), b"reply")
    assert cache.reply(("a", 1)) == b"reply"
    assert not cache.seen(("a", 1), now=10.5)  # expired: new exchange
    assert cache.reply(("a", 1)) is None
    for mid in range(2, 6):
        cache.seen(("a", mid), now=11.0)
    assert len(cache) <= 3
    cache.forget(("a", 5))
    assert not cache.seen(("a", 5), now=11.0)


def test_dedup_cache_lets_go_of_expired_entries() -> None:
    """Purging runs at most once a second, yet expired entries do not stay: memory follows
    the traffic of the last lifetime."""
    cache = DedupCache(lifetime=10.0, max_entries=1000)
    for mid in range(100):
        assert not cache.seen(("a", mid), now=0.0)
    assert not cache.seen(("b", 1), now=5.0)
    assert len(cache) == 101
    assert not cache.seen(("b", 2), now=10.5)  # the first 100 have expired
    assert len(cache) == 2
    assert cache.seen(("b", 1), now=10.6)


def test_message_ids_wrap_per_endpoint() -> None:
    ids = MessageIds(247.0, random.Random(3))
    first = ids.take("a", 0.0)
    taken = [ids.take("a", 1000.0 * (n + 1)) for n in range(0x10000)]  # slowly: no wait due
    assert taken[-1] == first
    assert len(set(taken)) == 0x10000
    a1 = ids.take("a", 10**9)
    ids.take("b", 10**9)  # endpoints do not share a sequence
    assert ids.take("a", 10**9) == (a1 + 1) & 0xFFFF


def test_message_ids_repeat_no_id_to_an_endpoint_within_the_lifetime() -> None:
    """§4.4: 65,536 messages to one endpoint at once: the id space runs out and the next id
    for that endpoint waits until its last use is EXCHANGE_LIFETIME old; others go on."""
    ids = MessageIds(247.0, random.Random(5))
    last_sent: dict[int, float] = {}
    now = 0.0
    waited = 0
    for _ in range(0x10000 + 40_000):
        wait = ids.delay("a", now)
        if wait:
            waited += 1
            now += wait
            assert ids.delay("a", now) == 0
        mid = ids.take("a", now)
        if mid in last_sent:
            assert now - last_sent[mid] >= 247.0
        last_sent[mid] = now
    assert waited >= 1
    assert ids.delay("b", 0.0) == 0  # another endpoint is not held back


def test_message_ids_forget_idle_endpoints() -> None:
    ids = MessageIds(10.0, random.Random(7))
    for n in range(100):
        ids.take(("192.0.2.1", n), 0.0)
    assert len(ids) == 100
    for n in range(100):
        ids.take(("192.0.2.2", n), 11.0)
    assert len(ids) == 100  # each new endpoint pushed out one idle for over the lifetime


def test_package_exports_are_honest() -> None:
    import msgin5g.coap as package

    assert sorted(package.__all__) == package.__all__
    for name in package.__all__:
        assert getattr(package, name) is not None
