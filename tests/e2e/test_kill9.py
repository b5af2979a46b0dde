# SPDX-License-Identifier: Apache-2.0
"""kill -9 while an AS is sending: every acknowledged message is delivered after restart,
none twice (DESIGN 3: a message acknowledged to its sender is committed first)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.procs import Receiver, ServerProcess, free_port

pytestmark = pytest.mark.e2e


def test_kill9_loses_no_acknowledged_message(tmp_path: Path) -> None:
    data = tmp_path / "data"
    b_port = free_port()
    server = ServerProcess(data).start()
    acked: list[str] = []
    stop = threading.Event()

    def sender(worker: int) -> None:
        with httpx.Client(base_url=server.url, http1=False, http2=True, timeout=5) as http:
            n = 0
            while not stop.is_set():
                msg_id = f"w{worker}-{n}-{uuid.uuid4().hex[:6]}"
                n += 1
                try:
                    response = http.post(
                        "/msgs-msgdelivery/v1/deliver-as-message",
                        json={
                            "oriAddr": {"addrType": "AS", "addr": "app-a"},
                            "destAddr": {"addrType": "AS", "addr": "app-b"},
                            "msgId": msg_id,
                            "payload": f"n={n}",
                            "stoAndFwInd": True,
                        },
                    )
                except httpx.HTTPError:
                    return  # the server died under us
                if response.status_code == 200 and "status" in response.json():
                    assert response.json()["status"] == "DELY_STORED"
                    acked.append(msg_id)
                elif response.status_code == 200:
                    acked.append(msg_id)

    try:
        httpx.post(
            f"{server.url}/msgs-asregistration/v1/registrations",
            json={"asSvcId": "app-b", "targetUri": f"http://127.0.0.1:{b_port}/cb"},
        ).raise_for_status()
        threads = [threading.Thread(target=sender, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while len(acked) < 300 and time.monotonic() < deadline:
            time.sleep(0.02)
        server.kill9()  # mid-stream: senders are still sending
        stop.set()
        for t in threads:
            t.join(10)
        assert len(acked) >= 300
        snapshot = list(acked)

        restarted = ServerProcess(data, http_port=server.http_port).start()
        b = Receiver(tmp_path / "b.jsonl", "h2c", port=b_port).start()
        try:
            got = b.wait_for(len(snapshot), timeout=30)
            time.sleep(1.0)
            got = b.received()
            ids = [g["body"]["msgId"] for g in got]  # type: ignore[index]
            missing = set(snapshot) - set(ids)
            assert not missing, f"{len(missing)} acknowledged messages lost: {sorted(missing)[:5]}"
            duplicates = {i for i in ids if ids.count(i) > 1}
            assert not duplicates, f"delivered twice: {sorted(duplicates)[:5]}"
        finally:
            b.stop()
            restarted.stop()
    finally:
        stop.set()
        server.stop()
