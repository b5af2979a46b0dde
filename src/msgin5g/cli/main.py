# SPDX-License-Identifier: Apache-2.0
"""`msgin5g` command line: server, up (all-in-one), send (an AS sends one message), ue (a UE
simulator over MSGin5G-1 CoAP), as (an AS callback receiver).

Pinned by DESIGN 2.6: `msgin5g server --http HOST:PORT --coap HOST:PORT --data-dir DIR
[--config FILE] [--insecure]`; every flag also works from the config file and as a
`MSGIN5G_<NAME>` environment variable.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from msgin5g import __version__
from msgin5g.core.errors import StorageFailure
from msgin5g.malloc import pin_mmap_threshold
from msgin5g.observability import JsonFormatter
from msgin5g.settings import Settings, SettingsError, load


def _configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log.level.upper())


def run_loop(main: Coroutine[Any, Any, None], loop: str) -> None:
    """Run `main` on the configured event loop; uvloop falls back to asyncio if missing."""
    if loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            logging.getLogger(__name__).warning("uvloop is not installed; using asyncio")
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


def _server_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--http", help="HTTP listen address HOST:PORT (h2c and HTTP/1.1)")
    parser.add_argument("--coap", help="CoAP listen address HOST:PORT (UDP)")
    parser.add_argument(
        "--coaps", help="CoAP over DTLS-PSK listen address HOST:PORT (UDP; needs ue.psk_file)"
    )
    parser.add_argument("--data-dir", help="directory of the embedded store")
    parser.add_argument(
        "--store",
        metavar="URL",
        help="postgresql://USER[:PASSWORD]@HOST[:PORT]/DB for the PostgreSQL store;"
        " default: the embedded SQLite store in --data-dir",
    )
    parser.add_argument(
        "--nats",
        metavar="URL",
        help="nats://HOST:PORT: run as one of several instances sharing the --store"
        " PostgreSQL database, work moved over NATS JetStream (docs/deployment.md)",
    )
    parser.add_argument("--config", help="TOML config file")
    parser.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="allow non-loopback addresses without authentication",
    )


def _run_server(args: argparse.Namespace) -> int:
    from msgin5g.bootstrap import serve

    overrides: dict[str, dict[str, Any]] = {
        "server": {
            k: v
            for k, v in {
                "http": args.http,
                "coap": args.coap,
                "coaps": args.coaps,
                "data_dir": args.data_dir,
                "insecure": args.insecure,
            }.items()
            if v is not None
        },
        "store": {"url": args.store} if args.store is not None else {},
        "cluster": {"nats_url": args.nats} if args.nats is not None else {},
    }
    try:
        settings = load(args.config, overrides)
    except SettingsError as exc:
        print(f"msgin5g: {exc}", file=sys.stderr)
        return 2
    _configure_logging(settings)
    pin_mmap_threshold()  # memory steady under churn (ADR 0026)
    try:
        run_loop(serve(settings), settings.server.loop)
    except SettingsError as exc:  # found while building the server, e.g. in ue.psk_file
        print(f"msgin5g: {exc}", file=sys.stderr)
        return 2
    except (OSError, StorageFailure) as exc:
        print(f"msgin5g: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def _run_send(args: argparse.Namespace) -> int:
    from msgin5g.cli.send import send

    return asyncio.run(send(args))


def _run_ue(args: argparse.Namespace) -> int:
    from msgin5g.cli.ue import main as ue_main

    return ue_main(args)


def _run_as(args: argparse.Namespace) -> int:
    from msgin5g.cli.as_receiver import main as as_main

    return as_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="msgin5g", description="The 3GPP MSGin5G Service")
    parser.add_argument("--version", action="version", version=f"msgin5g {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    server = sub.add_parser("server", help="run the MSGin5G Server")
    _server_args(server)
    server.set_defaults(run=_run_server)

    up = sub.add_parser(
        "up", help="all-in-one: the server on its embedded defaults, for a laptop or lab"
    )
    _server_args(up)
    up.set_defaults(run=_run_server)

    from msgin5g.cli.send import add_arguments as send_arguments

    send = sub.add_parser("send", help="send one message as an Application Server")
    send_arguments(send)
    send.set_defaults(run=_run_send)

    from msgin5g.cli.as_receiver import add_arguments as as_arguments
    from msgin5g.cli.ue import add_arguments as ue_arguments

    ue = sub.add_parser("ue", help="a UE over MSGin5G-1 (CoAP): register, receive, send")
    ue_arguments(ue)
    ue.set_defaults(run=_run_ue)

    receiver = sub.add_parser("as", help="an AS callback receiver printing what it receives")
    as_arguments(receiver)
    receiver.set_defaults(run=_run_as)

    from msgin5g.cli.gateway import add_gateway_parser

    add_gateway_parser(sub)

    from msgin5g.cli.auth import add_auth_parser

    add_auth_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
