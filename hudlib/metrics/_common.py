"""Shared input checks and tensor kernels of the metric families (constants: EPS, FLAT_ANGLE)."""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import DataError

EPS = 1e-12
FLAT_ANGLE = 1e-6  # radians: patches whose pixels differ by less are flat
_MAX_BYTES = 1 << 28  # 256 MiB for the largest intermediate matrix
_BLOCK_BYTES = 1 << 23  # 8 MiB: a similarity block that stays in cache while it is reduced
# A generated pixel whose distance to the subspace of the generated set is at most this fraction of its norm is
# scored in that subspace: its cosine with any vector then moves by at most this much (below the ~1e-6 accuracy
# of the fp32 cosines themselves). Generators that decode abundances through d endmembers produce such sets.
LOW_RANK_TOL = 2e-7


# --------------------------------------------------------------------------------------------- input checks
def _device(device) -> torch.device:
    return torch.device("cpu") if device is None else torch.device(device)


def _finite_float32(a, name: str) -> np.ndarray:
    try:
        a = np.asarray(a, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise DataError(f"{name}: expected a numeric array, got {type(a).__name__}") from e
    if not np.isfinite(a).all():
        raise DataError(f"{name}: holds {int((~np.isfinite(a)).sum())} NaN/Inf values; expected finite values")
    return np.ascontiguousarray(a)


def _check_generated(generated, name: str = "generated") -> np.ndarray:
    g = np.asarray(generated)
    if g.ndim != 4 or min(g.shape) < 1:
        raise DataError(f"{name}: expected a non-empty batch (n, bands, h, w), got shape {g.shape}")
    return _finite_float32(g, name)


def _check_real(real, bands: int, name: str = "real") -> np.ndarray:
    r = real.cube if hasattr(real, "cube") else real
    r = np.asarray(r)
    if r.ndim != 3 or min(r.shape) < 1:
        raise DataError(f"{name}: expected a scene cube (bands, H, W), got shape {r.shape}")
    if r.shape[0] != bands:
        raise DataError(f"{name}: has {r.shape[0]} bands; expected {bands} like generated")
    return _finite_float32(r, name)


def _positive_int(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name}: expected a positive integer, got {v!r}")
    return int(v)


def _tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(a).to(device)  # zero-copy on CPU


# --------------------------------------------------------------------------------------------- shared kernels
def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` ``(m, d)`` divided by ``max(||row||, EPS)``."""
    return x / torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min(EPS)


def _box_sum(q: torch.Tensor, kh: int, kw: int, stride: int) -> torch.Tensor:
    """Sum of ``q`` ``(H, W)`` (float64) over every ``kh x kw`` window on a ``stride`` grid -> ``(Ho, Wo)``.

    Integral image in float64 (exact to ~1e-16 relative), i.e. the box filter of eq. 17's block norms.
    """
    s = F.pad(q.cumsum(0).cumsum(1), (1, 0, 1, 0))
    out = s[kh:, kw:] - s[:-kh, kw:] - s[kh:, :-kw] + s[:-kh, :-kw]
    return out[::stride, ::stride]


def _sq_norm_map(real_t: torch.Tensor) -> torch.Tensor:
    """Per-pixel squared norm ``sum_c x_c^2`` of ``(bands, H, W)`` in float64, band-chunked -> ``(H, W)``."""
    out = torch.zeros(real_t.shape[1:], dtype=torch.float64, device=real_t.device)
    for c0 in range(0, real_t.shape[0], 16):
        out += real_t[c0:c0 + 16].double().square().sum(0)
    return out


def _out_size(n: int, k: int, stride: int) -> int:
    return (n - k) // stride + 1


def _sliding_dots(real_t: torch.Tensor, kernels: torch.Tensor, stride: int, max_bytes: int, kernel_chunk: int,
                  progress: bool, desc: str) -> Iterator[tuple[int, int, int, int, torch.Tensor]]:
    """Dot products of every kernel with every window of the scene: the conv trick.

    Args:
        real_t: ``(bands, H, W)`` float32 tensor.
        kernels: ``(K, bands, kh, kw)`` float32 tensor on the same device.
    Yields:
        ``(k0, k1, r0, r1, dots)`` with ``dots`` ``(k1 - k0, r1 - r0, Wo)``:
        ``dots[i, r - r0, c] = <kernels[k0 + i], real[:, r*stride : r*stride+kh, c*stride : c*stride+kw]>``.
        Kernels are processed ``kernel_chunk`` at a time and output rows in strips so that one ``dots`` block
        holds at most ``max_bytes`` (at least one output row).
    """
    K, _, kh, kw = kernels.shape
    _, H, W = real_t.shape
    Ho, Wo = _out_size(H, kh, stride), _out_size(W, kw, stride)
    kc = max(1, min(K, kernel_chunk))
    rows = max(1, min(Ho, max_bytes // (4 * kc * Wo)))
    steps = [(k0, r0) for k0 in range(0, K, kc) for r0 in range(0, Ho, rows)]
    for k0, r0 in tqdm(steps, desc=desc, disable=not progress):
        k1, r1 = min(K, k0 + kc), min(Ho, r0 + rows)
        strip = real_t[:, r0 * stride:(r1 - 1) * stride + kh]
        dots = F.conv2d(strip[None], kernels[k0:k1], stride=stride)[0]
        yield k0, k1, r0, r1, dots




# --------------------------------------------------------------------------------------------- low rank
def subspace(pixels: np.ndarray, tol: float = LOW_RANK_TOL, max_rank: int | None = None, chunk: int = 65536):
    """An orthonormal basis of the subspace nearly every row of ``pixels`` ``(m, C)`` lies in, and which rows do.

    The basis ``Q`` ``(C, r)`` float64 spans the eigenvectors of the rows' Gram matrix (float64) with eigenvalue
    above ``1e-13`` of the largest; ``ok`` ``(m,)`` marks the rows whose distance to span(Q) is at most
    ``tol ||x||`` (``||x||² - ||Qᵀx||²`` in float64, resolving distances down to ~1e-8 ||x||). For such a unit row x̂
    and any vector y, ``|<x̂, y> - <Qᵀx̂, Qᵀy>| <= tol ||y||``: dot products in r dimensions instead of C, with that
    error bound. None when r exceeds ``max_rank`` (default C // 4: no gain worth the work) or no row qualifies.
    """
    m, C = pixels.shape
    max_rank = C // 4 if max_rank is None else max_rank
    gram = torch.zeros((C, C), dtype=torch.float64)
    for i in range(0, m, chunk):
        x = torch.from_numpy(np.ascontiguousarray(pixels[i:i + chunk])).double()
        gram += x.T @ x
    w, V = torch.linalg.eigh(gram)
    w, V = w.flip(0), V.flip(1)
    if not w[0] > 0:
        return None
    r = int((w > w[0] * 1e-13).sum())
    if r > max_rank:  # (a truncated basis is rotated by what it leaves out: it would certify nothing)
        return None
    Q = V[:, :r].contiguous()
    ok = np.empty(m, dtype=bool)
    for i in range(0, m, chunk):
        x = torch.from_numpy(np.ascontiguousarray(pixels[i:i + chunk])).double()
        sq = x.square().sum(1)
        ok[i:i + chunk] = ((sq - (x @ Q).square().sum(1)) <= tol * tol * sq).numpy()
    return (Q.numpy(), ok) if ok.any() else None


# --------------------------------------------------------------------------------------------- memo
_MEMO: OrderedDict = OrderedDict()  # (tag, key, content hash) -> value: the last few real-side computations


def content_key(*arrays) -> str:
    """SHA-1 of the shapes, dtypes and bytes of ``arrays``: a key for :func:`memo`, held in memory only. SHA-1 for
    its speed on CPUs with SHA instructions (a few hundred MB of real patches are keyed per evaluation record)."""
    h = hashlib.sha1(usedforsecurity=False)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def memo(tag: str, fn: Callable, *arrays, key=(), size: int = 16):
    """``fn()`` memoised by ``tag``, ``key`` and the content of ``arrays``: every generator of a table is compared
    with the same real data, whose statistics then cost one hash instead of a recomputation."""
    k = (tag, key, content_key(*arrays))
    if k not in _MEMO:
        _MEMO[k] = fn()
        while len(_MEMO) > size:
            _MEMO.popitem(last=False)
    _MEMO.move_to_end(k)
    return _MEMO[k]
