# SPDX-License-Identifier: Apache-2.0
"""`msgin5g gateway sms|mqtt|broadcast`: run the Legacy 3GPP (SMS), Non-3GPP (MQTT) or
Broadcast (cell broadcast) Message Gateway.

    msgin5g gateway sms --server URL --http HOST:PORT --smsc HOST:PORT --system-id ID
        [--password-file F | $MSGIN5G_SMPP_PASSWORD] --ue UE_SVC_ID=MSISDN ... --mo-to as:AS_SVC_ID
        [--binds N --window W --throttle R/s --data-dir DIR]
    msgin5g gateway mqtt --server URL --http HOST:PORT --broker HOST:PORT --ue UE_SVC_ID ...
        [--data-dir DIR]
    msgin5g gateway broadcast --server URL --http HOST:PORT --cbc URL
        --area AREA=plmn|AREA=cgi:MCC-MNC-LAC-CI,... ... [--default-area A] [--cbe-name N]
        [--repetition-period N] [--num-of-bcast N] [--data-dir DIR]

`add_gateway_parser(sub)` hooks the `gateway` command into the main parser; `python -m
msgin5g.cli.gateway sms ...` runs it on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from msgin5g.observability import JsonFormatter
from msgin5g.settings import SettingsError, split_hostport

__all__ = ["add_gateway_parser", "main"]


def _configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _rate(value: str) -> float:
    try:
        rate = float(value.removesuffix("/s"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected messages per second like 100/s: {value!r}"
        ) from None
    if rate <= 0:
        raise argparse.ArgumentTypeError("the throttle must be > 0")
    return rate


def _common(parser: argparse.ArgumentParser, default_http: str) -> None:
    parser.add_argument("--server", required=True, help="apiRoot of the MSGin5G Server")
    parser.add_argument(
        "--http", default=default_http, help=f"HOST:PORT of the msgg API (default {default_http})"
    )
    parser.add_argument("--data-dir", default=None, help="directory of the gateway's store")
    parser.add_argument(
        "--api-root", default="", help="gwApiRoot told to the server (default http://HTTP)"
    )
    parser.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback --http without auth"
    )
    parser.add_argument("--retry-initial", type=float, default=0.2, help="seconds")
    parser.add_argument("--retry-max", type=float, default=10.0, help="seconds")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--log-format", choices=["json", "text"], default="json")
    _auth_args(parser)


def _auth_args(parser: argparse.ArgumentParser) -> None:
    """OAuth 2.0 toward the server and on the msgg API (ADR 0015)."""
    group = parser.add_argument_group("authentication")
    group.add_argument("--token-url", default="", help="token endpoint for tokens toward --server")
    group.add_argument(
        "--token-client-id",
        dest="auth_client_id",
        default="",
        help="our client id at --token-url (mqtt's --client-id is the MQTT one)",
    )
    group.add_argument(
        "--token-secret-file",
        dest="client_secret_file",
        default="",
        help="file holding our client secret (default: $MSGIN5G_AUTH_CLIENT_SECRET)",
    )
    group.add_argument(
        "--auth-jwks", default="", help="JWK Set (file or URL) that signs callers' tokens"
    )
    group.add_argument("--auth-issuer", default="msgin5g", help="iss of callers' tokens")
    group.add_argument("--auth-audience", default="msgin5g", help="aud of callers' tokens")
    group.add_argument(
        "--auth-client",
        action="append",
        default=[],
        metavar="CLIENT_ID",
        help="a client (server) allowed to call the msgg API (repeat)",
    )


SMPP_PASSWORD_ENV = "MSGIN5G_SMPP_PASSWORD"
MQTT_PASSWORD_ENV = "MSGIN5G_MQTT_PASSWORD"


def _password(args: argparse.Namespace, env: str, *, required: bool) -> str | None:
    """The peer's password: --password, else --password-file, else `env`; kept off argv
    and out of logs when it comes from a file or the environment."""
    from msgin5g.security.client import read_secret

    try:
        value = read_secret(args.password or "", args.password_file or "", env=env)
    except OSError as exc:
        raise SystemExit(f"msgin5g gateway: --password-file: {exc.strerror}") from None
    if not value and required:
        raise SystemExit(f"msgin5g gateway: a password is needed: --password-file or ${env}")
    return value or None


def _add_kinds(parser: argparse.ArgumentParser) -> None:
    kinds = parser.add_subparsers(dest="gateway", required=True)

    sms = kinds.add_parser("sms", help="Legacy 3GPP Message Gateway: msgg-l3gdelivery <-> SMPP")
    _common(sms, "127.0.0.1:8181")
    sms.add_argument("--smsc", required=True, help="HOST:PORT of the SMSC (SMPP 3.4)")
    sms.add_argument("--system-id", required=True)
    sms.add_argument(
        "--password", default=None, help="visible in `ps`: prefer --password-file or the env var"
    )
    sms.add_argument(
        "--password-file",
        default=None,
        help=f"file holding the SMPP password (default: ${SMPP_PASSWORD_ENV})",
    )
    sms.add_argument(
        "--ue",
        action="append",
        default=[],
        metavar="UE_SVC_ID=MSISDN",
        help="a UE this gateway serves (repeat)",
    )
    sms.add_argument("--mo-to", required=True, metavar="as:AS_SVC_ID", help="recipient of MO SMS")
    sms.add_argument("--binds", type=int, default=1, help="SMPP binds (default 1)")
    sms.add_argument("--window", type=int, default=10, help="submits in flight per bind")
    sms.add_argument("--throttle", type=_rate, default=None, metavar="R/s", help="per bind")
    sms.add_argument("--source-addr", default="MSGin5G", help="sender shown on the SMS")
    sms.add_argument(
        "--report-sms",
        action="store_true",
        help="also send reports on UE-originated messages to the UE as SMS",
    )
    sms.set_defaults(run=_run_sms)

    mqtt = kinds.add_parser("mqtt", help="Non-3GPP Message Gateway: msgg-n3gdelivery <-> MQTT")
    _common(mqtt, "127.0.0.1:8182")
    mqtt.add_argument("--broker", required=True, help="HOST:PORT of the MQTT broker")
    mqtt.add_argument(
        "--ue", action="append", default=[], metavar="UE_SVC_ID", help="a static device (repeat)"
    )
    mqtt.add_argument("--client-id", default="msgin5g-n3g", help="the gateway's MQTT client id")
    mqtt.add_argument("--username", default=None)
    mqtt.add_argument(
        "--password", default=None, help="visible in `ps`: prefer --password-file or the env var"
    )
    mqtt.add_argument(
        "--password-file",
        default=None,
        help=f"file holding the MQTT password (default: ${MQTT_PASSWORD_ENV})",
    )
    mqtt.set_defaults(run=_run_mqtt)

    bc = kinds.add_parser(
        "broadcast", help="Broadcast Message Gateway: msgg-bgdelivery <-> CBC (osmo-cbc ECBE)"
    )
    _common(bc, "127.0.0.1:8183")
    bc.add_argument("--cbc", required=True, help="base URL of the CBC's ECBE REST interface")
    bc.add_argument(
        "--area",
        action="append",
        default=[],
        metavar="AREA=plmn|AREA=cgi:MCC-MNC-LAC-CI,...",
        help="a Broadcast Area ID and its CBC scope (repeat)",
    )
    bc.add_argument("--default-area", default=None, help="area used when destAddr is absent")
    bc.add_argument("--cbe-name", default="msgin5g", help="cbe_name told to the CBC")
    bc.add_argument(
        "--repetition-period", type=int, default=10, help="in units of 1.883 s, 1..4095"
    )
    bc.add_argument(
        "--num-of-bcast", type=int, default=10, help="broadcasts per message, 0 = until deleted"
    )
    bc.set_defaults(run=_run_broadcast)


def add_gateway_parser(sub: Any) -> None:
    """Add `gateway sms|mqtt|broadcast` to the subparsers `sub` of the main `msgin5g` parser."""
    parser = sub.add_parser("gateway", help="run a message gateway (sms, mqtt, broadcast)")
    _add_kinds(parser)


def _gateway_settings(args: argparse.Namespace, gw_type: str, default_dir: str) -> Any:
    from msgin5g.gateways.common import GatewaySettings

    settings = GatewaySettings(
        gw_type="L3G" if gw_type == "L3G" else "N3G",
        server_url=args.server,
        http=args.http,
        data_dir=Path(args.data_dir or default_dir).expanduser(),
        api_root=args.api_root,
        insecure=args.insecure,
        retry_initial=args.retry_initial,
        retry_max=args.retry_max,
        **_auth_settings(args),
    )
    settings.validate()
    return settings


def _auth_settings(args: argparse.Namespace) -> dict[str, Any]:
    from msgin5g.security.client import TokenSource, read_secret
    from msgin5g.security.setup import gateway_validator

    out: dict[str, Any] = {}
    if args.token_url:
        if not args.auth_client_id:
            raise SettingsError("--token-url needs --token-client-id")
        try:
            secret = read_secret(secret_file=args.client_secret_file)
        except OSError as exc:
            raise SettingsError(f"--client-secret-file: {exc.strerror}") from None
        if not secret:
            raise SettingsError(
                "--token-url needs a secret: --token-secret-file or $MSGIN5G_AUTH_CLIENT_SECRET"
            )
        out["uplink_auth"] = TokenSource(args.token_url, args.auth_client_id, secret)
    if args.auth_jwks:
        if not args.auth_client:
            raise SettingsError("--auth-jwks needs at least one --auth-client")
        out["validator"] = gateway_validator(
            args.auth_jwks, args.auth_issuer, args.auth_audience, args.auth_client
        )
    return out


def _serve(args: argparse.Namespace, kind: str, build: Callable[[], Any], settings: Any) -> int:
    """Configure logging, build the gateway, require the callers' tokens on its msgg API when
    --auth-jwks is given, and run it until SIGINT/SIGTERM; 1 when it cannot start."""
    from msgin5g.gateways.common import serve
    from msgin5g.malloc import pin_mmap_threshold

    _configure_logging(args.log_level, args.log_format)
    pin_mmap_threshold()  # memory steady under churn (ADR 0026)
    try:
        gateway = build()
        if settings.validator is not None:
            gateway.app.protect(settings.validator)
        asyncio.run(serve(gateway, settings.http))
    except OSError as exc:
        print(f"msgin5g gateway {kind}: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def _run_sms(args: argparse.Namespace) -> int:
    from msgin5g.gateways.sms.gateway import SmsGateway, SmsGatewaySettings, parse_destination
    from msgin5g.gateways.sms.smpp_session import SmppConfig

    try:
        gateway = _gateway_settings(args, "L3G", "./msgin5g-sms-gateway")
        host, port = split_hostport(args.smsc, "--smsc")
        ues: dict[str, str] = {}
        for item in args.ue:
            ue, sep, msisdn = item.partition("=")
            if not sep or not ue or not msisdn:
                raise SettingsError(f"--ue must be UE_SVC_ID=MSISDN, got {item!r}")
            ues[ue] = msisdn
        try:
            mo_to = parse_destination(args.mo_to)
        except ValueError as exc:
            raise SettingsError(f"--mo-to: {exc}") from None
        if args.binds < 1 or args.window < 1:
            raise SettingsError("--binds and --window must be at least 1")
    except SettingsError as exc:
        print(f"msgin5g gateway sms: {exc}", file=sys.stderr)
        return 2
    settings = SmsGatewaySettings(
        gateway=gateway,
        smpp=SmppConfig(
            host=host,
            port=port,
            system_id=args.system_id,
            password=_password(args, SMPP_PASSWORD_ENV, required=True) or "",
            window=args.window,
            throughput=args.throttle,
            burst=max(1, int(args.throttle or 1)),
            reconnect_min=min(0.5, args.retry_initial),
            reconnect_max=max(args.retry_max, min(0.5, args.retry_initial)),
        ),
        ues=ues,
        mo_to=mo_to,
        binds=args.binds,
        source_addr=args.source_addr,
        report_sms=args.report_sms,
    )
    return _serve(args, "sms", lambda: SmsGateway(settings), gateway)


def _run_mqtt(args: argparse.Namespace) -> int:
    from msgin5g.gateways.mqtt.gateway import MqttGateway, MqttGatewaySettings

    try:
        gateway = _gateway_settings(args, "N3G", "./msgin5g-mqtt-gateway")
        host, port = split_hostport(args.broker, "--broker")
    except SettingsError as exc:
        print(f"msgin5g gateway mqtt: {exc}", file=sys.stderr)
        return 2
    settings = MqttGatewaySettings(
        gateway=gateway,
        broker_host=host,
        broker_port=port,
        ues=tuple(args.ue),
        client_id=args.client_id,
        username=args.username,
        password=_password(args, MQTT_PASSWORD_ENV, required=False),
    )
    return _serve(args, "mqtt", lambda: MqttGateway(settings), gateway)


def _run_broadcast(args: argparse.Namespace) -> int:
    from msgin5g.gateways.cbs.gateway import (
        BroadcastGateway,
        BroadcastGatewaySettings,
        parse_area,
    )

    try:
        # gw_type only feeds the UE Registrar, which the broadcast gateway does not use.
        gateway = _gateway_settings(args, "N3G", "./msgin5g-broadcast-gateway")
        areas = {}
        for item in args.area:
            try:
                area, scope = parse_area(item)
            except ValueError as exc:
                raise SettingsError(f"--area: {exc}") from None
            areas[area] = scope
        settings = BroadcastGatewaySettings(
            gateway=gateway,
            cbc_url=args.cbc,
            areas=areas,
            default_area=args.default_area,
            cbe_name=args.cbe_name,
            repetition_period=args.repetition_period,
            num_of_bcast=args.num_of_bcast,
        )
        settings.validate()
    except SettingsError as exc:
        print(f"msgin5g gateway broadcast: {exc}", file=sys.stderr)
        return 2
    return _serve(args, "broadcast", lambda: BroadcastGateway(settings), gateway)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m msgin5g.cli.gateway sms|mqtt|broadcast ...` (= `msgin5g gateway ...`)."""
    parser = argparse.ArgumentParser(prog="msgin5g gateway")
    _add_kinds(parser)
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
