# SPDX-License-Identifier: Apache-2.0
"""Benchmark: what the embedded store's accept costs when messages go to many recipients.

Durable ingest to 1,000 offline UEs costs more store CPU per message than ingest to one AS
(docs/benchmarks.md): every delivery goes into the queue index at its recipient's place, so
one group commit touches one index page per recipient instead of one in all. This drives the
real `SqliteStore.accept` in group commits of `--batch` messages (what one event-loop turn
gathers under load) and prints the process CPU per message for each recipient count, in
alternating rounds, and each count's ratio to one recipient.

With `--handed-over-after K` every message is also finished as delivered K commits after its
own, in the same commit as later accepts: the pattern of online UEs, whose deliveries live
for milliseconds.

Messages come from one AS with ordered msgIds unless told otherwise: `--origins N` sends them
from N UEs round robin (ADR 0023: their records land at N places of the (originator, msgId)
key), `--ids uuid4` gives each a random msgId (what the SDK and `msgin5g send` made before
ADR 0024), `--ids uuid7` a time-ordered one (`msgin5g.core.ids`, what they make now). The ids
are made before the clock starts.

Usage: python scripts/bench/store_scatter.py [--messages 200000] [--batch 18] [--rounds 2]
           [--recipients 1,1000,100000] [--handed-over-after K] [--origins N]
           [--ids ordered|uuid4|uuid7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from msgin5g.core.ids import new_message_id
from msgin5g.core.message import (
    UE,
    Acceptance,
    AckStatus,
    Address,
    Delivery,
    DeliveryKind,
    Priority,
)
from msgin5g.ports import MessageRecord, NewDelivery, Outcome
from msgin5g.storage.sqlite import SqliteStore

ORIGIN = Address("AS", "bench")
BODY = b'{"oriAddr":{"addrType":"AS","addr":"bench"},"payload":"' + b"x" * 220 + b'"}'


async def run(
    recipients: int,
    messages: int,
    batch: int,
    handed_over_after: int,
    origins: int = 1,
    ids: str = "ordered",
) -> float:
    """Server-side CPU seconds per accepted message, for `recipients` round robin."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.sqlite3", clock=time.time)
        await store.open()
        try:
            run_id = f"r{time.time_ns()}"
            stored = Acceptance(AckStatus.STORED)
            to = [Address(UE, f"bench-ue-{n:06d}") for n in range(recipients)]
            by = (
                [ORIGIN]
                if origins == 1
                else [Address(UE, f"from-ue-{n:06d}") for n in range(origins)]
            )
            message_ids = _message_ids(ids, messages, run_id)
            in_flight: list[list[Delivery]] = []
            started = time.process_time()
            for first in range(0, messages, batch):
                accepts: list[Any] = []
                for n in range(first, min(first + batch, messages)):
                    recipient, now = to[n % recipients], time.time()
                    message_id = message_ids[n]
                    origin = by[n % origins]
                    record = MessageRecord(
                        origin, message_id, recipient, stored, False, False, now + 86_400
                    )
                    delivery = NewDelivery(
                        DeliveryKind.MESSAGE,
                        recipient,
                        BODY,
                        Priority.MIDDLE,
                        now + 86_400,
                        origin,
                        message_id,
                        False,
                    )
                    accepts.append(store.accept(record, [delivery]))
                count = len(accepts)
                if handed_over_after and len(in_flight) >= handed_over_after:
                    done = in_flight.pop(0)
                    accepts.extend(store.finish(d, Outcome.DELIVERED, None) for d in done)
                results = await asyncio.gather(*accepts)  # one group commit
                if handed_over_after:
                    in_flight.append([created[0] for _previous, created in results[:count]])
            return (time.process_time() - started) / messages
        finally:
            await store.close()


def _message_ids(kind: str, count: int, run_id: str) -> list[str]:
    if kind == "uuid4":
        return [str(uuid.uuid4()) for _ in range(count)]
    if kind == "uuid7":
        return [new_message_id() for _ in range(count)]
    return [f"{run_id}-{n}" for n in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=18)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--recipients", default="1,1000,100000")
    parser.add_argument("--handed-over-after", type=int, default=0)
    parser.add_argument("--origins", type=int, default=1, help="originators (1: an AS)")
    parser.add_argument("--ids", choices=("ordered", "uuid4", "uuid7"), default="ordered")
    parser.add_argument("--random-ids", action="store_true", help="the same as --ids uuid4")
    args = parser.parse_args()
    if args.random_ids:
        args.ids = "uuid4"
    counts = [int(c) for c in args.recipients.split(",")]
    seen: dict[int, list[float]] = {c: [] for c in counts}
    for _ in range(args.rounds):
        for count in counts:
            cost = run(
                count,
                args.messages,
                args.batch,
                args.handed_over_after,
                args.origins,
                args.ids,
            )
            seen[count].append(asyncio.run(cost))
    base = statistics.median(seen[counts[0]])
    handed = (
        f", each handed over {args.handed_over_after} commits later"
        if args.handed_over_after
        else ", none handed over"
    )
    senders = "one AS" if args.origins == 1 else f"{args.origins:,} UEs"
    ids = {"ordered": "ordered", "uuid4": "UUID4", "uuid7": "UUIDv7"}[args.ids] + " msgIds"
    print(
        f"{args.messages:,} messages from {senders} with {ids} in group commits of"
        f" {args.batch}{handed}; median of {args.rounds}"
    )
    print(f"| recipients | store CPU per message | vs {counts[0]} |")
    print("|---|---|---|")
    for count in counts:
        cost = statistics.median(seen[count])
        print(f"| {count:,} | {cost * 1e6:.1f} us | {cost / base:.2f} |")


if __name__ == "__main__":
    main()
