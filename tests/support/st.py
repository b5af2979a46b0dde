# SPDX-License-Identifier: Apache-2.0
"""Run schemathesis v4 (the `st` CLI, as a subprocess) against an official 3GPP file read in
place, with the checks the issues name, and return what it really sent and got back."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)
PHASES = "examples,coverage,fuzzing,stateful"
MAX_EXAMPLES = 50


def run(
    spec: Path,
    base: str,
    workdir: Path,
    *,
    hooks: tuple[str, str],
    log: Callable[[], str],
    env: dict[str, str] | None = None,
    request_timeout: int = 5,
    timeout: float = 300,
    checks: tuple[str, ...] = CHECKS,
    mode: str = "all",
    max_examples: int = MAX_EXAMPLES,
    phases: str = PHASES,
) -> dict[tuple[str, str], set[int]]:
    """Run every check on `spec` at `base` (the API's `{apiRoot}/<apiName>/v1`); `checks`,
    `mode`, `max_examples` and `phases` narrow or widen the run (the fuzz tests).

    `hooks` is (module name, source) written into `workdir`. Asserts a clean run and that every
    request stayed under `base` with no 5xx; returns the statuses seen per (method, path below
    `base`).
    """
    module, source = hooks
    (workdir / f"{module}.py").write_text(source)
    config = workdir / "schemathesis.toml"
    config.write_text("# empty: every setting is on the command line\n")
    har = workdir / "run.har"
    # `python -m schemathesis.cli` is the `st` entry point, run by this very interpreter.
    command = [
        sys.executable, "-m", "schemathesis.cli", "--no-color", "--config-file", str(config),
        "run", str(spec), "--url", base, "--checks", ",".join(checks), "--phases", phases,
        "--mode", mode, "--max-examples", str(max_examples), "--seed", "1",
        "--request-timeout", str(request_timeout),
        "--report", "har", "--report-har-path", str(har),
    ]  # fmt: skip
    full_env = {
        **os.environ,
        **(env or {}),
        "SCHEMATHESIS_HOOKS": module,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(workdir), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        command, cwd=workdir, env=full_env, capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip
    output = f"$ {' '.join(command)}\n{done.stdout}\n{done.stderr}\n--- peer log ---\n{log()}"
    assert done.returncode == 0, output
    assert f"Base URL:         {base}" in done.stdout, output

    entries = json.loads(har.read_text())["log"]["entries"]
    assert entries, output
    prefix = urlsplit(base).path
    statuses: dict[tuple[str, str], set[int]] = collections.defaultdict(set)
    for entry in entries:
        path = urlsplit(entry["request"]["url"]).path
        assert path.startswith(f"{prefix}/"), path
        assert entry["response"]["status"] < 500, entry
        statuses[(entry["request"]["method"], path.removeprefix(prefix))].add(
            entry["response"]["status"]
        )
    return statuses


def assert_success_and_client_error(seen: set[int], success: int, operation: object) -> None:
    """Both kinds of response were exercised, so both were checked against the schema."""
    assert success in seen, f"{operation} never answered {success}: {sorted(seen)}"
    assert any(400 <= s < 500 for s in seen), f"{operation} never answered 4xx: {sorted(seen)}"
