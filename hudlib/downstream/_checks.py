"""One-line input checks shared by the downstream modules (each raises :class:`hudlib.data.DataError` naming the
parameter and what was expected) and the seed derivation every run uses."""
from __future__ import annotations

import math
import zlib
from typing import Sequence

import numpy as np

from ..errors import DataError


def is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def check_budget(name: str, v) -> None:
    if not (v == "all" if isinstance(v, str) else is_int(v) and v > 0):
        raise DataError(f"{name}: expected a positive int or 'all', got {v!r}")


def check_number(name: str, v, lo: float = 0.0, hi: float = math.inf, lo_open: bool = False,
                 hi_open: bool = False) -> float:
    ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise DataError(f"{name}: expected a finite number in {rng}, got {v!r}")
    return float(v)


def check_positive_int(name: str, v) -> int:
    if not is_int(v) or v < 1:
        raise DataError(f"{name}: expected a positive int, got {v!r}")
    return int(v)


def check_window_size(k) -> int:
    if not is_int(k) or k < 1 or k % 2 == 0:
        raise DataError(f"k: expected an odd positive int (window side), got {k!r}")
    return int(k)


def check_tuple(name: str, v, item=None) -> tuple:
    """A non-empty sequence (not a string) of distinct items, each passing ``item(name, x)`` when given."""
    if isinstance(v, (str, bytes)) or not isinstance(v, Sequence) or not v:
        raise DataError(f"{name}: expected a non-empty sequence, got {v!r}")
    if len(set(v)) != len(v):
        raise DataError(f"{name}: expected distinct values, got {tuple(v)!r}")
    if item is not None:
        for x in v:
            item(name, x)
    return tuple(v)


def as_windows(x, name: str, bands: int | None = None, k: int | None = None) -> np.ndarray:
    """``x`` as finite float32 windows ``(N, bands, k, k)`` (square, odd side), else a DataError naming ``name``."""
    try:
        a = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise DataError(f"{name}: expected a numeric array (N, bands, k, k), got {type(x).__name__}") from e
    if a.ndim != 4 or a.shape[2] != a.shape[3] or a.shape[2] % 2 == 0:
        raise DataError(f"{name}: expected windows (N, bands, k, k) with an odd side k, got shape {a.shape}")
    if bands is not None and a.shape[1] != bands:
        raise DataError(f"{name}: expected {bands} bands, got shape {a.shape}")
    if k is not None and a.shape[2] != k:
        raise DataError(f"{name}: expected {k} x {k} windows, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise DataError(f"{name}: expected finite values, got NaN/Inf")
    return a


def as_labels(y, name: str, n: int, n_classes: int | None = None) -> np.ndarray:
    """``y`` as int64 labels ``(n,)`` in ``1..n_classes``, else a DataError naming ``name``."""
    a = np.asarray(y)
    if a.shape != (n,):
        raise DataError(f"{name}: expected labels of shape ({n},), got {a.shape}")
    if n and not (np.issubdtype(a.dtype, np.integer) or (np.issubdtype(a.dtype, np.floating)
                                                          and np.array_equal(a, np.round(a)))):
        raise DataError(f"{name}: expected integer class labels, got dtype {a.dtype}")
    a = a.astype(np.int64)
    hi = n_classes if n_classes is not None else (int(a.max()) if n else 1)
    if n and (a.min() < 1 or a.max() > hi):
        raise DataError(f"{name}: expected class labels in 1..{hi}, got {a.min()}..{a.max()}")
    return a


def seed(*parts) -> int:
    """A 32-bit seed derived from ``parts`` (non-negative ints as they are, anything else by its CRC-32): every
    random choice of a run is seeded from what it is (fold, draw, budget, row, ...), never from the order runs are
    executed in, so a run gives the same numbers alone, in a batch or in a worker process."""
    ints = [int(p) if is_int(p) and p >= 0 else zlib.crc32(str(p).encode()) for p in parts]
    return int(np.random.SeedSequence(ints).generate_state(1)[0])
