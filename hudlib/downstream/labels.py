"""Labelled pixels: draws of a label budget, windows around pixels (of the scene, of a training ground, of
synthetic patches) and the scores OA, AA and Cohen's kappa.

Conventions: arrays are channel-first; a window batch is ``(N, bands, k, k)`` with the labelled pixel at the centre;
class labels are the scene's ``1..n_classes`` (0 = unlabelled never enters a training set).
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, cohen_kappa_score, recall_score

from ..classifier import _windows
from ..errors import DataError
from ._checks import check_budget, check_window_size, is_int

__all__ = ["draw_labels", "classification_metrics", "scene_windows", "ground_windows", "patch_windows",
           "centre_spectra", "validation_score"]


def draw_labels(gt, train_mask, per_class, random_state=0, cap: bool = False, n_classes: int | None = None,
                return_counts: bool = False):
    """Draw ``per_class`` labelled pixels of every class ``k = 1..n_classes`` inside ``train_mask``.

    Args:
        gt: ``(rows, cols)`` int label map, 0 = unlabelled.
        train_mask: ``(rows, cols)`` bool mask of the pixels a draw may take (a fold's training ground).
        per_class: a positive int, or ``"all"`` for every labelled pixel inside the mask.
        random_state: int seed (None = fresh entropy). Class ``k`` is drawn from its own child seed
            ``SeedSequence(random_state, spawn_key=(k,))`` as a prefix of a uniform permutation of its pool (the
            class's pixels inside the mask in raster order). So the draw of class ``k`` depends only on the seed
            and that pool (not on other classes), and with one seed smaller budgets are subsets of larger ones.
        cap: a class with fewer available pixels than ``per_class`` gives all it has instead of a DataError.
        n_classes: classes drawn are ``1..n_classes`` (default ``gt.max()``).
        return_counts: also return ``{k: number drawn}``.

    Returns:
        ``(rows, cols)`` int64 pixel coordinates, class by class (and the counts with ``return_counts``).
    """
    gt = np.asarray(gt)
    if gt.ndim != 2 or not np.issubdtype(gt.dtype, np.integer):
        raise DataError(f"gt: expected an int (rows, cols) label map, got {gt.dtype} shape {gt.shape}")
    mask = np.asarray(train_mask)
    if mask.shape != gt.shape or mask.dtype != bool:
        raise DataError(f"train_mask: expected a bool mask of shape {gt.shape}, got {mask.dtype} {mask.shape}")
    check_budget("per_class", per_class)
    if gt.min() < 0:
        raise DataError(f"gt: expected labels >= 0 (0 = unlabelled), got minimum {gt.min()}")
    n_classes = int(gt.max()) if n_classes is None else n_classes
    if not is_int(n_classes) or n_classes < 1:
        raise DataError(f"n_classes: expected a positive int, got {n_classes!r}")
    if random_state is not None and not (is_int(random_state) and random_state >= 0):
        raise DataError(f"random_state: expected a non-negative int or None, got {random_state!r}")
    entropy = np.random.SeedSequence(random_state).entropy
    flat = np.flatnonzero(mask.ravel() & (gt.ravel() > 0))
    labels = gt.ravel()[flat]
    picked, counts = [], {}
    for k in range(1, n_classes + 1):
        pool = flat[labels == k]
        if per_class == "all":
            take = pool
        else:
            if len(pool) < per_class and not cap:
                raise DataError(f"per_class: class {k} has {len(pool)} labelled pixels in train_mask, fewer than "
                                f"the {per_class} asked (pass cap=True to take them all)")
            rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(k,)))
            take = pool[rng.permutation(len(pool))[:per_class]]
        picked.append(take)
        counts[k] = int(len(take))
    idx = np.concatenate(picked).astype(np.int64)
    rows, cols = np.unravel_index(idx, gt.shape)
    rows, cols = rows.astype(np.int64), cols.astype(np.int64)
    return (rows, cols, counts) if return_counts else (rows, cols)


def classification_metrics(y_true, y_pred) -> dict:
    """Overall accuracy OA, average accuracy AA and Cohen's kappa of predictions, by scikit-learn.

    ``y_true``, ``y_pred``: ``(N,)`` class labels. AA is the mean per-class recall over the classes present in
    ``y_true`` (``balanced_accuracy_score``; a class only predicted has no recall). Returns ``{"OA", "AA",
    "kappa", "per_class"}`` with ``per_class = {label: recall}`` over the classes of ``y_true`` (sorted). kappa
    is NaN where it is undefined (0/0: truth and predictions are one and the same class).
    """
    t, p = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    if np.asarray(y_true).ndim != 1 or np.asarray(y_pred).ndim != 1 or len(t) != len(p) or len(t) == 0:
        raise DataError(f"y_true/y_pred: expected two non-empty 1-d label arrays of equal length, got shapes "
                        f"{np.shape(y_true)} and {np.shape(y_pred)}")
    present = np.unique(t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"; kappa's 0/0 on one class
        aa = balanced_accuracy_score(t, p)
        kappa = cohen_kappa_score(t, p)
        rec = recall_score(t, p, labels=present, average=None, zero_division=0)
    return {"OA": float(accuracy_score(t, p)), "AA": float(aa), "kappa": float(kappa),
            "per_class": {int(k) if is_int(k) else k: float(r) for k, r in zip(present.tolist(), rec)}}


def validation_score(y_true, y_pred) -> float:
    """What every validation choice maximises: (OA + AA) / 2, the two headline metrics with equal weight."""
    m = classification_metrics(y_true, y_pred)
    return 0.5 * (m["OA"] + m["AA"])


def _check_coords(cube: np.ndarray, rows, cols) -> tuple[np.ndarray, np.ndarray]:
    r, c = np.asarray(rows), np.asarray(cols)
    if r.ndim != 1 or r.shape != c.shape or not (np.issubdtype(r.dtype, np.integer) or r.size == 0) \
            or not (np.issubdtype(c.dtype, np.integer) or c.size == 0):
        raise DataError(f"rows/cols: expected two 1-d int arrays of equal length, got {r.dtype} {r.shape} and "
                        f"{c.dtype} {c.shape}")
    r, c = r.astype(np.int64), c.astype(np.int64)
    if r.size and (r.min() < 0 or r.max() >= cube.shape[1] or c.min() < 0 or c.max() >= cube.shape[2]):
        raise DataError(f"rows/cols: expected coordinates inside the {cube.shape[1]} x {cube.shape[2]} scene")
    return r, c


def scene_windows(cube, rows, cols, k: int = 3) -> np.ndarray:
    """``k`` x ``k`` windows ``(N, bands, k, k)`` (float32) centred on the scene pixels ``(rows[i], cols[i])``.

    ``cube`` ``(bands, rows, cols)`` is reflection-padded by ``k // 2`` (numpy ``reflect``), so border pixels have
    full windows.
    """
    k = check_window_size(k)
    cube = np.asarray(cube, dtype=np.float32)
    if cube.ndim != 3:
        raise DataError(f"cube: expected (bands, rows, cols), got shape {cube.shape}")
    r, c = _check_coords(cube, rows, cols)
    s = k // 2
    if s and min(cube.shape[1:]) <= s:
        raise DataError(f"cube: expected rows, cols > {s} for {k} x {k} reflected windows, got {cube.shape}")
    padded = np.pad(cube, ((0, 0), (s, s), (s, s)), mode="reflect")  # pixel (r, c) -> window corner (r, c)
    return _windows(padded, r, c, k)


def ground_windows(cube, rows, cols, k: int = 3) -> np.ndarray:
    """:func:`scene_windows` of a training ground's view (NaN off the ground): a window position that falls off the
    ground takes the centre pixel's spectrum, so nothing outside the ground enters a training window. The centre
    pixels must lie on the ground."""
    W = scene_windows(cube, rows, cols, k)
    s = k // 2
    centre = W[:, :, s, s]
    if not np.isfinite(centre).all():
        raise DataError("rows/cols: expected pixels on the training ground (finite spectra), got a pixel off it")
    off = ~np.isfinite(W).all(axis=1)  # (N, k, k)
    if off.any():
        W = np.where(off[:, None], centre[:, :, None, None], W)
    return np.ascontiguousarray(W, dtype=np.float32)


def patch_windows(Y, L, k: int = 3, index=None) -> tuple[np.ndarray, np.ndarray]:
    """Labelled windows of synthetic patches: ``(windows (N, bands, k, k) float32, labels (N,) int64)``.

    ``Y`` ``(n, bands, h, w)`` patches and ``L`` ``(n, h, w)`` their class maps (0 = unlabelled, ignored). Each
    patch is padded by ``k // 2`` on its own (``reflect``, or ``edge`` when a side is too short to reflect), so a
    window never mixes two patches. Order: patch, row, column; ``index`` ``(i, r, c)`` picks those pixels only.
    """
    k = check_window_size(k)
    Y = np.asarray(Y, dtype=np.float32)
    if Y.ndim != 4:
        raise DataError(f"Y: expected patches (n, bands, h, w), got shape {Y.shape}")
    L = np.asarray(L)
    if L.shape != (Y.shape[0],) + Y.shape[2:]:
        raise DataError(f"L: expected class maps of shape {(Y.shape[0],) + Y.shape[2:]} (n, h, w), got {L.shape}")
    if L.size and not np.issubdtype(L.dtype, np.integer):
        raise DataError(f"L: expected integer class ids, got dtype {L.dtype}")
    if L.size and L.min() < 0:
        raise DataError(f"L: expected class ids >= 0 (0 = unlabelled), got minimum {L.min()}")
    if not np.isfinite(Y).all():
        raise DataError("Y: expected finite values, got NaN/Inf")
    s = k // 2
    mode = "reflect" if min(Y.shape[2:]) > s else "edge"
    # bands last while gathering, so each window is read from a few contiguous rows (not band by band)
    padded = np.pad(Y.transpose(0, 2, 3, 1), ((0, 0), (s, s), (s, s), (0, 0)), mode=mode)  # (n, h+2s, w+2s, bands)
    i, r, c = np.nonzero(L > 0) if index is None else (np.asarray(a, dtype=np.int64) for a in index)
    win = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(1, 2))  # (n, h, w, bands, k, k) view
    return np.ascontiguousarray(win[i, r, c]), L[i, r, c].astype(np.int64)


def centre_spectra(X) -> np.ndarray:
    """Centre pixel spectra ``(N, bands)`` of windows ``(N, bands, k, k)``; spectra ``(N, bands)`` pass through."""
    X = np.asarray(X)
    if X.ndim == 4:
        return X[:, :, X.shape[2] // 2, X.shape[3] // 2]
    if X.ndim == 2:
        return X
    raise DataError(f"X: expected windows (N, bands, k, k) or spectra (N, bands), got shape {X.shape}")
