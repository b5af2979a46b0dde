# SPDX-License-Identifier: Apache-2.0
"""AS -> server -> Broadcast Message Gateway -> CBC: a message to a broadcast area reaches the
Cell Broadcast Centre with the area's scope and the text in CBS pages; an area the gateway
does not serve fails the message with a report (TS 23.554 8.7.6, MSGin5G-7)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from msgin5g.gateways.cbs.cbc_sim import CbcSimulator
from tests.gateways.procs import GatewayProcess
from tests.support.procs import Receiver, ServerProcess, free_port

pytestmark = pytest.mark.e2e


async def test_broadcast_reaches_the_cbc_with_scope_and_pages(tmp_path: Path) -> None:
    cbc = await CbcSimulator().start()
    bmg_port = free_port()
    server = await asyncio.to_thread(
        ServerProcess(
            tmp_path / "data", env={"MSGIN5G_BROADCAST_GATEWAY": f"http://127.0.0.1:{bmg_port}"}
        ).start
    )
    bmg = GatewayProcess(
        "broadcast",
        ["--server", server.url, "--cbc", cbc.url, "--area", "area-1=cgi:262-1-100-7"],
        tmp_path / "bmg",
        http_port=bmg_port,
    )
    sender = Receiver(tmp_path / "sender.jsonl", "h2c")
    await asyncio.to_thread(bmg.start)
    await asyncio.to_thread(sender.start)
    try:
        async with httpx.AsyncClient(base_url=server.url, http1=False, http2=True) as http:
            r = await http.post(
                "/msgs-asregistration/v1/registrations",
                json={"asSvcId": "warner", "targetUri": sender.url},
            )
            assert r.status_code == 201
            text = "Flood warning for the river district. " * 4  # 152 characters: 2 pages
            ack = await http.post(
                "/msgs-msgdelivery/v1/deliver-as-message",
                json={
                    "oriAddr": {"addrType": "AS", "addr": "warner"},
                    "destAddr": {"addrType": "BC", "addr": "area-1"},
                    "msgId": "bc-1",
                    "payload": text,
                    "stoAndFwInd": True,
                    "delivStReqInd": True,
                },
            )
            assert ack.json() == {"oriAddr": {"addrType": "AS", "addr": "warner"}, "msgId": "bc-1"}
            async with asyncio.timeout(10):
                while not cbc.accepted:  # noqa: ASYNC110 - the simulator records, no event
                    await asyncio.sleep(0.05)
            (sent,) = cbc.accepted
            cell = sent["scope"]["scope_cell_list"]["cgi"][0]
            assert (cell["mcc"], cell["mnc"], cell["lac"], cell["ci"]) == (262, 1, 100, 7)
            pages = sent["smscb_message"]["payload"]["payload_encoded"]["pages"]
            assert len(pages) == 2

            # An area the gateway does not serve: rejected, and the sender gets a report.
            await http.post(
                "/msgs-msgdelivery/v1/deliver-as-message",
                json={
                    "oriAddr": {"addrType": "AS", "addr": "warner"},
                    "destAddr": {"addrType": "BC", "addr": "area-unknown"},
                    "msgId": "bc-2",
                    "payload": "x",
                    "stoAndFwInd": True,
                    "delivStReqInd": True,
                },
            )
            (report,) = await asyncio.to_thread(sender.wait_for, 1)
            assert report["body"]["delivSt"] == "REPT_DELY_FAILED"  # type: ignore[index]
            assert report["body"]["msgId"] == "bc-2"  # type: ignore[index]
            assert "404" in report["body"]["failureCause"]  # type: ignore[index]
            assert len(cbc.accepted) == 1
    finally:
        sender.stop()
        await asyncio.to_thread(bmg.stop)
        await asyncio.to_thread(server.stop)
        await cbc.stop()
