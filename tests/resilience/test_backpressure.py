# SPDX-License-Identifier: Apache-2.0
"""Backpressure (issue 7; ADR 0020): with one AS callback down (connections refused) and one
UE registered but not observing, each with thousands of queued deliveries, a healthy AS keeps
its delivery rate (within a factor of the baseline measured in the same run), and the stuck
queues live on disk: the server's memory does not grow with them."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.resilience.coapflood import post
from tests.resilience.test_coap_overload import exchange
from tests.support.procs import Receiver, ServerProcess, free_port

DELIVER = "/msgs-msgdelivery/v1/deliver-as-message"
REGISTER = "/msgs-asregistration/v1/registrations"
HEALTHY = 500
STUCK = 1000
STUCK_PAYLOAD = "s" * 32_768
THREADS = 8


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and RssAnon of a process, in KiB (/proc/PID/status)."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon"):
            out[key] = int(value.split()[0])
    return out


def blast(url: str, bodies: list[dict[str, object]]) -> None:
    """POST every body from THREADS keep-alive clients; every one must be acknowledged."""

    def work(chunk: list[dict[str, object]]) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            for body in chunk:
                response = http.post(DELIVER, json=body)
                assert response.status_code == 200, response.text
                assert response.json().get("status") != "DELY_FAILED", response.text

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(work, [bodies[i::THREADS] for i in range(THREADS)]))


def message(dest: dict[str, str], msg_id: str, payload: str) -> dict[str, object]:
    return {
        "oriAddr": {"addrType": "AS", "addr": "sender"},
        "destAddr": dest,
        "msgId": msg_id,
        "stoAndFwInd": True,
        "payload": payload,
    }


def healthy_rate(server: ServerProcess, receiver: Receiver, tag: str, before: int) -> float:
    """Messages per second from the first POST until the healthy AS has received them all."""
    bodies = [
        message({"addrType": "AS", "addr": "healthy"}, f"{tag}-{i}", "h" * 200)
        for i in range(HEALTHY)
    ]
    started = time.monotonic()
    blast(server.url, bodies)
    receiver.wait_for(before + HEALTHY, timeout=60)
    return HEALTHY / (time.monotonic() - started)


def test_stuck_recipients_do_not_slow_others_or_fill_memory(tmp_path: Path) -> None:
    receiver = Receiver(tmp_path / "healthy.jsonl", "h2c").start()
    # No stored-message quota here: the UE's 32 KiB messages go as 16 segments each, and the
    # point is a queue far larger than memory should hold.
    env = {"MSGIN5G_LOG_LEVEL": "WARNING", "MSGIN5G_UE_MAX_STORED_MESSAGES": "0"}
    server = ServerProcess(tmp_path / "data", env=env).start()
    try:
        assert server.proc is not None
        pid = server.proc.pid
        with httpx.Client(base_url=server.url) as http:
            for as_id, target in (
                ("sender", None),
                ("healthy", receiver.url),
                ("down", f"http://127.0.0.1:{free_port()}/cb"),  # nothing listens there
            ):
                body = {"asSvcId": as_id, **({"targetUri": target} if target else {})}
                assert http.post(REGISTER, json=body).status_code == 201
        reg = exchange(
            server.coap_port,
            post("registrations", {"msgType": "REG", "ueSvcId": "sleeper"}, 1, b"r"),
        )
        assert reg["code"] == 65, reg

        baseline = healthy_rate(server, receiver, "base", 0)
        memory_before = memory_kib(pid)

        def stuck(round_: int) -> list[dict[str, object]]:
            return [
                message({"addrType": kind, "addr": addr}, f"{addr}-{round_}-{i}", STUCK_PAYLOAD)
                for i in range(STUCK)
                for kind, addr in (("AS", "down"), ("UE", "sleeper"))
            ]

        # Two equal rounds of stuck work: the first may fill bounded buffers (the lanes'
        # in-memory window, SQLite's page cache), the second must not add its size again.
        blast(server.url, stuck(1))
        memory_first = memory_kib(pid)
        blast(server.url, stuck(2))
        time.sleep(1.0)  # the down AS is retried meanwhile
        during = healthy_rate(server, receiver, "during", HEALTHY)
        memory_after = memory_kib(pid)

        round_kib = 2 * STUCK * len(STUCK_PAYLOAD) // 1024
        first = memory_first["RssAnon"] - memory_before["RssAnon"]
        second = memory_after["RssAnon"] - memory_first["RssAnon"]
        print(
            f"healthy AS: {baseline:.0f}/s alone, {during:.0f}/s beside {4 * STUCK} stuck"
            f" messages ({2 * round_kib} KiB); anonymous memory +{first} KiB after the first"
            f" round, +{second} KiB after the second"
        )
        assert during >= baseline / 3, (baseline, during)
        assert second < round_kib // 4, (first, second, round_kib)
    finally:
        assert server.stop() == 0
        receiver.stop()
