# SPDX-License-Identifier: Apache-2.0
"""Benchmark: durable deliver-as-message against the bare granian + msgspec ceiling (DESIGN 4).

Both servers run pinned to CPU 0, the load generators to CPU 1, alternating in rounds within
one run so the noise of a shared machine hits both alike; the result is the ratio.

Paths measured, each with a unique msgId per request unless noted:
- HTTP/1.1 (wrk + scripts/bench/unique.lua)
- h2c (node's http2 client, scripts/bench/h2unique.mjs), when node is installed
- h2c idempotent repeat (h2load, one body repeated: the server answers from its cache)

The ceiling of DESIGN 4 is the faster of two bare granian + raw ASGI + msgspec servers, one on
the asyncio loop and one on uvloop; msgin5g runs on the loop its settings name. Since msgin5g
serves granian's RSGI interface (ADR 0021), a bare RSGI server on uvloop is measured too, as
the stricter ceiling, and both ratios are printed.

The message goes (`--dest ue`, the default) round robin to `--ues` offline UEs, registered
over CoAP and observing nothing, or (`--dest as`) to a registered AS without targetUri; either
way every request is committed to the store and answered DELY_STORED: the durable ingest
path. `--store postgresql://...` measures
the PostgreSQL store (ADR 0017) in a fresh schema, dropped afterwards, instead of SQLite.

Usage: python scripts/bench/ingest.py [--rounds 3] [--seconds 8] [--store URL]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import msgspec
from benchlib import free_port, measured, ratio_table, server_command
from leanload import LeanUeSocket

from msgin5g.coap import Code

HERE = Path(__file__).resolve().parent
PATH = "/msgs-msgdelivery/v1/deliver-as-message"
BODY = {
    "oriAddr": {"addrType": "AS", "addr": "bench"},
    "destAddr": {"addrType": "AS", "addr": "sink"},
    "msgId": "repeat-1",
    "payload": "x" * 160,
    "stoAndFwInd": True,
    "delivStReqInd": False,
}


def wait(url: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(url)


def pinned(cpu: int, *cmd: str) -> list[str]:
    return ["taskset", "-c", str(cpu), *cmd]


def wrk(port: int, seconds: int, path: str = PATH, kind: str = "as", dest: str = "sink") -> float:
    """Requests per second of wrk (HTTP/1.1, 50 connections) with unique msgIds."""
    out = subprocess.run(
        pinned(
            1,
            "wrk",
            "-t1",
            "-c50",
            f"-d{seconds}s",
            "-s",
            str(HERE / "unique.lua"),
            f"http://127.0.0.1:{port}{path}",
            "--",
            f"r{time.time_ns()}",
            dest,
            kind,
        ),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"errors under load:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def node_h2(
    port: int,
    requests: int,
    path: str = PATH,
    kind: str = "as",
    runid: str = "",
    dest: str = "sink",
) -> float:
    """Requests per second of h2unique.mjs (h2c, 10 connections x 50 streams)."""
    out = subprocess.run(
        pinned(
            1,
            "node",
            str(HERE / "h2unique.mjs"),
            f"http://127.0.0.1:{port}{path}",
            str(requests),
            "10",
            "50",
            runid or f"n{time.time_ns()}",
            dest,
            kind,
        ),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if result["bad"]:
        raise RuntimeError(f"errors under load: {result}")
    return float(result["rps"])


def h2load(port: int, requests: int, body: Path) -> float:
    out = subprocess.run(
        pinned(
            1,
            "h2load",
            "-n",
            str(requests),
            "-c",
            "50",
            "-m",
            "10",
            "-d",
            str(body),
            "-H",
            "content-type: application/json",
            f"http://127.0.0.1:{port}{PATH}",
        ),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    codes = re.search(r"status codes: (\d+) 2xx", out)
    if not codes or int(codes.group(1)) != requests:
        raise RuntimeError(f"errors under load:\n{out}")
    return float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))  # type: ignore[union-attr]


def register_offline_ues(coap_port: int, count: int) -> None:
    """REG `count` UEs bench-ue-00000.. over CoAP, observing nothing: they are offline, so
    what is sent to them is stored (and counted against each UE's quota)."""

    async def run() -> None:
        loop = asyncio.get_running_loop()
        _, sock = await loop.create_datagram_endpoint(
            lambda: LeanUeSocket(lambda _body: None), local_addr=("127.0.0.1", 0)
        )
        gate = asyncio.Semaphore(50)

        async def one(n: int) -> None:
            body = msgspec.json.encode({"msgType": "REG", "ueSvcId": f"bench-ue-{n:05d}"})
            path = ("msgin5g", "v1", "registrations")
            async with gate:
                answer = await sock.request(("127.0.0.1", coap_port), Code.POST, path, body)
            if answer.code != Code.CREATED:
                raise RuntimeError(f"REG bench-ue-{n:05d}: {answer.code:#x}")

        try:
            await asyncio.gather(*(one(n) for n in range(count)))
        finally:
            sock.transport.close()

    asyncio.run(run())


def drop_schema(url: str, schema: str) -> None:
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()

    asyncio.run(drop())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--requests", type=int, default=40_000)
    parser.add_argument(
        "--store", default="", help="postgresql://... (default: the embedded SQLite store)"
    )
    parser.add_argument(
        "--dest",
        choices=("ue", "as"),
        default="ue",
        help="ue (default): offline UEs, registered over CoAP and not observing, round robin"
        " (issue 7's wording); as: an AS without targetUri (the runs before 2026-11-27)",
    )
    parser.add_argument("--ues", type=int, default=1000, help="offline UEs for --dest ue (1000)")
    args = parser.parse_args()
    for tool in ("taskset", "wrk", "h2load"):
        if not shutil.which(tool):
            print(f"needs {tool} (Debian: util-linux, wrk, nghttp2-client)", file=sys.stderr)
            return 2
    has_node = shutil.which("node") is not None
    work = Path(tempfile.mkdtemp(prefix="msgin5g-bench-"))
    body = work / "body.json"
    first = BODY
    if args.dest == "ue":
        first = {**BODY, "destAddr": {"addrType": "UE", "addr": "bench-ue-00000"}}
    body.write_text(json.dumps(first))
    bare_port, bare_uv_port, rsgi_port, ours_port = (free_port() for _ in range(4))
    coap_port = free_port(socket.SOCK_DGRAM)
    env = {**os.environ, "MSGIN5G_LOG_LEVEL": "WARNING"}
    store_args: list[str] = []
    if args.store:
        store_args = ["--store", args.store]
        env["MSGIN5G_STORE_SCHEMA"] = f"bench_{os.getpid()}"
    procs = [
        subprocess.Popen(pinned(0, sys.executable, str(HERE / "bare_server.py"), str(bare_port))),
        subprocess.Popen(
            pinned(0, sys.executable, str(HERE / "bare_server.py"), str(bare_uv_port), "uvloop")
        ),
        subprocess.Popen(
            pinned(
                0, sys.executable, str(HERE / "bare_server.py"), str(rsgi_port), "uvloop", "rsgi"
            )
        ),
        subprocess.Popen(
            pinned(0, *server_command(ours_port, coap_port, work / "data"), *store_args),
            env=env,
        ),
    ]
    try:
        wait(f"http://127.0.0.1:{bare_port}/")
        wait(f"http://127.0.0.1:{bare_uv_port}/")
        wait(f"http://127.0.0.1:{rsgi_port}/")
        wait(f"http://127.0.0.1:{ours_port}/readyz")
        httpx.post(
            f"http://127.0.0.1:{ours_port}/msgs-asregistration/v1/registrations",
            json={"asSvcId": "sink"},
        ).raise_for_status()
        if args.dest == "ue":
            register_offline_ues(coap_port, args.ues)
        ack = httpx.post(f"http://127.0.0.1:{ours_port}{PATH}", json=first).json()
        assert ack.get("status") == "DELY_STORED", ack
        dest, kind = (str(args.ues), "to-ue") if args.dest == "ue" else ("sink", "as")
        results: dict[str, dict[str, list[float]]] = {}
        per_cpu: dict[str, dict[str, list[float]]] = {}
        pids = {
            "bare": procs[0].pid,
            "bare-uvloop": procs[1].pid,
            "bare-rsgi": procs[2].pid,
            "msgin5g": procs[3].pid,
        }
        loads = {
            "HTTP/1.1 unique msgId (wrk)": lambda p: wrk(p, args.seconds, PATH, kind, dest),
            "h2c idempotent repeat (h2load)": lambda p: h2load(p, args.requests, body),
        }
        if has_node:
            loads["h2c unique msgId (node http2)"] = lambda p: node_h2(
                p, args.requests, PATH, kind, dest=dest
            )
        for _ in range(args.rounds):
            for name, run in loads.items():
                for label, port in (
                    ("bare", bare_port),
                    ("bare-uvloop", bare_uv_port),
                    ("bare-rsgi", rsgi_port),
                    ("msgin5g", ours_port),
                ):
                    rate, served_per_cpu = measured(pids[label], functools.partial(run, port))
                    results.setdefault(name, {}).setdefault(label, []).append(rate)
                    per_cpu.setdefault(name, {}).setdefault(label, []).append(served_per_cpu)
        print(
            f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores;"
            f" servers pinned to CPU 0, load on CPU 1; median of {args.rounds} rounds"
        )
        for title, table in (("req/s", results), ("requests per server CPU-s", per_cpu)):
            print(ratio_table(title, table, ("bare", "bare-uvloop"), "msgin5g"))
        stats = httpx.get(f"http://127.0.0.1:{ours_port}/metrics").text
        commits = re.search(r"^msgin5g_store_commits_total (\S+)", stats, re.M)
        writes = re.search(r"^msgin5g_store_writes_total (\S+)", stats, re.M)
        if commits and writes:
            print(
                f"store ({'PostgreSQL' if args.store else 'SQLite'}):"
                f" {float(writes.group(1)):,.0f} writes in"
                f" {float(commits.group(1)):,.0f} group commits"
            )
        folds = re.search(r"^msgin5g_store_queue_folds_total (\S+)", stats, re.M)
        held = re.search(r"^msgin5g_store_queue_fold_seconds_total (\S+)", stats, re.M)
        if folds and held and float(folds.group(1)):
            count = float(folds.group(1))
            print(
                f"queue index folds (ADR 0022): {count:,.0f},"
                f" each holding the loop {1000 * float(held.group(1)) / count:.1f} ms on average"
            )
        counted = r'^msgin5g_messages_total\{outcome="(\w+)"\} (\S+)'
        outcomes = dict(re.findall(counted, stats, re.M))
        print(f"msgin5g's answers by outcome: {outcomes}")
        if float(outcomes.get("failed", 0)):  # refused, e.g. by a quota: not the stored path
            print("some messages were refused: the run did not measure the stored path")
            return 1
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
        if args.store:
            drop_schema(args.store, env["MSGIN5G_STORE_SCHEMA"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
