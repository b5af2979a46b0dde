# SPDX-License-Identifier: Apache-2.0
"""Soak run (issue 7): steady AS-to-UE and AS-to-AS traffic for a bounded time while the
server's memory and open file descriptors are watched. Not part of the CI suite.

A real `msgin5g server` child process (fresh data dir, pinned to CPU 0) and, on CPU 1, this
process with `--ues` CoAP UEs that registered and observe their inbox (scripts/bench/a2u.py's
UEs) and one AS on h2c sending deliver-as-message at `--rate` msg/s, alternately to a UE
(round robin) and to a second AS whose `targetUri` is a counting sink
(scripts/bench/sink_server.py, its own process), so both the CoAP notification path and the
outbound HTTP path run all the time; `stoAndFwInd` false (both are reachable). The server's
idempotency window is `--idempotency-window` (120 s), so the store reaches a steady size after
two minutes; with the default of a day every message's record stays, the store and SQLite's
page cache (64 MiB per connection) grow for the whole run, and so does RSS. The server's
cache of recent acknowledgements holds 100,000 entries: at the default rate it is full after
about 8 minutes, inside the warm-up third of a 30-minute run. It rebuilds its hash table every
249,525 messages; since ADR 0026 the server pins glibc's mmap threshold so that this leaves no
memory behind (before, the anonymous RSS stepped up at about 424,500 messages: 23.7 minutes at
`--rate 200 --uplink-rate 100`).

Every `--interval` s the script samples the server's RSS (/proc/PID/status VmRSS), open fds
(/proc/PID/fd), threads, the store depth, the time the server's garbage collector held it
(`msgin5g_gc_pause_seconds_total`) and what was sent and delivered, and prints a row.
At the end it fits a line (least squares) to RSS and to fds over the samples after
`--settle-minutes` (default: the last two thirds of the run; before that is warm-up: caches,
allocator arenas) and gives a verdict:

- memory flat: the slope of the anonymous RSS (the heap; RSS also counts the store pages
  read through mmap) times the window is under `--rss-tolerance` MiB (8);
- fds flat: its slope times the window is under 1 fd;
- no message lost: every message sent was delivered (AS errors and UEs' missing msgIds count).

Exit status 0 when all hold, 1 otherwise.

With `--uplink-rate R` the UEs also send R MSGs per second over CoAP to the sink AS (in turn,
so one group commit holds several originators' records: ADR 0023's recent messages, moved
and purged all run long); they count as messages to the AS.

Usage: python scripts/soak.py [--minutes 30] [--rate 200] [--ues 200] [--interval 10]
           [--uplink-rate 0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent / "bench"))

from a2u import LeanH2, Run, Ues, free_port, server_process

from msgin5g.coap import Code, ContentFormat

DELIVER = b"/msgs-msgdelivery/v1/deliver-as-message"
SENDER, SINK_AS = "soak-as", "soak-sink"
SINK = Path(__file__).resolve().parent / "bench" / "sink_server.py"


def proc_status(pid: int) -> tuple[float, float, int, int]:
    """(RSS MiB, anonymous RSS MiB, open fds, threads) of a process. RSS also counts the
    store file's pages the server reads through mmap (RssFile: up to the 256 MiB mmap_size,
    given back by the kernel under pressure); RssAnon is the heap."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "Threads"):
            fields[name] = int(value.split()[0])
    return (
        fields["VmRSS"] / 1024,
        fields["RssAnon"] / 1024,
        len(os.listdir(f"/proc/{pid}/fd")),
        fields["Threads"],
    )


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


@dataclass
class Sample:
    t: float
    rss: float
    anon: float
    fds: int
    threads: int
    depth: float
    sent_ue: int
    got_ue: int
    sent_as: int
    got_as: int
    sent_up: int
    errors: int
    p99_ms: float
    gc_ms: float
    """The server's garbage collection pauses in the interval, all generations."""


def scrape(port: int) -> dict[str, float]:
    """The server's /metrics, each name's series summed over their labels."""
    found: dict[str, float] = {}
    with contextlib.suppress(httpx.HTTPError, ValueError):
        for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
            if line and not line.startswith("#"):
                series, value = line.rsplit(" ", 1)
                name = series.split("{", 1)[0]
                found[name] = found.get(name, 0.0) + float(value)
    return found


def sink_count(port: int) -> int:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        return int(httpx.get(f"http://127.0.0.1:{port}/count", timeout=5).text)
    return -1


class Traffic:
    """The AS side: alternately deliver-as-message to a UE and to the sink AS."""

    def __init__(self, client: LeanH2, ues: list[str], run: Run) -> None:
        self.client, self.ues, self.run = client, ues, run
        self.counter = itertools.count()
        self.sent_ue = self.sent_as = 0
        self.errors: list[str] = []
        self.encode = msgspec.json.Encoder().encode

    async def send(self) -> None:
        n = next(self.counter)
        to_ue = n % 2 == 0
        msg_id = f"soak-{n}"
        t0 = time.perf_counter_ns()
        dest = (
            {"addrType": "UE", "addr": self.ues[(n // 2) % len(self.ues)]}
            if to_ue
            else {"addrType": "AS", "addr": SINK_AS}
        )
        body = self.encode(
            {
                "oriAddr": {"addrType": "AS", "addr": SENDER},
                "destAddr": dest,
                "msgId": msg_id,
                "payload": f"t={t0} soak",
                "stoAndFwInd": False,  # both are reachable: forwarded, kept 60 s at most
            }
        )
        if to_ue:
            self.run.sent[msg_id] = t0
            self.sent_ue += 1
        else:
            self.sent_as += 1
        try:
            status, content = await self.client.post(DELIVER, body)
        except OSError as exc:
            self.errors.append(f"{msg_id}: {exc!r}")
            return
        if status != 200:
            self.errors.append(f"{msg_id}: HTTP {status} {content[:200]!r}")


class Uplink:
    """The UE side: MSGs over CoAP from the UEs in turn to the sink AS (TS 24.538 MSG,
    forwarded). Several UEs per group commit: the store's recent messages (ADR 0023)."""

    def __init__(self, ues: Ues) -> None:
        self.ues = ues
        self.counter = itertools.count()
        self.sent = 0
        self.errors: list[str] = []
        self.encode = msgspec.json.Encoder().encode

    async def send(self) -> None:
        n = next(self.counter)
        index = n % len(self.ues.ids)
        msg_id = f"soak-up-{n}"
        body = self.encode(
            {
                "msgType": "MSG",
                "oriAddr": {"addrType": "UE", "addr": self.ues.ids[index]},
                "destAddr": {"addrType": "AS", "addr": SINK_AS},
                "msgId": msg_id,
                "payload": "soak uplink",
            }
        )
        self.sent += 1
        client = self.ues.clients[index % len(self.ues.clients)]
        try:
            answer = await client.request(
                self.ues.server,
                Code.POST,
                ("msgin5g", "v1", "messages"),
                payload=body,
                content_format=ContentFormat.JSON,
            )
        except (OSError, TimeoutError) as exc:
            self.errors.append(f"{msg_id}: {exc!r}")
            return
        if answer.code != Code.CHANGED or b'"status"' in answer.payload:  # absent: forwarded
            self.errors.append(f"{msg_id}: {answer.code:#x} {answer.payload[:200]!r}")


async def soak(
    args: argparse.Namespace, pid: int, http_port: int, coap_port: int, sink_port: int
) -> int:
    ues = Ues(("127.0.0.1", coap_port), args.ues, args.sockets)
    client: LeanH2 | None = None
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as admin:
            for _ in range(100):  # the sink is up
                await asyncio.sleep(0.05)
                if sink_count(sink_port) >= 0:
                    break
            registrations = (
                {"asSvcId": SINK_AS, "targetUri": f"http://127.0.0.1:{sink_port}/cb"},
                {"asSvcId": SENDER},
            )
            for registration in registrations:
                response = await admin.post(
                    "/msgs-asregistration/v1/registrations", json=registration
                )
                response.raise_for_status()
        await ues.start(4 << 20)
        run = Run("soak", expected=1 << 62)
        ues.run = run
        client = await LeanH2.connect("127.0.0.1", http_port)
        traffic = Traffic(client, ues.ids, run)
        uplink = Uplink(ues)
        samples: list[Sample] = []
        seen = 0
        gc_seen = 0.0
        longest_gc_ms = float("nan")
        start = time.monotonic()
        end = start + args.minutes * 60
        interval_ns = int(1e9 / args.rate)
        next_sample = start
        gate = asyncio.Semaphore(256)
        tasks: set[asyncio.Task[None]] = set()

        async def one() -> None:
            try:
                await traffic.send()
            finally:
                gate.release()

        async def uplink_loop() -> None:
            """`--uplink-rate` MSGs per second from the UEs, until the end."""
            period, k, pending = 1 / args.uplink_rate, 0, set()
            while time.monotonic() < end:
                lag = start + k * period - time.monotonic()
                if lag > 0:
                    await asyncio.sleep(lag)
                task = asyncio.create_task(uplink.send())
                pending.add(task)
                task.add_done_callback(pending.discard)
                k += 1
            await asyncio.gather(*pending)

        uplinks = asyncio.create_task(uplink_loop()) if args.uplink_rate > 0 else None

        print(
            "| min | RSS MiB | anon RSS MiB | fds | threads | store depth | to UE sent/delivered"
            " | to AS sent/delivered | UE to AS sent | AS errors | UE p99 ms (interval)"
            " | server GC ms (interval) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        t0 = time.perf_counter_ns()
        k = 0
        while True:
            now = time.monotonic()
            if now >= next_sample:
                rss, anon, fds, threads = proc_status(pid)
                recent = sorted(run.latencies_ns[seen:])
                seen = len(run.latencies_ns)
                p99 = recent[int(0.99 * (len(recent) - 1))] / 1e6 if recent else float("nan")
                server = await asyncio.to_thread(scrape, http_port)
                gc_total = server.get("msgin5g_gc_pause_seconds_total", float("nan"))
                gc_ms, gc_seen = (gc_total - gc_seen) * 1000, gc_total
                longest_gc_ms = server.get("msgin5g_gc_pause_longest_seconds", float("nan")) * 1000
                s = Sample(
                    now - start,
                    rss,
                    anon,
                    fds,
                    threads,
                    server.get("msgin5g_store_depth", float("nan")),
                    traffic.sent_ue,
                    len(run.received),
                    traffic.sent_as,
                    await asyncio.to_thread(sink_count, sink_port),
                    uplink.sent,
                    len(traffic.errors) + len(uplink.errors),
                    p99,
                    gc_ms,
                )
                samples.append(s)
                print(
                    f"| {s.t / 60:.1f} | {s.rss:,.1f} | {s.anon:,.1f} | {s.fds} | {s.threads}"
                    f" | {s.depth:,.0f}"
                    f" | {s.sent_ue:,}/{s.got_ue:,} | {s.sent_as:,}/{s.got_as:,} | {s.sent_up:,}"
                    f" | {s.errors}"
                    f" | {s.p99_ms:.1f} | {s.gc_ms:.1f} |",
                    flush=True,
                )
                next_sample += args.interval
            if now >= end:
                break
            due = t0 + k * interval_ns
            lag = due - time.perf_counter_ns()
            if lag > 0:
                await asyncio.sleep(lag / 1e9)
            await gate.acquire()
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            k += 1
        await asyncio.gather(*tasks)
        if uplinks is not None:
            await uplinks
        # let the last messages arrive
        to_sink = traffic.sent_as + uplink.sent
        for _ in range(100):
            if len(run.received) >= traffic.sent_ue and sink_count(sink_port) >= to_sink:
                break
            await asyncio.sleep(0.1)
        print(f"\nthe server's longest garbage collection pause: {longest_gc_ms:.1f} ms")
        return verdict(args, samples, run, traffic, uplink, sink_count(sink_port))
    finally:
        if client is not None:
            await client.aclose()
        await ues.stop()


def verdict(
    args: argparse.Namespace,
    samples: list[Sample],
    run: Run,
    traffic: Traffic,
    uplink: Uplink,
    got_as: int,
) -> int:
    if args.settle_minutes is None:
        window = samples[len(samples) // 3 :]
    else:
        window = [s for s in samples if s.t >= args.settle_minutes * 60]
    ok = True
    if len(window) < 3:
        print("\ntoo few samples for a verdict: run longer or sample more often")
        return 1
    minutes = [s.t / 60 for s in window]
    span = minutes[-1] - minutes[0]
    rss_slope = slope(minutes, [s.anon for s in window])
    total_slope = slope(minutes, [s.rss for s in window])
    fd_slope = slope(minutes, [float(s.fds) for s in window])
    rss_flat = abs(rss_slope * span) < args.rss_tolerance
    fds_flat = abs(fd_slope * span) < 1
    missing_ue = traffic.sent_ue - len(run.received)
    missing_as = traffic.sent_as + uplink.sent - got_as
    errors = traffic.errors + uplink.errors
    lost = missing_ue + max(0, missing_as) + run.duplicates + len(errors)
    print(
        f"\nlast {len(window)} samples ({span:.1f} min): anon RSS slope {rss_slope:+.3f} MiB/min"
        f" ({rss_slope * span:+.2f} MiB over the window, tolerance {args.rss_tolerance} MiB):"
        f" {'flat' if rss_flat else 'GROWING'}; fd slope {fd_slope:+.3f}/min"
        f" ({fd_slope * span:+.2f} over the window): {'flat' if fds_flat else 'GROWING'}"
    )
    print(
        f"messages: to UEs {traffic.sent_ue:,} sent, {len(run.received):,} delivered once"
        f" ({run.duplicates} duplicates); to the AS {traffic.sent_as:,} from the AS and"
        f" {uplink.sent:,} from UEs sent, {got_as:,} delivered; {len(errors)} errors"
        + (f", e.g. {errors[0]}" if errors else "")
    )
    print(
        f"RSS incl. mapped store pages: {total_slope:+.3f} MiB/min"
        f" ({window[0].rss:,.1f} -> {window[-1].rss:,.1f} MiB)"
    )
    ok = rss_flat and fds_flat and lost == 0
    print(f"verdict: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


@contextlib.contextmanager
def sink_process(cpu: int) -> Iterator[int]:
    """The counting sink behind the second AS's targetUri, pinned with the load."""
    port = free_port()
    sink = subprocess.Popen(
        ["taskset", "-c", str(cpu), sys.executable, str(SINK), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield port
    finally:
        sink.terminate()
        sink.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=200.0, help="msg/s, half to UEs (200)")
    parser.add_argument("--ues", type=int, default=200)
    parser.add_argument("--sockets", type=int, default=4)
    parser.add_argument("--interval", type=float, default=10.0, help="sampling period s (10)")
    parser.add_argument("--rss-tolerance", type=float, default=8.0, help="MiB (8)")
    parser.add_argument(
        "--settle-minutes",
        type=float,
        default=None,
        help="judge only the samples after this (default: the last two thirds of the run); the"
        " server's cache of 100,000 recent acknowledgements reaches its final hash table"
        " after about 175,000 messages",
    )
    parser.add_argument(
        "--idempotency-window",
        type=float,
        default=120.0,
        help="the server's delivery.idempotency_window_s (120; the default 86,400 keeps every"
        " message's record for a day, so the store and its page cache would grow all run)",
    )
    parser.add_argument(
        "--uplink-rate",
        type=float,
        default=0.0,
        help="MSG/s from the UEs over CoAP to the sink AS, besides --rate (0)",
    )
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--load-cpu", type=int, default=1)
    args = parser.parse_args()
    if not shutil.which("taskset"):
        print("needs taskset (Debian: util-linux)", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {args.load_cpu})
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(f"command: `python {' '.join(sys.argv)}`")
    # a2u's server_process passes our environment on to the server
    os.environ["MSGIN5G_DELIVERY_IDEMPOTENCY_WINDOW_S"] = str(args.idempotency_window)
    work = Path(tempfile.mkdtemp(prefix="msgin5g-soak-"))
    try:
        with (
            sink_process(args.load_cpu) as sink_port,
            server_process(work, args.server_cpu) as (proc, http_port, coap_port),
        ):
            coro = soak(args, proc.pid, http_port, coap_port, sink_port)
            if importlib.util.find_spec("uvloop") is not None:
                import uvloop

                return uvloop.run(coro)
            return asyncio.run(coro)
    except KeyboardInterrupt:
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
