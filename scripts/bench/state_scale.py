# SPDX-License-Identifier: Apache-2.0
"""Benchmark: scale of state on the embedded store (issue 7) - 1,000,000 registered UEs and
1,000,000 stored messages.

The state is written into a data dir by this process through the store's own API
(`SqliteStore.save_ue_registration` and `SqliteStore.accept`, many at a time so the group
commit batches them); what is measured is always a real `msgin5g server` child process on that
data dir:

1. RSS of a server with no state, then for 1k, 10k, 100k and 1M registered UEs: the time from
   process start to /readyz answering 200 ("restart to ready"), RSS once ready, and the latency
   of deliver-as-message (h1, one request at a time, `stoAndFwInd`) to random registered UEs -
   a registration lookup plus a stored message, median and p99. Memory per registered UE =
   (RSS at 1M - RSS at 0) / 1M.
2. 1M stored messages (one per UE, expiring `--expire-after` s later) added: restart to ready
   again (twice), RSS, the same lookups.
3. Reclamation: the server expires the 1M deliveries and purges the message records; the
   script samples the store's files (database + WAL) until the store is empty and the file has
   stopped shrinking.

Usage: python scripts/bench/state_scale.py [--ues 1000000] [--messages 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
from benchlib import cpu_seconds, free_port, server_command

from msgin5g.core.message import (
    AS,
    UE,
    Acceptance,
    AckStatus,
    Address,
    DeliveryKind,
    Priority,
    UeRegistration,
)
from msgin5g.ports import MessageRecord, NewDelivery
from msgin5g.storage.sqlite import SqliteStore

DB = "msgin5g.sqlite3"
DELIVER = "/msgs-msgdelivery/v1/deliver-as-message"
AS_ID = "scale-as"
CHUNK = 4096


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, RssAnon) in MiB. VmRSS also counts the store file's pages read through mmap;
    RssAnon is the heap."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["RssAnon"]


def disk_mib(data: Path) -> tuple[float, float]:
    """(database file, WAL) sizes in MiB."""

    def size(name: str) -> float:
        with contextlib.suppress(FileNotFoundError):
            return (data / name).stat().st_size / 2**20
        return 0.0

    return size(DB), size(DB + "-wal")


def ue_id(n: int) -> str:
    return f"scale-ue-{n:07d}"


# -- the server ---------------------------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    http_port: int
    ready_s: float
    ready_cpu_s: float

    @property
    def pid(self) -> int:
        return self.proc.pid


@contextlib.contextmanager
def server(data: Path, log: Path, cpu: int | None) -> Iterator[Server]:
    """A `msgin5g server` on `data`; `ready_s` = process start to /readyz 200."""
    http_port, coap_port = free_port(), free_port(socket.SOCK_DGRAM)
    env = {**os.environ, "MSGIN5G_LOG_LEVEL": "WARNING"}
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    command = [*pin, *server_command(http_port, coap_port, data)]
    with log.open("ab") as err:
        started = time.monotonic()
        proc = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )
        try:
            with httpx.Client(timeout=1) as client:
                while True:
                    if proc.poll() is not None:
                        raise RuntimeError(f"server exited with {proc.returncode}, see {log}")
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(f"http://127.0.0.1:{http_port}/readyz").status_code == 200:
                            break
                    if time.monotonic() - started > 300:
                        raise TimeoutError("server not ready after 300 s")
                    time.sleep(0.02)
            ready = time.monotonic() - started
            yield Server(proc, http_port, ready, cpu_seconds(proc.pid))
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


def settle_rss(pid: int, seconds: float = 3.0) -> tuple[float, float]:
    """RSS once the server has been idle for a moment (max of a few samples)."""
    samples = []
    for _ in range(int(seconds / 0.5)):
        time.sleep(0.5)
        samples.append(rss_mib(pid))
    return max(samples)


def lookups(port: int, ues: int, count: int, rng: random.Random) -> tuple[float, float]:
    """Median and p99 ms of deliver-as-message (stored) to random registered UEs, one at a
    time over one HTTP/1.1 connection."""
    times = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        if client.post("/msgs-asregistration/v1/registrations", json={"asSvcId": AS_ID}).is_error:
            raise RuntimeError("AS registration failed")
        for k in range(count + 100):
            body = msgspec.json.encode(
                {
                    "oriAddr": {"addrType": "AS", "addr": AS_ID},
                    "destAddr": {"addrType": "UE", "addr": ue_id(rng.randrange(ues))},
                    "msgId": f"lookup-{secrets.token_hex(6)}",
                    "payload": "lookup",
                    "stoAndFwInd": True,
                }
            )
            t0 = time.perf_counter()
            response = client.post(
                DELIVER, content=body, headers={"content-type": "application/json"}
            )
            elapsed = time.perf_counter() - t0
            if response.status_code != 200 or response.json().get("status") != "DELY_STORED":
                raise RuntimeError(f"deliver-as-message: {response.status_code} {response.text}")
            if k >= 100:  # the first 100 warm the connection and caches
                times.append(elapsed * 1000)
    times.sort()
    return statistics.median(times), times[int(0.99 * len(times)) - 1]


# -- filling the data dir -------------------------------------------------------------------------


async def fill_ues(data: Path, start: int, stop: int) -> float:
    t0 = time.monotonic()
    store = SqliteStore(data / DB, clock=time.time)
    await store.open()
    try:
        for base in range(start, stop, CHUNK):
            await asyncio.gather(
                *(
                    store.save_ue_registration(
                        UeRegistration(secrets.token_urlsafe(12), ue_id(n), max_segment_size=None)
                    )
                    for n in range(base, min(stop, base + CHUNK))
                )
            )
    finally:
        await store.close()
    return time.monotonic() - t0


async def fill_messages(data: Path, ues: int, count: int, expire_at: float) -> float:
    """`count` messages from an AS to the registered UEs round robin, as the server stores a
    deliver-as-message it cannot hand over (one delivery with the rendered body each)."""
    t0 = time.monotonic()
    store = SqliteStore(data / DB, clock=time.time)
    await store.open()
    origin = Address(AS, AS_ID)
    stored = Acceptance(AckStatus.STORED, None)
    pad = "x" * 60
    try:
        for base in range(0, count, CHUNK):
            jobs = []
            for n in range(base, min(count, base + CHUNK)):
                recipient = Address(UE, ue_id(n % ues))
                msg_id = f"stored-{n:07d}"
                body = msgspec.json.encode(
                    {
                        "msgId": msg_id,
                        "oriAddr": {"addrType": "AS", "addr": AS_ID},
                        "payload": f"stored message {n} {pad}",
                        "delivStReqInd": False,
                    }
                )
                record = MessageRecord(origin, msg_id, recipient, stored, False, False, expire_at)
                delivery = NewDelivery(
                    DeliveryKind.MESSAGE,
                    recipient,
                    body,
                    Priority.MIDDLE,
                    expire_at,
                    origin,
                    msg_id,
                    False,
                )
                jobs.append(store.accept(record, [delivery]))
            await asyncio.gather(*jobs)
    finally:
        await store.close()
    return time.monotonic() - t0


# -- main -----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ues", type=int, default=1_000_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--steps", default="1000,10000,100000", help="UE counts before --ues")
    parser.add_argument("--lookups", type=int, default=2000, help="per step (2000)")
    parser.add_argument(
        "--expire-after",
        type=float,
        default=180.0,
        help="the stored messages expire this many s after they are written (180)",
    )
    parser.add_argument("--reclaim-timeout", type=float, default=900.0)
    parser.add_argument("--server-cpu", type=int, default=None, help="pin the server (no)")
    parser.add_argument("--data-dir", help="keep the data here (default: a temp dir, removed)")
    args = parser.parse_args()
    work = Path(args.data_dir or tempfile.mkdtemp(prefix="msgin5g-scale-"))
    data, log = work / "data", work / "server.log"
    data.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    rows: list[str] = []
    out: list[str] = []
    try:
        with server(data, log, args.server_cpu) as s:
            rss0 = settle_rss(s.pid)
            rows.append(
                f"| 0 | 0 | {s.ready_s:.2f} | {s.ready_cpu_s:.2f} | {rss0[0]:,.0f}"
                f" | {rss0[1]:,.0f} | - | - |"
            )
            print(rows[-1], file=sys.stderr, flush=True)
        have = 0
        rss_full = rss0
        for target in [*(int(x) for x in args.steps.split(",") if x), args.ues]:
            took = asyncio.run(fill_ues(data, have, target))
            print(f"filled {target:,} UEs (+{target - have:,} in {took:.1f} s)", file=sys.stderr)
            have = target
            with server(data, log, args.server_cpu) as s:
                rss = settle_rss(s.pid)
                p50, p99 = lookups(s.http_port, have, args.lookups, rng)
                rss_full = rss
                rows.append(
                    f"| {have:,} | 0 | {s.ready_s:.2f} | {s.ready_cpu_s:.2f} | {rss[0]:,.0f}"
                    f" | {rss[1]:,.0f} | {p50:.2f} | {p99:.2f} |"
                )
                print(rows[-1], file=sys.stderr, flush=True)
        for label, i in (("RSS", 0), ("anonymous RSS (heap)", 1)):
            per_ue = (rss_full[i] - rss0[i]) * 2**20 / have
            out.append(
                f"memory per registered UE, {label}: ({rss_full[i]:,.0f} - {rss0[i]:,.0f}) MiB"
                f" / {have:,} = {per_ue:,.0f} B"
            )
        expire_at = time.time() + args.expire_after
        took = asyncio.run(fill_messages(data, have, args.messages, expire_at))
        db, wal = disk_mib(data)
        out.append(
            f"stored {args.messages:,} messages in {took:.1f} s; store files {db:,.0f} MiB"
            f" (+ WAL {wal:,.0f} MiB)"
        )
        print(out[-1], file=sys.stderr, flush=True)
        for attempt in (1, 2):
            with server(data, log, args.server_cpu) as s:
                rss = settle_rss(s.pid)
                p50, p99 = lookups(s.http_port, have, args.lookups, rng) if attempt == 1 else (0, 0)
                rows.append(
                    f"| {have:,} | {args.messages:,} | {s.ready_s:.2f} | {s.ready_cpu_s:.2f}"
                    f" | {rss[0]:,.0f} | {rss[1]:,.0f}"
                    + (f" | {p50:.2f} | {p99:.2f} |" if attempt == 1 else " | - | - |")
                )
                print(rows[-1], file=sys.stderr, flush=True)
        with server(data, log, args.server_cpu) as s:
            out.extend(reclaim(s, data, expire_at, args.reclaim_timeout))
    finally:
        if not args.data_dir:
            shutil.rmtree(work, ignore_errors=True)
    print(f"command: `python {' '.join(sys.argv)}`")
    print(
        "\n| registered UEs | stored messages | start to ready s | server CPU s until ready"
        " | RSS MiB | anon RSS MiB | deliver-as-message p50 ms | p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    print("\n".join(f"- {line}" for line in out))
    return 0


def depth(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("msgin5g_store_depth"):
            return float(line.rsplit(" ", 1)[1])
    return float("nan")


def reclaim(s: Server, data: Path, expire_at: float, timeout: float) -> list[str]:
    """Sample the store's files while the server expires the stored messages; stop when the
    queue (left: the lookups' messages, which do not expire) and the database file have not
    shrunk for 15 s."""
    start = time.monotonic()
    db0, wal0 = disk_mib(data)
    samples = [(0.0, db0, wal0, depth(s.http_port))]
    print(f"reclaim: waiting for expiry in {expire_at - time.time():.0f} s", file=sys.stderr)
    still = 0.0
    while time.monotonic() - start < timeout:
        time.sleep(5)
        db, wal = disk_mib(data)
        left = depth(s.http_port)
        samples.append((time.monotonic() - start, db, wal, left))
        print(f"  {samples[-1][0]:.0f} s: db {db:,.1f} MiB wal {wal:,.1f} MiB depth {left:,.0f}")
        # done: past the expiry, the queue and the file both stopped shrinking for 15 s
        if time.time() > expire_at + 5 and left >= samples[-2][3] and db >= samples[-2][1]:
            still += 5
            if still >= 15:
                break
        else:
            still = 0
    return [
        f"reclaim: database {db0:,.1f} MiB (+ WAL {wal0:,.1f}) before expiry; after"
        f" {samples[-1][0]:.0f} s {samples[-1][1]:,.1f} MiB (+ WAL {samples[-1][2]:,.1f}),"
        f" queue depth {samples[-1][3]:,.0f}"
    ]


if __name__ == "__main__":
    sys.exit(main())
