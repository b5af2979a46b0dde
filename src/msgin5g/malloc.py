# SPDX-License-Identifier: Apache-2.0
"""The C allocator's threshold for large blocks, pinned for a long-running process (ADR 0026).

glibc's malloc serves a block of at least `M_MMAP_THRESHOLD` bytes (128 KiB at start) with its
own mmap and returns it to the system on free. Each time such a block is freed it raises the
threshold to that block's size (up to 32 MiB), so later blocks of that size come from the heap,
whose free space is kept, not returned. A bounded cache that churns, such as the 100,000 recent
acknowledgements of `DeliveryService`, rebuilds its hash table of about 14 MiB every 250,000
messages: after the first rebuilds the server's resident memory stepped up by 4 and then 10 MiB
(at 424,500 and 923,500 messages) and stayed there. Setting the threshold explicitly turns the
raising off, so tables that large always live in their own mapping and leave no hole behind.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_MMAP_THRESHOLD = -3
"""glibc's `mallopt` parameter number (malloc.h)."""

DEFAULT_THRESHOLD = 128 * 1024
"""glibc's own starting value: blocks of this size or larger get a mapping of their own."""


def pin_mmap_threshold(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Pin glibc's mmap threshold at `threshold` bytes; True if it was set.

    Does nothing where the C library is not glibc, or where the operator already chose a value
    (`MALLOC_MMAP_THRESHOLD_`, or `glibc.malloc.mmap_threshold` in `GLIBC_TUNABLES`).
    """
    if not sys.platform.startswith("linux"):
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    if "glibc.malloc.mmap_threshold" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
