# SPDX-License-Identifier: Apache-2.0
"""Benchmark: one versus two server instances on one PostgreSQL and one NATS (ADR 0018).

Each configuration gets a fresh PostgreSQL schema and its own nats-server (JetStream, free
port). Eight ASs (sink-0..7) are registered, all pointing at one counting sink
(scripts/bench/sink_server.py). `--load` wrk processes (HTTP/1.1, unique msgIds,
scripts/bench/unique.lua) each send deliver-as-message with stoAndFwInd to one AS for
`--seconds`, spread round robin over the instances: the durable ingest path, then the
delivery to the AS (lanes spread over the shards, so each instance delivers part).

Reported per configuration: messages acknowledged, acknowledged/s during the load, the
end-to-end rate: acknowledged / (time from the start of the load until the sink has them all),
and messages per CPU-second of the server processes (steadier than wall clock on a busy
machine; PostgreSQL, NATS, wrk and the sink are not counted).
Configurations: `single` (no cluster), `cluster x1` and `cluster x2` (`--nats`).

Nothing is pinned: on a 2-core machine two instances, PostgreSQL, NATS, wrk and the sink share
the same two cores, so the ratio says what a second instance buys here, not how it scales on
separate machines (docs/deployment.md has the plan for 10 and 100 instances).

Usage: python scripts/bench/cluster.py [--seconds 10] [--load 4]
           [--store postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from benchlib import cpu_seconds, free_port

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PATH = "/msgs-msgdelivery/v1/deliver-as-message"
APPS = [f"sink-{n}" for n in range(8)]


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


def sql(url: str, statement: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


def wrk(url: str, seconds: int, connections: int, dest: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(HERE / "unique.lua"),
            url + PATH,
            "--",
            f"r{time.time_ns()}",
            dest,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def requests_done(out: str) -> int:
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"errors under load:\n{out}")
    return int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]


def run_config(
    name: str, instances: int, cluster: bool, args: argparse.Namespace, work: Path, sink: str
) -> dict[str, float | int | str]:
    schema = f"bench_cluster_{os.getpid()}_{instances}_{int(cluster)}"
    nats_port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    servers: list[int] = []
    urls: list[str] = []
    env = {**os.environ, "MSGIN5G_LOG_LEVEL": "WARNING", "MSGIN5G_STORE_SCHEMA": schema}
    try:
        extra: list[str] = ["--store", args.store]
        if cluster:
            nats_dir = work / f"nats-{name.replace(' ', '')}"
            procs.append(
                subprocess.Popen(
                    [
                        "nats-server",
                        "-js",
                        "-sd",
                        str(nats_dir),
                        "-a",
                        "127.0.0.1",
                        "-p",
                        str(nats_port),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            extra += ["--nats", f"nats://127.0.0.1:{nats_port}"]
            time.sleep(0.5)
        for n in range(instances):
            http = free_port()
            coap = free_port(socket.SOCK_DGRAM)
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "msgin5g.cli.main",
                        "server",
                        "--http",
                        f"127.0.0.1:{http}",
                        "--coap",
                        f"127.0.0.1:{coap}",
                        "--data-dir",
                        str(work / f"{name}-{n}"),
                        *extra,
                    ],
                    env={**env, "MSGIN5G_CLUSTER_INSTANCE_ID": f"bench-{n}"},
                    cwd=REPO,
                )
            )
            servers.append(procs[-1].pid)
            urls.append(f"http://127.0.0.1:{http}")
            wait_http(urls[-1] + "/readyz")
        for app in APPS:
            r = httpx.post(
                urls[0] + "/msgs-asregistration/v1/registrations",
                json={"asSvcId": app, "targetUri": sink + "/cb"},
            )
            r.raise_for_status()
        time.sleep(3.0)  # registrations seen everywhere, shards balanced
        before = int(httpx.get(sink + "/count").text)
        cpu_before = sum(cpu_seconds(pid) for pid in servers)
        start = time.monotonic()
        loads = [
            wrk(urls[i % len(urls)], args.seconds, args.connections, APPS[i % len(APPS)])
            for i in range(args.load)
        ]
        acked = sum(requests_done(p.communicate()[0]) for p in loads)
        ingest_s = time.monotonic() - start
        delivered = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            delivered = int(httpx.get(sink + "/count").text) - before
            if delivered >= acked:
                break
            time.sleep(0.05)
        total_s = time.monotonic() - start
        cpu = sum(cpu_seconds(pid) for pid in servers) - cpu_before
        if delivered < acked:
            raise RuntimeError(f"{name}: only {delivered} of {acked} delivered")
        return {
            "config": name,
            "acked": acked,
            "delivered": delivered,
            "ingest_per_s": round(acked / ingest_s),
            "end_to_end_per_s": round(acked / total_s),
            "drain_s": round(total_s - ingest_s, 2),
            "per_server_cpu_s": round(acked / cpu),
        }
    finally:
        for proc in reversed(procs):  # the instances first: they give their leases back
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        sql(args.store, f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--load", type=int, default=4, help="wrk processes (one AS each)")
    parser.add_argument("--connections", type=int, default=16, help="per wrk process")
    parser.add_argument("--store", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--configs", default="single,cluster x1,cluster x2")
    args = parser.parse_args()
    for tool in ("wrk", "nats-server"):
        if not shutil.which(tool):
            print(f"needs {tool} (Debian: wrk, nats-server)", file=sys.stderr)
            return 2
    load_before = Path("/proc/loadavg").read_text().split()[0]
    work = Path(tempfile.mkdtemp(prefix="msgin5g-bench-cluster-"))
    sink_port = free_port()
    sink_proc = subprocess.Popen([sys.executable, str(HERE / "sink_server.py"), str(sink_port)])
    sink = f"http://127.0.0.1:{sink_port}"
    known = {"single": (1, False), "cluster x1": (1, True), "cluster x2": (2, True)}
    results = []
    try:
        wait_http(sink + "/count")
        for name in args.configs.split(","):
            instances, cluster = known[name.strip()]
            result = run_config(name.strip(), instances, cluster, args, work, sink)
            print(result, flush=True)
            results.append(result)
    finally:
        sink_proc.terminate()
        sink_proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{os.cpu_count()} CPUs, load average before: {load_before},"
          f" {args.load} wrk x {args.connections} connections, {args.seconds} s")  # fmt: skip
    print(
        "| configuration | acknowledged | ack/s | end-to-end msg/s | drain after load (s)"
        " | msg per server CPU-s |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['config']} | {r['acked']:,} | {r['ingest_per_s']:,} |"
            f" {r['end_to_end_per_s']:,} | {r['drain_s']} | {r['per_server_cpu_s']:,} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
