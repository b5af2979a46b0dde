# SPDX-License-Identifier: Apache-2.0
"""Real gateway processes for tests: `msgin5g gateway sms|mqtt` and the SMSC simulator, each a
child process on free loopback ports (`python -m msgin5g.cli.gateway`, the same code as
`msgin5g gateway`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.procs import ChildProcess, free_port, wait_http, wait_tcp

SYSTEM_ID, PASSWORD = "gw", "s3cret"


@dataclass
class GatewayProcess(ChildProcess):
    """`msgin5g gateway <kind> --http 127.0.0.1:<free> --data-dir <dir> <args>`."""

    kind: str
    args: list[str]
    data_dir: Path
    http_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "msgin5g.cli.gateway",
            self.kind,
            "--http",
            f"127.0.0.1:{self.http_port}",
            "--data-dir",
            str(self.data_dir),
            "--retry-initial",
            "0.05",
            "--retry-max",
            "0.5",
            *self.args,
        ]

    def start(self) -> GatewayProcess:
        self.log_path = self.data_dir.parent / f"gateway-{self.kind}-{self.http_port}.log"
        with self.log_path.open("ab") as log_file:
            self.proc = subprocess.Popen(
                self.command, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=log_file
            )
        wait_http(f"{self.url}/readyz", proc=self.proc)
        return self


@dataclass
class SmscProcess:
    """`python -m msgin5g.gateways.sms.smsc_sim` on a free port."""

    extra: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SmscProcess:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "msgin5g.gateways.sms.smsc_sim",
                "--port",
                str(self.port),
                "--system-id",
                SYSTEM_ID,
                "--password",
                PASSWORD,
                "--log-level",
                "WARNING",
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_tcp(self.port, "the SMSC simulator")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
