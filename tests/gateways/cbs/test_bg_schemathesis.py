# SPDX-License-Identifier: Apache-2.0
"""Schemathesis v4 (`st run`) against a running `msgin5g gateway broadcast`, reading the official
TS29538_MSGG_BGDelivery.yaml in place, with the five checks and every phase.

The gateway runs as a process against the CBC simulator (a process too). One hook keeps positive
cases meaningful: a `destAddr` becomes the configured area and a missing `payload` gets one (the
schema allows any address and no payload, which the gateway rightly answers 404 / 400). Negative
cases are never touched. The HAR report then proves deliver-message answered both 204 and 4xx.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateways.procs import GatewayProcess
from tests.support import st
from tests.support.procs import OPENAPI_DIR, free_port

pytestmark = pytest.mark.e2e

HOOKS = textwrap.dedent(
    '''
    """Schemathesis hooks written by tests/gateways/cbs/test_bg_schemathesis.py."""
    import schemathesis
    from schemathesis import GenerationMode


    @schemathesis.hook
    def map_case(context, case):
        meta = case.meta
        if meta is None or meta.generation.mode is not GenerationMode.POSITIVE:
            return case
        body = case.body
        if isinstance(body, dict):
            if isinstance(body.get("destAddr"), dict):
                body["destAddr"] = {"addrType": "BC", "addr": "city"}
            if not isinstance(body.get("payload"), str):
                body["payload"] = "schemathesis"
        return case
    '''
)


@pytest.fixture
def cbc_url() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "msgin5g.gateways.cbs.cbc_sim",
            "--port", str(port), "--log-level", "WARNING",
        ],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.delete(f"{url}/api/ecbe/v1/message/0", timeout=0.5)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the CBC simulator did not start"
                time.sleep(0.05)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def gateway(tmp_path: Path, cbc_url: str) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(
        "broadcast",
        [
            "--server", "http://127.0.0.1:9",
            "--cbc", cbc_url,
            "--area", "city=cgi:262-1-100-7,262-1-100-8",
            "--area", "country=plmn",
            "--default-area", "country",
        ],
        tmp_path / "gw",
    )  # fmt: skip
    try:
        yield gw.start()
    finally:
        gw.stop()


def test_schemathesis_checks_pass(gateway: GatewayProcess, tmp_path: Path) -> None:
    statuses = st.run(
        OPENAPI_DIR / "TS29538_MSGG_BGDelivery.yaml",
        f"{gateway.url}/msgg-bgdelivery/v1",
        tmp_path,
        hooks=("msgin5g_bg_hooks", HOOKS),
        log=gateway.log,
        request_timeout=10,
    )
    st.assert_success_and_client_error(
        statuses[("POST", "/deliver-message")], 204, "/deliver-message"
    )
