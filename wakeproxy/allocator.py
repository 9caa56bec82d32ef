"""The C allocator's settings for the daemon: large reads must not cost a syscall each.

A proxy moving large bodies allocates and frees a buffer of up to ~256 KiB per read.
glibc serves allocations above `M_MMAP_THRESHOLD` (128 KiB by default) with a fresh
`mmap` and returns them with `munmap` — two system calls and page faults per read — and
only raises that threshold by itself if some earlier allocation happens to teach it to.
Whether that happened depended on which libraries were imported: measured, a 1 MB
response cost ~1.0 ms of CPU on a plain install and ~0.33 ms once the threshold was up.
So the daemon sets it, and the trim threshold that goes with it, explicitly and once.

A user's own `MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_` win: then nothing is
changed. Other C libraries (musl) or systems: nothing is changed either.
"""

from __future__ import annotations

import ctypes
import os
import sys

# From glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# Reads of up to 256 KiB (uvloop's read buffer) and their copies come from the heap.
MMAP_THRESHOLD = 4 * 1024 * 1024
# Freed memory at the top of the heap is given back to the system only beyond this, so a
# steady stream of large bodies does not grow and shrink the heap on every response;
# memory stays bounded by it after a burst.
TRIM_THRESHOLD = 32 * 1024 * 1024

_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def tune_allocator() -> bool:
    """Set glibc's mmap and trim thresholds; whether they were set."""
    if not sys.platform.startswith("linux") or any(k in os.environ for k in _USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success (glibc); anything else leaves the defaults.
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
