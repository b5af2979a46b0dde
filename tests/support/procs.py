# SPDX-License-Identifier: Apache-2.0
"""Start real processes for tests: the msgin5g server and simple AS callback receivers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
OPENAPI_DIR = SHARED / "3gpp-openapi"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(url: str, timeout: float = 15.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1.0, verify=False).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last!r}")


def wait_tcp(port: int, what: str, timeout: float = 10.0) -> None:
    """Until something accepts TCP connections on 127.0.0.1:`port`; TimeoutError names `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{what} did not start")


FAST_RETRY = {
    "MSGIN5G_DELIVERY_RETRY_INITIAL_S": "0.05",
    "MSGIN5G_DELIVERY_RETRY_MAX_S": "0.3",
    "MSGIN5G_DELIVERY_SWEEP_INTERVAL_S": "0.1",
    "MSGIN5G_DELIVERY_CALLBACK_TIMEOUT_S": "2",
}


class ChildProcess:
    """kill -9, SIGTERM with a grace period, and the stderr log of a test's child process."""

    proc: subprocess.Popen[bytes] | None
    log_path: Path | None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""


@dataclass
class ServerProcess(ChildProcess):
    """A `msgin5g server` child process on free loopback ports."""

    data_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    http_port: int = field(default_factory=free_port)
    coap_port: int = field(default_factory=lambda: free_port(socket.SOCK_DGRAM))
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    args: Sequence[str] = ()
    """Extra command-line flags, e.g. ("--store", "postgresql://...")."""

    @property
    def url(self) -> str:
        scheme = "https" if self.env.get("MSGIN5G_TLS_CERT") else "http"
        return f"{scheme}://127.0.0.1:{self.http_port}"

    def start(self) -> ServerProcess:
        self.log_path = self.data_dir.parent / f"server-{self.http_port}.log"
        env = {**os.environ, **FAST_RETRY, **self.env}
        with self.log_path.open("ab") as log_file:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "msgin5g.cli.main",
                    "server",
                    "--http",
                    f"127.0.0.1:{self.http_port}",
                    "--coap",
                    f"127.0.0.1:{self.coap_port}",
                    "--data-dir",
                    str(self.data_dir),
                    *self.args,
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )
        wait_http(f"{self.url}/readyz", proc=self.proc)
        return self


@dataclass
class Receiver:
    """A callback receiver child process (see tests/support/receiver.py)."""

    out: Path
    mode: str
    status: int = 204
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    delay: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cb"

    def start(self) -> Receiver:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.receiver",
                "--port",
                str(self.port),
                "--mode",
                self.mode,
                "--out",
                str(self.out),
                "--status",
                str(self.status),
                "--delay",
                str(self.delay),
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
        )
        wait_tcp(self.port, "receiver")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def received(self) -> list[dict[str, object]]:
        if not self.out.exists():
            return []
        import json

        # The receiver may be mid-way through writing a long line: only lines it has
        # finished (ending in a newline) count.
        text = self.out.read_text()
        complete = text[: text.rfind("\n") + 1]
        return [json.loads(line) for line in complete.splitlines() if line]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, object]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received()
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise TimeoutError(f"expected {count} callbacks, got {self.received()}")
