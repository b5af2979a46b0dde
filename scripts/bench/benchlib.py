# SPDX-License-Identifier: Apache-2.0
"""What the benchmark scripts share: a free loopback port, a process's CPU time, a rate
measured with the server's CPU, the command of a server and the ratio table against the
bare ceilings."""

from __future__ import annotations

import os
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nothing listens on right now, on 127.0.0.1 (TCP, or UDP with SOCK_DGRAM)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ratio_table(
    title: str, table: dict[str, dict[str, list[float]]], asgi: tuple[str, ...], ours: str
) -> str:
    """A markdown table of medians per path: the bare ASGI ceiling (the faster of `asgi`), the
    bare RSGI one (`bare-rsgi`), `ours`, and the two ratios."""
    lines = [
        f"\n{title}: bare ASGI, bare RSGI (uvloop), {ours}, ratios",
        f"| path | bare ASGI | bare RSGI | {ours} | vs ASGI | vs RSGI |",
        "|---|---|---|---|---|---|",
    ]
    for name, by in table.items():
        best = max(statistics.median(by[label]) for label in asgi)
        rsgi = statistics.median(by["bare-rsgi"])
        mine = statistics.median(by[ours])
        lines.append(
            f"| {name} | {best:,.0f} | {rsgi:,.0f} | {mine:,.0f}"
            f" | {mine / best:.2f} | {mine / rsgi:.2f} |"
        )
    return "\n".join(lines)


def server_command(http_port: int, coap_port: int, data_dir: Path | str) -> list[str]:
    """`msgin5g server` on loopback ports and a data dir, run by this Python."""
    return [
        sys.executable,
        "-m",
        "msgin5g.cli.main",
        "server",
        "--http",
        f"127.0.0.1:{http_port}",
        "--coap",
        f"127.0.0.1:{coap_port}",
        "--data-dir",
        str(data_dir),
    ]


def measured(pid: int, run: Callable[[], float]) -> tuple[float, float]:
    """`run()`'s rate (requests per second) and the requests served per CPU-second of the
    server process `pid` meanwhile."""
    before_cpu, before = cpu_seconds(pid), time.monotonic()
    rate = run()
    used = cpu_seconds(pid) - before_cpu
    return rate, rate * (time.monotonic() - before) / used
