# SPDX-License-Identifier: Apache-2.0
"""Reassembly of concatenated mobile-originated SMS, sans-IO.

The parts of one message share the originator and the concatenation reference of the
TS 23.040 9.2.3.24.1 (8-bit) or 9.2.3.24.8 (16-bit) information element, and may arrive in any
order, more than once, or not at all. :class:`Reassembler` collects them keyed by
(originator, destination, reference, total) and returns the text once every part is in; a
message that stays incomplete past its timeout comes back from :meth:`Reassembler.expire` so the
gateway can report the failure (DESIGN 2.4). Time is passed in by the caller (seconds, any
monotonic clock), so no test sleeps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from msgin5g.gateways.sms.encoding import UserData, decode_payload

__all__ = ["IncompleteMessage", "ReassembledMessage", "Reassembler"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReassembledMessage:
    """A complete message: the decoded text of all parts in order."""

    originator: str
    destination: str
    reference: int
    total: int
    text: str
    data_coding: int


@dataclass(frozen=True, slots=True)
class IncompleteMessage:
    """A message whose parts did not all arrive before the timeout."""

    originator: str
    destination: str
    reference: int
    total: int
    received: tuple[int, ...]
    """Sequence numbers that did arrive."""


@dataclass(slots=True)
class _Pending:
    total: int
    data_coding: int
    started: float
    payloads: dict[int, bytes] = field(default_factory=dict)


_Key = tuple[str, str, int, int]


class Reassembler:
    """Collects the parts of concatenated messages.

    Args:
        timeout: seconds after the first part within which all parts must arrive.
        max_pending: bound on incomplete messages held; the oldest is dropped (and returned by
            the next :meth:`expire`) when a new one would exceed it.
    """

    def __init__(self, timeout: float = 60.0, max_pending: int = 10_000) -> None:
        self._timeout = timeout
        self._max_pending = max_pending
        self._pending: dict[_Key, _Pending] = {}
        self._evicted: list[IncompleteMessage] = []

    def __len__(self) -> int:
        return len(self._pending)

    def add(
        self, originator: str, destination: str, user_data: UserData, now: float
    ) -> ReassembledMessage | None:
        """Add one received part; return the whole message when this part completes it.

        A message without a concatenation IE is complete at once. A repeated part replaces the
        earlier copy (an SMSC may redeliver after a lost deliver_sm_resp).
        """
        concat = user_data.concat
        if concat is None or concat.total == 1:
            return ReassembledMessage(
                originator,
                destination,
                concat.reference if concat else 0,
                1,
                decode_payload(user_data.payload, user_data.data_coding),
                user_data.data_coding,
            )
        key = (originator, destination, concat.reference, concat.total)
        pending = self._pending.get(key)
        if pending is None:
            if len(self._pending) >= self._max_pending:
                self._evict_oldest()
            pending = _Pending(concat.total, user_data.data_coding, now)
            self._pending[key] = pending
        pending.payloads[concat.sequence] = user_data.payload
        if len(pending.payloads) < pending.total:
            return None
        del self._pending[key]
        joined = b"".join(pending.payloads[i] for i in range(1, pending.total + 1))
        return ReassembledMessage(
            originator,
            destination,
            concat.reference,
            concat.total,
            decode_payload(joined, pending.data_coding),
            pending.data_coding,
        )

    def expire(self, now: float) -> list[IncompleteMessage]:
        """Drop and return the messages older than the timeout (and any evicted ones)."""
        out = self._evicted
        self._evicted = []
        deadline = now - self._timeout
        for key in [k for k, p in self._pending.items() if p.started <= deadline]:
            out.append(self._incomplete(key, self._pending.pop(key)))
        return out

    def _evict_oldest(self) -> None:
        key = min(self._pending, key=lambda k: self._pending[k].started)
        pending = self._pending.pop(key)
        logger.warning("concatenated SMS evicted: too many pending", extra={"reference": key[2]})
        self._evicted.append(self._incomplete(key, pending))

    @staticmethod
    def _incomplete(key: _Key, pending: _Pending) -> IncompleteMessage:
        return IncompleteMessage(key[0], key[1], key[2], key[3], tuple(sorted(pending.payloads)))
