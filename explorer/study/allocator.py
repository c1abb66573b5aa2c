"""Keep freed memory for reuse during sweeps and studies (glibc only; elsewhere nothing happens).

A sweep evaluates the same (layers x configurations) arrays call after call, each a few hundred KB
to a few MB. glibc's malloc serves such sizes with ``mmap`` and returns them to the system on
``free`` (or trims the heap top), so every evaluation pays the page faults of touching fresh
memory again: on this project's 2-core benchmark machine that was more than half of the time of a
1,408-configuration mobilenet_v2 sweep. :func:`retain_freed_memory` raises the mmap threshold to
32 MiB and the trim threshold to 256 MiB (``mallopt``), so such arrays come from the heap and
freed ones are reused; the process keeps at most 256 MiB it no longer uses. Arrays above 32 MiB
are still mapped and unmapped (large enough to amortize the faults).

The evaluator calls it once per process. ``EXPLORER_MALLOC=system`` leaves the allocator alone;
so do glibc's own ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` when set.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20

_done: list[bool] = []


def retain_freed_memory() -> bool:
    """Tune glibc's malloc as described above, once; True when it was tuned (now or before)."""
    if _done:
        return _done[0]
    _done.append(_tune())
    return _done[0]


def _tune() -> bool:
    if not sys.platform.startswith("linux") or os.environ.get("EXPLORER_MALLOC") == "system":
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False  # the user chose
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
