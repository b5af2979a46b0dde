# SPDX-License-Identifier: Apache-2.0
"""Schemathesis v4 negative-data runs (DESIGN 5) against a real server process, for the three
MSGS APIs read in place from the official TS 29.538 files: every invalid body, header or path
gets a 4xx ProblemDetails, never a 5xx (`not_a_server_error`), and is refused
(`negative_data_rejection`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import oas, st
from tests.support.procs import ServerProcess

HOOKS = '"""No hooks: negative cases are sent exactly as schemathesis makes them."""\n'
APIS = ("msgs-asregistration", "msgs-msgdelivery", "msgs-topiclistevent")


@pytest.mark.parametrize("api_name", APIS)
def test_negative_data_never_a_server_error(
    server: ServerProcess, tmp_path: Path, api_name: str
) -> None:
    statuses = st.run(
        oas.spec_path(api_name),
        f"{server.url}/{api_name}/v1",
        tmp_path,
        hooks=("msgin5g_st_negative", HOOKS),
        log=server.log,
        checks=("not_a_server_error", "negative_data_rejection"),
        mode="negative",
        max_examples=40,
        phases="examples,coverage,fuzzing",
        timeout=240,
    )
    seen = set().union(*statuses.values())
    assert seen, statuses
    assert all(400 <= s < 500 for s in seen), statuses
    assert "ERROR" not in server.log(), server.log()[-3000:]
