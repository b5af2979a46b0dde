# SPDX-License-Identifier: Apache-2.0
"""Benchmark: DESIGN 4's other HTTP hot paths, deliver-ue-message and deliver-report, against
the bare granian + msgspec ceiling (the companion of ingest.py, which measures
deliver-as-message).

Servers pinned to CPU 0, load on CPU 1, alternating in rounds within one run:
- bare ASGI on uvloop and bare RSGI on uvloop (`bare_server.py`, which decodes the body of the
  path it is sent, UEMessageDelivery or DeliveryStatusReport, answers an ack and stores nothing);
- `msgin5g server` on the embedded SQLite store, with the ASs "sink" and "bench" registered
  without targetUri, so that everything is committed before its answer:
  - deliver-ue-message from UE "bench-ue" to AS "sink" (unique msgIds): DELY_STORED;
  - deliver-report from "sink" about a message "bench" sent it asking for a report: the report
    is correlated with the stored message (a read) and queued, committed, toward "bench".
    Before each report run the messages it reports on are sent to msgin5g (not timed), and the
    script checks afterwards that no report was refused (msgin5g_reports_total).

Loads: wrk (HTTP/1.1, unique.lua) for deliver-ue-message; node's http2 client (h2unique.mjs,
10 connections x 50 streams) for both paths. Ratios by requests per second and per server
CPU-second, as in ingest.py.

Usage: python scripts/bench/hotpaths.py [--rounds 3] [--seconds 6] [--requests 30000]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from benchlib import free_port, measured, ratio_table, server_command
from ingest import HERE, node_h2, pinned, wait, wrk

UE_PATH = "/msgs-msgdelivery/v1/deliver-ue-message"
AS_PATH = "/msgs-msgdelivery/v1/deliver-as-message"
REPORT_PATH = "/msgs-msgdelivery/v1/deliver-report"


def reports_refused(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    found = re.search(r'^msgin5g_reports_total\{outcome="refused"\} (\S+)', text, re.M)
    return float(found.group(1)) if found else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=6, help="each wrk run (6)")
    parser.add_argument("--requests", type=int, default=30_000, help="each node run (30000)")
    args = parser.parse_args()
    for tool in ("taskset", "wrk", "node"):
        if not shutil.which(tool):
            print(f"needs {tool} (Debian: util-linux, wrk, nodejs)", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="msgin5g-hotpaths-"))
    ports = {"bare-uvloop": free_port(), "bare-rsgi": free_port(), "msgin5g": free_port()}
    env = {**os.environ, "MSGIN5G_LOG_LEVEL": "WARNING"}
    bare = [sys.executable, str(HERE / "bare_server.py")]
    procs = {
        "bare-uvloop": subprocess.Popen(pinned(0, *bare, str(ports["bare-uvloop"]), "uvloop")),
        "bare-rsgi": subprocess.Popen(pinned(0, *bare, str(ports["bare-rsgi"]), "uvloop", "rsgi")),
        "msgin5g": subprocess.Popen(
            pinned(0, *server_command(ports["msgin5g"], free_port(), work / "data")), env=env
        ),
    }
    ours = ports["msgin5g"]
    try:
        wait(f"http://127.0.0.1:{ports['bare-uvloop']}/")
        wait(f"http://127.0.0.1:{ports['bare-rsgi']}/")
        wait(f"http://127.0.0.1:{ours}/readyz")
        for as_id in ("sink", "bench"):
            httpx.post(
                f"http://127.0.0.1:{ours}/msgs-asregistration/v1/registrations",
                json={"asSvcId": as_id},
            ).raise_for_status()

        def reports(pid: int, port: int) -> tuple[float, float]:
            runid = f"rep{time.time_ns()}"
            if port == ours:  # the messages the reports are about, not timed
                node_h2(port, args.requests, AS_PATH, "as-report", runid)
            return measured(pid, lambda: node_h2(port, args.requests, REPORT_PATH, "report", runid))

        loads: dict[str, Callable[[int, int], tuple[float, float]]] = {
            "deliver-ue-message HTTP/1.1 unique (wrk)": lambda pid, port: measured(
                pid, lambda: wrk(port, args.seconds, UE_PATH, "ue")
            ),
            "deliver-ue-message h2c unique (node http2)": lambda pid, port: measured(
                pid, lambda: node_h2(port, args.requests, UE_PATH, "ue")
            ),
            "deliver-report h2c (node http2)": reports,
        }
        results: dict[str, dict[str, list[float]]] = {}
        per_cpu: dict[str, dict[str, list[float]]] = {}
        for _ in range(args.rounds):
            for name, run in loads.items():
                for label, port in ports.items():
                    rate, served_per_cpu = run(procs[label].pid, port)
                    results.setdefault(name, {}).setdefault(label, []).append(rate)
                    per_cpu.setdefault(name, {}).setdefault(label, []).append(served_per_cpu)
        refused = reports_refused(ours)
        print(
            f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores;"
            f" servers pinned to CPU 0, load on CPU 1; median of {args.rounds} rounds"
        )
        print(f"command: `python {' '.join(sys.argv)}`")
        for title, table in (("req/s", results), ("requests per server CPU-s", per_cpu)):
            print(ratio_table(title, table, ("bare-uvloop",), "msgin5g"))
        print(f"\nreports refused by msgin5g: {refused:,.0f}")
        return 1 if refused else 0
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
