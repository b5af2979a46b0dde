# SPDX-License-Identifier: Apache-2.0
"""Taking a changed PSK file (``ue.psk_file``) without a restart (ADR 0016).

The server checks the file every ``ue.psk_reload_interval_s`` (by modification time, size and
inode, so a replaced file or a re-pointed symlink counts too) and at once on SIGHUP. A valid
new file replaces the keys for the next handshake; the identities it drops or re-keys lose
their sessions then (``apply`` does that). An invalid file changes nothing: the error is
logged, never a key, and the keys in use stay until a valid file appears.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from msgin5g.coap.dtls_keys import PskFileError, UePsk, load_psk_file
from msgin5g.observability import Metrics

__all__ = ["PskWatch"]

log = logging.getLogger(__name__)


class PskWatch:
    """Reloads the PSK file when it changes; `apply` takes the new keys and returns how many
    DTLS sessions it ended."""

    def __init__(
        self,
        path: str | Path,
        current: tuple[UePsk, ...],
        apply: Callable[[tuple[UePsk, ...]], int],
        *,
        interval: float,
        metrics: Metrics,
    ) -> None:
        self._path = Path(path)
        self._current = current
        self._apply = apply
        self._interval = interval
        self._metrics = metrics
        self._seen = self._signature()
        self._task: asyncio.Task[None] | None = None

    @property
    def current(self) -> tuple[UePsk, ...]:
        return self._current

    async def start(self) -> None:
        if self._interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._poll(), name="psk-watch")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def reload(self) -> bool:
        """Read the file now (SIGHUP); True when its keys are in use afterwards."""
        self._seen = self._signature()
        try:
            psks = load_psk_file(self._path)
        except PskFileError as exc:
            self._metrics.inc("msgin5g_ue_psk_reloads_total", outcome="failed")
            log.error(
                "PSK file not reloaded; the %d identities in use stay: %s",
                len(self._current),
                exc,
            )
            return False
        old = {psk.identity: psk for psk in self._current}
        new = {psk.identity: psk for psk in psks}
        ended = self._apply(psks)
        self._current = psks
        self._metrics.inc("msgin5g_ue_psk_reloads_total", outcome="ok")
        log.info(
            "PSK file reloaded",
            extra={
                "identities": len(new),
                "added": len(new.keys() - old.keys()),
                "removed": len(old.keys() - new.keys()),
                "changed": sum(1 for i in new.keys() & old.keys() if new[i] != old[i]),
                "sessions_ended": ended,
            },
        )
        return True

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            signature = self._signature()
            if signature != self._seen:
                self.reload()

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            stat = os.stat(self._path)
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)
