# SPDX-License-Identifier: Apache-2.0
"""A minimal SMPP 3.4 PDU codec, sans-IO.

Implements the PDUs an ESME and the SMSC simulator exchange (SMPP 3.4 section 4): the three
binds and their responses (4.1), unbind (4.2), generic_nack (4.3), submit_sm (4.4), deliver_sm
(4.6) with their responses, enquire_link (4.11), and optional parameters as TLVs (3.3.1,
5.3). :class:`PduReader` turns a byte stream into PDUs (the 16-octet header of 3.2, big-endian
command_length first) without doing any I/O; ``encode()`` turns a PDU back into bytes.

Why our own codec rather than smpp34's: the smpp34 wheel decodes only submit_sm and deliver_sm
into typed objects (everything else is a raw header plus body) and has no encoder for binds,
responses or enquire_link; its server accepts every bind whatever the password and answers
deliver_sm_resp itself before the application has the message. The simulator has to refuse
wrong credentials and the gateway has to acknowledge an MO only once it holds it, so both sides
use this codec, and the tests check it against smpp34 as an independent implementation.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "BIND_RECEIVER",
    "BIND_TRANSCEIVER",
    "BIND_TRANSMITTER",
    "Bind",
    "BindResp",
    "CommandId",
    "DeliverSm",
    "DeliverSmResp",
    "EnquireLink",
    "EnquireLinkResp",
    "GenericNack",
    "InvalidPdu",
    "Pdu",
    "PduReader",
    "SmppDecodeError",
    "Status",
    "SubmitSm",
    "SubmitSmResp",
    "Unbind",
    "UnbindResp",
    "UnknownPdu",
    "decode_pdu",
]

logger = logging.getLogger(__name__)

HEADER: Final = struct.Struct(">IIII")
MAX_PDU_LENGTH: Final = 64 * 1024


class CommandId:
    """SMPP 3.4 5.1.2.1 command_id values."""

    GENERIC_NACK: Final = 0x80000000
    BIND_RECEIVER: Final = 0x00000001
    BIND_RECEIVER_RESP: Final = 0x80000001
    BIND_TRANSMITTER: Final = 0x00000002
    BIND_TRANSMITTER_RESP: Final = 0x80000002
    SUBMIT_SM: Final = 0x00000004
    SUBMIT_SM_RESP: Final = 0x80000004
    DELIVER_SM: Final = 0x00000005
    DELIVER_SM_RESP: Final = 0x80000005
    UNBIND: Final = 0x00000006
    UNBIND_RESP: Final = 0x80000006
    BIND_TRANSCEIVER: Final = 0x00000009
    BIND_TRANSCEIVER_RESP: Final = 0x80000009
    ENQUIRE_LINK: Final = 0x00000015
    ENQUIRE_LINK_RESP: Final = 0x80000015
    RESP_BIT: Final = 0x80000000


BIND_RECEIVER: Final = CommandId.BIND_RECEIVER
BIND_TRANSMITTER: Final = CommandId.BIND_TRANSMITTER
BIND_TRANSCEIVER: Final = CommandId.BIND_TRANSCEIVER


class Status:
    """SMPP 3.4 5.1.3 command_status values used here."""

    ROK: Final = 0x00
    RINVMSGLEN: Final = 0x01
    RINVCMDLEN: Final = 0x02
    RINVCMDID: Final = 0x03
    RINVBNDSTS: Final = 0x04
    RALYBND: Final = 0x05
    RSYSERR: Final = 0x08
    RINVSRCADR: Final = 0x0A
    RINVDSTADR: Final = 0x0B
    RINVMSGID: Final = 0x0C
    RBINDFAIL: Final = 0x0D
    RINVPASWD: Final = 0x0E
    RINVSYSID: Final = 0x0F
    RMSGQFUL: Final = 0x14
    RSUBMITFAIL: Final = 0x45
    RTHROTTLED: Final = 0x58
    RX_T_APPN: Final = 0x64
    RX_P_APPN: Final = 0x65
    RX_R_APPN: Final = 0x66
    RUNKNOWNERR: Final = 0xFF


class SmppDecodeError(ValueError):
    """The byte stream is not SMPP (bad command_length); the connection must be closed."""


def _cstr(value: str) -> bytes:
    return value.encode("latin-1") + b"\x00"


class _Cursor:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def cstr(self) -> str:
        end = self.data.index(b"\x00", self.pos)
        value = self.data[self.pos : end].decode("latin-1")
        self.pos = end + 1
        return value

    def u8(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def octets(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise IndexError("short body")
        value = self.data[self.pos : self.pos + n]
        self.pos += n
        return value

    def tlvs(self) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        data, pos, n = self.data, self.pos, len(self.data)
        while pos + 4 <= n:
            tag, length = struct.unpack_from(">HH", data, pos)
            pos += 4
            if pos + length > n:
                raise IndexError("short TLV")
            out[tag] = data[pos : pos + length]
            pos += length
        if pos != n:
            raise IndexError("trailing octets")
        self.pos = pos
        return out


def _encode_tlvs(tlvs: dict[int, bytes]) -> bytes:
    return b"".join(struct.pack(">HH", tag, len(v)) + v for tag, v in tlvs.items())


def _frame(command_id: int, status: int, sequence: int, body: bytes) -> bytes:
    return HEADER.pack(16 + len(body), command_id, status, sequence) + body


@dataclass(slots=True)
class Bind:
    """bind_transmitter / bind_receiver / bind_transceiver (SMPP 3.4 4.1)."""

    command_id: int
    sequence: int
    system_id: str
    password: str
    system_type: str = ""
    interface_version: int = 0x34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""

    def encode(self) -> bytes:
        body = (
            _cstr(self.system_id)
            + _cstr(self.password)
            + _cstr(self.system_type)
            + bytes((self.interface_version, self.addr_ton, self.addr_npi))
            + _cstr(self.address_range)
        )
        return _frame(self.command_id, 0, self.sequence, body)


@dataclass(slots=True)
class BindResp:
    command_id: int
    sequence: int
    status: int = Status.ROK
    system_id: str = ""
    tlvs: dict[int, bytes] = field(default_factory=dict)

    def encode(self) -> bytes:
        # 4.1.2: on error the body may be empty; we always send system_id.
        body = _cstr(self.system_id) + _encode_tlvs(self.tlvs)
        return _frame(self.command_id, self.status, self.sequence, body)


@dataclass(slots=True)
class SubmitSm:
    """submit_sm (SMPP 3.4 4.4.1); :class:`DeliverSm` has the same layout (4.6.1)."""

    sequence: int
    source_addr: str
    destination_addr: str
    short_message: bytes = b""
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    dest_addr_ton: int = 1
    dest_addr_npi: int = 1
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    tlvs: dict[int, bytes] = field(default_factory=dict)

    COMMAND_ID = CommandId.SUBMIT_SM

    def encode(self) -> bytes:
        sm = self.short_message
        if len(sm) > 254:
            raise ValueError("short_message longer than 254 octets; use message_payload")
        body = b"".join(
            (
                _cstr(self.service_type),
                bytes((self.source_addr_ton, self.source_addr_npi)),
                _cstr(self.source_addr),
                bytes((self.dest_addr_ton, self.dest_addr_npi)),
                _cstr(self.destination_addr),
                bytes((self.esm_class, self.protocol_id, self.priority_flag)),
                _cstr(self.schedule_delivery_time),
                _cstr(self.validity_period),
                bytes(
                    (
                        self.registered_delivery,
                        self.replace_if_present_flag,
                        self.data_coding,
                        self.sm_default_msg_id,
                        len(sm),
                    )
                ),
                sm,
                _encode_tlvs(self.tlvs) if self.tlvs else b"",
            )
        )
        return _frame(self.COMMAND_ID, 0, self.sequence, body)

    @property
    def payload(self) -> bytes:
        """short_message, or the message_payload TLV (0x0424) when short_message is empty."""
        return self.short_message or self.tlvs.get(0x0424, b"")


@dataclass(slots=True)
class DeliverSm(SubmitSm):
    COMMAND_ID = CommandId.DELIVER_SM


@dataclass(slots=True)
class SubmitSmResp:
    sequence: int
    status: int = Status.ROK
    message_id: str = ""

    def encode(self) -> bytes:
        # 4.4.2: the body is omitted when command_status is not 0
        body = _cstr(self.message_id) if self.status == Status.ROK else b""
        return _frame(CommandId.SUBMIT_SM_RESP, self.status, self.sequence, body)


@dataclass(slots=True)
class DeliverSmResp:
    sequence: int
    status: int = Status.ROK

    def encode(self) -> bytes:
        return _frame(CommandId.DELIVER_SM_RESP, self.status, self.sequence, b"\x00")


@dataclass(slots=True)
class EnquireLink:
    sequence: int

    def encode(self) -> bytes:
        return _frame(CommandId.ENQUIRE_LINK, 0, self.sequence, b"")


@dataclass(slots=True)
class EnquireLinkResp:
    sequence: int

    def encode(self) -> bytes:
        return _frame(CommandId.ENQUIRE_LINK_RESP, 0, self.sequence, b"")


@dataclass(slots=True)
class Unbind:
    sequence: int

    def encode(self) -> bytes:
        return _frame(CommandId.UNBIND, 0, self.sequence, b"")


@dataclass(slots=True)
class UnbindResp:
    sequence: int
    status: int = Status.ROK

    def encode(self) -> bytes:
        return _frame(CommandId.UNBIND_RESP, self.status, self.sequence, b"")


@dataclass(slots=True)
class GenericNack:
    sequence: int
    status: int

    def encode(self) -> bytes:
        return _frame(CommandId.GENERIC_NACK, self.status, self.sequence, b"")


@dataclass(slots=True)
class UnknownPdu:
    """A well-framed PDU whose command_id this codec does not handle (answer generic_nack)."""

    command_id: int
    status: int
    sequence: int
    body: bytes


@dataclass(slots=True)
class InvalidPdu:
    """A well-framed PDU of a known command whose body does not parse."""

    command_id: int
    status: int
    sequence: int
    reason: str


Pdu = (
    Bind
    | BindResp
    | SubmitSm
    | DeliverSm
    | SubmitSmResp
    | DeliverSmResp
    | EnquireLink
    | EnquireLinkResp
    | Unbind
    | UnbindResp
    | GenericNack
    | UnknownPdu
    | InvalidPdu
)

_BINDS: Final = frozenset(
    (CommandId.BIND_RECEIVER, CommandId.BIND_TRANSMITTER, CommandId.BIND_TRANSCEIVER)
)
_BIND_RESPS: Final = frozenset(c | CommandId.RESP_BIT for c in _BINDS)


def _decode_sm(cls: type[SubmitSm], sequence: int, c: _Cursor) -> SubmitSm:
    service_type = c.cstr()
    source_ton, source_npi = c.u8(), c.u8()
    source = c.cstr()
    dest_ton, dest_npi = c.u8(), c.u8()
    dest = c.cstr()
    esm_class, protocol_id, priority = c.u8(), c.u8(), c.u8()
    schedule = c.cstr()
    validity = c.cstr()
    registered, replace, data_coding, default_id, sm_length = (
        c.u8(),
        c.u8(),
        c.u8(),
        c.u8(),
        c.u8(),
    )
    short_message = c.octets(sm_length)
    tlvs = c.tlvs()
    return cls(
        sequence,
        source,
        dest,
        short_message,
        service_type,
        source_ton,
        source_npi,
        dest_ton,
        dest_npi,
        esm_class,
        protocol_id,
        priority,
        schedule,
        validity,
        registered,
        replace,
        data_coding,
        default_id,
        tlvs,
    )


def decode_pdu(frame: bytes) -> Pdu:
    """Decode one complete PDU (header included). A bad body yields :class:`InvalidPdu`."""
    _length, command_id, status, sequence = HEADER.unpack_from(frame)
    c = _Cursor(frame, 16)
    try:
        if command_id == CommandId.SUBMIT_SM_RESP:
            message_id = c.cstr() if len(frame) > 16 else ""
            return SubmitSmResp(sequence, status, message_id)
        if command_id == CommandId.DELIVER_SM:
            return _decode_sm(DeliverSm, sequence, c)
        if command_id == CommandId.SUBMIT_SM:
            return _decode_sm(SubmitSm, sequence, c)
        if command_id == CommandId.DELIVER_SM_RESP:
            return DeliverSmResp(sequence, status)
        if command_id == CommandId.ENQUIRE_LINK:
            return EnquireLink(sequence)
        if command_id == CommandId.ENQUIRE_LINK_RESP:
            return EnquireLinkResp(sequence)
        if command_id in _BINDS:
            system_id, password, system_type = c.cstr(), c.cstr(), c.cstr()
            version, ton, npi = c.u8(), c.u8(), c.u8()
            return Bind(
                command_id, sequence, system_id, password, system_type, version, ton, npi, c.cstr()
            )
        if command_id in _BIND_RESPS:
            system_id = c.cstr() if len(frame) > 16 else ""
            return BindResp(command_id, sequence, status, system_id, c.tlvs())
        if command_id == CommandId.UNBIND:
            return Unbind(sequence)
        if command_id == CommandId.UNBIND_RESP:
            return UnbindResp(sequence, status)
        if command_id == CommandId.GENERIC_NACK:
            return GenericNack(sequence, status)
    except (ValueError, IndexError) as exc:
        return InvalidPdu(command_id, status, sequence, str(exc) or type(exc).__name__)
    return UnknownPdu(command_id, status, sequence, frame[16:])


class PduReader:
    """Frames a byte stream into PDUs.

    ``receive_data`` returns the PDUs completed by the new bytes; partial PDUs are kept.

    Raises:
        SmppDecodeError: a command_length below 16 or above 64 KiB (the stream is lost).
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def receive_data(self, data: bytes) -> list[Pdu]:
        buf = self._buffer
        buf += data
        out: list[Pdu] = []
        pos = 0
        n = len(buf)
        while n - pos >= 16:
            length = int.from_bytes(buf[pos : pos + 4], "big")
            if length < 16 or length > MAX_PDU_LENGTH:
                raise SmppDecodeError(f"invalid command_length {length}")
            if n - pos < length:
                break
            out.append(decode_pdu(bytes(buf[pos : pos + length])))
            pos += length
        if pos:
            del buf[:pos]
        return out
