# SPDX-License-Identifier: Apache-2.0
"""The SMS gateway takes its SMPP password from a file or the environment, so it need not stand
on the command line where `ps` shows it (issue 6: secrets never leak); without any it refuses
to start with a clear message."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from msgin5g.gateways.sms.smsc_sim import SmscSimulator
from tests.gateways.conftest import eventually
from tests.gateways.procs import PASSWORD, SYSTEM_ID, GatewayProcess
from tests.support.procs import free_port

pytestmark = pytest.mark.e2e


def gateway(tmp_path: Path, smsc: SmscSimulator, *extra: str) -> GatewayProcess:
    return GatewayProcess(
        "sms",
        [
            "--server", f"http://127.0.0.1:{free_port()}",
            "--smsc", f"127.0.0.1:{smsc.port}",
            "--system-id", SYSTEM_ID,
            "--ue", "ue-1=491700000001",
            "--mo-to", "as:app",
            *extra,
        ],
        tmp_path / "gw",
    )  # fmt: skip


@pytest.mark.parametrize("source", ["file", "env"])
async def test_password_from_a_file_or_the_environment_binds(
    tmp_path: Path, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    smsc = SmscSimulator(system_id=SYSTEM_ID, password=PASSWORD)
    await smsc.start()
    if source == "file":
        secret = tmp_path / "smpp.secret"
        secret.write_text(PASSWORD + "\n")
        process = gateway(tmp_path, smsc, "--password-file", str(secret))
    else:
        monkeypatch.setenv("MSGIN5G_SMPP_PASSWORD", PASSWORD)
        process = gateway(tmp_path, smsc)
    try:
        await asyncio.to_thread(process.start)
        assert process.proc is not None
        assert PASSWORD not in " ".join(process.command)
        async with asyncio.timeout(10):
            await eventually(lambda: smsc.bound_sessions > 0, 0.05)
    finally:
        await asyncio.to_thread(process.stop)  # the SMSC simulator runs on this loop
        await smsc.stop()
    assert PASSWORD not in process.log()


def test_no_password_anywhere_is_a_clear_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MSGIN5G_SMPP_PASSWORD", raising=False)
    command = [sys.executable, "-m", "msgin5g.cli.gateway", "sms", "--server", "http://x:1"]
    args = ["--smsc", "127.0.0.1:1", "--system-id", "gw", "--mo-to", "as:app"]
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "a password is needed" in done.stderr
