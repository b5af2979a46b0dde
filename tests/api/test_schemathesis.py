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
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tests.support import oas
from tests.support.procs import ServerProcess

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)
PHASES = "examples,coverage,fuzzing,stateful"
MAX_EXAMPLES = 50

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
    spec = oas.spec_path(api_name)
    base = f"{server.url}/{api_name}/v1"
    (tmp_path / "msgin5g_st_hooks.py").write_text(HOOKS)
    config = tmp_path / "schemathesis.toml"
    config.write_text("# empty: every setting is on the command line\n")
    har = tmp_path / "run.har"
    # `python -m schemathesis.cli` is the `st` entry point, run by this very interpreter.
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--no-color",
        "--config-file",
        str(config),
        "run",
        str(spec),
        "--url",
        base,
        "--checks",
        ",".join(CHECKS),
        "--phases",
        PHASES,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        "1",
        "--request-timeout",
        "5",
        "--report",
        "har",
        "--report-har-path",
        str(har),
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "msgin5g_st_hooks",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
        "MSGIN5G_ST_SERVER": server.url,
    }
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    output = (
        f"$ {' '.join(command)}\n{done.stdout}\n{done.stderr}\n--- server log ---\n{server.log()}"
    )
    assert done.returncode == 0, output
    assert f"Base URL:         {base}" in done.stdout, output

    # What was really sent: on the file's paths under our base, and every operation of the file
    # answered at least one success and one error (so both kinds of response were checked).
    entries = json.loads(har.read_text())["log"]["entries"]
    assert entries, output
    statuses: dict[tuple[str, str], set[int]] = collections.defaultdict(set)
    for entry in entries:
        path = urlsplit(entry["request"]["url"]).path
        assert path.startswith(f"/{api_name}/v1/"), path
        assert entry["response"]["status"] < 500, entry
        operation = path.removeprefix(f"/{api_name}/v1")
        if operation.startswith("/registrations/"):
            operation = "/registrations/{registrationId}"
        statuses[(entry["request"]["method"], operation)].add(entry["response"]["status"])
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
        seen = statuses[operation]
        assert success in seen, f"{operation} never answered {success}: {sorted(seen)}"
        assert any(400 <= s < 500 for s in seen), f"{operation} never answered 4xx: {sorted(seen)}"
