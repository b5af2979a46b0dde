# SPDX-License-Identifier: Apache-2.0
"""Verification keys by `kid` (RFC 7517 JWK Set) from a file, a URL or the built-in issuer.

An unknown `kid` triggers one refresh (the issuer rotated its keys), at most once per
`min_refresh_s`, so a flood of tokens with made-up kids cannot hammer the key source.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKError, PyJWKSetError

log = logging.getLogger(__name__)


class KeySet:
    """Public keys of the token issuer, refreshed on demand."""

    def __init__(
        self,
        source: str = "",
        *,
        static: list[dict[str, Any]] | None = None,
        min_refresh_s: float = 30.0,
    ) -> None:
        self._source = source
        self._keys: dict[str, PyJWK] = {}
        self._min_refresh = min_refresh_s
        self._refreshed_at = -min_refresh_s
        if static is not None:
            self._install({"keys": static})

    @property
    def source(self) -> str:
        return self._source or "built-in"

    def get(self, kid: str | None) -> PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def refresh(self, *, force: bool = False) -> bool:
        """Reload the key set; False when throttled, no source, or the source failed."""
        now = time.monotonic()
        if not self._source or (not force and now - self._refreshed_at < self._min_refresh):
            return False
        self._refreshed_at = now
        try:
            if self._source.startswith(("http://", "https://")):
                async with httpx.AsyncClient(timeout=5.0) as client:
                    response = await client.get(self._source)
                    response.raise_for_status()
                    data = response.json()
            else:
                text = await asyncio.to_thread(Path(self._source).read_text)
                data = json.loads(text)
            self._install(data)
        except (OSError, ValueError, httpx.HTTPError, PyJWKError, PyJWKSetError) as exc:
            log.warning("cannot load the JWKS", extra={"source": self._source, "error": str(exc)})
            return False
        return True

    def _install(self, data: dict[str, Any]) -> None:
        keys: dict[str, PyJWK] = {}
        for jwk in PyJWKSet.from_dict(data).keys:
            if jwk.key_type in ("oct",):
                continue  # symmetric keys are never accepted (ADR 0015)
            keys[jwk.key_id or ""] = jwk
        self._keys = keys
