# SPDX-License-Identifier: Apache-2.0
"""The domain error tree. Each error names its TS 29.500 / project cause.

    MsgIn5GError
    ├── InvalidRequest        400  (MANDATORY_IE_MISSING, MANDATORY_IE_INCORRECT, ...)
    ├── NotFound              404  (TARGET_NOT_FOUND, RESOURCE_URI_STRUCTURE_NOT_FOUND)
    ├── Forbidden             403
    ├── Overloaded            429 / 503 (NF_CONGESTION_RISK, NF_CONGESTION)
    ├── StorageFailure        503  (INSUFFICIENT_RESOURCES) the store could not commit
    └── IllegalTransition     500  a bug: a delivery moved against the lifecycle table

The mapping to HTTP status and ProblemDetails lives in one table in `api/problems.py`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class InvalidField:
    """One offending body attribute: `pointer` is a JSON Pointer (RFC 6901)."""

    pointer: str
    reason: str


class MsgIn5GError(Exception):
    """Root of every error the project raises on purpose."""

    cause = "UNSPECIFIED_MSG_FAILURE"

    def __init__(self, detail: str, *, cause: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if cause is not None:
            self.cause = cause


class InvalidRequest(MsgIn5GError):
    """The request body is malformed or breaks a rule of TS 29.538."""

    cause = "INVALID_MSG_FORMAT"

    def __init__(
        self,
        detail: str,
        *,
        cause: str | None = None,
        fields: list[InvalidField] | None = None,
    ) -> None:
        super().__init__(detail, cause=cause)
        self.fields = fields or []


class NotFound(MsgIn5GError):
    """The addressed resource or target does not exist."""

    cause = "TARGET_NOT_FOUND"


class Forbidden(MsgIn5GError):
    """The caller may not perform this operation."""

    cause = "UNSPECIFIED_MSG_FAILURE"


class Overloaded(MsgIn5GError):
    """The server refuses work to protect itself; retry after `retry_after` seconds."""

    cause = "NF_CONGESTION"

    def __init__(self, detail: str, *, retry_after: int = 1, cause: str | None = None) -> None:
        super().__init__(detail, cause=cause)
        self.retry_after = retry_after


class StorageFailure(MsgIn5GError):
    """The store could not commit (disk full, I/O error, closed): nothing was acknowledged."""

    cause = "INSUFFICIENT_RESOURCES"


class IllegalTransition(MsgIn5GError):
    """A delivery was asked to move along an edge the lifecycle table does not have."""

    cause = "SYSTEM_FAILURE"
