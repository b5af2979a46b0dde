# SPDX-License-Identifier: Apache-2.0
"""The real server app driven in process: no port, every response checked by oas.EVENT_HOOKS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from msgin5g.bootstrap import ServerApp
from msgin5g.settings import load
from tests.support import oas

BASE_URL = "http://testserver"


@asynccontextmanager
async def running_server(
    tmp_path: Path, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> AsyncIterator[ServerApp]:
    """A started ServerApp on `tmp_path` (CoAP on a free port); `overrides` by settings section."""
    sections: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (overrides or {}).items()}
    sections["server"] = {
        "data_dir": str(tmp_path / "data"),
        "coap": "127.0.0.1:0",
        **sections.get("server", {}),
    }
    app = ServerApp(load(overrides=sections, environ={}))
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


@asynccontextmanager
async def asgi_client(app: ServerApp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app.app),
        base_url=BASE_URL,
        event_hooks=oas.EVENT_HOOKS,
    ) as client:
        yield client
