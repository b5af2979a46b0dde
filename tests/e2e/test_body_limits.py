# SPDX-License-Identifier: Apache-2.0
"""Body limits over the real RSGI server with curl as the client (TS 29.500 5.2.7, ADR 0021):
a body over `server.max_body_bytes` is refused with a 413 ProblemDetails that the client sees,
over HTTP/2 and HTTP/1.1, with or without Content-Length; the server keeps serving."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.procs import ServerProcess

pytestmark = pytest.mark.e2e

PATH = "/msgs-msgdelivery/v1/deliver-as-message"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("limits") / "data").start()
    yield process
    process.stop()


def curl(url: str, body: Path, *extra: str) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-X", "POST",
         "-H", "content-type: application/json", "-H", "expect:", *extra,
         "--data-binary", f"@{body}", url],
        capture_output=True,
        text=True,
        timeout=30,
    )  # fmt: skip
    text, _, code = done.stdout.rpartition("\n")
    return int(code), json.loads(text) if text else {}


@pytest.mark.parametrize(
    "extra",
    [
        ["--http2-prior-knowledge"],
        ["--http2-prior-knowledge", "-H", "transfer-encoding: chunked"],
        ["--http1.1"],
        ["--http1.1", "-H", "transfer-encoding: chunked"],
    ],
    ids=["h2c", "h2c-no-length", "http1.1", "http1.1-chunked"],
)
def test_a_body_over_the_limit_is_a_413_the_client_sees(
    server: ServerProcess, tmp_path: Path, extra: list[str]
) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b'{"payload":"' + b"x" * 2_000_000 + b'"}')  # default limit: 1 MiB
    status, problem = curl(server.url + PATH, big, *extra)
    assert status == 413
    assert problem["cause"] == "PAYLOAD_TOO_LARGE"
    small = tmp_path / "small.json"
    small.write_text("{}")
    status, problem = curl(server.url + PATH, small, *extra)
    assert status == 400  # still serving: the empty message is refused for what it lacks
    assert problem["cause"] == "MANDATORY_IE_MISSING"
    assert "unexpected error" not in server.log()


@pytest.mark.parametrize("extra", [["--http2-prior-knowledge"], ["--http1.1"]], ids=["h2c", "h1"])
def test_a_body_refused_after_it_was_read_is_answered_at_once(
    server: ServerProcess, tmp_path: Path, extra: list[str]
) -> None:
    """Refused for its content (U+0000), not its size: nothing is left to drain."""
    body = tmp_path / "nul.json"
    body.write_text(
        '{"oriAddr":{"addrType":"AS","addr":"a"},"destAddr":{"addrType":"AS","addr":"b"},'
        '"msgId":"m\\u0000","payload":"x","stoAndFwInd":true}'
    )
    status, problem = curl(server.url + PATH, body, *extra)
    assert (status, problem["cause"]) == (400, "INVALID_MSG_FORMAT")


def test_a_client_gone_mid_body_is_no_server_error(server: ServerProcess) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(
                f"POST {PATH} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                "content-length: 1000\r\n\r\n".encode()
                + b'{"oriAddr":'
            )
        time.sleep(0.2)
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    assert "unexpected error" not in server.log()
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'status="500"' not in metrics
    # the server process counts the collector's pauses, its start-up collection the first
    full = re.search(r'msgin5g_gc_collections_total\{generation="2"\} (\d+)', metrics)
    assert full is not None
    assert int(full.group(1)) >= 1
