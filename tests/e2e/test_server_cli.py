# SPDX-License-Identifier: Apache-2.0
"""The server's command line and transports as an operator meets them (DESIGN 2.6)."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.procs import ServerProcess

pytestmark = pytest.mark.e2e


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "msgin5g.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--http", "0.0.0.0:18080"],
        ["--coap", "0.0.0.0:15683"],
    ],
)
def test_non_loopback_without_auth_is_refused(tmp_path: Path, args: list[str]) -> None:
    result = run_cli("server", "--data-dir", str(tmp_path), *args)
    assert result.returncode == 2
    assert "--insecure" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_flag_value_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("server", "--data-dir", str(tmp_path), "--http", "8080")
    assert result.returncode == 2
    assert "HOST:PORT" in result.stderr


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    first = ServerProcess(tmp_path / "a").start()
    try:
        result = run_cli(
            "server", "--data-dir", str(tmp_path / "b"), "--http", f"127.0.0.1:{first.http_port}"
        )
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
    finally:
        first.stop()


def test_sigterm_stops_cleanly(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    assert server.stop() == 0
    assert "MSGin5G Server stopped" in server.log()


def test_tls_with_alpn_h2(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server = ServerProcess(
        tmp_path / "data", env={"MSGIN5G_TLS_CERT": str(cert), "MSGIN5G_TLS_KEY": str(key)}
    ).start()
    try:
        with httpx.Client(http2=True, verify=ssl.create_default_context(cafile=str(cert))) as h2:
            response = h2.get(f"{server.url}/healthz")
            assert response.http_version == "HTTP/2"
            assert response.status_code == 200
        with httpx.Client(http2=False, verify=ssl.create_default_context(cafile=str(cert))) as h1:
            assert h1.get(f"{server.url}/healthz").http_version == "HTTP/1.1"
    finally:
        server.stop()
