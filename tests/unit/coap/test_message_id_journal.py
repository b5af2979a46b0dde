# SPDX-License-Identifier: Apache-2.0
"""Message ids across a restart (RFC 7252 §4.4, ADR 0006): a restarted server continues each
UE's ids past those it may have used, instead of at a random id the UE may have seen in the
last EXCHANGE_LIFETIME and would take for a duplicate (ACKed, never passed on)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Hashable, Iterable, Iterator
from pathlib import Path

import pytest
from tests.support.tmpfs import small_tmpfs
from tests.unit.coap.test_coap_endpoint_driver import CLIENT, Handler, request
from tests.unit.coap.test_notify_message_ids import AckingUe

from msgin5g.coap import (
    CoapEndpoint,
    EndpointConfig,
    MessageType,
    OptionNumber,
    TransmissionParameters,
    decode,
)
from msgin5g.coap.id_journal import IdJournal
from msgin5g.coap.message import MessageIds

PARAMS = TransmissionParameters(ack_timeout=1.0, exchange_lifetime=30.0, non_lifetime=1.0)


async def notified_ids(journal: Path, seed: int, count: int, *, stop: bool) -> list[int]:
    """A server endpoint keeping its ids in `journal`, with the random start `seed` gives:
    one UE observes and is sent `count` notifications. Without `stop` the endpoint is simply
    dropped, as kill -9 would (the journal's file descriptor is all it leaves)."""
    handler = Handler()
    endpoint = CoapEndpoint(
        handler, params=PARAMS, config=EndpointConfig(), rng=random.Random(seed)
    )
    endpoint.keep_message_ids(journal)
    ue = AckingUe()
    ue.endpoint = endpoint
    endpoint.connection_made(ue)  # type: ignore[arg-type]
    observe = request(1, ("inbox",), options=((OptionNumber.OBSERVE, b""),))
    endpoint.datagram_received(observe, CLIENT)
    async with asyncio.timeout(2):
        while handler.observation is None:  # noqa: ASYNC110
            await asyncio.sleep(0)
    for n in range(count):
        assert await handler.observation.notify(b"%d" % n)
    if stop:
        await endpoint.stop()
    return [mid for mid, _ in ue.arrivals]


@pytest.mark.parametrize("stop", [False, True], ids=["kill-9", "clean-stop"])
async def test_a_restarted_server_continues_each_ues_message_ids(
    tmp_path: Path, stop: bool
) -> None:
    journal = tmp_path / "coap-message-ids.journal"
    # The same seed both times: a server that forgot its ids would start the UE at the very
    # id it started at before, and every notification after the restart would be a duplicate.
    before = await notified_ids(journal, seed=7, count=1500, stop=stop)
    after = await notified_ids(journal, seed=7, count=1500, stop=True)
    assert len(set(before)) == 1500
    assert not set(after) & set(before), "an id repeated to the UE within EXCHANGE_LIFETIME"
    # ...and they continue the sequence rather than jump to another random place.
    assert 0 < (after[0] - before[-1]) % 0x10000 <= 1024
    if stop:  # a clean stop leaves one line per endpoint kept
        assert len(journal.read_text().splitlines()) == 1


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[Hashable, int, float, float]] = []
        self.rewrites = 0

    def reserved(self, remote: Hashable, limit: int, low: float, high: float) -> None:
        self.lines.append((remote, limit, low, high))

    def rewrite(self, entries: Iterable[tuple[Hashable, int, float, float]]) -> None:
        self.lines = list(entries)
        self.rewrites += 1

    @property
    def records(self) -> int:
        return len(self.lines)


class FixedStart(random.Random):
    def __init__(self, start: int) -> None:
        super().__init__()
        self.start = start

    def randrange(self, *args: object, **kwargs: object) -> int:  # type: ignore[override]
        return self.start


def test_every_id_is_reserved_before_it_is_handed_out() -> None:
    recorder = Recorder()
    ids = MessageIds(100.0, FixedStart(0x7F00), recorder)
    for n in range(600):
        mid = ids.take("ue", float(n))
        limit = recorder.lines[-1][1]
        assert 0 < (limit - mid) % 0x10000 <= 1024, (mid, limit)
    # Blocks are aligned, so none spans both halves: 0x7F00 -> 0x8000, then 0x8000 -> 0x8400.
    assert [line[1] for line in recorder.lines] == [0x8000, 0x8400]


def test_restore_waits_for_the_other_half_as_recorded_and_counts_its_own_half_used() -> None:
    recorder = Recorder()
    before = MessageIds(100.0, FixedStart(0x7FF0), recorder)
    for _ in range(16):  # up to 0x7FFF; the high half was never used
        before.take("ue", 10.0)
    after = MessageIds(100.0, FixedStart(0), Recorder())
    assert after.restore(before.entries(), now=50.0) == 1
    assert after.delay("ue", 50.0) == 0.0  # the high half: never used
    assert after.take("ue", 50.0) == 0x8000

    # Stopped at the end of the high half, recorded while the low half was last used at 10:
    stopped = [("ue", 0x0000, 10.0, 40.0)]
    again = MessageIds(100.0, FixedStart(0), Recorder())
    again.restore(stopped, now=50.0)
    assert again.delay("ue", 50.0) == pytest.approx(60.0)  # the low half at 10 + 100
    # Had the limit been inside the high half, the high half counts as used at the restart.
    inside = MessageIds(100.0, FixedStart(0), Recorder())
    inside.restore([("ue", 0x8400, 10.0, 40.0)], now=50.0)
    for _ in range(0x10000 - 0x8400):
        inside.take("ue", 50.0)
    assert inside.delay("ue", 50.0) == pytest.approx(60.0)


def test_the_journal_is_compacted_to_the_endpoints_kept() -> None:
    recorder = Recorder()
    ids = MessageIds(1.0, None, recorder)
    for n in range(3000):  # each endpoint once, each forgotten a lifetime later
        ids.take(("192.0.2.9", n), n * 0.01)
    assert recorder.rewrites >= 1
    assert len(recorder.lines) <= 2 * len(ids) + 1024


def test_times_survive_the_file_on_the_wall_clock(tmp_path: Path) -> None:
    path = tmp_path / "j"
    first = IdJournal(path, now=lambda: 100.0, wall=lambda: 1_000_000.0)
    first.open()
    first.reserved(("::1", 5683, 0, 0), 0x0400, 90.0, float("-inf"))
    first.reserved(("10.0.0.1", 1), 0x8000, 95.0, 20.0)
    first.reserved(("::1", 5683, 0, 0), 0x0800, 99.0, float("-inf"))
    with path.open("a") as f:
        f.write('["10.0.0.2", 7]\t12')  # torn by a crash mid-write
    # Restarted 30 s later on a loop clock that began at 5:
    second = IdJournal(path, now=lambda: 5.0, wall=lambda: 1_000_030.0)
    assert sorted(second.load(), key=str) == sorted(
        [
            (("10.0.0.1", 1), 0x8000, 95.0 - 125.0, 20.0 - 125.0),
            (("::1", 5683, 0, 0), 0x0800, 99.0 - 125.0, float("-inf")),
        ],
        key=str,
    )
    # It appends after the torn line, not onto it.
    second.open()
    second.reserved(("10.0.0.1", 1), 0x8400, 4.0, 2.0)
    third = IdJournal(path, now=lambda: 5.0, wall=lambda: 1_000_030.0)
    assert (("10.0.0.1", 1), 0x8400, 4.0, 2.0) in third.load()


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk", "64k") as mount:
        yield mount


def test_a_journal_that_cannot_be_written_is_removed_and_ids_go_on(
    full_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = full_disk / "coap-message-ids.journal"
    journal = IdJournal(path, now=lambda: 0.0)
    journal.open()
    with (full_disk / "filler").open("wb", buffering=0) as f:
        with contextlib.suppress(OSError):  # ENOSPC: the disk is full
            while True:
                f.write(b"\0" * 4096)
        with pytest.raises(OSError, match="No space left"):
            f.write(b"\0" * 4096)
    ids = MessageIds(100.0, None, journal)
    with caplog.at_level(logging.WARNING):
        taken = [ids.take(("192.0.2.1", n), 0.0) for n in range(2000)]
    assert len(taken) == 2000
    # A stale journal would make a restart continue behind ids already used: it is gone.
    assert not path.exists()
    assert "not writable" in caplog.text
    assert IdJournal(path, now=lambda: 0.0).load() == []


class AnySink:
    """A transport that accepts datagrams to any address and keeps them."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, object]] = []

    def sendto(self, data: bytes, addr: object) -> None:
        self.sent.append((data, addr))

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 5683) if name == "sockname" else default


async def test_a_flood_of_non_requests_from_new_addresses_keeps_no_id_state(
    tmp_path: Path,
) -> None:
    """Non-confirmable requests are answered Non-confirmable, with an id of the server's. Drawn
    from a sequence per source address, a flood from ever new (spoofed) addresses grew a
    sequence of about 220 bytes each, kept for EXCHANGE_LIFETIME, and one journal line each:
    memory and disk without bound. Now such replies keep only a bounded table."""
    journal = tmp_path / "coap-message-ids.journal"
    endpoint = CoapEndpoint(Handler(), params=PARAMS, config=EndpointConfig())
    endpoint.keep_message_ids(journal)
    sink = AnySink()
    endpoint.connection_made(sink)  # type: ignore[arg-type]
    try:
        for n in range(20_000):
            remote = (f"198.51.{n // 250}.{n % 250}", 40000 + n % 7)
            endpoint.datagram_received(request(n, mtype=MessageType.NON), remote)
        async with asyncio.timeout(10):
            while len(sink.sent) < 20_000:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert {decode(data).mtype for data, _ in sink.sent} == {MessageType.NON}
        assert journal.read_text() == ""  # nothing reserved, nothing kept per address
    finally:
        await endpoint.stop()


def test_a_sequence_started_after_a_reply_goes_on_after_its_id() -> None:
    ids = MessageIds(100.0, FixedStart(0x1234), Recorder())
    replied = ids.reply_id("ue", 1.0)
    assert replied == 0x1234
    assert len(ids) == 0
    # The first Confirmable message to that UE (a notification) does not repeat it.
    assert ids.take("ue", 2.0) == 0x1235
    assert ids.reply_id("ue", 3.0) == 0x1236  # from now on, its sequence
