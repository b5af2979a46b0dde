# SPDX-License-Identifier: Apache-2.0
"""Schemathesis v4 (the `st` CLI) against the real server, reading the official files in place.

The five checks below must all pass, for both MSGS files, in every phase. Two hooks keep the
generated data meaningful without narrowing the checks:

* positive bodies of deliver-as-message / deliver-ue-message get `oriAddr.addrType` "AS" /
  "UE". The schema allows any string there, but the server answers 400 for a sender of the
  wrong kind (as it must), so without this hardly any positive case would reach the 200 path
  and its MessageDeliveryAck would go unchecked;
* every other positive DELETE /registrations/{registrationId} gets the id of a registration
  made just before, so the 204 path is exercised as well as the 404.

Negative cases are never touched. The HAR report then proves that each operation answered both
a success and an error, on the path the file's servers url gives.
"""

from __future__ import annotations

import collections
import textwrap
from pathlib import Path

import pytest
from tests.support import oas, st
from tests.support.procs import ServerProcess

HOOKS = textwrap.dedent(
    '''
    """Schemathesis hooks written by tests/api/test_schemathesis.py (positive cases only)."""
    import itertools
    import os

    import httpx
    import schemathesis
    from schemathesis import GenerationMode

    SERVER = os.environ["MSGIN5G_ST_SERVER"]
    ORIGINATOR = {"/deliver-as-message": "AS", "/deliver-ue-message": "UE"}
    _deletes = itertools.count()
    _names = itertools.count()


    @schemathesis.hook
    def map_case(context, case):
        meta = case.meta
        if meta is None or meta.generation.mode is not GenerationMode.POSITIVE:
            return case
        kind = ORIGINATOR.get(case.path)
        body = case.body
        if kind and isinstance(body, dict) and isinstance(body.get("oriAddr"), dict):
            body["oriAddr"]["addrType"] = kind
        elif case.method == "DELETE" and next(_deletes) % 2 == 0:
            response = httpx.post(
                f"{SERVER}/msgs-asregistration/v1/registrations",
                json={"asSvcId": f"schemathesis-{next(_names)}"},
            )
            params = dict(case.path_parameters or {})
            params["registrationId"] = response.headers["location"].rsplit("/", 1)[1]
            case.path_parameters = params
        return case
    '''
)


@pytest.mark.parametrize("api_name", sorted(oas.SPEC_FILES))
def test_schemathesis_checks_pass(server: ServerProcess, tmp_path: Path, api_name: str) -> None:
    raw = st.run(
        oas.spec_path(api_name),
        f"{server.url}/{api_name}/v1",
        tmp_path,
        hooks=("msgin5g_st_hooks", HOOKS),
        log=server.log,
        env={"MSGIN5G_ST_SERVER": server.url},
        timeout=180,
    )
    statuses: dict[tuple[str, str], set[int]] = collections.defaultdict(set)
    for (method, operation), seen in raw.items():
        if operation.startswith("/registrations/"):
            operation = "/registrations/{registrationId}"
        statuses[(method, operation)] |= seen
    expected = {
        "msgs-asregistration": {
            ("POST", "/registrations"): 201,
            ("DELETE", "/registrations/{registrationId}"): 204,
        },
        "msgs-msgdelivery": {
            ("POST", "/deliver-as-message"): 200,
            ("POST", "/deliver-ue-message"): 200,
            ("POST", "/deliver-report"): 200,
        },
    }[api_name]
    for operation, success in expected.items():
        st.assert_success_and_client_error(statuses[operation], success, operation)
