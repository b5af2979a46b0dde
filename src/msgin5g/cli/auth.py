# SPDX-License-Identifier: Apache-2.0
"""`msgin5g auth hash-secret` (a client secret's hash for `[[auth.clients]] secret_hash`) and
`msgin5g auth check` (what the configuration enables on the HTTP APIs, without secrets)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from msgin5g.security.passwords import hash_secret
from msgin5g.settings import SettingsError, load


def add_auth_parser(sub: Any) -> None:
    auth = sub.add_parser("auth", help="authentication helpers (ADR 0015)")
    commands = auth.add_subparsers(dest="auth_command", required=True)
    hashing = commands.add_parser(
        "hash-secret", help="print the hash of a client secret read from stdin or a prompt"
    )
    hashing.set_defaults(run=_hash_secret)
    check = commands.add_parser("check", help="print what authentication and limits enable")
    check.add_argument("--config", help="TOML config file")
    check.set_defaults(run=_check)


def _hash_secret(_args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        secret = getpass.getpass("client secret: ")
    else:
        secret = sys.stdin.readline().rstrip("\r\n")
    if len(secret) < 16:
        print("msgin5g: a client secret needs at least 16 characters", file=sys.stderr)
        return 2
    print(hash_secret(secret))
    return 0


def _check(args: argparse.Namespace) -> int:
    try:
        settings = load(args.config)
    except SettingsError as exc:
        print(f"msgin5g: {exc}", file=sys.stderr)
        return 2
    auth, limits = settings.auth, settings.limits
    summary = {
        "auth": auth.mode,
        "issuer": auth.issuer if auth.mode != "off" else None,
        "audience": auth.audience if auth.mode != "off" else None,
        "jwks": auth.jwks or None,
        "clients": [
            {
                "client_id": c.client_id,
                "role": c.role,
                "secret": "configured" if c.secret_hash else "none",
                "as_svc_ids": list(c.as_svc_ids),
                "addresses": list(c.addresses),
                "scopes": list(c.scopes) or "role defaults",
            }
            for c in auth.clients
        ],
        "outbound_token_url": auth.token_url or None,
        "rate_limit_per_s": limits.rate or "off",
        "burst": limits.burst,
        "max_in_flight": limits.max_in_flight or "off",
        "max_body_bytes": settings.server.max_body_bytes,
    }
    print(json.dumps(summary, indent=2))
    return 0
