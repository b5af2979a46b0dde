# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the gateway tests: an in-process stand-in for the MSGin5G Server's uplink side.

`FakeServer` is a plain HTTP/1.1 listener on 127.0.0.1 that records what a gateway sends
(deliver-ue-message, deliver-report, UE registrations) and answers as the server would; it can
be stopped and started on the same port to play a server that is down. The gateway's HTTP
client tries h2c first, so this also exercises its HTTP/1.1 fallback. Tests that need the real
server use `tests.support.procs.ServerProcess`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest


async def _swallow(reader: asyncio.StreamReader, quiet: float = 0.05) -> None:
    """Read until the peer is quiet for `quiet` seconds or closes."""
    try:
        while True:
            async with asyncio.timeout(quiet):
                if not await reader.read(65536):
                    return
    except (TimeoutError, ConnectionError):
        return


async def eventually(predicate: Callable[[], bool], interval: float = 0.02) -> None:
    """Poll state that belongs to another party (a process, a peer); wrap in asyncio.timeout."""
    while not predicate():  # noqa: ASYNC110
        await asyncio.sleep(interval)


class FakeServer:
    """Records requests as (method, path, json body); answers 201/204/200 like the server."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.port = 0
        self.status: int | None = None
        """Force this status on every recorded request (e.g. 503)."""
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    def bodies(self, suffix: str, method: str = "POST") -> list[Any]:
        return [b for m, p, b in self.requests if m == method and p.endswith(suffix)]

    async def wait_for(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            await eventually(predicate)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                if line.startswith(b"PRI * HTTP/2.0"):
                    # an HTTP/1.1-only server's answer to the h2c preface: the client falls
                    # back to HTTP/1.1
                    await _swallow(reader)  # the rest of what the h2c client sends first
                    writer.write(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n")
                    await writer.drain()
                    await _swallow(reader, 1.0)  # let the client close first (no RST)
                    return
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    raw = await reader.readline()
                    if raw in (b"\r\n", b"\n", b""):
                        break
                    key, _, value = raw.decode("latin-1").partition(":")
                    headers[key.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, answer = self._answer(method, path, body)
                head = (
                    f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(answer)}\r\n\r\n"
                )
                writer.write(head.encode() + answer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            if task is not None:
                self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()

    def _answer(self, method: str, path: str, raw: bytes) -> tuple[int, bytes]:
        body: Any = json.loads(raw) if raw else None
        self.requests.append((method, path, body))
        if self.status is not None:
            return self.status, b'{"status":%d,"cause":"TEST"}' % self.status
        if method == "DELETE":
            return 204, b""
        if path.endswith("/registrations"):
            ids = [{"ueSvcId": u, "registrationId": f"reg-{u}"} for u in body["ueSvcIds"]]
            return 201, json.dumps({"registrations": ids}).encode()
        return 200, json.dumps({"oriAddr": body["oriAddr"], "msgId": body["msgId"]}).encode()


@pytest.fixture
async def fake_server() -> AsyncIterator[FakeServer]:
    server = await FakeServer().start()
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            await server.stop()
