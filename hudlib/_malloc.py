"""glibc malloc settings for the large temporary arrays of sampling and evaluation (applied on ``import hudlib``).

Why: with glibc's defaults a freed block of more than the (dynamic) mmap threshold goes back to the kernel, and so
does free memory above the trim threshold at the top of the heap (twice the last mmap threshold), so the next
tensor or array of that size is mapped again and every page of it faults. PyTorch and numpy allocate and free such
blocks (MiBs to hundreds of MiBs) at every network call and metric, and where a page fault is expensive (sandboxed
VMs) the run spends much of its time in the kernel. Serving blocks up to 2 GiB from the heap and keeping freed heap
memory (``M_MMAP_THRESHOLD``, ``M_TRIM_THRESHOLD``, glibc's ``mallopt``: docs/methods.md) removes most of that; the
arithmetic is the same, only where blocks live changes. What it saved: docs/running.md, benchmarks/allocator.py.

Set ``HUD_MALLOC=off`` to keep the C library's defaults. Elsewhere than glibc (macOS, Windows, musl) nothing is done.
"""
from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["tune_malloc", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
# mallopt takes an int: blocks up to 2 GiB come from the heap, and up to 2 GiB of freed memory stays at its top.
# (man 3 mallopt gives 32 MiB as the largest mmap threshold on 64-bit; glibc 2.36 accepts 2 GiB, and where it is
# refused the largest documented value is used instead.)
MMAP_THRESHOLD = 2 ** 31 - 1
MMAP_THRESHOLD_FALLBACK = 32 * 1024 * 1024
TRIM_THRESHOLD = 2 ** 31 - 1
_OFF = ("0", "off", "no", "false")
_applied: bool | None = None


def tune_malloc() -> bool:
    """Apply the settings above once per process; True when they are in effect. ``HUD_MALLOC`` must be unset, or
    one of on/off (1/0, yes/no, true/false)."""
    global _applied
    if _applied is not None:
        return _applied
    flag = os.environ.get("HUD_MALLOC", "on").strip().lower()
    if flag not in _OFF + ("1", "on", "yes", "true"):
        raise ValueError(f"HUD_MALLOC: expected on or off, got {os.environ['HUD_MALLOC']!r}")
    _applied = False
    if flag in _OFF or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mmap_ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) or mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_FALLBACK)
    _applied = bool(mmap_ok) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
