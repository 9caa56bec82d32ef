"""The daemon raises glibc's mmap threshold itself, unless the user set it (Linux, glibc:
what CI and the container image run)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from wakeproxy.allocator import tune_allocator

_PROBE = """
import ctypes, sys
from wakeproxy.allocator import tune_allocator
libc = ctypes.CDLL(None)
print(tune_allocator())
# A 1 MiB block: from the heap once the threshold is up, so glibc's statistics count
# no mmapped block while it is held.
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                 "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
before = libc.mallinfo2().hblks
block = libc.malloc(1 << 20)
print(libc.mallinfo2().hblks - before)
libc.free(block)
"""


def _probe(env: dict[str, str]) -> list[str]:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         env=env, timeout=30, check=True)
    return out.stdout.split()


def test_large_buffers_come_from_the_heap_not_from_a_fresh_mapping_each() -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    tuned, mapped = _probe(base)
    assert tuned == "True" and mapped == "0"
    # The user's own setting wins: nothing is changed, and glibc's default (128 KiB)
    # maps a 1 MiB block.
    untouched, mapped = _probe({**base, "MALLOC_TRIM_THRESHOLD_": "131072"})
    assert untouched == "False" and mapped == "1"


def test_a_user_setting_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert tune_allocator() is False
