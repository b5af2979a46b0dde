# SPDX-License-Identifier: Apache-2.0
"""Benchmark: end-to-end AS-to-UE delivery (deliver-as-message over h2c -> CoAP notification).

A real `msgin5g server` runs pinned to CPU 0 (fresh data dir, MSGIN5G_LOG_LEVEL=WARNING). This
process pins itself to CPU 1 and is the whole load:

- N simulated MSGin5G UEs (default 1,000). Each registers over CoAP (POST
  /msgin5g/v1/registrations) and observes its inbox (GET /msgin5g/v1/ues/{id}/inbox, Observe 0)
  with the project's `CoapClient`. The server keys an observation by (remote endpoint, token),
  so the UEs share a handful of UDP sockets (`--sockets`, one `CoapClient` each, SO_RCVBUF
  `--rcvbuf`) and differ by token. Each UE is one task iterating its `ClientObservation`; the
  client ACKs a Confirmable notification when the task takes it, which is when the server
  counts the item as handed over (DESIGN 2.3). A socket is one CoAP endpoint to the server,
  which sends one endpoint at most 65,536 notifications per EXCHANGE_LIFETIME (247 s; RFC
  7252 4.4, ADR 0006): a run that sends more than 65,536 x `--sockets` messages within 247 s
  is held back by that, so give it more sockets.
- One AS sending deliver-as-message over h2c to the UEs round-robin, `stoAndFwInd` false, so
  every answer must be 200 "forwarded" (no `status`). Two AS clients, run in turn on the same
  server and UEs: `httpx` (AsyncClient, http2 prior knowledge: what an AS in Python uses) and
  `h2` (a lean client on the h2 state machine, about a third of httpx's CPU per request, so
  that the server rather than the load process is the limit).

Latency of a message = from just before the AS POST to the moment the UE takes the
notification (and ACKs it). The payload carries the send time (`t=<perf_counter_ns>`, one
clock: both ends are in this process). Every msgId sent must arrive exactly once; missing,
duplicated or unknown msgIds and AS errors are failures (exit status 1).

Per AS client: a warm-up (discarded); a "max" run, closed loop with `--concurrency` requests in
flight; a "paced" run, open loop at `--paced-fraction` (0.8) of the max delivered rate, or at
each `--rate`. Before each run the script waits (up to `--quiet-timeout`) until other processes
leave the two cores mostly idle; the machine is shared. Around each run it reads /proc: CPU of
the server and of this process, how busy each core was in total (the difference is other
tenants), and UDP receive drops of the server's and the UEs' sockets.

Usage: python scripts/bench/a2u.py [--ues 1000] [--messages 10000] [--concurrency 64]
           [--as-client httpx,h2] [--rate R[,R...]] [--py-spy PREFIX]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
from benchlib import cpu_seconds, free_port
from leanload import LeanUeSocket, RawH2

from msgin5g.coap import ClientObservation, CoapClient, Code, ContentFormat

BASE = ("msgin5g", "v1")
DELIVER_B = b"/msgs-msgdelivery/v1/deliver-as-message"
AS_ID = "bench-as"
SERVER_CPU, LOAD_CPU = 0, 1  # set from --server-cpu / --load-cpu
QUIET = (0.15, 30.0)  # set from --quiet / --quiet-timeout
_ns = time.perf_counter_ns


# -- processes ----------------------------------------------------------------------------------


def cpu_busy() -> dict[int, tuple[int, int]]:
    """(busy, total) jiffies of each CPU since boot, from /proc/stat."""
    out: dict[int, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(v) for v in values]
            idle = ticks[3] + ticks[4]  # idle + iowait
            out[int(name[3:])] = (sum(ticks[:8]) - idle, sum(ticks[:8]))
    return out


def busy_share(before: dict[int, tuple[int, int]], cpu: int) -> float:
    after = cpu_busy()
    busy = after[cpu][0] - before[cpu][0]
    total = after[cpu][1] - before[cpu][1]
    return busy / total if total else float("nan")


def udp_receive_errors() -> int:
    """System-wide UDP datagrams dropped on receive (full socket buffers), /proc/net/snmp."""
    lines = [
        x.split() for x in Path("/proc/net/snmp").read_text().splitlines() if x.startswith("Udp:")
    ]
    return int(dict(zip(lines[0], lines[1], strict=True))["InErrors"])


def udp_drops(ports: set[int]) -> int:
    """Datagrams dropped on receive by the loopback UDP sockets bound to `ports`
    (/proc/net/udp, last column)."""
    total = 0
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) in ports:
            total += int(fields[-1])
    return total


def server_counters(port: int) -> dict[str, float]:
    """The server's delivery outcome counters (msgin5g_deliveries_total{outcome=...})."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("msgin5g_deliveries_total{"):
            labels, _, value = line.rpartition(" ")
            outcome = labels.split('outcome="', 1)[1].split('"', 1)[0]
            out[outcome] = out.get(outcome, 0.0) + float(value)
    return out


async def wait_quiet(pids: list[int], limit: float, patience: float) -> float:
    """Wait (up to `patience` s) until the two benchmark cores are each less than `limit` busy
    with work other than `pids` over one second; returns the seconds waited."""
    started = time.monotonic()
    while True:
        busy, ours = cpu_busy(), sum(cpu_seconds(p) for p in pids)
        await asyncio.sleep(1.0)
        ticks = os.sysconf("SC_CLK_TCK")
        mine = (sum(cpu_seconds(p) for p in pids) - ours) * ticks
        after = cpu_busy()
        others = sum(after[c][0] - busy[c][0] for c in (SERVER_CPU, LOAD_CPU)) - mine
        total = max(1, after[SERVER_CPU][1] - busy[SERVER_CPU][1])
        if others / total < limit or time.monotonic() - started > patience:
            return time.monotonic() - started


def own_cpu_seconds() -> float:
    return cpu_seconds(os.getpid())


@contextlib.contextmanager
def server_process(
    work: Path, cpu: int, bare: bool = False
) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    """`msgin5g server` (or with `bare` the ceiling, `bare_a2u_server.py`) pinned to `cpu`;
    terminated (then killed) on the way out."""
    http_port, coap_port = free_port(), free_port(socket.SOCK_DGRAM)
    env = {**os.environ, "MSGIN5G_LOG_LEVEL": "WARNING"}
    log = (work / "server.log").open("ab")
    if bare:
        command = [str(Path(__file__).with_name("bare_a2u_server.py")), str(http_port)]
        command.append(str(coap_port))
    else:
        command = ["-m", "msgin5g.cli.main", "server", "--http", f"127.0.0.1:{http_port}"]
        command += ["--coap", f"127.0.0.1:{coap_port}", "--data-dir", str(work / "data")]
    proc = subprocess.Popen(
        ["taskset", "-c", str(cpu), sys.executable, *command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,  # Ctrl-C in the terminal reaches only us; we stop it
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                tail = (work / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"server exited with {proc.returncode}:\n{tail}")
            try:
                if httpx.get(f"http://127.0.0.1:{http_port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("server did not become ready")
            time.sleep(0.1)
        yield proc, http_port, coap_port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        log.close()


# -- the UEs ------------------------------------------------------------------------------------


class _Note(msgspec.Struct):
    msgId: str = ""
    payload: str = ""


_decode_note = msgspec.json.Decoder(_Note).decode


@dataclass
class Run:
    """Book-keeping of one run: msgIds sent (with their send time) and what arrived."""

    name: str
    sent: dict[str, int] = field(default_factory=dict)
    latencies_ns: list[int] = field(default_factory=list)
    received: set[str] = field(default_factory=set)
    duplicates: int = 0
    unknown: int = 0
    bad_payload: int = 0
    as_failures: list[str] = field(default_factory=list)
    first_send_ns: int = 0
    last_receive_ns: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0
    pacer_lag_max_ns: int = 0

    def take(self, msg_id: str, payload: str, now: int) -> None:
        if msg_id not in self.sent:
            self.unknown += 1
            return
        if msg_id in self.received:
            self.duplicates += 1
            return
        self.received.add(msg_id)
        if payload.startswith("t="):
            self.latencies_ns.append(now - int(payload[2:].split(" ", 1)[0]))
        else:
            self.bad_payload += 1
        self.last_receive_ns = now
        if len(self.received) >= self.expected:
            self.done.set()


class Ues:
    """N UEs on `sockets` CoapClients; one task per UE consumes (and so ACKs) its inbox."""

    def __init__(self, server: tuple[str, int], count: int, sockets: int) -> None:
        self.server = server
        self.ids = [f"bench-ue-{i:05d}" for i in range(count)]
        self.clients = [CoapClient() for _ in range(sockets)]
        self.run: Run | None = None
        self.stray = 0  # notifications outside any run (e.g. after a run timed out)
        self._tasks: list[asyncio.Task[None]] = []

    def ports(self) -> set[int]:
        return {int(client.address[1]) for client in self.clients}

    async def start(self, rcvbuf: int, parallel: int = 100) -> None:
        for client in self.clients:
            await client.start("127.0.0.1", 0)
            sock = client._transport.get_extra_info("socket") if client._transport else None
            if sock is not None and rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        gate = asyncio.Semaphore(parallel)

        async def one(index: int, ue: str) -> None:
            client = self.clients[index % len(self.clients)]
            async with gate:
                body = msgspec.json.encode({"msgType": "REG", "ueSvcId": ue})
                response = await client.request(
                    self.server,
                    Code.POST,
                    (*BASE, "registrations"),
                    payload=body,
                    content_format=ContentFormat.JSON,
                )
                if response.code != Code.CREATED:
                    raise RuntimeError(f"REG of {ue}: {response.code:#x} {response.payload!r}")
                observation = await client.observe(self.server, (*BASE, "ues", ue, "inbox"))
                first = await anext(observation)
                if first.code != Code.CONTENT:
                    raise RuntimeError(f"observe of {ue}: {first.code:#x}")
            self._tasks.append(asyncio.create_task(self._consume(observation)))

        await asyncio.gather(*(one(i, ue) for i, ue in enumerate(self.ids)))

    async def _consume(self, observation: ClientObservation) -> None:
        async for note in observation:  # taking it sends the ACK
            now = _ns()
            item = _decode_note(note.payload)
            run = self.run
            if run is None:
                self.stray += 1
            else:
                run.take(item.msgId, item.payload, now)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in self.clients:
            await client.stop()


class LeanUes(Ues):
    """The same UEs on `leanload.LeanUeSocket`s: ACKed on arrival, no task per UE."""

    def __init__(self, server: tuple[str, int], count: int, sockets: int) -> None:
        super().__init__(server, 0, 0)
        self.ids = [f"bench-ue-{i:05d}" for i in range(count)]
        self.sockets: list[LeanUeSocket] = []
        self._count = sockets

    def ports(self) -> set[int]:
        return {int(s.transport.get_extra_info("sockname")[1]) for s in self.sockets}

    def _take(self, body: bytes) -> None:
        now = _ns()
        item = _decode_note(body)
        run = self.run
        if run is None:
            self.stray += 1
        else:
            run.take(item.msgId, item.payload, now)

    async def start(self, rcvbuf: int, parallel: int = 100) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(self._count):
            _, protocol = await loop.create_datagram_endpoint(
                lambda: LeanUeSocket(self._take), local_addr=("127.0.0.1", 0)
            )
            sock = protocol.transport.get_extra_info("socket")
            if sock is not None and rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sockets.append(protocol)
        gate = asyncio.Semaphore(parallel)

        async def one(index: int, ue: str) -> None:
            client = self.sockets[index % len(self.sockets)]
            async with gate:
                body = msgspec.json.encode({"msgType": "REG", "ueSvcId": ue})
                path = (*BASE, "registrations")
                answer = await client.request(self.server, Code.POST, path, body)
                if answer.code != Code.CREATED:
                    raise RuntimeError(f"REG of {ue}: {answer.code:#x} {answer.payload!r}")
                first = await client.observe(self.server, (*BASE, "ues", ue, "inbox"))
                if first.code != Code.CONTENT:
                    raise RuntimeError(f"observe of {ue}: {first.code:#x}")

        await asyncio.gather(*(one(i, ue) for i, ue in enumerate(self.ids)))

    async def stop(self) -> None:
        for protocol in self.sockets:
            protocol.transport.close()


# -- the AS -------------------------------------------------------------------------------------


class LeanH2(asyncio.Protocol):
    """A minimal h2c client (prior knowledge) on the `h2` state machine, without httpx's
    layers: `--as-client h2`, to see the server's limit when httpx's CPU cost is the client's.
    POST only; bodies are small (flow control is honoured by waiting for WINDOW_UPDATE)."""

    def __init__(self, authority: str) -> None:
        import h2.config
        import h2.connection

        self._h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self._authority = authority.encode()
        self._transport: asyncio.Transport | None = None
        self._streams: dict[int, tuple[asyncio.Future[tuple[int, bytes]], list[Any]]] = {}
        self._changed = asyncio.Event()  # window or stream count changed
        self._closed: Exception | None = None

    @classmethod
    async def connect(cls, host: str, port: int) -> LeanH2:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(lambda: cls(f"{host}:{port}"), host, port)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast_transport(transport)
        self._h2.initiate_connection()
        self._h2.increment_flow_control_window(1 << 30)
        self._transport.write(self._h2.data_to_send())

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = exc or ConnectionError("h2c connection closed")
        for future, _ in self._streams.values():
            if not future.done():
                future.set_exception(self._closed)
        self._changed.set()

    def data_received(self, data: bytes) -> None:
        import h2.events as ev

        for event in self._h2.receive_data(data):
            if isinstance(event, ev.ResponseReceived):
                entry = self._streams.get(event.stream_id)
                if entry is not None:
                    entry[1][0] = int(dict(event.headers)[b":status"])
            elif isinstance(event, ev.DataReceived):
                entry = self._streams.get(event.stream_id)
                if entry is not None:
                    entry[1].append(event.data)
                self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, ev.StreamEnded):
                entry = self._streams.pop(event.stream_id, None)
                if entry is not None and not entry[0].done():
                    entry[0].set_result((entry[1][0], b"".join(entry[1][1:])))
                self._changed.set()
            elif isinstance(event, ev.StreamReset):
                entry = self._streams.pop(event.stream_id, None)
                if entry is not None and not entry[0].done():
                    entry[0].set_exception(ConnectionError(f"stream reset {event.error_code}"))
                self._changed.set()
            elif isinstance(event, ev.WindowUpdated | ev.RemoteSettingsChanged):
                self._changed.set()
            elif isinstance(event, ev.ConnectionTerminated):
                self.connection_lost(ConnectionError(f"GOAWAY {event.error_code}"))
        out = self._h2.data_to_send()
        if out and self._transport is not None:
            self._transport.write(out)

    async def post(self, path: bytes, body: bytes) -> tuple[int, bytes]:
        h2c = self._h2
        while True:
            if self._closed is not None:
                raise self._closed
            if h2c.open_outbound_streams < h2c.remote_settings.max_concurrent_streams and (
                h2c.outbound_flow_control_window >= len(body)
            ):
                break
            self._changed.clear()
            await self._changed.wait()
        stream_id = h2c.get_next_available_stream_id()
        h2c.send_headers(
            stream_id,
            [
                (b":method", b"POST"),
                (b":scheme", b"http"),
                (b":authority", self._authority),
                (b":path", path),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        )
        h2c.send_data(stream_id, body, end_stream=True)
        future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._streams[stream_id] = (future, [0])
        assert self._transport is not None
        self._transport.write(h2c.data_to_send())
        return await future

    async def aclose(self) -> None:
        if self._transport is not None and self._closed is None:
            self._h2.close_connection()
            self._transport.write(self._h2.data_to_send())
            self._transport.close()


def cast_transport(transport: asyncio.BaseTransport) -> asyncio.Transport:
    # uvloop's transports do not subclass asyncio.Transport
    return transport  # type: ignore[return-value]


class _HttpxPost:
    """`post(path, body) -> (status, body)` on an httpx AsyncClient (h2c prior knowledge)."""

    def __init__(self, url: str) -> None:
        self._client = httpx.AsyncClient(
            base_url=url,
            http1=False,
            http2=True,
            timeout=30,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        self._headers = {"content-type": "application/json"}

    async def post(self, path: bytes, body: bytes) -> tuple[int, bytes]:
        response = await self._client.post(path.decode(), content=body, headers=self._headers)
        return response.status_code, response.content

    async def aclose(self) -> None:
        await self._client.aclose()


class As:
    """The AS: deliver-as-message over h2c, UEs round-robin, payload `t=<ns> <padding>`."""

    def __init__(self, ues: list[str], payload_bytes: int) -> None:
        self.clients: list[Any] = []
        self.ues = ues
        self.pad = "x" * max(0, payload_bytes - 22)
        self._next = itertools.count()
        self._encode = msgspec.json.Encoder().encode

    async def connect(self, kind: str, port: int, connections: int) -> None:
        for _ in range(connections):
            if kind == "httpx":
                self.clients.append(_HttpxPost(f"http://127.0.0.1:{port}"))
            elif kind == "raw":
                self.clients.append(await RawH2.connect("127.0.0.1", port))
            else:
                self.clients.append(await LeanH2.connect("127.0.0.1", port))

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()

    async def send(self, run: Run, prefix: str) -> None:
        n = next(self._next)
        ue = self.ues[n % len(self.ues)]
        msg_id = f"{prefix}-{n}"
        client = self.clients[n % len(self.clients)]
        t0 = _ns()
        body = self._encode(
            {
                "oriAddr": {"addrType": "AS", "addr": AS_ID},
                "destAddr": {"addrType": "UE", "addr": ue},
                "msgId": msg_id,
                "payload": f"t={t0} {self.pad}",
                "stoAndFwInd": False,
                "delivStReqInd": False,
            }
        )
        run.sent[msg_id] = t0
        if not run.first_send_ns:
            run.first_send_ns = t0
        try:
            status, content = await client.post(DELIVER_B, body)
        except (httpx.HTTPError, OSError) as exc:
            run.as_failures.append(f"{msg_id}: {exc!r}")
            return
        if status != 200:
            run.as_failures.append(f"{msg_id}: HTTP {status} {content[:200]!r}")
            return
        ack = msgspec.json.decode(content)
        if ack.get("status") is not None:  # DELY_STORED / DELY_FAILED: not forwarded
            run.as_failures.append(f"{msg_id}: {ack}")


async def closed_loop(app: As, run: Run, count: int, concurrency: int, prefix: str) -> None:
    """`concurrency` senders, each with one request in flight, until `count` are sent."""
    left = itertools.count()

    async def worker() -> None:
        while next(left) < count:
            await app.send(run, prefix)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def open_loop(app: As, run: Run, count: int, rate: float, cap: int, prefix: str) -> None:
    """Start one request every 1/rate s on schedule (at most `cap` in flight)."""
    gate = asyncio.Semaphore(cap)
    tasks: set[asyncio.Task[None]] = set()
    interval_ns = int(1e9 / rate)
    start = _ns()

    async def one() -> None:
        try:
            await app.send(run, prefix)
        finally:
            gate.release()

    for k in range(count):
        due = start + k * interval_ns
        now = _ns()
        if due > now:
            await asyncio.sleep((due - now) / 1e9)
        await gate.acquire()
        run.pacer_lag_max_ns = max(run.pacer_lag_max_ns, _ns() - due)
        task = asyncio.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)


# -- a run --------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    offered: str
    sent: int
    delivered: int
    seconds: float
    rate: float
    p50: float
    p90: float
    p99: float
    pmax: float
    failures: int
    detail: list[str]
    server_cpu: float
    load_cpu: float
    cpu0_busy: float
    cpu1_busy: float


def percentile(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return float("nan")
    index = min(len(sorted_ms) - 1, max(0, math.ceil(q * len(sorted_ms)) - 1))  # nearest rank
    return sorted_ms[index]


async def measure(
    name: str,
    offered: str,
    ues: Ues,
    server_pid: int,
    http_port: int,
    count: int,
    drive: Any,
    drain_timeout: float,
) -> Result:
    waited = await wait_quiet([server_pid, os.getpid()], QUIET[0], QUIET[1])
    run = Run(name, expected=count)
    ues.run = run
    counters = await asyncio.to_thread(server_counters, http_port)
    cpu_server, cpu_load, wall = cpu_seconds(server_pid), own_cpu_seconds(), time.monotonic()
    busy = cpu_busy()
    udp_errors = udp_receive_errors()
    server_ports, ue_ports = {ues.server[1]}, ues.ports()
    drops_server, drops_ues = udp_drops(server_ports), udp_drops(ue_ports)
    await drive(run)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(drain_timeout):
            await run.done.wait()
    elapsed = time.monotonic() - wall
    server_cpu = (cpu_seconds(server_pid) - cpu_server) / elapsed
    load_cpu = (own_cpu_seconds() - cpu_load) / elapsed
    cpu0_busy, cpu1_busy = busy_share(busy, SERVER_CPU), busy_share(busy, LOAD_CPU)
    udp_dropped = udp_receive_errors() - udp_errors
    dropped_server = udp_drops(server_ports) - drops_server
    dropped_ues = udp_drops(ue_ports) - drops_ues
    await asyncio.sleep(0.2)  # let late duplicates show
    ues.run = None
    after = await asyncio.to_thread(server_counters, http_port)
    retried = after.get("retried", 0) - counters.get("retried", 0)
    missing = len(run.sent) - len(run.received)
    failures = missing + run.duplicates + run.unknown + run.bad_payload + len(run.as_failures)
    detail = []
    if missing:
        detail.append(f"{missing} missing")
    if run.duplicates:
        detail.append(f"{run.duplicates} duplicates")
    if run.unknown:
        detail.append(f"{run.unknown} unknown msgIds")
    if run.as_failures:
        detail.append(f"{len(run.as_failures)} AS errors, e.g. {run.as_failures[0]}")
    if udp_dropped or dropped_server or dropped_ues:
        detail.append(
            f"UDP datagrams dropped on receive: {dropped_server} by the server's CoAP socket,"
            f" {dropped_ues} by the UE sockets ({udp_dropped} system-wide); each loss costs"
            " a CoAP retransmission (ACK_TIMEOUT 2-3 s)"
        )
    if waited > 1.5:
        detail.append(f"waited {waited:.0f} s for the cores to be quiet")
    slow = sum(1 for x in run.latencies_ns if x > 1_000_000_000)
    if slow or retried:
        detail.append(
            f"{slow} messages took over 1 s; server counted {retried:.0f} retried"
            " deliveries (a notification not ACKed in time)"
        )
    if run.pacer_lag_max_ns > 5_000_000:
        detail.append(f"pacer fell behind by up to {run.pacer_lag_max_ns / 1e6:.0f} ms")
    span = max(1, (run.last_receive_ns or _ns()) - run.first_send_ns) / 1e9
    lat = sorted(x / 1e6 for x in run.latencies_ns)
    return Result(
        name=name,
        offered=offered,
        sent=len(run.sent),
        delivered=len(run.received),
        seconds=span,
        rate=len(run.received) / span,
        p50=percentile(lat, 0.50),
        p90=percentile(lat, 0.90),
        p99=percentile(lat, 0.99),
        pmax=lat[-1] if lat else float("nan"),
        failures=failures,
        detail=detail,
        server_cpu=server_cpu,
        load_cpu=load_cpu,
        cpu0_busy=cpu0_busy,
        cpu1_busy=cpu1_busy,
    )


def table(results: list[Result]) -> str:
    lines = [
        "| run | offered | sent | delivered once | msg/s delivered | p50 ms | p90 ms | p99 ms"
        " | max ms | failures | server process CPU | load process CPU"
        " | server core busy (all tasks) | load core busy (all tasks) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.offered} | {r.sent:,} | {r.delivered:,} | {r.rate:,.0f}"
            f" | {r.p50:.1f} | {r.p90:.1f} | {r.p99:.1f} | {r.pmax:.1f} | {r.failures}"
            f" | {r.server_cpu:.0%} | {r.load_cpu:.0%} | {r.cpu0_busy:.0%} | {r.cpu1_busy:.0%} |"
        )
    notes = [f"- {r.name} {r.offered}: {'; '.join(r.detail)}" for r in results if r.detail]
    return "\n".join(lines + notes)


# -- main ---------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, pid: int, http_port: int, coap_port: int) -> int:
    started = time.monotonic()
    kind = LeanUes if args.ue_client == "lean" else Ues
    ues = kind(("127.0.0.1", coap_port), args.ues, args.sockets)
    apps: list[tuple[str, As]] = []
    try:
        await ues.start(args.rcvbuf)
        setup = time.monotonic() - started
        print(f"{args.ues} UEs registered and observing in {setup:.1f} s", file=sys.stderr)
        results: list[Result] = []
        for kind in args.as_client.split(","):
            app = As(ues.ids, args.payload_bytes)
            apps.append((kind, app))
            await app.connect(kind, http_port, args.connections)
            results.extend(await runs_for(args, kind, app, ues, pid, http_port))
        command = " ".join(["python", *sys.argv])
        print(
            f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores"
            f" ({_cpu_model()}), Python {platform.python_version()};"
            f" {'bare_a2u_server.py' if args.bare else '`msgin5g server`'} pinned to CPU"
            f" {args.server_cpu}; the load ({args.as_client} AS client on"
            f" {args.connections} h2c connection(s) and {args.ues:,} {args.ue_client} UEs on"
            f" {args.sockets} UDP sockets, {args.loop}) in one process pinned to CPU"
            f" {args.load_cpu};"
            f" payload {args.payload_bytes} B; setup (REG + observe of every UE) {setup:.1f} s"
        )
        print(f"command: `{command}`")
        print()
        print(table(results))
        if ues.stray:
            print(f"\n{ues.stray} notifications arrived outside a run")
        failed = any(r.failures for r in results)
        return 1 if failed else 0
    finally:
        for _, app in apps:
            await app.aclose()
        await ues.stop()


async def runs_for(
    args: argparse.Namespace, kind: str, app: As, ues: Ues, pid: int, http_port: int
) -> list[Result]:
    """Warm-up, the max run (closed loop) and the paced run(s) with one AS client."""

    def closed(count: int, prefix: str) -> Any:
        return lambda run: closed_loop(app, run, count, args.concurrency, prefix)

    async def run(name: str, offered: str, count: int, drive: Any) -> Result:
        return await measure(
            f"{kind} {name}", offered, ues, pid, http_port, count, drive, args.drain_timeout
        )

    await run("warm-up", "", args.warmup, closed(args.warmup, f"{kind}-warm"))
    results: list[Result] = []
    if not args.paced_only:
        profiler = start_profiler(args.py_spy, kind, pid)
        if profiler is not None:
            await asyncio.sleep(1.0)  # let it attach
        try:
            results.append(
                await run(
                    "max",
                    f"{args.concurrency} in flight",
                    args.messages,
                    closed(args.messages, f"{kind}-max"),
                )
            )
        finally:
            stop_profiler(profiler)
    if args.rate:
        rates = [(float(r), f"{float(r):,.0f}/s") for r in args.rate.split(",")]
    elif results:
        rate = results[0].rate * args.paced_fraction
        rates = [(rate, f"{rate:,.0f}/s ({args.paced_fraction:.0%} of max)")]
    else:
        rates = []
    count = args.paced_messages or args.messages
    for rate, offered in rates:

        def paced(run: Run, rate: float = rate) -> Any:
            return open_loop(app, run, count, rate, args.paced_cap, f"{kind}-paced{rate:.0f}")

        results.append(await run("paced", offered, count, paced))
    return results


def start_profiler(path: str | None, kind: str, pid: int) -> subprocess.Popen[bytes] | None:
    """py-spy (raw, 200 Hz, GIL holder only) on the server for the max run:
    `<path>.<client>.txt`."""
    if not path:
        return None
    return subprocess.Popen(
        [
            "py-spy",
            "record",
            "-p",
            str(pid),
            "-f",
            "raw",
            "-r",
            "200",
            "--gil",  # the Python main thread; granian's own threads are ~10% of its CPU
            "--nonblocking",
            "-o",
            f"{path}.{kind}.txt",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_profiler(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ues", type=int, default=1000, help="observing UEs (1000)")
    parser.add_argument("--messages", type=int, default=10_000, help="messages per run (10000)")
    parser.add_argument("--warmup", type=int, default=2000, help="warm-up messages (2000)")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="AS requests in flight in the max run (64)"
    )
    parser.add_argument("--connections", type=int, default=1, help="h2c connections (1)")
    parser.add_argument(
        "--as-client",
        default="httpx,h2",
        help="the AS's HTTP/2 client(s), run in turn: httpx (AsyncClient, http2 prior"
        " knowledge), h2 (a lean client on the h2 package) and/or raw (leanload.RawH2, on"
        " the frames themselves); default httpx,h2",
    )
    parser.add_argument(
        "--ue-client",
        choices=("coap", "lean"),
        default="coap",
        help="the UEs: coap (msgin5g's CoapClient, one task per UE, ACK when taken) or lean"
        " (leanload.LeanUeSocket, ACK on arrival, no task per UE); default coap",
    )
    parser.add_argument(
        "--rate",
        default="",
        help="paced run rate(s), msg/s, comma-separated (default: --paced-fraction of max)",
    )
    parser.add_argument("--paced-fraction", type=float, default=0.8)
    parser.add_argument("--paced-messages", type=int, default=0, help="default: --messages")
    parser.add_argument(
        "--paced-cap",
        type=int,
        default=0,
        help="most AS requests in flight when paced (default: --concurrency); when the AS"
        " cannot keep up, the pacer falls behind and says so",
    )
    parser.add_argument("--paced-only", action="store_true", help="skip the max run (needs --rate)")
    parser.add_argument("--sockets", type=int, default=8, help="UDP sockets the UEs share (8)")
    parser.add_argument("--payload-bytes", type=int, default=100)
    parser.add_argument(
        "--rcvbuf",
        type=int,
        default=4 << 20,
        help="SO_RCVBUF of each UE socket (4 MiB, capped by net.core.rmem_max; 0: default);"
        " 1,000 real UEs would each have their own buffer",
    )
    parser.add_argument("--drain-timeout", type=float, default=15.0)
    parser.add_argument(
        "--quiet",
        type=float,
        default=0.15,
        help="before each run, wait until other processes use less than this share of the"
        " two cores (0.15; 1 disables)",
    )
    parser.add_argument("--quiet-timeout", type=float, default=30.0)
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--load-cpu", type=int, default=1)
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop" if _has_uvloop() else "asyncio",
        help="event loop of the load process (uvloop when installed)",
    )
    parser.add_argument(
        "--py-spy",
        metavar="PREFIX",
        help="profile the server (py-spy raw, GIL holder) during each max run: PREFIX.<client>.txt",
    )
    parser.add_argument(
        "--bare",
        action="store_true",
        help="run against bare_a2u_server.py (granian RSGI + msgspec + one UDP endpoint,"
        " storing nothing) instead of msgin5g: the ceiling of this stack",
    )
    args = parser.parse_args()
    args.paced_cap = args.paced_cap or args.concurrency
    if set(args.as_client.split(",")) - {"httpx", "h2", "raw"}:
        parser.error("--as-client takes httpx, h2 and/or raw, comma-separated")
    if args.paced_only and not args.rate:
        parser.error("--paced-only needs --rate")
    if not shutil.which("taskset"):
        print("needs taskset (Debian: util-linux)", file=sys.stderr)
        return 2
    if args.py_spy and not shutil.which("py-spy"):
        print("needs py-spy for --py-spy", file=sys.stderr)
        return 2
    global SERVER_CPU, LOAD_CPU, QUIET
    SERVER_CPU, LOAD_CPU = args.server_cpu, args.load_cpu
    QUIET = (args.quiet, args.quiet_timeout)
    os.sched_setaffinity(0, {args.load_cpu})
    # Interruptible even when started in the background (where SIGINT is inherited ignored),
    # and SIGTERM unwinds too, so the server is always stopped on the way out.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    work = Path(tempfile.mkdtemp(prefix="msgin5g-a2u-"))
    try:
        with server_process(work, args.server_cpu, args.bare) as (proc, http_port, coap_port):
            coro = bench(args, proc.pid, http_port, coap_port)
            try:
                if args.loop == "uvloop":
                    import uvloop

                    return uvloop.run(coro)
                return asyncio.run(coro)
            except KeyboardInterrupt:
                print("interrupted", file=sys.stderr)
                return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
