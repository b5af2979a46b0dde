# SPDX-License-Identifier: Apache-2.0
"""Benchmark: the broker users would pick instead, Mosquitto with QoS 1 and persistence.

The yardstick of issue 7 for scripts/bench/a2u.py: one publisher, QoS 1, round robin over
N topics for each N in `--subscribers` (100, then 1), each topic with one subscriber
(persistent session, QoS 1 subscription); messages per second delivered to the subscribers
and the publish-to-receive latency.

The script starts its own broker (Debian's `mosquitto` binary, a private config in a temp
dir, a free loopback port, `persistence true`), pinned to CPU 0 like the msgin5g server in
a2u.py; this process (the publisher and every subscriber, uvloop) pins itself to CPU 1.

The clients are a lean MQTT 3.1.1 codec on asyncio protocols (CONNECT, SUBSCRIBE, PUBLISH
QoS 1, PUBACK) rather than paho-mqtt, so that this process costs as little CPU per packet as
Python allows and the broker, not the client, is measured. The publisher keeps `--inflight`
PUBLISHes unacknowledged; a subscriber sends PUBACK when it takes a message. Every message
carries `t=<perf_counter_ns>` and a sequence number; each must arrive exactly once (missing,
duplicate: failures, exit status 1).

Mosquitto's `persistence true` writes its in-memory state to disk every `autosave_interval`
seconds (default 1800) and at shutdown; a PUBACK does not mean the message is on disk. The
msgin5g server commits every message to its WAL before acknowledging it (DESIGN 2.3).

Usage: python scripts/bench/mosquitto_qos1.py [--subscribers 100,1] [--messages 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import cpu_seconds, free_port

_ns = time.perf_counter_ns


@contextlib.contextmanager
def broker(work: Path, cpu: int, inflight: int) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Mosquitto with persistence on, pinned to `cpu`; stopped on the way out."""
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(
        "\n".join(
            [
                f"listener {port} 127.0.0.1",
                "allow_anonymous true",
                *(["user root"] if os.geteuid() == 0 else []),
                "persistence true",
                f"persistence_location {work}/",
                # queue rather than drop while a subscriber lags (the default is 1000)
                "max_queued_messages 1000000",
                f"max_inflight_messages {inflight}",
                "log_type error",
                f"log_dest file {work}/mosquitto.log",
                "",
            ]
        )
    )
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen(
        ["taskset", "-c", str(cpu), mosquitto, "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start (exit {proc.poll()})")
            time.sleep(0.05)
        yield proc, port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# -- a lean MQTT 3.1.1 client ---------------------------------------------------------------------


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _length(len(body)) + body


class Mqtt(asyncio.Protocol):
    """One MQTT 3.1.1 connection: CONNECT, SUBSCRIBE (QoS 1), PUBLISH QoS 1 with a window of
    unacknowledged packets, PUBACK of received QoS 1 PUBLISHes via `on_message`."""

    def __init__(self, client_id: str, on_message: object = None) -> None:
        self.client_id = client_id
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.connack: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.suback: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.unacked: set[int] = set()
        self.window_open = asyncio.Event()
        self.window_open.set()
        self.next_id = 0

    @classmethod
    async def connect(
        cls, port: int, client_id: str, on_message: object = None, clean: bool = False
    ) -> Mqtt:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(
            lambda: cls(client_id, on_message), "127.0.0.1", port
        )
        flags = 0x02 if clean else 0x00
        body = _str("MQTT") + bytes([4, flags]) + struct.pack("!H", 60) + _str(client_id)
        assert proto.transport is not None
        proto.transport.write(_packet(0x10, body))
        code = await proto.connack
        if code != 0:
            raise RuntimeError(f"CONNACK {code}")
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        acks = bytearray()
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            first = buf[pos]
            mult, length, i, complete = 1, 0, pos + 1, False
            while i < end and i - pos <= 4:
                byte = buf[i]
                length += (byte & 0x7F) * mult
                mult <<= 7
                i += 1
                if not byte & 0x80:
                    complete = True
                    break
            if not complete or i + length > end:
                break
            body = bytes(buf[i : i + length])
            pos = i + length
            kind = first >> 4
            if kind == 3:  # PUBLISH
                tlen = struct.unpack_from("!H", body)[0]
                at = 2 + tlen
                qos = (first >> 1) & 3
                if qos:
                    acks += b"\x40\x02" + body[at : at + 2]
                    at += 2
                self.on_message(body[at:])  # type: ignore[operator]
            elif kind == 4:  # PUBACK
                self.unacked.discard(struct.unpack_from("!H", body)[0])
                self.window_open.set()
            elif kind == 2:
                self.connack.set_result(body[1])
            elif kind == 9:
                self.suback.set_result(body[-1])
        del buf[:pos]
        if acks and self.transport is not None:
            self.transport.write(bytes(acks))

    async def subscribe(self, topic: str) -> None:
        assert self.transport is not None
        self.transport.write(_packet(0x82, struct.pack("!H", 1) + _str(topic) + b"\x01"))
        granted = await self.suback
        if granted != 1:
            raise RuntimeError(f"SUBACK granted {granted:#x}")

    async def publish(self, topic: bytes, payload: bytes, window: int) -> None:
        while len(self.unacked) >= window:
            self.window_open.clear()
            await self.window_open.wait()
        self.next_id = self.next_id % 65535 + 1
        self.unacked.add(self.next_id)
        body = topic + struct.pack("!H", self.next_id) + payload
        assert self.transport is not None
        self.transport.write(_packet(0x32, body))

    async def drain_acks(self) -> None:
        while self.unacked:
            self.window_open.clear()
            await self.window_open.wait()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.write(b"\xe0\x00")
            self.transport.close()


# -- a run -----------------------------------------------------------------------------------------


@dataclass
class Run:
    expected: int
    seen: set[int] = field(default_factory=set)
    latencies_ns: list[int] = field(default_factory=list)
    duplicates: int = 0
    last_ns: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def take(self, payload: bytes) -> None:
        now = _ns()
        head = payload.split(b" ", 2)
        seq, sent = int(head[0]), int(head[1][2:])
        if seq in self.seen:
            self.duplicates += 1
            return
        self.seen.add(seq)
        self.latencies_ns.append(now - sent)
        self.last_ns = now
        if len(self.seen) >= self.expected:
            self.done.set()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


async def one_run(
    port: int, subscribers: int, messages: int, inflight: int, payload_bytes: int, broker_pid: int
) -> dict[str, float | int]:
    run = Run(messages)
    tag = f"{subscribers}-{time.monotonic_ns()}"
    subs = []
    for i in range(subscribers):
        client = await Mqtt.connect(port, f"sub-{tag}-{i}", run.take)
        await client.subscribe(f"bench/{tag}/{i}")
        subs.append(client)
    pub = await Mqtt.connect(port, f"pub-{tag}", None, clean=True)
    topics = [_str(f"bench/{tag}/{i}") for i in range(subscribers)]
    pad = b"x" * max(0, payload_bytes - 30)
    cpu0, own0 = cpu_seconds(broker_pid), cpu_seconds(os.getpid())
    start = _ns()
    for seq in range(messages):
        payload = b"%d t=%d " % (seq, _ns()) + pad
        await pub.publish(topics[seq % subscribers], payload, inflight)
    await pub.drain_acks()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(30):
            await run.done.wait()
    span = max(1, (run.last_ns or _ns()) - start) / 1e9
    broker_cpu = (cpu_seconds(broker_pid) - cpu0) / span
    load_cpu = (cpu_seconds(os.getpid()) - own0) / span
    for client in (*subs, pub):
        client.close()
    lat = sorted(x / 1e6 for x in run.latencies_ns)
    return {
        "subscribers": subscribers,
        "sent": messages,
        "delivered": len(run.seen),
        "rate": len(run.seen) / span,
        "p50": percentile(lat, 0.5),
        "p99": percentile(lat, 0.99),
        "max": lat[-1] if lat else float("nan"),
        "failures": messages - len(run.seen) + run.duplicates,
        "broker_cpu": broker_cpu,
        "load_cpu": load_cpu,
    }


async def bench(args: argparse.Namespace, pid: int, port: int) -> list[dict[str, float | int]]:
    results = []
    for subscribers in (int(s) for s in args.subscribers.split(",")):
        # warm-up, then the measured run
        await one_run(port, subscribers, args.warmup, args.inflight, args.payload_bytes, pid)
        for _ in range(args.rounds):
            results.append(
                await one_run(
                    port, subscribers, args.messages, args.inflight, args.payload_bytes, pid
                )
            )
    return results


def _version() -> str:
    out = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).split("\n", 1)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", default="100,1", help="runs, comma-separated (100,1)")
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--warmup", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=1, help="measured runs per row (1)")
    parser.add_argument("--inflight", type=int, default=100, help="publisher window (100)")
    parser.add_argument("--payload-bytes", type=int, default=100)
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--load-cpu", type=int, default=1)
    args = parser.parse_args()
    if not shutil.which("taskset"):
        print("needs taskset (Debian: util-linux)", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {args.load_cpu})
    work = Path(tempfile.mkdtemp(prefix="msgin5g-mosq-"))
    try:
        with broker(work, args.server_cpu, args.inflight) as (proc, port):
            coro = bench(args, proc.pid, port)
            try:
                import uvloop

                results = uvloop.run(coro)
            except ImportError:
                results = asyncio.run(coro)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{_version()} persistence true, pinned to CPU {args.server_cpu}; publisher +"
        f" subscribers (lean MQTT 3.1.1 on uvloop) in one process on CPU {args.load_cpu};"
        f" QoS 1, window {args.inflight}, payload {args.payload_bytes} B"
    )
    print(f"command: `python {' '.join(sys.argv)}`\n")
    print(
        "| subscribers (topics) | sent | delivered once | msg/s delivered | p50 ms | p99 ms"
        " | max ms | failures | broker CPU | load CPU |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['subscribers']} | {r['sent']:,} | {r['delivered']:,} | {r['rate']:,.0f}"
            f" | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | {r['failures']}"
            f" | {r['broker_cpu']:.0%} | {r['load_cpu']:.0%} |"
        )
    return 1 if any(r["failures"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
