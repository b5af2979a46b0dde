# SPDX-License-Identifier: Apache-2.0
"""The RSGI side of the HTTP app: granian's native interface, served in production (ADR 0021).

RSGI hands the app the request head as one object and the body with one await, and takes the
answer in one call: fewer Python objects and event-loop turns per request than ASGI's message
dicts. The ASGI side stays for in-process tests and other ASGI servers; both share the app's
routing, admission and error handling (api/app.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from granian._granian import RSGIProtocolClosed as ProtocolClosed
from granian._granian import RSGIProtocolError as ProtocolError

from msgin5g.api.http import HttpError, Response, check_body, check_head, too_large


class RsgiHeaders(Mapping[bytes, bytes]):
    """Request headers by lower-case byte name, read through from granian's header map.

    `host` falls back to the HTTP/2 `:authority` pseudo-header, as ASGI servers present it.
    """

    __slots__ = ("_authority", "_headers")

    def __init__(self, headers: Any, authority: str | None) -> None:
        self._headers = headers
        self._authority = authority

    def get(self, key: bytes, default: Any = None) -> Any:
        value = self._headers.get(_text(key))
        if value is None:
            if key == b"host" and self._authority:
                return self._authority.encode("latin-1")
            return default
        return value.encode("latin-1")

    def __getitem__(self, key: bytes) -> bytes:
        value: bytes | None = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[bytes]:
        return (key.encode("latin-1") for key in self._headers.keys())  # noqa: SIM118 (no __iter__)

    def __len__(self) -> int:
        return len(self._headers.keys())


async def read_body(
    proto: Any, headers: Mapping[bytes, bytes], limit: int, *, needs_json: bool, drain: int = 0
) -> bytes:
    """The whole body: at once when its declared length is within `limit`, else by chunks
    (no Content-Length: HTTP/1.1 chunked or HTTP/2 without one) until the limit is passed, then
    read and dropped up to `drain` bytes before the refusal."""
    declared = check_head(headers, limit, needs_json=needs_json)
    try:
        if declared is not None:
            body: bytes = await proto()
        else:
            body = b""
            taken = 0
            stop = max(limit, drain)
            async for chunk in proto:
                taken += len(chunk)
                if taken <= limit:
                    body = body + chunk if body else chunk
                elif taken > stop:
                    break
            if taken > limit:
                raise too_large(limit)
    except (ProtocolClosed, ProtocolError):  # the client went away mid-body (as ASGI's case)
        raise HttpError(400, "the client went away", cause="UNSPECIFIED_MSG_FAILURE") from None
    return check_body(body, declared, needs_json=needs_json)


async def discard_body(proto: Any, headers: Mapping[bytes, bytes], limit: int) -> None:
    """Take a refused request's unread body (up to `limit`) before answering (see
    app._AsgiBody); should it have been read after all, there is nothing left to take."""
    try:
        raw = headers.get(b"content-length")
        if raw is not None and raw.isdigit() and int(raw) <= limit:
            await proto()
            return
        taken = 0
        async for chunk in proto:
            taken += len(chunk)
            if taken > limit:
                return
    except (ProtocolError, ProtocolClosed):
        return


_TEXT: dict[bytes, str] = {}


def _text(value: bytes) -> str:
    text = _TEXT.get(value)
    if text is None:
        text = value.decode("latin-1")
        if len(_TEXT) < 256:  # header names and the few content types; values stay uncached
            _TEXT[value] = text
    return text


_ONLY_TYPE: dict[bytes, list[tuple[str, str]]] = {}


def send(proto: Any, response: Response) -> None:
    """Answer in one call; granian adds Content-Length for a body given whole."""
    ctype = response.content_type if response.body else None
    if not response.headers and ctype is not None:  # the common answer: one shared header list
        headers = _ONLY_TYPE.get(ctype)
        if headers is None:
            headers = _ONLY_TYPE[ctype] = [("content-type", _text(ctype))]
    else:
        headers = [(_text(k), v.decode("latin-1")) for k, v in response.headers]
        if ctype is not None:
            headers.append(("content-type", _text(ctype)))
    try:  # noqa: SIM105 (try costs less than contextlib.suppress on this path)
        proto.response_bytes(response.status, headers, response.body)
    except (ProtocolClosed, ProtocolError):
        pass  # the client left before its answer; what was accepted stays accepted
