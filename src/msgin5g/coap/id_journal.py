# SPDX-License-Identifier: Apache-2.0
"""CoAP message ids kept across restarts (RFC 7252 §4.4; ADR 0006 addendum).

A UE remembers the message ids it saw from the server for EXCHANGE_LIFETIME (247 s) and takes
a Confirmable message with one of them for a duplicate (§4.5): it ACKs without passing it on.
A server that restarts and starts each UE's ids afresh may land on one the UE saw just before,
and a notification would be counted as delivered that the UE never got.

:class:`IdJournal` is the file where :class:`~msgin5g.coap.message.MessageIds` reserves each
endpoint's ids block by block before it uses them: one appended line per block,
``<host>\\t<port>\\t<limit>\\t<low>\\t<high>`` (another kind of address as one JSON field
instead of host and port), with the times on the wall clock. The file is rewritten with only
the endpoints still kept once it holds more than twice their number, and at a clean stop; a
start appends to it. Each line is written to the file before an id of its block goes out, so the
journal survives kill -9 (the kernel has it); it is not fsynced, so a power loss may lose the
last lines, when the UEs' own state is mostly lost too.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from pathlib import Path

__all__ = ["IdJournal"]

log = logging.getLogger(__name__)

Entry = tuple[Hashable, int, float, float]


class IdJournal:
    """The reservation file of one CoAP endpoint. `now` is the clock `MessageIds` runs on
    (the event loop's); times are stored on the wall clock and read back onto `now`."""

    def __init__(
        self,
        path: Path,
        now: Callable[[], float],
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._offset = wall() - now()  # wall clock = caller's clock + offset
        self._fd = -1
        self._records = 0

    @property
    def records(self) -> int:
        return self._records

    def load(self) -> list[Entry]:
        """The last reservation of each endpoint in the file, times on the caller's clock.
        A torn or unreadable line (a crash mid-write) is skipped."""
        latest: dict[Hashable, Entry] = {}
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        skipped = 0
        local = self._local
        for line in text.splitlines():
            fields = line.split("\t")
            try:
                if len(fields) == 5:
                    host, port, limit, low, high = fields
                    remote: Hashable = (host, int(port))
                else:
                    remote_json, limit, low, high = fields
                    remote = _remote(json.loads(remote_json))
                latest[remote] = (remote, int(limit) & 0xFFFF, local(low), local(high))
            except (ValueError, TypeError):
                skipped += 1
        if skipped:
            log.warning("CoAP message id journal: %d unreadable lines skipped", skipped)
        return list(latest.values())

    def open(self) -> None:
        """Append to the file from now on (created if missing; a torn last line is ended)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            self._fail(exc)
            return
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                os.write(fd, b"\n")
        except OSError as exc:
            os.close(fd)
            self._fail(exc)
            return
        self._fd = fd

    def reserved(self, remote: Hashable, limit: int, low: float, high: float) -> None:
        if self._fd < 0:
            return
        try:
            os.write(self._fd, _line((remote, limit, low, high), self._offset))
        except OSError as exc:
            self._fail(exc)
            return
        self._records += 1

    def rewrite(self, entries: Iterable[Entry]) -> None:
        """Replace the file by `entries` (atomically: a new file renamed over the old)."""
        if self._records < 0:  # given up (_fail)
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with tmp.open("wb") as f:
                f.write(b"".join(_lines(entries, self._offset)))
            os.replace(tmp, self.path)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            self._fail(exc)
            return
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self._records = 0

    def close(self, entries: Iterable[Entry]) -> None:
        """A clean stop: leave only `entries` in the file."""
        if self._fd < 0:
            return
        self.rewrite(entries)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _fail(self, exc: OSError) -> None:
        """The file cannot be kept up to date (a full disk): an out-of-date file would make a
        restart continue behind ids already used, worse than a random start, so it goes, and
        ids are no longer recorded until the next start."""
        log.warning(
            "CoAP message id journal %s not writable (%s): removed; after a restart each "
            "UE's message ids start at random (RFC 7252 4.4)",
            self.path,
            exc,
        )
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._records = -1
        for path in (self.path, self.path.with_name(self.path.name + ".tmp")):
            try:
                path.unlink(missing_ok=True)
            except OSError:
                log.error("CoAP message id journal %s could not be removed either", path)

    def _local(self, text: str) -> float:
        value = float(text)
        if math.isnan(value):
            raise ValueError("nan")
        return value - self._offset


def _lines(entries: Iterable[Entry], offset: float) -> Iterator[bytes]:
    for entry in entries:
        yield _line(entry, offset)


def _line(entry: Entry, offset: float) -> bytes:
    remote, limit, low, high = entry
    times = f"{limit}\t{low + offset!r}\t{high + offset!r}\n"
    if (
        isinstance(remote, tuple)
        and len(remote) == 2
        and isinstance(remote[0], str)
        and isinstance(remote[1], int)
        and "\t" not in remote[0]
        and "\n" not in remote[0]
    ):
        return f"{remote[0]}\t{remote[1]}\t{times}".encode()
    return f"{json.dumps(remote)}\t{times}".encode()


def _remote(value: object) -> Hashable:
    """A remote address as the transport gives it: JSON turned a tuple into a list."""
    if isinstance(value, list):
        return tuple(_remote(v) for v in value)
    if isinstance(value, str | int):
        return value
    raise TypeError(f"not an address: {value!r}")
