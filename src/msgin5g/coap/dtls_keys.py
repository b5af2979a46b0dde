# SPDX-License-Identifier: Apache-2.0
"""The UEs' DTLS pre-shared keys (RFC 4279 identities; RFC 7252 §9.1.3.1), read from a TOML
file (setting ``ue.psk_file``)::

    [[psk]]
    identity = "ue-1"                 # the PSK identity the UE sends (coap-client -u)
    key = "secret-of-ue-1"            # UTF-8 text (coap-client -k), or instead:
    # key_hex = "73656372657431"      # binary key as hex
    ue_svc_id = "ue-1"                # the UE Service ID this identity may act as

Keys are 1..32 octets (the Mbed TLS limit). No error message and no ``repr`` shows a key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["MAX_KEY_OCTETS", "PskFileError", "UePsk", "load_psk_file"]

MAX_KEY_OCTETS = 32


class PskFileError(ValueError):
    """The PSK file is unreadable or invalid; the message names the entry, never a key."""


@dataclass(frozen=True, slots=True)
class UePsk:
    """One provisioned UE: its PSK identity, key and UE Service ID."""

    identity: str
    key: bytes = field(repr=False)
    ue_svc_id: str


def load_psk_file(path: str | Path) -> tuple[UePsk, ...]:
    """Read and check the PSK file; raises :class:`PskFileError`."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PskFileError(f"cannot read the PSK file {path}: {_without_text(exc)}") from None
    entries = raw.get("psk", [])
    if not isinstance(entries, list) or not entries:
        raise PskFileError(f"the PSK file {path} has no [[psk]] entries")
    psks: list[UePsk] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, 1):
        psk = _entry(entry, f"{path}: [[psk]] #{number}")
        if psk.identity in seen:
            raise PskFileError(f"{path}: identity {psk.identity!r} appears twice")
        seen.add(psk.identity)
        psks.append(psk)
    return tuple(psks)


def _entry(entry: object, where: str) -> UePsk:
    if not isinstance(entry, Mapping):
        raise PskFileError(f"{where} must be a table")
    unknown = set(entry) - {"identity", "key", "key_hex", "ue_svc_id"}
    if unknown:
        raise PskFileError(f"{where}: unknown keys {sorted(unknown)}")
    identity, ue_svc_id = entry.get("identity"), entry.get("ue_svc_id")
    if not isinstance(identity, str) or not identity:
        raise PskFileError(f"{where}: identity must be a non-empty string")
    if not isinstance(ue_svc_id, str) or not ue_svc_id:
        raise PskFileError(f"{where} ({identity!r}): ue_svc_id must be a non-empty string")
    if ("key" in entry) == ("key_hex" in entry):
        raise PskFileError(f"{where} ({identity!r}): give exactly one of key and key_hex")
    key = _key(entry, f"{where} ({identity!r})")
    return UePsk(identity, key, ue_svc_id)


def _key(entry: Mapping[str, object], where: str) -> bytes:
    if "key" in entry:
        text = entry["key"]
        if not isinstance(text, str):
            raise PskFileError(f"{where}: key must be a string")
        key = text.encode()
    else:
        text = entry["key_hex"]
        if not isinstance(text, str):
            raise PskFileError(f"{where}: key_hex must be a string")
        try:
            key = bytes.fromhex(text)
        except ValueError:
            raise PskFileError(f"{where}: key_hex is not hexadecimal") from None
    if not 1 <= len(key) <= MAX_KEY_OCTETS:
        raise PskFileError(f"{where}: the key must be 1..{MAX_KEY_OCTETS} octets")
    return key


def _without_text(exc: Exception) -> str:
    # A TOML syntax error quotes nothing of the file, but say only where, to be sure.
    if isinstance(exc, tomllib.TOMLDecodeError):
        return "invalid TOML (" + str(exc).rpartition("(")[2]
    return type(exc).__name__ if isinstance(exc, UnicodeDecodeError) else str(exc)
