# SPDX-License-Identifier: Apache-2.0
"""A real ServerApp on its own event loop in a background thread, for synchronous fuzz tests
(hypothesis drives plain sockets; the server answers from its loop like in production)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from msgin5g.bootstrap import ServerApp
from msgin5g.settings import load


class ErrorLog(logging.Handler):
    """Collects ERROR records (exceptions in handlers, store failures) while installed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()} {r.exc_text or ''}" for r in self.records]


@contextmanager
def threaded_server(
    tmp_path: Path, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> Iterator[tuple[ServerApp, asyncio.AbstractEventLoop]]:
    """Start a ServerApp (CoAP on a free port) on a loop in a daemon thread."""
    sections: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (overrides or {}).items()}
    sections["server"] = {
        "data_dir": str(tmp_path / "data"),
        "coap": "127.0.0.1:0",
        **sections.get("server", {}),
    }
    app = ServerApp(load(overrides=sections, environ={}))
    loop = asyncio.new_event_loop()
    started: Future[None] = Future()

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(app.start())
        except BaseException as exc:
            started.set_exception(exc)
            return
        started.set_result(None)
        loop.run_forever()

    thread = threading.Thread(target=main, name="fuzz-server", daemon=True)
    thread.start()
    started.result(timeout=20)
    try:
        yield app, loop
    finally:
        asyncio.run_coroutine_threadsafe(app.stop(), loop).result(timeout=20)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
