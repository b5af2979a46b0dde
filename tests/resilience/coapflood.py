# SPDX-License-Identifier: Apache-2.0
"""A CoAP flood from many UDP sockets with RFC 7252 retransmission: every Confirmable request
is sent again (same Message ID) until it is answered or gives up, like a real client."""

from __future__ import annotations

import json
import selectors
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from msgin5g.coap.message import (
    Code,
    Message,
    MessageType,
    OptionNumber,
    decode,
    encode,
    encode_uint,
)


def post(path: str, body: dict[str, Any], mid: int, token: bytes) -> bytes:
    """A Confirmable POST /msgin5g/v1/{path} with a JSON body."""
    opts = [(int(OptionNumber.URI_PATH), p.encode()) for p in ("msgin5g", "v1", *path.split("/"))]
    opts.append((int(OptionNumber.CONTENT_FORMAT), encode_uint(50)))
    return encode(
        Message(MessageType.CON, Code.POST, mid, token, tuple(opts), json.dumps(body).encode())
    )


def get(path: str, mid: int, token: bytes) -> bytes:
    """A Confirmable GET /msgin5g/v1/{path}."""
    opts = tuple(
        (int(OptionNumber.URI_PATH), p.encode()) for p in ("msgin5g", "v1", *path.split("/"))
    )
    return encode(Message(MessageType.CON, Code.GET, mid, token, opts, b""))


@dataclass
class Flood:
    """Send `requests` (per socket: a list of datagrams) and collect one answer per request."""

    port: int
    retransmit_after: float = 1.0
    attempts: int = 4
    answers: dict[tuple[int, int], Message] = field(default_factory=dict)

    def run(self, per_socket: list[list[bytes]], deadline: float = 30.0) -> None:
        selector = selectors.DefaultSelector()
        socks: list[socket.socket] = []
        sent: dict[tuple[int, int], tuple[bytes, float, int]] = {}
        remote = ("127.0.0.1", self.port)
        for index, datagrams in enumerate(per_socket):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, index)
            socks.append(sock)
            for data in datagrams:
                mid = (data[2] << 8) | data[3]
                sent[(index, mid)] = (data, time.monotonic(), 1)
                sock.sendto(data, remote)
        end = time.monotonic() + deadline
        try:
            while len(self.answers) < len(sent) and time.monotonic() < end:
                for key, _ in selector.select(0.05):
                    ready = socks[key.data]
                    while True:
                        try:
                            data = ready.recv(2048)
                        except BlockingIOError:
                            break
                        message = decode(data)
                        if message.mtype == MessageType.ACK and message.code != 0:
                            self.answers.setdefault((key.data, message.mid), message)
                now = time.monotonic()
                for (index, mid), (data, at, tries) in list(sent.items()):
                    answered = (index, mid) in self.answers
                    if not answered and now - at > self.retransmit_after and tries < self.attempts:
                        sent[(index, mid)] = (data, now, tries + 1)
                        socks[index].sendto(data, remote)
        finally:
            for sock in socks:
                selector.unregister(sock)
                sock.close()
            selector.close()
        self.total = len(sent)
