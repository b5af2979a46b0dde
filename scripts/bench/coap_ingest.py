# SPDX-License-Identifier: Apache-2.0
"""Benchmark: DESIGN 4's CoAP MSG path (UE-originated MSG, committed before its 2.04) against
the bare granian + msgspec figure DESIGN 4 names (h2c, h2load, `bare_server.py` ASGI on
uvloop) and against a bare uvloop + msgspec CoAP endpoint (`bare_coap_server.py`), the
stricter ceiling of this transport.

Both servers run pinned to CPU 0 and take turns within one run (`--rounds`); the load, in this
process pinned to CPU 1, is `--ues` UEs registered over CoAP and spread over `--sockets` UDP
sockets (`leanload.LeanUeSocket`), sending Confirmable POSTs of an MSG to
/msgin5g/v1/messages with a unique msgId each, `--window` in flight per socket. msgin5g has AS
"sink" registered without targetUri, so every MSG is committed and answered 2.04 MSGRESP
`DELY_STORED`; every answer is checked. Rates are answers per second and per server CPU-second.

Usage: python scripts/bench/coap_ingest.py [--rounds 3] [--requests 40000] [--ues 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import uvloop
from benchlib import cpu_seconds, free_port, measured, server_command
from ingest import BODY, HERE, h2load, pinned, wait
from leanload import LeanUeSocket

from msgin5g.coap import Code

# Uri-Path msgin5g / v1 / messages, then Content-Format 50 (RFC 7252 3.1 option encoding)
HEAD = b"\xb7msgin5g\x02v1\x08messages\x11\x32"
PAYLOAD = "x" * 160


async def register(server: tuple[str, int], sockets: list[LeanUeSocket], ues: list[str]) -> None:
    gate = asyncio.Semaphore(100)

    async def one(index: int, ue: str) -> None:
        async with gate:
            body = msgspec.json.encode({"msgType": "REG", "ueSvcId": ue})
            path = ("msgin5g", "v1", "registrations")
            answer = await sockets[index % len(sockets)].request(server, Code.POST, path, body)
            if answer.code != Code.CREATED:
                raise RuntimeError(f"REG of {ue}: {answer.code:#x} {answer.payload!r}")

    await asyncio.gather(*(one(i, ue) for i, ue in enumerate(ues)))


async def drive(
    server: tuple[str, int], sockets: list[LeanUeSocket], ues: list[str], count: int, window: int
) -> tuple[float, list[str]]:
    """Send `count` MSGs, `window` in flight per socket; (seconds, failures)."""
    runid = f"c{time.time_ns()}"
    numbers = itertools.count()
    failures: list[str] = []
    encode = msgspec.json.Encoder().encode

    async def worker(sock: LeanUeSocket) -> None:
        while (n := next(numbers)) < count:
            ue = ues[n % len(ues)]
            body = encode(
                {
                    "msgType": "MSG",
                    "oriAddr": {"addrType": "UE", "addr": ue},
                    "destAddr": {"addrType": "AS", "addr": "sink"},
                    "msgId": f"{runid}-{n}",
                    "payload": PAYLOAD,
                    "stoAndFwInd": True,
                }
            )
            code, answer = await sock.post_fast(server, HEAD, body)
            if code != Code.CHANGED or b'"DELY_STORED"' not in answer:
                failures.append(f"{code:#x} {answer[:200]!r}")

    async def resender() -> None:
        while True:
            await asyncio.sleep(1.0)
            for sock in sockets:
                sock.resend(2.0)

    sweeper = asyncio.create_task(resender())
    started = time.monotonic()
    try:
        await asyncio.gather(*(worker(s) for s in sockets for _ in range(window)))
    finally:
        sweeper.cancel()
    return time.monotonic() - started, failures


async def bench(
    args: argparse.Namespace,
    servers: dict[str, tuple[int, int]],
    bare_http: tuple[int, int],
    work: Path,
) -> int:
    """`servers`: label -> (CoAP port, pid); `bare_http`: (port, pid) of bare granian."""
    loop = asyncio.get_running_loop()
    ues = [f"bench-ue-{i:05d}" for i in range(args.ues)]
    socks: dict[str, list[LeanUeSocket]] = {}
    for label, (port, _) in servers.items():
        socks[label] = []
        for _ in range(args.sockets):
            _, protocol = await loop.create_datagram_endpoint(
                lambda: LeanUeSocket(lambda _body: None), local_addr=("127.0.0.1", 0)
            )
            socks[label].append(protocol)
        await register(("127.0.0.1", port), socks[label], ues)
    labels = ["bare granian h2c", *servers]
    rates: dict[str, list[float]] = {label: [] for label in labels}
    per_cpu: dict[str, list[float]] = {label: [] for label in labels}
    failed: list[str] = []
    http_port, http_pid = bare_http
    body = work / "body.json"
    body.write_bytes(msgspec.json.encode(BODY))
    for round_ in range(args.rounds + 1):  # round 0 warms up
        rate, served_per_cpu = await asyncio.to_thread(
            measured, http_pid, lambda: h2load(http_port, args.requests, body)
        )
        if round_:
            rates[labels[0]].append(rate)
            per_cpu[labels[0]].append(served_per_cpu)
        for label, (port, pid) in servers.items():
            count = args.requests if round_ else args.requests // 4
            before = cpu_seconds(pid)
            seconds, failures = await drive(
                ("127.0.0.1", port), socks[label], ues, count, args.window
            )
            used = cpu_seconds(pid) - before
            failed += [f"{label}: {f}" for f in failures]
            if round_:
                rates[label].append(count / seconds)
                per_cpu[label].append(count / used)
                print(f"round {round_} {label}: {count / seconds:,.0f}/s", file=sys.stderr)
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; servers"
        f" pinned to CPU 0, the load (uvloop, {args.ues:,} UEs on {args.sockets} sockets,"
        f" {args.window} in flight per socket) on CPU 1; median of {args.rounds} rounds"
    )
    print(f"command: `python {' '.join(sys.argv)}`\n")
    print("| server | answered/s | per server CPU-s | msgin5g / it, by rate | per CPU-s |")
    print("|---|---|---|---|---|")
    ours_rate, ours = statistics.median(rates["msgin5g"]), statistics.median(per_cpu["msgin5g"])
    for label in labels:
        rate, cpu = statistics.median(rates[label]), statistics.median(per_cpu[label])
        print(f"| {label} | {rate:,.0f} | {cpu:,.0f} | {ours_rate / rate:.2f} | {ours / cpu:.2f} |")
    if failed:
        print(f"\n{len(failed)} failures, first: {failed[:3]}")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=40_000, help="MSGs per run (40000)")
    parser.add_argument("--ues", type=int, default=1000, help="registered UEs (1000)")
    parser.add_argument("--sockets", type=int, default=8, help="UDP sockets of the load (8)")
    parser.add_argument("--window", type=int, default=8, help="in flight per socket (8)")
    args = parser.parse_args()
    for tool in ("taskset", "h2load"):
        if not shutil.which(tool):
            print(f"needs {tool} (Debian: util-linux, nghttp2-client)", file=sys.stderr)
            return 2
    os.sched_setaffinity(0, {1})
    work = Path(tempfile.mkdtemp(prefix="msgin5g-coap-ingest-"))
    http_port, ours, bare = free_port(), free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    bare_http = free_port()
    env = {**os.environ, "MSGIN5G_LOG_LEVEL": "WARNING"}
    procs = [
        subprocess.Popen(pinned(0, sys.executable, str(HERE / "bare_coap_server.py"), str(bare))),
        subprocess.Popen(
            pinned(0, sys.executable, str(HERE / "bare_server.py"), str(bare_http), "uvloop")
        ),
        subprocess.Popen(pinned(0, *server_command(http_port, ours, work / "data")), env=env),
    ]
    try:
        wait(f"http://127.0.0.1:{http_port}/readyz")
        wait(f"http://127.0.0.1:{bare_http}/")
        httpx.post(
            f"http://127.0.0.1:{http_port}/msgs-asregistration/v1/registrations",
            json={"asSvcId": "sink"},
        ).raise_for_status()
        servers: dict[str, Any] = {
            "bare CoAP": (bare, procs[0].pid),
            "msgin5g": (ours, procs[2].pid),
        }
        return uvloop.run(bench(args, servers, (bare_http, procs[1].pid), work))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
