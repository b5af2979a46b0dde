# SPDX-License-Identifier: Apache-2.0
"""Fuzz the MSGin5G-1 CoAP server over real UDP (DESIGN 2.3, RFC 7252): random datagrams and
structure-aware requests with random options, tokens and JSON bodies. Every answer carries a
pinned code, no handler raises, and a well-formed request is still answered afterwards."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from msgin5g.bootstrap import ServerApp
from msgin5g.coap.message import (
    Code,
    Message,
    MessageType,
    OptionNumber,
    decode,
    encode,
    encode_uint,
    format_code,
)
from tests.fuzz.serverthread import ErrorLog, threaded_server
from tests.fuzz.strategies import (
    FUZZ_UE,
    json_bytes,
    msgin5g1_bodies,
    requests,
    valid_ish_bodies,
)

# The answers MSGin5G-1 pins (DESIGN 2.3) and those the CoAP layer defines (RFC 7252 §5.9,
# RFC 7959 §2.9): anything else (5.00 in particular) is a bug.
ALLOWED = {
    Code.CREATED,
    Code.DELETED,
    Code.VALID,
    Code.CHANGED,
    Code.CONTENT,
    Code.CONTINUE,
    Code.BAD_REQUEST,
    Code.UNAUTHORIZED,
    Code.BAD_OPTION,
    Code.FORBIDDEN,
    Code.NOT_FOUND,
    Code.METHOD_NOT_ALLOWED,
    Code.REQUEST_ENTITY_INCOMPLETE,
    Code.REQUEST_ENTITY_TOO_LARGE,
    Code.UNSUPPORTED_CONTENT_FORMAT,
    Code.SERVICE_UNAVAILABLE,
}
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Udp:
    """A blocking UDP client socket; `exchange` returns the answer to one request or None."""

    def __init__(self, port: int) -> None:
        self.remote = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self._mids = itertools.count(1)

    def next_mid(self) -> int:
        """A Message ID not used before by this client (a reused one is a duplicate, §4.5)."""
        return next(self._mids) & 0xFFFF

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.remote)

    def answers(self, timeout: float) -> list[Message]:
        """Every datagram that arrives within `timeout` (decoded; undecodable ones fail)."""
        out: list[Message] = []
        self.sock.settimeout(timeout)
        while True:
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                return out
            out.append(decode(data))

    def exchange(self, message: Message, timeout: float = 3.0) -> Message:
        self.send(encode(message))
        self.sock.settimeout(timeout)
        while True:
            data, _ = self.sock.recvfrom(65535)
            answer = decode(data)
            if answer.token == message.token and answer.code != 0:
                return answer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerApp, ErrorLog]]:
    errors = ErrorLog()
    root = logging.getLogger()
    root.addHandler(errors)
    try:
        with threaded_server(
            tmp_path_factory.mktemp("coapfuzz"), {"ue": {"max_body_bytes": 4096}}
        ) as (app, loop):
            # A registered UE, so that well-typed bodies from it reach the services.
            asyncio.run_coroutine_threadsafe(app.ue_registry.register(FUZZ_UE), loop).result(5)
            yield app, errors
    finally:
        root.removeHandler(errors)


@pytest.fixture
def udp(server: tuple[ServerApp, ErrorLog]) -> Iterator[Udp]:
    app, _ = server
    client = Udp(app.coap.address[1])
    yield client
    client.sock.close()


def _post(path: str, body: bytes, token: bytes = b"ok", mid: int = 1) -> Message:
    opts = [(int(OptionNumber.URI_PATH), p.encode()) for p in ("msgin5g", "v1", path)]
    opts.append((int(OptionNumber.CONTENT_FORMAT), encode_uint(50)))
    return Message(MessageType.CON, Code.POST, mid, token, tuple(opts), body)


def _assert_healthy(udp: Udp, errors: ErrorLog) -> None:
    """A fresh, well-formed registration is still answered 2.01, and nothing was logged."""
    register = _post(
        "registrations", json_bytes({"msgType": "REG", "ueSvcId": FUZZ_UE}), mid=udp.next_mid()
    )
    answer = udp.exchange(register)
    assert answer.code == Code.CREATED, format_code(answer.code)
    assert errors.texts() == []


def _check(answers: list[Message]) -> None:
    for answer in answers:
        if answer.code != 0:  # empty ACK / RST
            assert answer.code in ALLOWED, format_code(answer.code)


@FUZZ
@given(data=st.binary(max_size=120))
def test_random_datagrams(server: tuple[ServerApp, ErrorLog], udp: Udp, data: bytes) -> None:
    udp.send(data)
    _check(udp.answers(0.02))


@FUZZ
@given(message=requests())
def test_structured_requests(
    server: tuple[ServerApp, ErrorLog], udp: Udp, message: Message
) -> None:
    udp.send(encode(message))
    _check(udp.answers(0.02))


@FUZZ
@given(
    body=msgin5g1_bodies(),
    resource=st.sampled_from(("registrations", "messages", "reports", "segments", "topics")),
)
def test_msgin5g1_json_bodies(
    server: tuple[ServerApp, ErrorLog], udp: Udp, body: dict[str, object], resource: str
) -> None:
    answer = udp.exchange(_post(resource, json_bytes(body), b"fz", udp.next_mid()))
    event(format_code(answer.code))
    assert answer.code in ALLOWED, (format_code(answer.code), body)
    if answer.code == Code.BAD_REQUEST:
        error = json.loads(answer.payload)
        assert set(error) == {"cause", "detail"}


@FUZZ
@given(case=valid_ish_bodies())
def test_msgin5g1_wellformed_bodies_with_one_fault(
    server: tuple[ServerApp, ErrorLog], udp: Udp, case: tuple[str, dict[str, object]]
) -> None:
    resource, body = case
    answer = udp.exchange(_post(resource, json_bytes(body), b"ok", udp.next_mid()))
    event(f"{resource} {format_code(answer.code)}")
    assert answer.code in ALLOWED, (format_code(answer.code), body)


def test_server_still_healthy_after_fuzzing(server: tuple[ServerApp, ErrorLog], udp: Udp) -> None:
    """Runs last in this module: a well-formed request still gets its answer, no errors."""
    _assert_healthy(udp, server[1])
