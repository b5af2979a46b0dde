# SPDX-License-Identifier: Apache-2.0
"""The pinned mmap threshold (ADR 0026): a churning bounded cache leaves memory flat."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from msgin5g import malloc
from msgin5g.cli import main as cli

# The shape of DeliveryService's recent acknowledgements: an OrderedDict of 100,000
# (originator, msgId) keys, oldest out first. Its hash table is rebuilt at 175,000 inserts (its
# final size), then every 249,525; glibc's raised threshold keeps the 424,525th rebuild's
# memory in the heap. Prints the anonymous RSS after the table's final size and at the end.
_CHURN = """
import sys
from collections import OrderedDict
from msgin5g.malloc import pin_mmap_threshold

def anon_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon"):
                return int(line.split()[1])

if sys.argv[1] == "pin":
    assert pin_mmap_threshold()
cache = OrderedDict()
settled = 0
for n in range(1, 450_001):
    cache[(f"as:{n % 200}", f"0190c0de-0000-7000-8000-{n:012d}")] = n
    if len(cache) > 100_000:
        cache.popitem(last=False)
    if n == 200_000:
        settled = anon_kib()
print(anon_kib() - settled)
"""


def _growth_kib(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    src = str(Path(malloc.__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, "-c", _CHURN, mode],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_churning_cache_keeps_its_memory_flat_once_pinned() -> None:
    grown_free = _growth_kib("free")
    grown_pinned = _growth_kib("pin")
    # without the pin, the rebuild at 424,525 inserts leaves about 4 MiB behind
    assert grown_free > 3 * 1024, grown_free
    assert grown_pinned < 1024, grown_pinned


def test_an_operators_own_choice_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1048576")
    assert malloc.pin_mmap_threshold() is False
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=1048576")
    assert malloc.pin_mmap_threshold() is False


def test_the_server_command_pins_it_before_serving(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(cli, "pin_mmap_threshold", lambda: calls.append("pin") or True)

    def run_loop(main: object, loop: str) -> None:
        calls.append("serve")
        main.close()  # type: ignore[attr-defined]

    monkeypatch.setattr(cli, "run_loop", run_loop)
    assert cli.main(["server", "--data-dir", str(tmp_path)]) == 0
    assert calls == ["pin", "serve"]


def test_a_gateway_pins_it_before_serving(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from msgin5g.cli.gateway import main as gateway_main

    calls: list[str] = []
    monkeypatch.setattr(malloc, "pin_mmap_threshold", lambda: calls.append("pin") or True)

    async def serve(gateway: object, http: object) -> None:
        calls.append("serve")

    monkeypatch.setattr("msgin5g.gateways.common.serve", serve)
    args = ["mqtt", "--server", "http://127.0.0.1:1", "--data-dir", str(tmp_path)]
    assert gateway_main([*args, "--broker", "127.0.0.1:1883", "--ue", "a"]) == 0
    assert calls == ["pin", "serve"]
