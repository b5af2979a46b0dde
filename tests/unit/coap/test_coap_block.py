# SPDX-License-Identifier: Apache-2.0
"""RFC 7959 block-wise transfer, without sockets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msgin5g.coap.block import (
    Block1Assembler,
    Block1Complete,
    Block1Continue,
    Block1Incomplete,
    Block1Invalid,
    Block1TooLarge,
    Block2Assembler,
    Representation,
    RepresentationCache,
    negotiate_block2,
    size_to_szx,
    slice_block,
    szx_to_size,
)
from msgin5g.coap.message import BlockOption, CoapBlockError


def test_sizes() -> None:
    assert [szx_to_size(s) for s in range(7)] == [16, 32, 64, 128, 256, 512, 1024]
    assert size_to_szx(1024) == 6
    assert size_to_szx(64) == 2
    for bad in (8, 100, 2048):
        with pytest.raises(ValueError, match="power of two"):
            size_to_szx(bad)


@given(st.binary(max_size=5000), st.integers(0, 6))
def test_slices_reassemble(body: bytes, szx: int) -> None:
    assembler = Block2Assembler()
    num = 0
    while True:
        chunk, more = slice_block(body, num, szx)
        following = assembler.feed(BlockOption(num, more, szx), chunk, b"e")
        if following is None:
            break
        num = following.num
    assert assembler.body == body


def test_slice_beyond_end() -> None:
    assert slice_block(b"", 0, 6) == (b"", False)
    with pytest.raises(CoapBlockError):
        slice_block(b"x" * 1024, 1, 6)


def test_negotiate_block2_lowers_size_and_keeps_offset() -> None:
    assert negotiate_block2(None, 6) == (0, 6)
    assert negotiate_block2(BlockOption(3, False, 2), 6) == (3, 2)
    assert negotiate_block2(BlockOption(4, False, 6), 4) == (16, 4)


def test_block2_assembler_detects_changes() -> None:
    assembler = Block2Assembler()
    assert assembler.feed(BlockOption(0, True, 0), b"x" * 16, b"e1") == BlockOption(1, False, 0)
    with pytest.raises(CoapBlockError, match="ETag"):
        assembler.feed(BlockOption(1, False, 0), b"y", b"e2")
    with pytest.raises(CoapBlockError, match="continue"):
        Block2Assembler().feed(BlockOption(1, False, 0), b"y", None)
    with pytest.raises(CoapBlockError, match="exactly"):
        Block2Assembler().feed(BlockOption(0, True, 0), b"short", None)
    with pytest.raises(CoapBlockError, match="limit"):
        Block2Assembler(max_body=10).feed(BlockOption(0, False, 0), b"x" * 16, None)


def feed_all(assembler: Block1Assembler, body: bytes, szx: int, now: float = 0.0) -> list[object]:
    size = szx_to_size(szx)
    results: list[object] = []
    for num, offset in enumerate(range(0, max(len(body), 1), size)):
        more = offset + size < len(body)
        chunk = body[offset : offset + size]
        results.append(assembler.feed("k", BlockOption(num, more, szx), chunk, None, now))
    return results


@given(st.binary(max_size=4000), st.integers(0, 6))
def test_block1_reassembles(body: bytes, szx: int) -> None:
    assembler = Block1Assembler(max_body=10_000)
    results = feed_all(assembler, body, szx)
    assert all(isinstance(r, Block1Continue) for r in results[:-1])
    last = results[-1]
    assert isinstance(last, Block1Complete)
    assert last.body == body
    assert not last.block.more
    assert len(assembler) == 0


def test_block1_continue_echoes_block_with_preferred_size() -> None:
    assembler = Block1Assembler(max_body=10_000, max_szx=4)
    result = assembler.feed("k", BlockOption(0, True, 6), b"x" * 1024, None, 0.0)
    assert result == Block1Continue(BlockOption(0, True, 4))
    # The client switches to 256-byte blocks: byte offset 1024 is block 4 at SZX 4.
    result = assembler.feed("k", BlockOption(4, False, 4), b"y" * 10, None, 0.0)
    assert isinstance(result, Block1Complete)
    assert result.body == b"x" * 1024 + b"y" * 10


def test_block1_out_of_order_is_incomplete() -> None:
    assembler = Block1Assembler(max_body=10_000)
    assert isinstance(assembler.feed("k", BlockOption(1, True, 2), b"x" * 64, None, 0.0),
                      Block1Incomplete)  # fmt: skip
    assembler.feed("k", BlockOption(0, True, 2), b"x" * 64, None, 0.0)
    assert isinstance(
        assembler.feed("k", BlockOption(2, False, 2), b"x", None, 0.0), Block1Incomplete
    )
    assert len(assembler) == 0


def test_block1_expires() -> None:
    assembler = Block1Assembler(max_body=10_000, lifetime=5.0)
    assembler.feed("k", BlockOption(0, True, 2), b"x" * 64, None, 0.0)
    result = assembler.feed("k", BlockOption(1, False, 2), b"x", None, 6.0)
    assert isinstance(result, Block1Incomplete)


def test_block1_too_large_by_size1_or_by_content() -> None:
    assembler = Block1Assembler(max_body=100)
    assert assembler.feed("k", BlockOption(0, True, 2), b"x" * 64, 1000, 0.0) == Block1TooLarge(100)
    assembler.feed("k", BlockOption(0, True, 2), b"x" * 64, None, 0.0)
    assert assembler.feed("k", BlockOption(1, True, 2), b"x" * 64, None, 0.0) == Block1TooLarge(100)
    assert assembler.feed("k", BlockOption(0, False, 6), b"x" * 101, None, 0.0) == Block1TooLarge(
        100
    )


def test_block1_wrong_block_size_is_invalid() -> None:
    assembler = Block1Assembler(max_body=1000)
    result = assembler.feed("k", BlockOption(0, True, 2), b"x" * 10, None, 0.0)
    assert isinstance(result, Block1Invalid)


def test_block1_bounded_transfers() -> None:
    assembler = Block1Assembler(max_body=1000, max_entries=2)
    for key in range(5):
        assembler.feed(key, BlockOption(0, True, 0), b"x" * 16, None, 0.0)
    assert len(assembler) <= 2


def test_representation_cache() -> None:
    cache = RepresentationCache(lifetime=10.0, max_entries=2)
    rep = Representation(b"body", b"etag", 50, 69)
    cache.put("a", rep, 0.0)
    assert cache.get("a", 5.0) is rep
    assert cache.get("a", 10.0) is None
    cache.put("a", rep, 0.0)
    cache.put("b", rep, 0.0)
    cache.put("c", rep, 0.0)
    assert len(cache) == 2
    assert cache.get("a", 1.0) is None
    cache.discard("b")
    assert cache.get("b", 1.0) is None
