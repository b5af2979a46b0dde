# SPDX-License-Identifier: Apache-2.0
"""Request and response objects of the raw ASGI app, and body intake with its limits.

TS 29.500 5.2.7 conventions: JSON bodies only (415 otherwise), a configurable body limit
(413), a Content-Length that disagrees with the body (411).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from msgin5g.core.errors import MsgIn5GError
from msgin5g.security.principal import Principal

JSON = b"application/json"
PROBLEM_JSON = b"application/problem+json"


class HttpError(MsgIn5GError):
    """An error that is already an HTTP status (411, 413, 415, 405, 400 for bad paths)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        cause: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(detail, cause=cause)
        self.status = status
        self.headers = headers or []


@dataclass(slots=True)
class Request:
    """What a handler sees of one HTTP request."""

    method: str
    path: str
    headers: Mapping[bytes, bytes]
    body: bytes
    scheme: str
    server: tuple[str, int] | str | None
    """The listening address: (host, port) from ASGI, "host:port" from RSGI."""
    params: dict[str, str] = field(default_factory=dict)
    principal: Principal | None = None
    """The authenticated client; None when authentication is off (ADR 0015)."""

    def base_url(self, api_root: str | None) -> str:
        """The apiRoot used in absolute URIs (Location): configured, else from Host."""
        if api_root:
            return api_root.rstrip("/")
        host = self.headers.get(b"host") or self.headers.get(b":authority")
        if host:
            return f"{self.scheme}://{host.decode('latin-1')}"
        if isinstance(self.server, str):
            return f"{self.scheme}://{self.server}"
        if self.server:
            return f"{self.scheme}://{self.server[0]}:{self.server[1]}"
        return f"{self.scheme}://localhost"


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: bytes | None = JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


class RefusedUnread(HttpError):
    """Refused by the request head alone: the body has not been read (the app drains it)."""


def check_head(headers: Mapping[bytes, bytes], limit: int, *, needs_json: bool) -> int | None:
    """Refuse by the headers alone (415, 411, 413); the declared Content-Length, if any."""
    if needs_json:
        ctype = headers.get(b"content-type", b"")
        if ctype != JSON and ctype.split(b";", 1)[0].strip().lower() != JSON:
            raise RefusedUnread(
                415,
                "the request body must be application/json",
                cause="UNSUPPORTED_MEDIA_TYPE",
            )
    raw_length = headers.get(b"content-length")
    if raw_length is None:
        return None
    try:
        declared = int(raw_length)
    except ValueError:
        raise RefusedUnread(
            411, "Content-Length is not a number", cause="INCORRECT_LENGTH"
        ) from None
    if declared > limit:
        raise RefusedUnread(413, _too_large_detail(limit), cause="PAYLOAD_TOO_LARGE")
    return declared


def check_body(body: bytes, declared: int | None, *, needs_json: bool) -> bytes:
    """Refuse a body that disagrees with its Content-Length (411) or holds U+0000 (400)."""
    if declared is not None and declared != len(body):
        raise HttpError(411, "Content-Length does not match the body", cause="INCORRECT_LENGTH")
    if needs_json and b"\\u0000" in body and _has_nul(body):
        raise HttpError(
            400,
            "strings must not contain U+0000 (binary content travels as base64, DESIGN 2.1)",
            cause="INVALID_MSG_FORMAT",
        )
    return body


def _too_large_detail(limit: int) -> str:
    return f"the body is larger than the limit of {limit} bytes"


def too_large(limit: int) -> HttpError:
    return HttpError(413, _too_large_detail(limit), cause="PAYLOAD_TOO_LARGE")


async def read_body(
    receive: Any, headers: Mapping[bytes, bytes], limit: int, *, needs_json: bool, drain: int = 0
) -> bytes:
    """Read an ASGI request body, enforcing the content type and the size limit; a body over
    the limit is still read and dropped up to `drain` bytes before the refusal."""
    declared = check_head(headers, limit, needs_json=needs_json)
    body = b""
    taken = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HttpError(400, "the client went away", cause="UNSPECIFIED_MSG_FAILURE")
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        taken += len(chunk)
        if taken > limit:
            if more and taken <= drain:
                body = b""
                continue
            raise too_large(limit)
        body = body + chunk if body else chunk
    return check_body(body, declared, needs_json=needs_json)


def _has_nul(body: bytes) -> bool:
    """Whether any JSON string (key or value) of `body` holds U+0000, which no store column
    can keep; a body that is not JSON is left to the decoder's error."""
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return False
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
