# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.inprocess import asgi_client, running_server

from msgin5g.bootstrap import ServerApp


@pytest.fixture
def settings_overrides() -> dict[str, dict[str, Any]]:
    """Settings sections for the in-process server; a test module overrides this fixture."""
    return {}


@pytest.fixture
async def server_app(
    tmp_path: Path, settings_overrides: dict[str, dict[str, Any]]
) -> AsyncIterator[ServerApp]:
    async with running_server(tmp_path, settings_overrides) as app:
        yield app


@pytest.fixture
async def client(server_app: ServerApp) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(server_app) as c:
        yield c
