# SPDX-License-Identifier: Apache-2.0
"""Schemathesis v4 (`st run`) against the running gateways, reading the official
TS29538_MSGG_L3GDelivery.yaml and TS29538_MSGG_N3GDelivery.yaml in place.

The approach of tests/api/test_schemathesis.py: the five checks, every phase, and one hook that
keeps positive cases meaningful: their `destAddr` is set to a UE the gateway serves (the schema
allows any address, and the gateway rightly answers 404 for the others, so without it hardly
any positive case would reach the 204 path). Negative cases are never touched. The HAR report
then proves each operation answered both a 204 and a 4xx, on the paths of the file.

The L3G gateway runs against the SMSC simulator (a process), the N3G gateway against a private
Mosquitto; both point at a real `msgin5g server`.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateways.procs import PASSWORD, SYSTEM_ID, GatewayProcess, SmscProcess
from tests.support import st
from tests.support.mosquitto import Mosquitto
from tests.support.procs import OPENAPI_DIR, ServerProcess

pytestmark = pytest.mark.e2e

UE = "ue-1"

HOOKS = textwrap.dedent(
    '''
    """Schemathesis hooks written by tests/gateways/test_msgg_schemathesis.py."""
    import schemathesis
    from schemathesis import GenerationMode


    @schemathesis.hook
    def map_case(context, case):
        meta = case.meta
        if meta is None or meta.generation.mode is not GenerationMode.POSITIVE:
            return case
        body = case.body
        if isinstance(body, dict) and isinstance(body.get("destAddr"), dict):
            body["destAddr"] = {"addrType": "UE", "addr": "UE_SVC_ID"}
        return case
    '''
).replace("UE_SVC_ID", UE)

SPECS = {
    "msgg-l3gdelivery": "TS29538_MSGG_L3GDelivery.yaml",
    "msgg-n3gdelivery": "TS29538_MSGG_N3GDelivery.yaml",
}


@pytest.fixture
def gateway(
    request: pytest.FixtureRequest, tmp_path: Path, server: ServerProcess
) -> Iterator[tuple[str, GatewayProcess]]:
    api_name: str = request.param
    if api_name == "msgg-l3gdelivery":
        smsc = SmscProcess(["--no-record"]).start()
        gw = GatewayProcess(
            "sms",
            [
                "--server", server.url,
                "--smsc", f"127.0.0.1:{smsc.port}",
                "--system-id", SYSTEM_ID,
                "--password", PASSWORD,
                "--ue", f"{UE}=491700000001",
                "--mo-to", "as:app-1",
                "--binds", "2",
            ],
            tmp_path / "gw",
        )  # fmt: skip
        try:
            yield api_name, gw.start()
        finally:
            gw.stop()
            smsc.stop()
        return
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("needs Debian mosquitto")
    broker = Mosquitto(tmp_path / "broker").start()
    gw = GatewayProcess(
        "mqtt",
        ["--server", server.url, "--broker", f"127.0.0.1:{broker.port}", "--ue", UE],
        tmp_path / "gw",
    )
    try:
        yield api_name, gw.start()
    finally:
        gw.stop()
        broker.stop()


@pytest.mark.parametrize("gateway", sorted(SPECS), indirect=True)
def test_schemathesis_checks_pass(gateway: tuple[str, GatewayProcess], tmp_path: Path) -> None:
    api_name, gw = gateway
    statuses = st.run(
        OPENAPI_DIR / SPECS[api_name],
        f"{gw.url}/{api_name}/v1",
        tmp_path,
        hooks=("msgin5g_msgg_hooks", HOOKS),
        log=gw.log,
        request_timeout=10,
    )
    for operation in ("/deliver-message", "/deliver-report"):
        st.assert_success_and_client_error(statuses[("POST", operation)], 204, operation)
