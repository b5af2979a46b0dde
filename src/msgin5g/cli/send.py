# SPDX-License-Identifier: Apache-2.0
"""`msgin5g send`: an AS sends one MSGS_MSGDelivery_ASODelivery request and prints the ack."""

from __future__ import annotations

import argparse
import json
import sys

import httpx

from msgin5g.core.ids import new_message_id
from msgin5g.security.client import TokenUnavailable, bearer_auth


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default="http://127.0.0.1:8080", help="server apiRoot")
    parser.add_argument("--from", dest="origin", required=True, help="sending AS Service ID")
    parser.add_argument("--to", required=True, help="recipient, TYPE:ADDR (e.g. UE:ue-1, AS:app-b)")
    parser.add_argument("--payload", default="", help="message text")
    parser.add_argument("--msg-id", help="message id (default: a new time-ordered UUIDv7)")
    parser.add_argument("--app-id")
    parser.add_argument("--report", action="store_true", help="ask for a delivery status report")
    parser.add_argument("--store", action="store_true", help="store and forward if unreachable")
    parser.add_argument("--priority", choices=["HIGH", "MIDDLE", "LOW"])
    parser.add_argument("--token-url", default="", help="OAuth 2.0 token endpoint (ADR 0015)")
    parser.add_argument("--client-id", default="", help="client id at --token-url")
    parser.add_argument(
        "--client-secret-file",
        default="",
        help="file holding the client secret (default: $MSGIN5G_AUTH_CLIENT_SECRET)",
    )


async def send(args: argparse.Namespace) -> int:
    kind, sep, addr = args.to.partition(":")
    if not sep or not addr:
        print("msgin5g send: --to must be TYPE:ADDR, e.g. AS:app-b", file=sys.stderr)
        return 2
    body: dict[str, object] = {
        "oriAddr": {"addrType": "AS", "addr": args.origin},
        "destAddr": {"addrType": kind.upper(), "addr": addr},
        "msgId": args.msg_id or new_message_id(),
        "payload": args.payload,
        "stoAndFwInd": bool(args.store),
        "delivStReqInd": bool(args.report),
    }
    if args.app_id:
        body["appId"] = args.app_id
    if args.priority:
        body["priority"] = args.priority
    url = args.server.rstrip("/") + "/msgs-msgdelivery/v1/deliver-as-message"
    use_h2c = url.startswith("http://")
    try:
        auth = bearer_auth(args.token_url, args.client_id, args.client_secret_file)
    except (TokenUnavailable, OSError) as exc:
        print(f"msgin5g send: {exc}", file=sys.stderr)
        return 2
    async with httpx.AsyncClient(http1=not use_h2c, http2=True, timeout=30) as client:
        try:
            response = await client.post(
                url, json=body, auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT
            )
        except (httpx.HTTPError, TokenUnavailable) as exc:
            print(f"msgin5g send: {exc!r}", file=sys.stderr)
            return 1
    print(json.dumps(response.json(), indent=2))
    return 0 if response.status_code == 200 else 1
