# SPDX-License-Identifier: Apache-2.0
"""The ESME session and pool against the SMSC simulator over real TCP on 127.0.0.1.

Also runs smpp34 (an independent SMPP implementation) against both of ours: its client
against the simulator, our session against its server.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator

import pytest

from msgin5g.gateways.sms import (
    DeliverSm,
    Reassembler,
    ReceiptOutcome,
    SmppBindRefused,
    SmppConfig,
    SmppError,
    SmppPool,
    SmppSession,
    is_receipt,
    parse_receipt,
    parse_user_data,
)
from msgin5g.gateways.sms.smsc_sim import SmscSimulator

SYSTEM_ID, PASSWORD = "gw", "s3cret"


@pytest.fixture
async def sim() -> AsyncIterator[SmscSimulator]:
    simulator = SmscSimulator(system_id=SYSTEM_ID, password=PASSWORD, receipt_delay=0.01)
    await simulator.start()
    yield simulator
    await simulator.stop()


def config(sim: SmscSimulator, **overrides: object) -> SmppConfig:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": sim.port,
        "system_id": SYSTEM_ID,
        "password": PASSWORD,
        "response_timeout": 2.0,
        "reconnect_min": 0.05,
        "reconnect_max": 0.2,
        "bind_wait": 3.0,
    }
    values.update(overrides)
    return SmppConfig(**values)  # type: ignore[arg-type]


class Inbox:
    """Collects deliver_sm: receipts by message id, MO reassembled."""

    def __init__(self) -> None:
        self.receipts: dict[str, str] = {}
        self.mo: list[str] = []
        self.reassembler = Reassembler(timeout=5)
        self.changed = asyncio.Event()

    async def __call__(self, pdu: DeliverSm) -> None:
        if is_receipt(pdu.esm_class):
            r = parse_receipt(pdu.short_message.decode("ascii"), pdu.tlvs)
            self.receipts[r.message_id] = r.state
        else:
            ud = parse_user_data(pdu.short_message, pdu.esm_class, pdu.data_coding)
            done = self.reassembler.add(pdu.source_addr, pdu.destination_addr, ud, 0.0)
            if done is not None:
                self.mo.append(done.text)
        self.changed.set()

    async def wait(self, predicate: object) -> None:
        async with asyncio.timeout(5):
            while not predicate():  # type: ignore[operator]
                self.changed.clear()
                await self.changed.wait()


async def test_bind_ok_and_unbind(sim: SmscSimulator) -> None:
    async with SmppSession(config(sim), Inbox()) as session:
        assert session.is_bound
        assert sim.bound_sessions == 1
        assert sim.binds[-1].status == 0
        assert sim.binds[-1].command_id == 0x09  # bind_transceiver
    await sim.wait_for(lambda: sim.bound_sessions == 0)


@pytest.mark.parametrize(
    ("system_id", "password", "status"), [(SYSTEM_ID, "wrong", 0x0E), ("other", PASSWORD, 0x0D)]
)
async def test_bind_refused(sim: SmscSimulator, system_id: str, password: str, status: int) -> None:
    session = SmppSession(config(sim, system_id=system_id, password=password), Inbox())
    with pytest.raises(SmppBindRefused) as info:
        await session.start()
    assert info.value.status == status
    assert not info.value.retryable
    assert not session.is_bound


async def test_submit_with_receipts(sim: SmscSimulator) -> None:
    sim.fail_prefix = "4999"
    inbox = Inbox()
    async with SmppSession(config(sim), inbox) as session:
        ok = await session.submit_text("4915550001", "Hello from MSGin5G")
        bad = await session.submit_text("4999000001", "Will fail")
        await inbox.wait(lambda: len(inbox.receipts) == 2)
    assert inbox.receipts == {ok[0]: "DELIVRD", bad[0]: "UNDELIV"}
    assert parse_receipt("id:x stat:UNDELIV").outcome is ReceiptOutcome.FAILURE
    rec = sim.received[0]
    assert (rec.destination_addr, rec.text, rec.data_coding, rec.udh) == (
        "4915550001",
        "Hello from MSGin5G",
        0,
        b"",
    )


async def test_long_message_in_parts_each_receipted(sim: SmscSimulator) -> None:
    text = "Concatenated [GSM] text with € and {braces}. " * 8  # 392 septets
    inbox = Inbox()
    async with SmppSession(config(sim), inbox) as session:
        ids = await session.submit_text("4915550002", text, reference=0x42)
        await inbox.wait(lambda: set(ids) <= set(inbox.receipts))
    assert len(ids) == 3
    parts = sorted(sim.received, key=lambda r: r.concat.sequence if r.concat else 0)
    assert [(p.concat.reference, p.concat.total) for p in parts if p.concat] == [(0x42, 3)] * 3
    assert all(
        p.esm_class & 0x40 and p.udh == bytes((0, 3, 0x42, 3, p.concat.sequence))
        for p in parts
        if p.concat
    )
    assert "".join(p.text for p in parts) == text
    assert {inbox.receipts[i] for i in ids} == {"DELIVRD"}


async def test_ucs2_text(sim: SmscSimulator) -> None:
    text = "Привет 👋 MSGin5G"
    async with SmppSession(config(sim), Inbox()) as session:
        await session.submit_text("4915550003", text)
    assert sim.received[0].data_coding == 0x08
    assert sim.received[0].text == text
    assert sim.received[0].short_message == text.encode("utf-16-be")


async def test_mo_single_and_concatenated(sim: SmscSimulator) -> None:
    inbox = Inbox()
    long_text = "Ответ из сети: " + "данные " * 30
    async with SmppSession(config(sim), inbox):
        async with asyncio.timeout(5):
            assert await sim.inject_mo("4915550004", "1234", "short MO") == [0]
            statuses = await sim.inject_mo(
                "4915550004",
                "1234",
                long_text,
                reference=9,
                order=lambda pdus: [*reversed(pdus), pdus[0]],  # out of order plus a repeat
            )
        assert statuses == [0] * 5
        await inbox.wait(lambda: len(inbox.mo) == 2)
    assert inbox.mo == ["short MO", long_text]


async def test_mo_acknowledged_only_after_the_handler(sim: SmscSimulator) -> None:
    calls = itertools.count()

    async def flaky(pdu: DeliverSm) -> None:
        if next(calls) == 0:
            raise RuntimeError("store unavailable")

    async with SmppSession(config(sim), flaky):
        async with asyncio.timeout(5):
            assert await sim.inject_mo("4915550005", "1234", "retry me") == [0]
    assert next(calls) == 2  # answered ESME_RX_T_APPN once, then redelivered and taken


async def test_throttled_submits_are_retried(sim: SmscSimulator) -> None:
    sim.throttle = 40.0
    cfg = config(sim, window=60, throttle_backoff=0.02, throttle_backoff_max=0.2)
    async with SmppSession(cfg, Inbox()) as session:
        ids = await asyncio.gather(*(session.submit_text("4915", f"m{i}") for i in range(60)))
    assert len({i[0] for i in ids}) == 60
    assert sim.throttled > 0
    assert len(sim.received) == 60


async def test_own_throttle_keeps_the_smsc_limit(sim: SmscSimulator) -> None:
    sim.throttle = 50.0
    async with SmppSession(config(sim, window=20, throughput=45.0, burst=5), Inbox()) as session:
        await asyncio.gather(*(session.submit_text("4915", f"m{i}") for i in range(50)))
    assert sim.throttled == 0


async def test_reconnect_after_restart_loses_nothing_acknowledged(sim: SmscSimulator) -> None:
    acknowledged: dict[int, str] = {}
    retried = 0
    async with SmppSession(config(sim, window=8, enquire_link_interval=0.1), Inbox()) as session:

        async def send(n: int) -> None:
            nonlocal retried
            while True:
                try:
                    acknowledged[n] = (await session.submit_text("4915", f"msg {n}"))[0]
                    return
                except SmppError as exc:
                    if not exc.retryable:
                        raise
                    retried += 1
                    await asyncio.sleep(0.02)

        async def restart() -> None:
            await sim.wait_for(lambda: len(sim.received) >= 50)
            await sim.stop()
            await asyncio.sleep(0.1)
            await sim.start()

        async with asyncio.timeout(10):
            await asyncio.gather(restart(), *(send(n) for n in range(300)))
        assert session.binds == 2
        assert session.is_bound
    assert retried > 0  # submits in flight at the drop failed retryably and were resent
    recorded = {r.message_id: r.text for r in sim.received}
    assert len(acknowledged) == 300
    for n, message_id in acknowledged.items():
        assert recorded[message_id] == f"msg {n}"


async def test_pool_of_binds_with_wide_window(sim: SmscSimulator) -> None:
    inbox = Inbox()
    async with SmppPool(config(sim, window=128), size=4, handler=inbox) as pool:
        assert sim.bound_sessions == 4
        ids = await asyncio.gather(*(pool.submit_text("4915", f"p{i}") for i in range(2000)))
        flat = {i for part_ids in ids for i in part_ids}
        await inbox.wait(lambda: flat <= set(inbox.receipts))
    assert len(flat) == 2000
    assert len({r.session for r in sim.received}) == 4


async def test_enquire_link_keeps_the_bind(sim: SmscSimulator) -> None:
    async with SmppSession(config(sim, enquire_link_interval=0.02), Inbox()) as session:
        await asyncio.sleep(0.15)
        assert session.is_bound
        assert session.binds == 1


async def test_smpp34_client_against_the_simulator(sim: SmscSimulator) -> None:
    smpp34 = pytest.importorskip("smpp34")
    client = smpp34.Client("127.0.0.1", sim.port, SYSTEM_ID, PASSWORD, bind_type="TRX")
    esme = await client.connect()
    try:
        resp = await esme.submit_sm("4915", b"from smpp34", source_addr="1", registered_delivery=1)
        assert resp.is_success
        async with asyncio.timeout(5):
            event = await esme.next()
        assert isinstance(event, smpp34.DeliverSmEvent)
        assert (
            parse_receipt(
                event.short_message.decode(), {t.tag: t.value for t in event.tlvs}
            ).message_id
            == resp.message_id
        )
    finally:
        await esme.unbind()
        await client.stop()
    assert sim.received[-1].text == "from smpp34"
    # smpp34 1.5.0 reports any refused bind as "bind timed out" once connect_timeout_ms passes
    refused = smpp34.Client(
        "127.0.0.1", sim.port, SYSTEM_ID, "nope", bind_type="TRX", connect_timeout_ms=300
    )
    with pytest.raises(smpp34.SmppError, match="bind"):
        await refused.connect()
    assert sim.binds[-1].status == 0x0E
    with contextlib.suppress(Exception):
        await refused.stop()


async def test_session_against_smpp34_server(unused_tcp_port: int) -> None:
    smpp34 = pytest.importorskip("smpp34")
    server = smpp34.Server("127.0.0.1", unused_tcp_port, system_id="RUSTSMSC")
    await server.start()
    received: list[bytes] = []

    async def smsc() -> None:
        while True:
            event = await server.next()
            if isinstance(event, smpp34.Esme):
                await event.deliver_sm("gw", b"MO via smpp34", source_addr="4915")
            elif isinstance(event, smpp34.SubmitSmEvent):
                received.append(event.short_message)
                event.accept(f"r{len(received)}")

    inbox = Inbox()
    task = asyncio.create_task(smsc())
    try:
        cfg = SmppConfig("127.0.0.1", unused_tcp_port, "gw", "any", response_timeout=2.0)
        async with SmppSession(cfg, inbox) as session:
            assert await session.submit_text("4915", "to smpp34") == ["r1"]
            await inbox.wait(lambda: inbox.mo == ["MO via smpp34"])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await server.stop()
    assert received == [b"to smpp34"]


async def test_deliveries_iterator_without_handler(sim: SmscSimulator) -> None:
    async with SmppSession(config(sim)) as session:
        async with asyncio.timeout(5):
            assert await sim.inject_mo("4915550006", "1234", "via iterator") == [0]
            pdu = await anext(session.deliveries())
    assert (pdu.source_addr, pdu.short_message) == ("4915550006", b"via iterator")
