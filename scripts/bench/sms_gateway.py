# SPDX-License-Identifier: Apache-2.0
"""Benchmark: AS -> SMS gateway (msgg-l3gdelivery) -> SMSC throughput, with and without receipts.

The gateway (`msgin5g gateway sms`, a real process) is pinned to CPU 0; the SMSC simulator, the
load generator (wrk over HTTP/1.1, a unique msgId per request) and the server stand-in that
takes the delivery reports and the UE registration (granian, h2c and HTTP/1.1, a child process
of this script) run on CPU 1. Each request is a 160-character GSM 7-bit message to one of 1000 UEs.

Two numbers per mode:
- accepted msg/s: 204s per second at the gateway API (each one committed before the answer);
- end-to-end msg/s: messages finished per second from the first request until the last one is
  done: submitted and answered by the SMSC, and with receipts also receipted by the SMSC,
  correlated, and reported to the server (POST deliver-report acknowledged).

Jasmin's published figure is ~107 msg/s with receipts; the aim is 10x that.

Usage: python scripts/bench/sms_gateway.py [--seconds 10] [--binds 4] [--window 64]
    [--connections 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from benchlib import cpu_seconds, free_port

UES = 1000
LUA = r"""
local counter = 0
local tid = 0
local runid, report = "run", "true"
local payload = string.rep("x", 160)
function setup(thread) tid = tid + 1; thread:set("tid", tid) end
function init(args) runid = args[1] or runid; report = args[2] or report end
function request()
  counter = counter + 1
  local body = string.format(
    '{"oriAddr":{"addrType":"AS","addr":"bench"},"destAddr":{"addrType":"UE","addr":"ue-%d"},' ..
    '"msgId":"%s-%d-%d","payload":"%s","delivStReqInd":%s}',
    counter % 1000, runid, tid, counter, payload, report)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
"""


def pinned(cpu: int, cmd: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > cpu:
        return ["taskset", "-c", str(cpu), *cmd]
    return cmd


def run_sink(port: int) -> None:
    """The server stand-in (granian, h2c and HTTP/1.1): 201 for the UE registration, 200 with a
    MessageDeliveryAck for the rest; GET /count gives the reports seen and the last one's time."""
    from granian.constants import HTTPModes, Interfaces
    from granian.server.embed import Server

    state = {"reports": 0, "last": 0.0}
    ack = b'{"oriAddr":{"addrType":"UE","addr":"x"},"msgId":"x"}'
    json_headers = [(b"content-type", b"application/json")]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        path = scope["path"]
        if path == "/count":
            status, body = 200, json.dumps(state).encode()
        elif path.endswith("/registrations"):
            status, body = 201, b'{"registrations":[]}'
        else:
            state["reports"] += 1
            state["last"] = time.monotonic()
            status, body = 200, ack
        await send({"type": "http.response.start", "status": status, "headers": json_headers})
        await send({"type": "http.response.body", "body": body})

    server = Server(
        app,
        address="127.0.0.1",
        port=port,
        interface=Interfaces.ASGINL,
        http=HTTPModes.auto,
        websockets=False,
        log_enabled=False,
    )
    asyncio.run(server.serve())


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def run_mode(args: argparse.Namespace, report: bool, workdir: Path) -> dict[str, float]:
    sink_port = free_port()
    sink = await asyncio.create_subprocess_exec(
        *pinned(1, [sys.executable, __file__, "--sink", str(sink_port)]), stdout=subprocess.DEVNULL
    )
    smsc_port = free_port()
    smsc = await asyncio.create_subprocess_exec(
        *pinned(1, [sys.executable, "-m", "msgin5g.gateways.sms.smsc_sim", "--port",
                   str(smsc_port), "--system-id", "bench", "--password", "bench",
                   "--no-record", "--log-level", "WARNING"]),
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    http_port = free_port()
    ue_args = [a for i in range(UES) for a in ("--ue", f"ue-{i}=4917{i:08d}")]
    gateway_cmd = [
        sys.executable, "-m", "msgin5g.cli.gateway", "sms",
        "--server", f"http://127.0.0.1:{sink_port}",
        "--http", f"127.0.0.1:{http_port}",
        "--smsc", f"127.0.0.1:{smsc_port}",
        "--system-id", "bench", "--password", "bench",
        "--mo-to", "as:bench",
        "--binds", str(args.binds), "--window", str(args.window),
        "--data-dir", str(workdir / f"gw-{report}"),
        "--log-level", "WARNING",
        *ue_args,
    ]  # fmt: skip
    gateway = await asyncio.create_subprocess_exec(
        *pinned(0, gateway_cmd), stdout=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{http_port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=2) as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    text = (await http.get("/metrics")).text
                    if metric(text, "msgin5g_gateway_sms_binds_up") >= args.binds:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("the gateway did not bind")
                await asyncio.sleep(0.1)
            lua = workdir / "gateway.lua"
            lua.write_text(LUA)
            wrk_cmd = [
                "wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds}s", "-s", str(lua),
                f"{base}/msgg-l3gdelivery/v1/deliver-message", "--",
                f"r{int(time.time())}", "true" if report else "false",
            ]  # fmt: skip
            start = time.monotonic()
            cpu_before = cpu_seconds(gateway.pid)
            wrk = await asyncio.create_subprocess_exec(
                *pinned(1, wrk_cmd), stdout=asyncio.subprocess.PIPE
            )
            out, _ = await wrk.communicate()
            wrk_text = out.decode()
            accepted = float(re.search(r"Requests/sec:\s+([\d.]+)", wrk_text).group(1))  # type: ignore[union-attr]
            non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk_text)
            total = int(re.search(r"(\d+) requests in", wrk_text).group(1))  # type: ignore[union-attr]
            while True:
                text = (await http.get("/metrics", timeout=60)).text
                if os.environ.get("BENCH_DEBUG"):
                    print(
                        time.monotonic() - start,
                        [
                            line
                            for line in text.splitlines()
                            if "gateway" in line and not line.startswith("#")
                        ],
                        file=sys.stderr,
                    )
                pending = metric(text, "msgin5g_gateway_sms_downlink_pending")
                uplink = metric(text, "msgin5g_gateway_sms_uplink_pending")
                if pending == 0 and uplink == 0:
                    break
                await asyncio.sleep(0.05)
            gateway_cpu = cpu_seconds(gateway.pid) - cpu_before
            count = (await http.get(f"http://127.0.0.1:{sink_port}/count")).json()
            end = count["last"] if report else time.monotonic()
            finished = metric(
                text,
                "msgin5g_gateway_messages_total",
                direction="down",
                outcome="delivered" if report else "submitted",
            )
    finally:
        gateway.send_signal(signal.SIGTERM)
        await asyncio.wait_for(gateway.wait(), 15)
        for proc in (smsc, sink):
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 15)
    return {
        "requests": total,
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
        "accepted": accepted,
        "finished": finished,
        "reports": count["reports"],
        "end_to_end": finished / (end - start),
        "per_cpu_second": finished / gateway_cpu,
        "command": shlex.join(wrk_cmd),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--binds", type=int, default=4)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--receipts", choices=["both", "yes", "no"], default="both", help="which modes to run"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("needs wrk (Debian package wrk)")
    this = "python scripts/bench/sms_gateway.py " + shlex.join(sys.argv[1:])
    print(f"# {this}  ({os.cpu_count()} CPUs; gateway on CPU 0, load + SMSC + sink on CPU 1)")
    print(
        "| receipts | binds x window | requests | non-2xx | accepted msg/s | end-to-end msg/s"
        " | gateway msg per CPU-second | finished | reports |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    commands: list[object] = []
    with tempfile.TemporaryDirectory(prefix="msgin5g-bench-") as tmp:
        modes = {"both": (True, False), "yes": (True,), "no": (False,)}[args.receipts]
        for report in modes:
            r = await run_mode(args, report, Path(tmp))
            print(
                f"| {'yes' if report else 'no'} | {args.binds} x {args.window} "
                f"| {int(r['requests'])} | {int(r['errors'])} | {r['accepted']:.0f} "
                f"| {r['end_to_end']:.0f} | {r['per_cpu_second']:.0f} | {int(r['finished'])} "
                f"| {int(r['reports'])} |",
                flush=True,
            )
            commands.append(r["command"])
    for command in commands:
        print(f"<!-- load: {command} -->")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--sink"]:
        run_sink(int(sys.argv[2]))
    else:
        asyncio.run(main())
