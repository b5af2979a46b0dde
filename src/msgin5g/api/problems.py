# SPDX-License-Identifier: Apache-2.0
"""Errors to ProblemDetails (TS 29.500 5.2.7.2; TS 29.571 ProblemDetails): the one table.

Body decoding errors of msgspec become 400 with `invalidParams` holding JSON Pointers.
"""

from __future__ import annotations

import logging
import re

import msgspec

from msgin5g.api.http import PROBLEM_JSON, HttpError, Response
from msgin5g.core.errors import (
    Forbidden,
    InvalidField,
    InvalidRequest,
    MsgIn5GError,
    NotFound,
    Overloaded,
    StorageFailure,
)
from msgin5g.wire.problem import InvalidParam, ProblemDetails

log = logging.getLogger(__name__)

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

STATUS_BY_ERROR: tuple[tuple[type[Exception], int], ...] = (
    (InvalidRequest, 400),
    (Forbidden, 403),
    (NotFound, 404),
    (Overloaded, 429),
    (StorageFailure, 503),
)

_encoder = msgspec.json.Encoder()


def problem(
    status: int,
    detail: str,
    cause: str,
    *,
    invalid: list[InvalidField] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> Response:
    body = ProblemDetails(
        title=_TITLES.get(status),
        status=status,
        detail=detail,
        cause=cause,
        invalidParams=[InvalidParam(param=f.pointer, reason=f.reason) for f in invalid]
        if invalid
        else None,
    )
    return Response(status, _encoder.encode(body), PROBLEM_JSON, headers or [])


def from_exception(exc: Exception) -> Response:
    """Map any exception to a ProblemDetails response; unexpected ones are logged as bugs."""
    if isinstance(exc, HttpError):
        return problem(exc.status, exc.detail, exc.cause, headers=exc.headers)
    if isinstance(exc, InvalidRequest):
        return problem(400, exc.detail, exc.cause, invalid=exc.fields)
    if isinstance(exc, Overloaded):
        return problem(
            429, exc.detail, exc.cause, headers=[(b"retry-after", str(exc.retry_after).encode())]
        )
    for kind, status in STATUS_BY_ERROR:
        if isinstance(exc, kind):
            cause = exc.cause if isinstance(exc, MsgIn5GError) else "SYSTEM_FAILURE"
            headers = [(b"retry-after", b"1")] if status == 503 else None
            return problem(status, str(exc), cause, headers=headers)
    log.error("unexpected error while serving a request", exc_info=exc)
    return problem(500, "internal error", "SYSTEM_FAILURE")


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _pointer(path: str) -> str:
    return "".join("/" + (m.group(1) or m.group(2)) for m in _SEGMENT.finditer(path))


def decode_error(exc: msgspec.DecodeError, mandatory: frozenset[str]) -> InvalidRequest:
    """Turn a msgspec decoding error into InvalidRequest with a JSON Pointer."""
    if not isinstance(exc, msgspec.ValidationError):
        return InvalidRequest(f"the body is not valid JSON: {exc}", cause="INVALID_MSG_FORMAT")
    match = _AT.match(str(exc))
    text = match.group("msg") if match else str(exc)
    pointer = _pointer(match.group("path") or "") if match else ""
    missing = _MISSING.match(text)
    if missing:
        pointer = f"{pointer}/{missing.group('field')}"
        return InvalidRequest(
            f"{pointer} is missing",
            cause="MANDATORY_IE_MISSING",
            fields=[InvalidField(pointer, "mandatory attribute missing")],
        )
    top = pointer.split("/")[1] if pointer.count("/") >= 1 else ""
    cause = (
        "MANDATORY_IE_INCORRECT" if (top in mandatory or not pointer) else "OPTIONAL_IE_INCORRECT"
    )
    return InvalidRequest(
        f"{pointer or 'the body'}: {text}",
        cause=cause,
        fields=[InvalidField(pointer, text)],
    )
