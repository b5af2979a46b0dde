# SPDX-License-Identifier: Apache-2.0
"""Benchmark: what the embedded store's accept costs when messages go to many recipients.

Durable ingest to 1,000 offline UEs costs more store CPU per message than ingest to one AS
(docs/benchmarks.md): every delivery goes into the queue index at its recipient's place, so
one group commit touches one index page per recipient instead of one in all. This drives the
real `SqliteStore.accept` in group commits of `--batch` messages (what one event-loop turn
gathers under load) and prints the process CPU per message for each recipient count, in
alternating rounds, and each count's ratio to one recipient.

Usage: python scripts/bench/store_scatter.py [--messages 200000] [--batch 18] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from msgin5g.core.message import UE, Acceptance, AckStatus, Address, DeliveryKind, Priority
from msgin5g.ports import MessageRecord, NewDelivery
from msgin5g.storage.sqlite import SqliteStore

ORIGIN = Address("AS", "bench")
BODY = b'{"oriAddr":{"addrType":"AS","addr":"bench"},"payload":"' + b"x" * 220 + b'"}'


async def run(recipients: int, messages: int, batch: int) -> float:
    """Server-side CPU seconds per accepted message, for `recipients` round robin."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.sqlite3", clock=time.time)
        await store.open()
        try:
            run_id = f"r{time.time_ns()}"
            stored = Acceptance(AckStatus.STORED)
            to = [Address(UE, f"bench-ue-{n:06d}") for n in range(recipients)]
            started = time.process_time()
            for first in range(0, messages, batch):
                accepts = []
                for n in range(first, min(first + batch, messages)):
                    recipient, message_id, now = to[n % recipients], f"{run_id}-{n}", time.time()
                    record = MessageRecord(
                        ORIGIN, message_id, recipient, stored, False, False, now + 86_400
                    )
                    delivery = NewDelivery(
                        DeliveryKind.MESSAGE,
                        recipient,
                        BODY,
                        Priority.MIDDLE,
                        now + 86_400,
                        ORIGIN,
                        message_id,
                        False,
                    )
                    accepts.append(store.accept(record, [delivery]))
                await asyncio.gather(*accepts)  # one group commit
            return (time.process_time() - started) / messages
        finally:
            await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=18)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--recipients", default="1,1000,100000")
    args = parser.parse_args()
    counts = [int(c) for c in args.recipients.split(",")]
    seen: dict[int, list[float]] = {c: [] for c in counts}
    for _ in range(args.rounds):
        for count in counts:
            seen[count].append(asyncio.run(run(count, args.messages, args.batch)))
    base = statistics.median(seen[counts[0]])
    print(f"{args.messages:,} messages in group commits of {args.batch}; median of {args.rounds}")
    print(f"| recipients | store CPU per message | vs {counts[0]} |")
    print("|---|---|---|")
    for count in counts:
        cost = statistics.median(seen[count])
        print(f"| {count:,} | {cost * 1e6:.1f} us | {cost / base:.2f} |")


if __name__ == "__main__":
    main()
