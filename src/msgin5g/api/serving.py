# SPDX-License-Identifier: Apache-2.0
"""Running the embedded HTTP server of the MSGin5G Server and of the gateways: a port check
before binding and a bounded shutdown (ADR 0002)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 2.0
"""After SIGTERM, how long the HTTP server may wait for open connections to close. Requests in
flight finish in milliseconds; what granian would otherwise wait for without end are the idle
keep-alive connections that peers and gateways hold open to us."""


async def serve_until_stopped(serving: Coroutine[Any, Any, None], stopping: asyncio.Event) -> None:
    """Serve until `stopping` is set, then give open connections SHUTDOWN_GRACE_S to close."""
    task = asyncio.ensure_future(serving)
    stopped = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # an error of the HTTP server itself (a port taken, ...)
            return
        done, _ = await asyncio.wait({task}, timeout=SHUTDOWN_GRACE_S)
        if not done:
            log.info("closing connections still open after the grace period")
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        stopped.cancel()


def check_port_free(host: str, port: int) -> None:
    """Fail fast when another process listens on the HTTP port: granian binds with
    SO_REUSEPORT, which would otherwise let two servers share one port silently."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
