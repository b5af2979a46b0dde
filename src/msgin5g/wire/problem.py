# SPDX-License-Identifier: Apache-2.0
"""`ProblemDetails` and `InvalidParam` of TS 29.571 (clause 5.2.4), as TS 29.500 5.2.7 uses them."""

from __future__ import annotations

import msgspec


class InvalidParam(msgspec.Struct, omit_defaults=True):
    """`InvalidParam`: `param` is a JSON Pointer for body attributes."""

    param: str
    reason: str | None = None


class ProblemDetails(msgspec.Struct, omit_defaults=True):
    """`ProblemDetails` (the fields this project emits)."""

    type: str | None = None
    title: str | None = None
    status: int | None = None
    detail: str | None = None
    instance: str | None = None
    cause: str | None = None
    invalidParams: list[InvalidParam] | None = None
