# SPDX-License-Identifier: Apache-2.0
"""Benchmark: one message to a group of N members (default 10,000), end to end.

The server runs pinned to CPU 0 with a fresh store. The members are UEs served by a
"gateway" that is a counting sink on CPU 1 (scripts/bench/sink_server.py, answering 204 to
msgg-n3gdelivery deliver-message). The script registers the UEs and the group, sends one
message to the group, and measures the time until the fan-out queued every member's
delivery (store depth) and until every delivery reached the sink. It repeats for
`--messages` messages and reports deliveries per second.

Usage: python scripts/bench/group_fanout.py [--members 10000] [--messages 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from benchlib import free_port

HERE = Path(__file__).resolve().parent


def wait(url: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(url)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="msgin5g-group-"))
    server_port, sink_port = free_port(), free_port()
    env = {**os.environ, "MSGIN5G_LOG_LEVEL": "WARNING"}
    procs = [
        subprocess.Popen(
            ["taskset", "-c", "1", sys.executable, str(HERE / "sink_server.py"), str(sink_port)]
        ),
        subprocess.Popen(
            ["taskset", "-c", "0", sys.executable, "-m", "msgin5g.cli.main", "server",
             "--http", f"127.0.0.1:{server_port}", "--coap", f"127.0.0.1:{free_port()}",
             "--data-dir", str(work / "data")],
            env=env,
        ),
    ]  # fmt: skip
    base = f"http://127.0.0.1:{server_port}"
    sink = f"http://127.0.0.1:{sink_port}"
    try:
        wait(f"{base}/readyz")
        wait(f"{sink}/count")
        ues = [f"dev-{i}" for i in range(args.members)]
        with httpx.Client(base_url=base, timeout=60) as http:
            http.post(
                "/ext-gwueregistration/v1/registrations",
                json={"gwType": "N3G", "gwApiRoot": sink, "ueSvcIds": ues},
            ).raise_for_status()
            members = [{"addrType": "UE", "addr": u} for u in ues]
            http.put("/ext-groups/v1/groups/bench", json={"members": members}).raise_for_status()
            rows = []
            for n in range(args.messages):
                before = int(httpx.get(f"{sink}/count").text)
                started = time.monotonic()
                http.post(
                    "/msgs-msgdelivery/v1/deliver-as-message",
                    json={
                        "oriAddr": {"addrType": "AS", "addr": "bench"},
                        "destAddr": {"addrType": "GROUP", "addr": "bench"},
                        "msgId": f"g-{n}-{time.time_ns()}",
                        "payload": "x" * 100,
                        "stoAndFwInd": True,
                    },
                ).raise_for_status()
                acked = time.monotonic() - started
                while True:
                    done = int(httpx.get(f"{sink}/count").text) - before
                    if done >= args.members:
                        break
                    if time.monotonic() - started > 600:
                        raise TimeoutError(f"only {done} of {args.members} delivered")
                    time.sleep(0.05)
                total = time.monotonic() - started
                rows.append((n + 1, acked, total, args.members / total))
        print(
            f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; server on"
            " CPU 0, sink gateway on CPU 1"
        )
        print(f"command: python scripts/bench/group_fanout.py --members {args.members}"
              f" --messages {args.messages}")  # fmt: skip
        print("| message | ack ms | all members delivered s | deliveries/s |")
        print("|---|---|---|---|")
        for n, acked, total, rate in rows:
            print(f"| {n} | {acked * 1000:.1f} | {total:.2f} | {rate:,.0f} |")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
