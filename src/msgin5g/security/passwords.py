# SPDX-License-Identifier: Apache-2.0
"""Client secrets stored as salted scrypt hashes (RFC 7914), never in clear (ADR 0015).

Format: `scrypt$<log2 n>$<r>$<p>$<salt b64>$<hash b64>`; `msgin5g auth hash-secret` prints one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

_LOG_N = 14
_R = 8
_P = 1


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    """A new salted hash of `secret` for `[[auth.clients]] secret_hash`."""
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=1 << _LOG_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_LOG_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def valid_hash(stored: str) -> bool:
    """Whether `stored` has the format `hash_secret` produces."""
    parts = stored.split("$")
    return (
        len(parts) == 6
        and parts[0] == "scrypt"
        and all(p.isdigit() for p in parts[1:4])
        and 10 <= int(parts[1]) <= 20
    )


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time comparison of `secret` against a stored hash; False for a bad hash."""
    if not valid_hash(stored):
        return False
    _, log_n, r, p, salt, expected = stored.split("$")
    try:
        digest = hashlib.scrypt(
            secret.encode(),
            salt=_unb64(salt),
            n=1 << int(log_n),
            r=int(r),
            p=int(p),
            dklen=len(_unb64(expected)),
        )
    except ValueError:
        return False
    return hmac.compare_digest(digest, _unb64(expected))
