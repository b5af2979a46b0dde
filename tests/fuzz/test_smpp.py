# SPDX-License-Identifier: Apache-2.0
"""Fuzz SMPP 3.4 input (SMPP 3.4 §3.2 framing, §4 PDUs): the sans-IO codec and, over real TCP,
the SMSC simulator. Random command ids, lengths and bodies, truncated and oversized PDUs, and
well-formed submit_sm/deliver_sm with random fields: no crash, a bad PDU is answered with
generic_nack (or a response with an error status) or the connection is closed cleanly, never a
hang, and a well-behaved ESME can bind afterwards."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
from collections.abc import Iterator
from concurrent.futures import Future

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from msgin5g.gateways.sms.concat import Reassembler
from msgin5g.gateways.sms.encoding import SmsEncodingError, decode_payload, parse_user_data
from msgin5g.gateways.sms.receipts import ReceiptParseError, parse_receipt
from msgin5g.gateways.sms.smpp_protocol import (
    MAX_PDU_LENGTH,
    Bind,
    BindResp,
    CommandId,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    PduReader,
    SmppDecodeError,
    SubmitSm,
    SubmitSmResp,
    UnbindResp,
    decode_pdu,
)
from msgin5g.gateways.sms.smpp_session import SmppConfig, SmppSession
from msgin5g.gateways.sms.smsc_sim import SmscSimulator
from tests.fuzz.serverthread import ErrorLog

KNOWN_IDS = [
    int(v)
    for k, v in vars(CommandId).items()
    if k.isupper() and isinstance(v, int) and k != "RESP_BIT"
]
command_ids = st.sampled_from(KNOWN_IDS) | st.integers(0, 2**32 - 1)
u8 = st.integers(0, 255)
cstrs = st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=12)


def frame(command_id: int, status: int, sequence: int, body: bytes) -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, status, sequence) + body


short_messages = st.builds(
    lambda cls, seq, src, dst, sm, esm, dcs, reg, tlvs: cls(
        seq, src, dst, sm, esm_class=esm, data_coding=dcs, registered_delivery=reg, tlvs=tlvs
    ),
    st.sampled_from((SubmitSm, DeliverSm)),
    st.integers(0, 2**31 - 1),
    cstrs,
    cstrs,
    st.binary(max_size=254),
    u8,
    u8,
    u8,
    st.dictionaries(st.integers(0, 0xFFFF), st.binary(max_size=20), max_size=3),
)


@st.composite
def pdus(draw: st.DrawFn) -> bytes:
    """One framed PDU: random header and body, a mutated well-formed one, or a truncated one."""
    kind = draw(st.sampled_from(("random", "mutated", "truncated")))
    if kind == "random":
        return frame(
            draw(command_ids),
            draw(st.integers(0, 2**32 - 1)),
            draw(st.integers(0, 2**32 - 1)),
            draw(st.binary(max_size=300)),
        )
    data: bytes = draw(short_messages).encode()
    if kind == "truncated":
        body = data[16 : 16 + draw(st.integers(0, len(data) - 16))]
        return frame(int.from_bytes(data[4:8], "big"), 0, 7, body)
    pos = draw(st.integers(16, len(data) - 1))
    return data[:pos] + bytes([draw(u8)]) + data[pos + 1 :]


SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Over TCP each example waits a little for answers: fewer examples keep the run short.
TCP_SETTINGS = settings(SETTINGS, max_examples=100)


# -- the sans-IO codec ----------------------------------------------------------------------


@SETTINGS
@given(pdus())
def test_decode_pdu_never_raises(data: bytes) -> None:
    pdu = decode_pdu(data)
    event(type(pdu).__name__)


@SETTINGS
@given(short_messages)
def test_short_message_roundtrip(pdu: SubmitSm) -> None:
    assert decode_pdu(pdu.encode()) == pdu


@SETTINGS
@given(st.lists(pdus() | st.binary(max_size=40), max_size=6), st.integers(1, 64))
def test_reader_frames_any_stream_or_refuses_it(chunks: list[bytes], step: int) -> None:
    stream = b"".join(chunks)
    reader = PduReader()
    refused = ""
    try:
        for i in range(0, len(stream), step):
            for pdu in reader.receive_data(stream[i : i + step]):
                assert not isinstance(pdu, bytes)
    except SmppDecodeError as exc:
        refused = str(exc)
    assert not refused or "command_length" in refused


# -- the SMSC simulator over TCP ------------------------------------------------------------


@pytest.fixture(scope="module")
def smsc() -> Iterator[tuple[SmscSimulator, ErrorLog]]:
    errors = ErrorLog()
    logging.getLogger().addHandler(errors)
    loop = asyncio.new_event_loop()
    sim = SmscSimulator(system_id="fuzz", password="pw")
    started: Future[None] = Future()

    def main() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(sim.start())
        started.set_result(None)
        loop.run_forever()

    thread = threading.Thread(target=main, name="fuzz-smsc", daemon=True)
    thread.start()
    started.result(10)
    try:
        yield sim, errors
    finally:
        asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        logging.getLogger().removeHandler(errors)


class Esme:
    """A blocking TCP ESME that reads whatever the SMSC answers within a short time."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.reader = PduReader()
        self.closed = False

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:  # the SMSC closed the link on an earlier bad PDU
            self.closed = True

    def answers(self, timeout: float) -> list[Pdu]:
        out: list[Pdu] = []
        self.sock.settimeout(timeout)
        while not self.closed:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                self.closed = True
                break
            if not data:
                self.closed = True
                break
            out += self.reader.receive_data(data)
        return out

    def next_pdus(self, timeout: float) -> list[Pdu]:
        """The PDUs of the first bytes that complete any (empty on close or timeout)."""
        self.sock.settimeout(timeout)
        while not self.closed:
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, OSError):
                return []
            if not data:
                self.closed = True
                return []
            got = self.reader.receive_data(data)
            if got:
                return got
        return []

    def close(self) -> None:
        self.sock.close()


def _bind_works(port: int) -> None:
    esme = Esme(port)
    try:
        esme.send(Bind(CommandId.BIND_TRANSCEIVER, 1, "fuzz", "pw").encode())
        esme.send(EnquireLink(2).encode())
        got: list[Pdu] = []
        for _ in range(20):
            got += esme.answers(0.1)
            if any(isinstance(p, EnquireLinkResp) for p in got):
                break
        # Receipts queued by the fuzzing may arrive in between (deliver_sm to a transceiver).
        binds = [p for p in got if isinstance(p, BindResp)]
        assert [b.status for b in binds] == [0], got
        assert [p.sequence for p in got if isinstance(p, EnquireLinkResp)] == [2], got
    finally:
        esme.close()


@TCP_SETTINGS
@given(
    bound=st.booleans(),
    stream=st.lists(pdus(), min_size=1, max_size=4),
    oversized=st.sampled_from((None, 0, 15, MAX_PDU_LENGTH + 1, 2**32 - 1)),
)
def test_smsc_simulator_survives_fuzzed_pdus(
    smsc: tuple[SmscSimulator, ErrorLog], bound: bool, stream: list[bytes], oversized: int | None
) -> None:
    sim, errors = smsc
    esme = Esme(sim.port)
    try:
        if bound:
            esme.send(Bind(CommandId.BIND_TRANSMITTER, 1, "fuzz", "pw").encode())
        for data in stream:
            esme.send(data)
        if oversized is not None:
            esme.send(struct.pack(">IIII", oversized, CommandId.SUBMIT_SM, 0, 9) + b"x" * 16)
        answers = esme.answers(0.05)
        for pdu in answers:
            # An SMSC answers with responses only (or a deliver_sm receipt to a receiver).
            assert isinstance(pdu, GenericNack | BindResp | EnquireLinkResp) or (
                int(getattr(pdu, "command_id", CommandId.RESP_BIT)) & CommandId.RESP_BIT
                or type(pdu).__name__ in ("SubmitSmResp", "UnbindResp", "DeliverSm")
            ), pdu
            event(type(pdu).__name__)
        if oversized is not None:
            # A broken frame length loses the stream: the SMSC must close, not wait forever.
            esme.answers(2.0)
            assert esme.closed
    finally:
        esme.close()
    assert errors.texts() == []


def test_smsc_simulator_binds_after_fuzzing(smsc: tuple[SmscSimulator, ErrorLog]) -> None:
    sim, errors = smsc
    _bind_works(sim.port)
    assert errors.texts() == []


# -- what the gateway does with a received deliver_sm (receipts and MO SMS) ---------------


@SETTINGS
@given(
    st.text(max_size=120)
    | st.builds(
        lambda i, s, rest: f"id:{i} sub:001 dlvrd:001 submit date:{rest} stat:{s} err:000 text:",
        st.text(max_size=12),
        st.sampled_from(("DELIVRD", "UNDELIV", "ENROUTE", "?", "")),
        st.text(max_size=12),
    ),
    st.dictionaries(st.sampled_from((0x001E, 0x0427, 0x0001)), st.binary(max_size=12), max_size=3),
)
def test_parse_receipt_raises_only_its_error(text: str, tlvs: dict[int, bytes]) -> None:
    refused = ""
    try:
        receipt = parse_receipt(text, tlvs)
    except ReceiptParseError as exc:
        refused = str(exc)
    else:
        assert receipt.message_id
        assert receipt.state
    assert not refused or "receipt" in refused


@SETTINGS
@given(
    short_message=st.binary(max_size=160),
    esm_class=u8,
    data_coding=u8,
    packed=st.booleans(),
    originator=st.sampled_from(("a", "b")),
)
def test_mo_user_data_parse_and_reassembly(
    short_message: bytes, esm_class: int, data_coding: int, packed: bool, originator: str
) -> None:
    reassembler = Reassembler(timeout=5.0, max_pending=2)
    try:
        ud = parse_user_data(short_message, esm_class, data_coding, packed=packed)
    except SmsEncodingError:
        return
    assert isinstance(decode_payload(ud.payload, ud.data_coding), str)
    done = reassembler.add(originator, "dest", ud, 0.0)
    if ud.concat is None or ud.concat.total == 1:
        assert done is not None
    assert len(reassembler) <= 2


# -- the gateway's ESME session over TCP ----------------------------------------------------


class FakeSmsc:
    """The SMSC side of the gateway's session, driven by the test: it grants binds and then
    writes fuzzed PDUs at the ESME."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port: int = self.listener.getsockname()[1]
        self.link: Esme | None = None

    def accept_bind(self, timeout: float = 10.0) -> Esme:
        """Accept the session's (re)connection and answer its bind_transceiver with ROK."""
        self.listener.settimeout(timeout)
        sock, _ = self.listener.accept()
        link = Esme.__new__(Esme)
        link.sock, link.reader, link.closed = sock, PduReader(), False
        got = link.next_pdus(timeout)
        assert got, "the session sent no bind"
        bind = got[0]
        assert isinstance(bind, Bind), bind
        link.send(BindResp(bind.command_id | CommandId.RESP_BIT, bind.sequence, 0, "FAKE").encode())
        self.link = link
        return link

    def current(self) -> Esme:
        if self.link is None or self.link.closed:
            if self.link is not None:
                self.link.close()
            return self.accept_bind()
        return self.link


@pytest.fixture(scope="module")
def esme_session() -> Iterator[tuple[FakeSmsc, SmppSession, asyncio.AbstractEventLoop, ErrorLog]]:
    errors = ErrorLog()
    logging.getLogger().addHandler(errors)
    smsc = FakeSmsc()
    delivered: list[DeliverSm] = []

    async def handler(pdu: DeliverSm) -> None:
        delivered.append(pdu)

    session = SmppSession(
        SmppConfig(
            "127.0.0.1",
            smsc.port,
            "fuzz",
            "pw",
            response_timeout=2.0,
            reconnect_min=0.02,
            reconnect_max=0.1,
            enquire_link_interval=3600.0,
        ),
        handler,
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzz-esme", daemon=True)
    thread.start()
    started = asyncio.run_coroutine_threadsafe(session.start(), loop)
    smsc.accept_bind()
    started.result(10)
    try:
        yield smsc, session, loop, errors
    finally:
        asyncio.run_coroutine_threadsafe(session.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        if smsc.link is not None:
            smsc.link.close()
        smsc.listener.close()
        logging.getLogger().removeHandler(errors)


ESME_ANSWERS = (GenericNack, DeliverSmResp, EnquireLinkResp, UnbindResp)


@TCP_SETTINGS
@given(
    stream=st.lists(pdus(), min_size=1, max_size=4),
    oversized=st.sampled_from((None, None, None, 3, MAX_PDU_LENGTH + 1)),
)
def test_esme_session_survives_fuzzed_pdus(
    esme_session: tuple[FakeSmsc, SmppSession, asyncio.AbstractEventLoop, ErrorLog],
    stream: list[bytes],
    oversized: int | None,
) -> None:
    smsc, _session, _loop, errors = esme_session
    link = smsc.current()
    for data in stream:
        link.send(data)
    if oversized is not None:
        link.send(struct.pack(">IIII", oversized, CommandId.DELIVER_SM, 0, 9))
    for pdu in link.answers(0.05 if oversized is None else 2.0):
        assert isinstance(pdu, ESME_ANSWERS), pdu
        event(type(pdu).__name__)
    if oversized is not None:
        assert link.closed  # a lost stream is closed, and the session binds again
    assert errors.texts() == []


def test_esme_session_submits_after_fuzzing(
    esme_session: tuple[FakeSmsc, SmppSession, asyncio.AbstractEventLoop, ErrorLog],
) -> None:
    smsc, session, loop, errors = esme_session
    link = smsc.current()
    submitted = asyncio.run_coroutine_threadsafe(session.submit_sm("4915", b"hello"), loop)
    got: list[Pdu] = []
    for _ in range(50):
        got += link.answers(0.1)
        if any(isinstance(p, SubmitSm) for p in got):
            break
    submit = next(p for p in got if isinstance(p, SubmitSm))
    link.send(SubmitSmResp(submit.sequence, 0, "m-1").encode())
    assert submitted.result(5) == "m-1"
    assert errors.texts() == []
