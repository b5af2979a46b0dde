# SPDX-License-Identifier: Apache-2.0
"""`msgin5g ue`: a UE simulator on the SDK's `UeClient` (MSGin5G-1 over CoAP).

    msgin5g ue --server coap://HOST:PORT --id UE [--send TO --payload P [--report] [--store]]
               [--max-seg-size N] [--count N] [--seconds S] [--no-auto-report]
               [--psk-identity ID --psk-key-file FILE]   (with coaps://HOST:PORT, DTLS-PSK)

Registers, observes its inbox and prints one JSON line per event on stdout: the REG answer,
the MSGRESP of what it sent, `{"pending":n}`, then each MSG (reassembled) or IMDN received.
It answers an IMDN (REPT_DELY_SUCCESS) to each message that asks for one. It stops after
`--count` received items, after `--seconds`, or on Ctrl-C, and cancels its observation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from msgin5g.coap import CoapError
from msgin5g.sdk.ue import SdkError, UeClient


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server", default="coap://127.0.0.1:5683", help="coap://HOST:PORT or coaps://HOST:PORT"
    )
    parser.add_argument("--psk-identity", help="DTLS PSK identity (with a coaps:// server)")
    parser.add_argument(
        "--psk-key-file", help="file holding the DTLS pre-shared key as text (with coaps://)"
    )
    parser.add_argument("--id", dest="ue_id", required=True, help="this UE's UE Service ID")
    parser.add_argument("--send", metavar="TO", help="send one message to TYPE:ADDR first")
    parser.add_argument("--payload", default="", help="text of the message to send")
    parser.add_argument("--msg-id", help="message id of the message to send (default: a UUID)")
    parser.add_argument("--report", action="store_true", help="ask for a delivery report")
    parser.add_argument("--store", action="store_true", help="store and forward if needed")
    parser.add_argument("--max-seg-size", type=int, help="announce and use this segment size")
    parser.add_argument("--count", type=int, help="stop after receiving this many items")
    parser.add_argument("--seconds", type=float, help="stop after this many seconds")
    parser.add_argument(
        "--no-auto-report",
        dest="auto_report",
        action="store_false",
        help="do not answer delivStReqInd with an IMDN",
    )


def _line(item: Any) -> None:
    sys.stdout.write(json.dumps(item, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _psk(args: argparse.Namespace) -> tuple[str, bytes] | None:
    """The DTLS identity and key (read from --psk-key-file, never from the command line)."""
    if not (args.psk_identity or args.psk_key_file):
        return None
    if not (args.psk_identity and args.psk_key_file):
        raise ValueError("--psk-identity and --psk-key-file go together")
    return args.psk_identity, Path(args.psk_key_file).read_bytes().rstrip(b"\r\n")


async def _session(args: argparse.Namespace) -> int:
    segment_size = args.max_seg_size or 2048
    psk = _psk(args)
    async with UeClient(args.server, args.ue_id, max_segment_size=segment_size, psk=psk) as ue:
        reg_id = await ue.register(max_segment_size=args.max_seg_size)
        _line({"msgType": "REG", "regId": reg_id, "ueSvcId": args.ue_id})
        if args.send:
            _line(
                await ue.send(
                    args.send,
                    args.payload,
                    msg_id=args.msg_id,
                    report=args.report,
                    store=args.store,
                )
            )
        received = 0
        if args.count == 0:
            return 0
        async for item in ue.inbox():
            _line(item)
            if "msgType" not in item:
                continue  # the {"pending": n} answer to the registration of the observation
            if item["msgType"] == "MSG" and item.get("delivStReqInd") and args.auto_report:
                _line(await ue.report(item["oriAddr"], item["msgId"]))
            received += 1
            if args.count is not None and received >= args.count:
                break
    return 0


async def run(args: argparse.Namespace) -> int:
    try:
        async with asyncio.timeout(args.seconds):
            return await _session(args)
    except TimeoutError:
        return 0
    except (SdkError, CoapError, OSError, ValueError) as exc:
        print(f"msgin5g ue: {exc}", file=sys.stderr)
        return 1


def main(args: argparse.Namespace) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run(args))
    return 130
