# SPDX-License-Identifier: Apache-2.0
"""Benchmark: the CoAP endpoint's own CPU per request, without sockets or a store.

`CoapEndpoint` is fed datagrams as the event loop would hand them over: Confirmable POSTs to
/msgin5g/v1/messages (Content-Format 50, a 200-byte body) from `--remotes` UEs, in bursts of
64 (what one loop turn reads under load). The handler awaits a future that the loop resolves
on its next turn, as a group commit would, then answers 2.04 with a short JSON body. A stand-in
transport counts the answers. Printed: process CPU per request, median of `--rounds`.

This isolates what `coap_ingest.py` cannot resolve on a noisy machine: the per-request cost of
decoding, duplicate detection, option parsing, the request task, the early-ACK bookkeeping
and the answer. Compare two versions of the code in one run through `PYTHONPATH`.

Usage: python scripts/bench/coap_endpoint.py [--requests 60000] [--rounds 7] [--remotes 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import uvloop

from msgin5g.coap import (
    CoapEndpoint,
    CoapRequest,
    CoapResponse,
    Code,
    Message,
    MessageType,
    OptionNumber,
    encode,
)
from msgin5g.coap.message import encode_uint, string_options

ANSWER = b'{"msgType":"MSGRESP","msgId":"0195f1d2-6b4c-7a31-9f0e-3c2d1b0a9f8e"}'


class Counting:
    """A datagram transport that only counts what is sent."""

    sent = 0

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent += 1

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class AfterOneTurn:
    """Answers once the loop has turned, as after a group commit."""

    async def handle(self, request: CoapRequest) -> CoapResponse:
        loop = asyncio.get_running_loop()
        committed = loop.create_future()
        loop.call_soon(committed.set_result, None)
        await committed
        return CoapResponse(Code.CHANGED, ANSWER, content_format=50)


async def one_round(requests: int, remotes: int, offset: int) -> tuple[float, int]:
    endpoint = CoapEndpoint(AfterOneTurn())
    transport = Counting()
    endpoint.connection_made(transport)  # type: ignore[arg-type]
    options = (
        *string_options(OptionNumber.URI_PATH, ("msgin5g", "v1", "messages")),
        (int(OptionNumber.CONTENT_FORMAT), encode_uint(50)),
    )
    body = b'{"msgType":"MSG","payload":"' + b"x" * 172 + b'"}'
    datagrams = [
        encode(Message(MessageType.CON, Code.POST, n & 0xFFFF, n.to_bytes(4, "big"), options, body))
        for n in range(offset, offset + requests)
    ]
    peers = [("192.0.2.1", 20000 + n) for n in range(remotes)]
    started = time.process_time()
    for first in range(0, requests, 64):
        for n in range(first, min(first + 64, requests)):
            endpoint.datagram_received(datagrams[n], peers[n % remotes])
        for _ in range(3):  # the tasks start, the commit resolves, the answers go out
            await asyncio.sleep(0)
    for _ in range(100):  # the last burst's answers
        if transport.sent >= requests:
            break
        await asyncio.sleep(0)
    used = time.process_time() - started
    await endpoint.stop()
    return used / requests, transport.sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--remotes", type=int, default=1000)
    args = parser.parse_args()
    costs = []
    for round_ in range(args.rounds + 1):  # round 0 warms up
        cost, answered = uvloop.run(one_round(args.requests, args.remotes, round_ * 7919))
        if answered != args.requests:
            raise SystemExit(f"{answered} of {args.requests} requests answered")
        if round_:
            costs.append(cost)
    print(
        f"{args.requests:,} CON POSTs from {args.remotes:,} UEs in bursts of 64, median of"
        f" {args.rounds} rounds: {statistics.median(costs) * 1e6:.1f} us CPU per request"
        f" (range {min(costs) * 1e6:.1f}-{max(costs) * 1e6:.1f})"
    )


if __name__ == "__main__":
    main()
