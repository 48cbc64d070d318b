"""glibc's malloc, set up for tensors: keep the memory that torch frees for the next tensor.

By default glibc serves every block over 32 MB (one activation of a photo: 64 channels at 1024x688
in float32 is 180 MB) with a fresh ``mmap`` and unmaps it when freed, so each such tensor pays the
kernel's page faults again, layer after layer. On this project's 2-core CPU that was half the time of
stylizing a 1024 px photo. Serving every block from the heap and never trimming it lets freed
activations be reused as they are: the cost is that a process keeps its peak memory until it exits,
which is why only the command-line entry points (which own their process) turn it on, and why
``held_free`` lets the memory budget of tiled inference count that memory as available.
"""

from __future__ import annotations

import ctypes
import platform
from functools import cache

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt's parameters, from glibc's malloc.h


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


@cache
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if hasattr(libc, "mallinfo2"):  # glibc >= 2.33
        libc.mallinfo2.restype = _Mallinfo2
    return libc


def reuse_freed_memory() -> bool:
    """Serve every allocation from the heap and never give freed memory back to the system (glibc
    only; elsewhere nothing changes). Returns whether it took effect."""
    libc = _glibc()
    if libc is None:
        return False
    # mallopt returns 1 on success; -1 for the trim threshold means "never trim".
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, -1))


def held_free() -> int:
    """Bytes that malloc holds free in this process (reusable by the next tensor without asking the
    system), 0 where it cannot be told."""
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return 0
    return int(libc.mallinfo2().fordblks)
