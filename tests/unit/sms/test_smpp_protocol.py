# SPDX-License-Identifier: Apache-2.0
"""The sans-IO SMPP 3.4 codec, checked against smpp34 (an independent Rust codec)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msgin5g.gateways.sms.smpp_protocol import (
    Bind,
    BindResp,
    CommandId,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    InvalidPdu,
    Pdu,
    PduReader,
    SmppDecodeError,
    Status,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    UnknownPdu,
    decode_pdu,
)

smpp34 = pytest.importorskip("smpp34")

SAMPLES: list[Pdu] = [
    Bind(CommandId.BIND_TRANSCEIVER, 1, "gw", "pw", "sms"),
    Bind(CommandId.BIND_RECEIVER, 2, "gw", "pw", address_range="^49"),
    BindResp(CommandId.BIND_TRANSCEIVER_RESP, 1, Status.ROK, "SMSC"),
    BindResp(CommandId.BIND_TRANSMITTER_RESP, 3, Status.RINVPASWD, "", {0x0210: b"\x34"}),
    SubmitSm(7, "1234", "4915", b"hello", registered_delivery=1, tlvs={0x0204: b"\x00\x01"}),
    DeliverSm(8, "4915", "1234", b"id:1 stat:DELIVRD", esm_class=4, tlvs={0x0427: b"\x02"}),
    SubmitSmResp(9, Status.ROK, "abc"),
    SubmitSmResp(10, Status.RTHROTTLED),
    DeliverSmResp(11),
    EnquireLink(12),
    EnquireLinkResp(12),
    Unbind(13),
    UnbindResp(13),
    GenericNack(14, Status.RINVCMDID),
]


@pytest.mark.parametrize("pdu", SAMPLES, ids=lambda p: type(p).__name__)
def test_encode_decode_roundtrip(pdu: Pdu) -> None:
    assert decode_pdu(pdu.encode()) == pdu  # type: ignore[union-attr]


def test_reader_frames_split_and_joined_chunks() -> None:
    stream = b"".join(p.encode() for p in SAMPLES)  # type: ignore[union-attr]
    reader = PduReader()
    out: list[Pdu] = []
    for i in range(0, len(stream), 5):
        out += reader.receive_data(stream[i : i + 5])
    assert out == SAMPLES
    assert PduReader().receive_data(stream) == SAMPLES


def test_reader_rejects_bad_length() -> None:
    with pytest.raises(SmppDecodeError):
        PduReader().receive_data(b"\x00\x00\x00\x08" + b"\x00" * 12)


def test_bad_body_and_unknown_command() -> None:
    truncated = SubmitSm(5, "a", "b", b"xyz").encode()[:-2]
    truncated = len(truncated).to_bytes(4, "big") + truncated[4:]
    pdu = decode_pdu(truncated)
    assert isinstance(pdu, InvalidPdu)
    assert pdu.sequence == 5
    unknown = decode_pdu(b"\x00\x00\x00\x10\x00\x00\x01\x03\x00\x00\x00\x00\x00\x00\x00\x09")
    assert isinstance(unknown, UnknownPdu)
    assert unknown.command_id == 0x103  # data_sm


def test_short_message_too_long() -> None:
    with pytest.raises(ValueError, match="254"):
        SubmitSm(1, "a", "b", b"x" * 255).encode()


@given(
    st.text(alphabet="0123456789", max_size=20),
    st.binary(max_size=254),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(1, 0x7FFFFFFF),
)
def test_submit_sm_agrees_with_smpp34(
    dest: str, short_message: bytes, esm_class: int, data_coding: int, seq: int
) -> None:
    ours = SubmitSm(seq, "src", dest, short_message, esm_class=esm_class, data_coding=data_coding)
    theirs = smpp34.decode(ours.encode())
    assert isinstance(theirs, smpp34.SubmitSm)
    assert (theirs.sequence_number, theirs.destination_addr, theirs.short_message) == (
        seq,
        dest,
        short_message,
    )
    assert (theirs.esm_class, theirs.data_coding) == (esm_class, data_coding)
    # and the other way round
    back = smpp34.SubmitSm(
        "src",
        dest,
        short_message,
        esm_class=esm_class,
        data_coding=data_coding,
        sequence_number=seq,
        tlvs=[smpp34.Tlv(0x001E, b"id\x00")],
    ).encode()
    decoded = decode_pdu(back)
    assert isinstance(decoded, SubmitSm)
    assert (decoded.destination_addr, decoded.short_message) == (dest, short_message)
    assert decoded.tlvs == {0x001E: b"id\x00"}


def test_deliver_sm_agrees_with_smpp34() -> None:
    ours = DeliverSm(3, "4915", "gw", b"id:1 stat:DELIVRD", esm_class=4, tlvs={0x0427: b"\x02"})
    theirs = smpp34.decode(ours.encode())
    assert isinstance(theirs, smpp34.DeliverSm)
    assert theirs.esm_class == 4
    assert [(t.tag, t.value) for t in theirs.tlvs] == [(0x0427, b"\x02")]
