# SPDX-License-Identifier: Apache-2.0
"""Micro-benchmark: submit_sm per second through the ESME pool against the SMSC simulator.

Runs the simulator in a child process (``--in-process`` to share the loop), sends
``--messages`` short GSM 7-bit texts through ``SmppPool`` and prints one line: submits/s with
receipts off, and end-to-end messages/s with receipts on (every submit_sm_resp and every
delivery receipt received).

    python scripts/bench/smpp.py [--messages 20000] [--binds 4] [--window 64]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time

from benchlib import free_port

from msgin5g.gateways.sms import DeliverSm, SmppConfig, SmppPool, SubmitOptions
from msgin5g.gateways.sms.smsc_sim import SmscSimulator


async def wait_listening(port: int) -> None:
    for _ in range(200):
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("simulator did not start")


async def run(args: argparse.Namespace, receipts: bool) -> float:
    port = free_port()
    proc: asyncio.subprocess.Process | None = None
    sim: SmscSimulator | None = None
    if args.in_process:
        sim = SmscSimulator(port=port, system_id="bench", password="bench")
        sim.record = False
        await sim.start()
    else:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "msgin5g.gateways.sms.smsc_sim",
            "--port",
            str(port),
            "--system-id",
            "bench",
            "--password",
            "bench",
            "--no-record",
            "--log-level",
            "WARNING",
            stdout=asyncio.subprocess.DEVNULL,
        )
        await wait_listening(port)
    got = 0
    all_in = asyncio.Event()
    n: int = args.messages

    async def on_deliver(pdu: DeliverSm) -> None:
        nonlocal got
        got += 1
        if got >= n:
            all_in.set()

    cfg = SmppConfig("127.0.0.1", port, "bench", "bench", window=args.window)
    options = SubmitOptions(source_addr="12345", registered_delivery=1 if receipts else 0)
    body = b"Benchmark message from the MSGin5G gateway"
    try:
        async with SmppPool(cfg, size=args.binds, handler=on_deliver) as pool:
            sem = asyncio.Semaphore(args.binds * args.window * 2)

            async def one(i: int) -> None:
                async with sem:
                    await pool.submit_sm(f"49155{i % 100000:05d}", body, options=options)

            start = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(n)))
            if receipts:
                async with asyncio.timeout(60):
                    await all_in.wait()
            elapsed = time.perf_counter() - start
    finally:
        if sim is not None:
            await sim.stop()
        if proc is not None:
            proc.terminate()
            await proc.wait()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--binds", type=int, default=4)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--in-process", action="store_true")
    args = parser.parse_args()
    plain = asyncio.run(run(args, receipts=False))
    with_receipts = asyncio.run(run(args, receipts=True))
    where = "in-process" if args.in_process else "separate process"
    print(
        f"smpp bench: {args.messages} msgs, {args.binds} binds x window {args.window}, "
        f"simulator {where}: {plain:,.0f} submit/s without receipts, "
        f"{with_receipts:,.0f} msg/s with receipts"
    )


if __name__ == "__main__":
    main()
