"""Patches (random crops, paper IV-A), the centre square, pseudo-colour display and class mean spectra."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .scenes import Scene
from ..errors import DataError


def centre_square(a):
    """Centre square crop of the last two axes (a view), offsets as the authors' ``(h - s) // 2 : (h + s) // 2``
    with s = min(h, w): their "whole image" for VCA, statistics and the metrics' original image."""
    H, W = a.shape[-2:]
    s = min(H, W)
    return a[..., (H - s) // 2:(H + s) // 2, (W - s) // 2:(W + s) // 2]


def _as_cube(scene_or_cube) -> np.ndarray:
    cube = scene_or_cube.cube if isinstance(scene_or_cube, Scene) else np.asarray(scene_or_cube)
    if cube.ndim != 3:
        raise DataError(f"cube: expected (bands, rows, cols), got shape {cube.shape}")
    return cube


def patch_corners(shape: Sequence[int], size: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, 2)`` random top-left corners of ``size`` x ``size`` crops of a ``(bands, rows, cols)`` cube."""
    _, rows, cols = shape
    if rows < size or cols < size:
        raise DataError(f"size: patch size {size} exceeds the scene's spatial size {rows}x{cols}")
    return np.stack([rng.integers(0, rows - size + 1, n), rng.integers(0, cols - size + 1, n)], axis=1)


def crop(cube: np.ndarray, corners: np.ndarray, size: int) -> np.ndarray:
    """Crops at ``corners`` ``(n, 2)`` of ``cube`` ``(bands, rows, cols)`` -> ``(n, bands, size, size)``."""
    return np.stack([cube[:, r:r + size, c:c + size] for r, c in corners]) if len(corners) else \
        np.empty((0, cube.shape[0], size, size), cube.dtype)


def patches(scene, size: int = 32, n: int = 64, random_state=None) -> np.ndarray:
    """Random overlapping ``size`` x ``size`` crops (paper IV-A).

    Args:
        scene: :class:`Scene` or cube ``(bands, rows, cols)``.
    Returns:
        ``(n, bands, size, size)`` array of the cube's dtype.
    """
    cube = _as_cube(scene)
    rng = np.random.default_rng(random_state)
    return crop(cube, patch_corners(cube.shape, size, n, rng), size)



def rgb_limits(cube: np.ndarray, bands: Sequence[int], percentiles=(2.0, 98.0)) -> np.ndarray:
    """Per-channel stretch limits ``(3, 2)`` (low, high) from percentiles of ``cube`` ``(bands, ...)``."""
    cube = np.asarray(cube)
    sel = np.stack([cube[b].ravel() if cube.ndim == 3 else cube[:, b].ravel() for b in bands])
    return np.percentile(sel, percentiles, axis=1).T


def pseudo_rgb(cube: np.ndarray, bands: Sequence[int], limits: np.ndarray | None = None,
               percentiles=(2.0, 98.0)) -> np.ndarray:
    """Pseudo-colour image with a robust percentile stretch.

    Args:
        cube: ``(bands, rows, cols)`` or a batch ``(n, bands, rows, cols)``.
        bands: three band indices (R, G, B), zero-based.
        limits: ``(3, 2)`` fixed stretch (share one across models to compare colours); by default the
            ``percentiles`` of ``cube`` itself.
    Returns:
        float array ``(rows, cols, 3)`` (or ``(n, rows, cols, 3)``) in [0, 1].
    """
    cube = np.asarray(cube)
    if len(bands) != 3:
        raise DataError(f"bands: expected three band indices, got {bands}")
    nb = cube.shape[-3]
    if max(bands) >= nb or min(bands) < 0:
        raise DataError(f"bands: {tuple(bands)} out of range for a cube with {nb} bands")
    if limits is None:
        limits = rgb_limits(cube, bands, percentiles)
    limits = np.asarray(limits, dtype=np.float64)
    img = np.stack([cube[..., b, :, :] for b in bands], axis=-1).astype(np.float64)
    lo, hi = limits[:, 0], limits[:, 1]
    return np.clip((img - lo) / np.maximum(hi - lo, 1e-12), 0.0, 1.0)


def class_mean_spectra(scene: Scene) -> np.ndarray:
    """Mean spectrum of every labelled class: ``(n_classes, bands)``; NaN rows for empty classes."""
    flat = scene.cube.reshape(scene.bands, -1)
    gt = scene.gt.ravel()
    out = np.full((scene.n_classes, scene.bands), np.nan)
    for k in range(1, scene.n_classes + 1):
        m = gt == k
        if m.any():
            out[k - 1] = flat[:, m].mean(axis=1)
    return out
