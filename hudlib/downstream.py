"""Downstream benchmark: do synthetic labelled pixels help a classifier on ground it has never seen?

The scene's labelled pixels are split by :func:`hudlib.classifier.spatial_split` (one compact held-out region,
every training centre farther than ``size // 2`` from it), so a classifier is scored on ground whose pixels, and
whose 32 x 32 surroundings, it never saw. Each run draws a small budget of real labels per class inside the
training region (:func:`draw_labels`) and trains one classifier on a named training set ("row"):

* ``"real"``: the real labels only;
* ``"real+aug"``: the real labels plus classic augmentation of them (:func:`augment`);
* ``"real+<name>"``: the real labels plus the pixels of the synthetic provider ``<name>``;
* ``"synthetic-only:<name>"``: the provider's pixels only (train-on-synthetic, test-on-real, TSTR), run at the
  ``"all"`` budget to be read against ``"real"`` there (train-on-real, TRTR).

A synthetic *provider* is any callable returning labelled pixels as 3 x 3 windows (see :func:`run_benchmark` for
its keyword contract), so the benchmark can be wired to any generator: layout-conditioned samples, unconditional
samples labelled by the row-1 classifier (:func:`pseudo_label_provider`), a physical simulator, ...

Two classifiers: an RBF SVM on the centre spectrum (:func:`fit_svm`) and the project's 3 x 3 neighbourhood net
:class:`hudlib.classifier_nets.PixelNeighbourhoodNet` (:func:`fit_net`), trained by the same step loop as the
project's classifier (:func:`hudlib.classifier._fit_pixel_net`). Scores: OA, AA and Cohen's kappa from
scikit-learn (:func:`classification_metrics`) on every held-out labelled pixel, aggregated as mean and sample std
over split seeds x label draws (:func:`run_benchmark`), written by :func:`write_benchmark`.

Conventions: arrays are channel-first; a window batch is ``(N, bands, k, k)`` with the labelled pixel at the
centre; class labels are the scene's ``1..n_classes`` everywhere in this module (0 = unlabelled never enters a
training set).

Sources of the facts used here: docs/methods.md (Spatially disjoint splits; OA, AA, κ).
"""
from __future__ import annotations

import inspect
import json
import math
import os
import platform
import re
import time
import warnings
import zlib
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import sklearn
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, cohen_kappa_score, recall_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import SVC
from tqdm.auto import tqdm

from .classifier import _cpu_threads, _dihedral, _fit_pixel_net, _positive, _scene_arrays, _windows, spatial_split
from .classifier_nets import PixelNeighbourhoodNet
from .data import DataError
from .utils import atomic_write_text, resolve_device

__all__ = [
    "draw_labels", "classification_metrics", "scene_windows", "patch_windows", "centre_spectra", "augment",
    "fit_svm", "fit_net", "predict_windows", "predict", "pseudo_label_provider", "run_benchmark",
    "write_benchmark", "benchmark_markdown", "PROFILES", "LAYOUT_CROPS", "settings_name", "CLASSIFIERS",
    "DOWNSTREAM_VERSION", "GENERATOR",
    "experiment", "experiment_generators", "experiment_key", "run_or_reuse", "write_experiment", "layout_crops",
    "layout_fidelity",
]

DOWNSTREAM_VERSION = "downstream-v1"  # recorded in every result: bump when a run's meaning or numerics change
GENERATOR = "HUD-cond"  # the layout-conditioned generator of experiment(): one per split seed
CLASSIFIERS = ("svm", "net")
# Named settings for run_benchmark (keyword arguments): "smoke" is a cheap check of the wiring (one split, one
# draw, two budgets, short net training), "full" the reported benchmark.
PROFILES: dict[str, dict] = {
    "smoke": dict(budgets=(5, 25), split_seeds=(0,), draws=(0,), net_steps=50),
    "full": dict(budgets=(5, 10, 25, "all"), split_seeds=(0, 1, 2), draws=(0, 1, 2), net_steps=300),
}
# experiment(): layouts cropped per class for each HUD-cond pool and guidance weight (the smoke check samples 2 x 16
# crops of 32 x 32 instead of 8 x 16: its numbers only show the wiring)
LAYOUT_CROPS: dict[str, int] = {"smoke": 2, "full": 8}


def settings_name(profile: str) -> str:
    """The key of :data:`PROFILES` and :data:`LAYOUT_CROPS` for a run profile: "smoke" for smoke, else "full"."""
    return "smoke" if profile == "smoke" else "full"


# --------------------------------------------------------------------------------------------- validation helpers
def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _check_budget(name: str, v) -> None:
    if not (v == "all" if isinstance(v, str) else _is_int(v) and v > 0):
        raise DataError(f"{name}: expected a positive int or 'all', got {v!r}")


def _check_seeds(name: str, seeds) -> tuple[int, ...]:
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or not seeds:
        raise DataError(f"{name}: expected a non-empty sequence of non-negative ints, got {seeds!r}")
    if not all(_is_int(s) and s >= 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise DataError(f"{name}: expected distinct non-negative ints, got {tuple(seeds)!r}")
    return tuple(int(s) for s in seeds)


def _check_number(name: str, v, lo: float = 0.0, hi: float = math.inf, lo_open: bool = False,
                  hi_open: bool = False) -> float:
    ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise DataError(f"{name}: expected a finite number in {rng}, got {v!r}")
    return float(v)


def _check_window_size(k) -> int:
    if not _is_int(k) or k < 1 or k % 2 == 0:
        raise DataError(f"k: expected an odd positive int (window side), got {k!r}")
    return int(k)


def _as_windows(x, name: str, bands: int | None = None, k: int | None = None) -> np.ndarray:
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


def _as_labels(y, name: str, n: int, n_classes: int | None = None) -> np.ndarray:
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


def _seed(*parts) -> int:
    """A 32-bit seed derived from ``parts`` (non-negative ints as they are, anything else by its CRC-32)."""
    ints = [int(p) if _is_int(p) and p >= 0 else zlib.crc32(str(p).encode()) for p in parts]
    return int(np.random.SeedSequence(ints).generate_state(1)[0])


# --------------------------------------------------------------------------------------------- labels and metrics
def draw_labels(gt, train_mask, per_class, random_state=0, cap: bool = False, n_classes: int | None = None,
                return_counts: bool = False):
    """Draw ``per_class`` labelled pixels of every class ``k = 1..n_classes`` inside ``train_mask``.

    Args:
        gt: ``(rows, cols)`` int label map, 0 = unlabelled.
        train_mask: ``(rows, cols)`` bool mask of the pixels a draw may take (e.g. :func:`spatial_split`'s first
            mask).
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
    _check_budget("per_class", per_class)
    if gt.min() < 0:
        raise DataError(f"gt: expected labels >= 0 (0 = unlabelled), got minimum {gt.min()}")
    n_classes = int(gt.max()) if n_classes is None else n_classes
    if not _is_int(n_classes) or n_classes < 1:
        raise DataError(f"n_classes: expected a positive int, got {n_classes!r}")
    if random_state is not None and not (_is_int(random_state) and random_state >= 0):
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
            "per_class": {int(k) if _is_int(k) else k: float(r) for k, r in zip(present.tolist(), rec)}}


# --------------------------------------------------------------------------------------------- windows
def scene_windows(cube, rows, cols, k: int = 3) -> np.ndarray:
    """``k`` x ``k`` windows ``(N, bands, k, k)`` (float32) centred on the scene pixels ``(rows[i], cols[i])``.

    ``cube`` ``(bands, rows, cols)`` is reflection-padded by ``k // 2`` (numpy ``reflect``, as the project's
    classifier trains), so border pixels have full windows.
    """
    k = _check_window_size(k)
    cube = np.asarray(cube, dtype=np.float32)
    if cube.ndim != 3:
        raise DataError(f"cube: expected (bands, rows, cols), got shape {cube.shape}")
    r, c = np.asarray(rows), np.asarray(cols)
    if r.ndim != 1 or r.shape != c.shape or not (np.issubdtype(r.dtype, np.integer) or r.size == 0) \
            or not (np.issubdtype(c.dtype, np.integer) or c.size == 0):
        raise DataError(f"rows/cols: expected two 1-d int arrays of equal length, got {r.dtype} {r.shape} and "
                        f"{c.dtype} {c.shape}")
    r, c = r.astype(np.int64), c.astype(np.int64)
    if r.size and (r.min() < 0 or r.max() >= cube.shape[1] or c.min() < 0 or c.max() >= cube.shape[2]):
        raise DataError(f"rows/cols: expected coordinates inside the {cube.shape[1]} x {cube.shape[2]} scene")
    s = k // 2
    if s and min(cube.shape[1:]) <= s:
        raise DataError(f"cube: expected rows, cols > {s} for {k} x {k} reflected windows, got {cube.shape}")
    padded = np.pad(cube, ((0, 0), (s, s), (s, s)), mode="reflect")  # pixel (r, c) -> window corner (r, c)
    return _windows(padded, r, c, k)


def patch_windows(Y, L, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Labelled windows of synthetic patches: ``(windows (N, bands, k, k) float32, labels (N,) int64)``.

    ``Y`` ``(n, bands, h, w)`` patches and ``L`` ``(n, h, w)`` their class maps (0 = unlabelled, ignored). Each
    patch is padded by ``k // 2`` on its own (``reflect``, or ``edge`` when a side is too short to reflect, as
    :meth:`PixelNeighbourhoodNet.features` does), so a window never mixes two patches. Order: patch, row, column.
    """
    k = _check_window_size(k)
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
    i, r, c = np.nonzero(L > 0)
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


# --------------------------------------------------------------------------------------------- augmentation
def augment(windows, labels, ratio: float, random_state=0, *, flips: bool = True, noise: float = 0.05,
            brightness: float = 0.1, mixup: float = 0.5, mixup_alpha: float = 1.0, return_info: bool = False):
    """Classic augmentation: ``round(ratio * N)`` new windows made from the real ``windows`` ``(N, bands, k, k)``.

    Each new window starts from a source window drawn uniformly (its label is kept), then:

    * mixup within the class, with probability ``mixup``: ``lam * a + (1 - lam) * b`` with ``b`` a uniformly drawn
      window of the same class (possibly ``a`` itself) and ``lam ~ Beta(mixup_alpha, mixup_alpha)``
      (``mixup_alpha = 1``: uniform on [0, 1]); a convex combination of two pixels of one class is a plausible
      mixture of that class under the linear mixing model;
    * a random dihedral transform (one of the 8 flips/rotations) when ``flips``;
    * brightness jitter: a factor ``~ U(1 - brightness, 1 + brightness)`` per window (illumination/topography);
    * spectral noise: Gaussian, per band ``sigma = noise * std`` of that band over all pixels of ``windows``.

    Args:
        windows, labels: real windows and their labels ``(N,)`` (>= 1 window).
        ratio: new windows per real window (>= 0; 0 gives empty arrays).
        random_state: seed.
        return_info: also return ``{"source", "partner", "lam", "transform", "factor"}`` (per new window: source
            and mix partner indices, mixing weight, dihedral index 0..7, brightness factor), for checks.

    Returns:
        ``(new_windows (M, bands, k, k) float32, new_labels (M,))`` [+ info]; the real windows are not included.
    """
    X = _as_windows(windows, "windows")
    y = _as_labels(labels, "labels", len(X))
    if len(X) == 0:
        raise DataError("windows: expected at least one window to augment, got 0")
    ratio = _check_number("ratio", ratio)
    noise = _check_number("noise", noise)
    brightness = _check_number("brightness", brightness, 0.0, 1.0, hi_open=True)
    mixup = _check_number("mixup", mixup, 0.0, 1.0)
    mixup_alpha = _check_number("mixup_alpha", mixup_alpha, lo_open=True)
    rng = np.random.default_rng(random_state)
    m = int(round(ratio * len(X)))
    src = rng.integers(len(X), size=m)
    partner = src.copy()
    do_mix = rng.random(m) < mixup
    for k in np.unique(y):  # partners within the class, drawn class by class in label order
        members = np.flatnonzero(y == k)
        sel = np.flatnonzero(do_mix & (y[src] == k))
        partner[sel] = members[rng.integers(len(members), size=len(sel))]
    lam = np.where(do_mix, rng.beta(mixup_alpha, mixup_alpha, size=m), 1.0).astype(np.float32)
    out = lam[:, None, None, None] * X[src] + (1 - lam[:, None, None, None]) * X[partner]
    transform = rng.integers(8, size=m) if flips else np.zeros(m, dtype=np.int64)
    for t in range(1, 8):
        sel = transform == t
        if sel.any():
            out[sel] = _dihedral(out[sel], t)
    factor = rng.uniform(1 - brightness, 1 + brightness, size=m).astype(np.float32)
    out *= factor[:, None, None, None]
    if noise > 0 and m:
        band_std = X.transpose(1, 0, 2, 3).reshape(X.shape[1], -1).std(axis=1)
        out += rng.standard_normal(out.shape, dtype=np.float32) * (noise * band_std)[None, :, None, None]
    out = np.ascontiguousarray(out, dtype=np.float32)
    if return_info:
        return out, y[src], dict(source=src, partner=partner, lam=lam, transform=transform, factor=factor)
    return out, y[src]


# --------------------------------------------------------------------------------------------- classifiers
def fit_svm(X, y, C: float = 100.0, gamma="scale", random_state=0) -> Pipeline:
    """RBF SVM on single spectra: ``Pipeline(centre spectrum, StandardScaler, SVC(kernel="rbf"))``.

    ``X``: windows ``(N, bands, k, k)`` (their centre pixels are used) or spectra ``(N, bands)``; ``y``: ``(N,)``
    labels (>= 2 classes). The returned pipeline's ``predict`` takes the same kinds of input. Defaults: after
    per-band standardisation ``gamma="scale"`` is ``1 / bands``, the usual kernel width for standardised inputs;
    ``C = 100`` is a large penalty, in the range cross-validated hyperspectral SVMs usually end up with (standardised
    spectra of distinct materials are nearly separable). Both are fixed, not tuned per run: with 5 labels per class
    cross-validation is unreliable, and one setting keeps the rows comparable. ``random_state`` only matters for
    SVC's internal probability calibration (unused here); it is passed for completeness.
    """
    S = centre_spectra(X)
    labels = _as_labels(y, "y", len(S))
    if len(np.unique(labels)) < 2:
        raise DataError(f"y: expected at least 2 classes to fit an SVM, got {np.unique(labels).tolist()}")
    _check_number("C", C, lo_open=True)
    model = Pipeline([("centre", FunctionTransformer(centre_spectra)), ("scale", StandardScaler()),
                      ("svc", SVC(kernel="rbf", C=float(C), gamma=gamma, random_state=random_state))])
    return model.fit(np.asarray(X, dtype=np.float32), labels)


def _centre_crop(X: np.ndarray, k: int, name: str) -> np.ndarray:
    if X.shape[2] < k:
        raise DataError(f"{name}: expected windows of side >= {k} (the net's), got shape {X.shape}")
    o = (X.shape[2] - k) // 2
    return X[:, :, o:o + k, o:o + k] if X.shape[2] != k else X


def _mosaic(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows ``(N, bands, k, k)`` laid side by side as one strip image ``(bands, k, N * k)`` and the top-left
    corners ``(rows, cols)`` of the windows in it, so :func:`hudlib.classifier._windows` (and hence the project's
    step loop :func:`hudlib.classifier._fit_pixel_net`) reads window ``i`` back exactly."""
    n, b, k, _ = X.shape
    strip = np.ascontiguousarray(X.transpose(1, 2, 0, 3).reshape(b, k, n * k))
    return strip, np.zeros(n, dtype=np.int64), np.arange(n, dtype=np.int64) * k


def fit_net(windows, labels, n_classes: int, steps: int = 300, batch_size: int = 128, lr: float = 2e-3,
            weight_decay: float = 0.05, random_state=0, device=None, progress: bool = False,
            model_kwargs: dict | None = None) -> PixelNeighbourhoodNet:
    """Train a :class:`PixelNeighbourhoodNet` on labelled windows; returns it in eval mode.

    Args:
        windows: ``(N, bands, k, k)``; ``k`` >= the net's window (3 by default; larger windows are centre-cropped).
        labels: ``(N,)`` in ``1..n_classes``.
        n_classes: the net's outputs (the scene's classes, also when some are absent from the training set).
        steps, batch_size, lr, weight_decay: AdamW steps with the project's one-cycle schedule; each batch is
            drawn uniformly with replacement and flipped/rotated by one random dihedral transform.
        random_state: seeds the weights, dropout, batches and transforms (as
            :func:`hudlib.classifier.train_classifier` does).
        device: torch device (default CUDA if available, else CPU; CPU training runs on one thread).
        model_kwargs: extra network arguments (``width``, ``feature``, ``n_spatial``, ``dropout``).

    The input standardisation comes from the training windows' centre spectra. The steps are the project's own
    loop (:func:`hudlib.classifier._fit_pixel_net`, unchanged) run on the windows laid out as a strip image
    (:func:`_mosaic`): the same batches, transforms and updates as training on scene coordinates.
    """
    if not _is_int(n_classes) or n_classes < 2:
        raise DataError(f"n_classes: expected an int >= 2, got {n_classes!r}")
    X = _as_windows(windows, "windows")
    y = _as_labels(labels, "labels", len(X), n_classes)
    if len(X) == 0:
        raise DataError("windows: expected at least one training window, got 0")
    _positive("steps", steps)
    _positive("batch_size", batch_size)
    _positive("lr", lr, float)
    cfg = dict(steps=int(steps), batch_size=int(batch_size), lr=float(lr), weight_decay=float(weight_decay))
    dev = resolve_device(device)
    rng = np.random.default_rng(random_state)
    with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []), _cpu_threads(dev):
        torch.manual_seed(int(rng.integers(2 ** 31)))
        net = PixelNeighbourhoodNet(X.shape[1], n_classes, **dict(model_kwargs or {}))
        X = _centre_crop(X, net.window, "windows")
        centre = centre_spectra(X)
        net.set_normalisation(centre.mean(axis=0), centre.std(axis=0))
        net.to(dev)
        strip, rows, cols = _mosaic(X)
        _fit_pixel_net(net, strip, rows, cols, y - 1, cfg, rng, dev, progress, "downstream net")
        net.eval()
    return net


def predict_windows(net: PixelNeighbourhoodNet, windows, batch_size: int = 4096, device=None) -> np.ndarray:
    """Predicted labels ``(N,)`` (``1..n_classes``) of the centre pixels of ``windows`` ``(N, bands, k, k)``.

    Eval mode, no gradients, the net's mode restored; windows larger than the net's are centre-cropped.
    """
    X = _centre_crop(_as_windows(windows, "windows", net.config["bands"]), net.window, "windows")
    dev = resolve_device(device) if device is not None else next(net.parameters()).device
    was_training = net.training
    net.to(dev).eval()
    out = []
    try:
        with torch.inference_mode(), _cpu_threads(dev):
            for i in range(0, len(X), batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(X[i:i + batch_size])).to(dev)
                out.append(net(xb)[:, :, 0, 0].argmax(1).cpu().numpy())
    finally:
        net.train(was_training)
    return (np.concatenate(out) if out else np.zeros(0, dtype=np.int64)).astype(np.int64) + 1


def predict(model, windows) -> np.ndarray:
    """Labels ``(N,)`` of ``windows`` by a model of :func:`fit_svm` or :func:`fit_net`."""
    if isinstance(model, torch.nn.Module):
        return predict_windows(model, windows)
    return np.asarray(model.predict(np.asarray(windows, dtype=np.float32)), dtype=np.int64)


# --------------------------------------------------------------------------------------------- providers
def pseudo_label_provider(sample_fn: Callable, patch_size: int = 32, max_rounds: int = 100) -> Callable:
    """A synthetic provider from an unconditional generator: its patches, labelled by the row-1 classifier.

    ``sample_fn(n, random_state) -> Y (n, bands, h, w)`` gives unlabelled patches. The provider samples
    ``ceil(n_pixels / (h * w))`` patches (``h * w`` taken as ``patch_size ** 2`` until the first batch shows it;
    further rounds if short, at most ``max_rounds``), takes every pixel's 3 x 3 window (:func:`patch_windows`),
    labels it with ``classify`` (the benchmark's classifier fitted on the row's real labels) and keeps
    ``n_pixels`` of them drawn uniformly without replacement. Returns the provider callable.
    """
    if not callable(sample_fn):
        raise DataError(f"sample_fn: expected a callable (n, random_state) -> Y, got {type(sample_fn).__name__}")
    _positive("patch_size", patch_size)
    _positive("max_rounds", max_rounds)

    def provider(*, n_pixels: int, random_state: int, classify: Callable, real_windows=None, **_unused):
        k = real_windows.shape[2] if real_windows is not None else 3
        per_patch, got, parts = int(patch_size) ** 2, 0, []
        for round_ in range(int(max_rounds)):
            n = max(1, -(-(n_pixels - got) // per_patch))
            Y = np.asarray(sample_fn(n, _seed(random_state, round_)), dtype=np.float32)
            if Y.ndim != 4 or Y.shape[0] < 1:
                raise DataError(f"sample_fn: expected patches (n, bands, h, w), got shape {Y.shape}")
            per_patch = Y.shape[2] * Y.shape[3]
            w, _ = patch_windows(Y, np.ones((Y.shape[0],) + Y.shape[2:], dtype=np.int64), k=k)
            parts.append(w)
            got += len(w)
            if got >= n_pixels:
                break
        W = np.concatenate(parts)
        keep = np.random.default_rng(random_state).permutation(len(W))[:n_pixels]
        W = W[np.sort(keep)]
        return W, np.asarray(classify(W))

    return provider


def _accepted_kwargs(fn: Callable, offered: dict) -> dict:
    """The entries of ``offered`` that ``fn`` accepts by keyword (``classify`` only when it is named)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {k: v for k, v in offered.items() if k != "classify"}
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = {n for n, p in params.items() if p.kind in (inspect.Parameter.KEYWORD_ONLY,
                                                        inspect.Parameter.POSITIONAL_OR_KEYWORD)}
    return {k: v for k, v in offered.items() if k in named or (var_kw and k != "classify")}


def _wants_classify(fn: Callable) -> bool:
    try:
        return "classify" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------------------------- benchmark
def _check_rows(rows, synthetic: dict) -> tuple[str, ...]:
    valid = ["real", "real+aug"] + [f"real+{n}" for n in synthetic] + [f"synthetic-only:{n}" for n in synthetic]
    if rows is None:
        return tuple(valid)
    if isinstance(rows, str) or not isinstance(rows, Sequence) or not rows:
        raise DataError(f"rows: expected a non-empty sequence of row names from {valid}, got {rows!r}")
    for r in rows:
        if r not in valid:
            raise DataError(f"rows: unknown row {r!r}; expected one of {valid} (a synthetic row needs its provider "
                            f"in synthetic)")
    if len(set(rows)) != len(rows):
        raise DataError(f"rows: expected distinct names, got {tuple(rows)!r}")
    return tuple(rows)


def _row_source(row: str) -> str | None:
    """The synthetic source of a row: None (real only), "aug" or a provider name."""
    if row == "real":
        return None
    return row.split(":", 1)[1] if row.startswith("synthetic-only:") else row.split("+", 1)[1]


def _check_provider_output(name: str, out, bands: int, k: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise DataError(f"synthetic[{name!r}]: expected the provider to return (windows, labels), got "
                        f"{type(out).__name__}")
    try:
        W = _as_windows(out[0], f"synthetic[{name!r}] windows", bands, k)
        y = _as_labels(out[1], f"synthetic[{name!r}] labels", len(W), n_classes)
    except DataError as e:
        raise DataError(f"{e} (expected windows (N, {bands}, {k}, {k}) and labels (N,) in 1..{n_classes})") from None
    if len(W) == 0:
        raise DataError(f"synthetic[{name!r}]: the provider returned no pixels")
    return W, y


def _stat(values) -> dict | None:
    """``{"mean", "std" (sample, ddof 1; None for one value), "n"}`` of the values that are not None."""
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    if len(v) == 0:
        return None
    return dict(mean=float(v.mean()), std=float(v.std(ddof=1)) if len(v) > 1 else None, n=int(len(v)))


def _aggregate(runs: list[dict]) -> list[dict]:
    """Statistics per (row, classifier, budget, ratio, sweep) over split seeds x draws.

    Besides each metric's mean and sample std, ``gain_vs_real`` holds the statistics of the paired differences
    ``row - real`` of OA, AA and kappa (same split seed, draw, classifier and budget; for ``synthetic-only`` rows
    the ``"all"`` budget, i.e. TSTR - TRTR): the rows share the real labels and the classifier seed, so the spread
    of the difference is free of the split-to-split variation that dominates the marginal std.
    """
    groups: dict[tuple, list[dict]] = {}
    real = {}
    for r in runs:
        groups.setdefault((r["row"], r["classifier"], r["budget"], r["ratio"], r["sweep"]), []).append(r)
        if r["row"] == "real":
            real[(r["classifier"], r["budget"], r["split_seed"], r["draw"])] = r
    out = []
    for (row, clf, budget, ratio, sweep), rs in groups.items():
        agg = dict(row=row, classifier=clf, budget=budget, ratio=ratio, sweep=sweep, n_runs=len(rs))
        for m in ("OA", "AA", "kappa", "n_real", "n_synthetic", "wall_time_s"):
            agg[m] = _stat(r[m] for r in rs)  # kappa None where undefined
        agg["per_class"] = {c: _stat(r["per_class"].get(c) for r in rs)
                            for c in sorted({c for r in rs for c in r["per_class"]}, key=int)}
        if row != "real":
            pairs = [(r, real.get((clf, budget, r["split_seed"], r["draw"]))) for r in rs]
            agg["gain_vs_real"] = {m: _stat(None if q is None or r[m] is None or q[m] is None else r[m] - q[m]
                                            for r, q in pairs) for m in ("OA", "AA", "kappa")}
        out.append(agg)
    return out


def _tstr(aggregate: list[dict]) -> list[dict]:
    """TSTR (``synthetic-only:<name>``) against TRTR (``real``) at the ``"all"`` budget, per classifier."""
    main = {(a["row"], a["classifier"]): a for a in aggregate if a["budget"] == "all" and not a["sweep"]}
    out = []
    for (row, clf), a in main.items():
        if row.startswith("synthetic-only:") and ("real", clf) in main:
            t, r = a["OA"]["mean"], main[("real", clf)]["OA"]["mean"]
            out.append(dict(provider=_row_source(row), classifier=clf, TSTR_OA=t, TRTR_OA=r,
                            ratio=t / r if r > 0 else None))
    return out


def _benchmark_plan(budgets, split_seeds, draws, classifiers, rows, synthetic, ratios, sweep):
    """Validate :func:`run_benchmark`'s choices; returns ``(split_seeds, draws, rows, row_ratio, plan)`` where the
    plan lists ``(row, budget, ratio, sweep)`` in table order (ratio None for ``"real"``)."""
    for name, fn in synthetic.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", name) or name == "aug":
            raise DataError(f"synthetic: expected provider names of letters, digits, '_', '.', '-' (not 'aug'), "
                            f"got {name!r}")
        if not callable(fn):
            raise DataError(f"synthetic[{name!r}]: expected a callable provider, got {type(fn).__name__}")
    if isinstance(budgets, (str, bytes)) or not isinstance(budgets, Sequence) or not budgets:
        raise DataError(f"budgets: expected a non-empty sequence of positive ints and/or 'all', got {budgets!r}")
    for b in budgets:
        _check_budget("budgets", b)
    if len(set(budgets)) != len(budgets):
        raise DataError(f"budgets: expected distinct budgets, got {tuple(budgets)!r}")
    split_seeds, draws = _check_seeds("split_seeds", split_seeds), _check_seeds("draws", draws)
    if isinstance(classifiers, str) or not classifiers or not set(classifiers) <= set(CLASSIFIERS) \
            or len(set(classifiers)) != len(classifiers):
        raise DataError(f"classifiers: expected distinct names from {CLASSIFIERS}, got {classifiers!r}")
    rows = _check_rows(rows, synthetic)
    added_rows = [r for r in rows if r != "real"]
    if isinstance(ratios, Mapping):
        for r in ratios:
            if r not in added_rows:
                raise DataError(f"ratios: unknown or real-only row {r!r}; expected rows among {added_rows}")
        row_ratio = {r: _check_number(f"ratios[{r!r}]", ratios.get(r, 1.0), lo_open=True) for r in added_rows}
    else:
        ratio = _check_number("ratios", ratios, lo_open=True)
        row_ratio = {r: ratio for r in added_rows}
    plan = [(r, b, row_ratio.get(r), False) for r in rows
            for b in (("all",) if r.startswith("synthetic-only:") else budgets)]
    if any(r.startswith("synthetic-only:") for r in rows) and ("real", "all", None, False) not in plan:
        plan.append(("real", "all", None, False))  # TRTR, the reference of TSTR
    if sweep is not None:
        if not isinstance(sweep, Mapping) or set(sweep) != {"row", "budget", "ratios"}:
            raise DataError(f"sweep: expected {{'row', 'budget', 'ratios'}}, got {sweep!r}")
        srow = sweep["row"]
        _check_rows((srow,), synthetic)
        if srow == "real":
            raise DataError("sweep: expected a row with added pixels, got 'real'")
        _check_budget("sweep['budget']", sweep["budget"])
        if isinstance(sweep["ratios"], (str, bytes)) or not isinstance(sweep["ratios"], Sequence) \
                or not sweep["ratios"]:
            raise DataError(f"sweep['ratios']: expected a non-empty sequence of positive numbers, got "
                            f"{sweep['ratios']!r}")
        plan += [(srow, sweep["budget"], _check_number("sweep['ratios']", q, lo_open=True), True)
                 for q in sweep["ratios"]]
    return split_seeds, draws, rows, row_ratio, plan


def _machine(dev: torch.device) -> dict:
    """Where the benchmark ran: CPU architecture and count, accelerator, library versions (for the footnote)."""
    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else None
    return dict(arch=platform.machine(), cpu_count=os.cpu_count(), platform=platform.platform(), device=str(dev),
                gpu=gpu, net_threads=1 if dev.type == "cpu" else None, torch=torch.__version__,
                sklearn=sklearn.__version__, numpy=np.__version__)


def run_benchmark(scene, budgets=(5, 10, 25, "all"), split_seeds=(0, 1, 2), draws=(0, 1, 2),
                  classifiers=("svm", "net"), rows=None, synthetic: Mapping[str, Callable] | None = None,
                  ratios: float | Mapping[str, float] = 1.0, sweep: Mapping | None = None, progress: bool = False,
                  *, window: int = 3, size: int = 32, holdout: float = 0.2, block: int = 8, net_steps: int = 300,
                  net_kwargs: dict | None = None, svm_kwargs: dict | None = None,
                  augment_kwargs: dict | None = None, device=None) -> dict:
    """Train each row's classifiers on real labels (+ synthetic pixels) and score them on the held-out region.

    Args:
        scene: :class:`hudlib.data.Scene` or a scene name.
        budgets: real labels per class: positive ints and/or ``"all"`` (:func:`draw_labels` with ``cap=True``: a
            class with fewer training pixels gives all it has; the counts are recorded per run).
        split_seeds: seeds of :func:`spatial_split` ``(gt, size, holdout, block)``.
        draws: label draw indices; the draw of (split seed ``s``, draw ``d``) is seeded from ``(s, d)`` and is the
            same for every row and classifier (rows differ only in what is added), and nested across budgets.
        classifiers: subset of ``("svm", "net")`` (:func:`fit_svm`, :func:`fit_net`).
        rows: row names (default: all of ``"real"``, ``"real+aug"``, ``"real+<name>"`` and
            ``"synthetic-only:<name>"`` for each provider). ``synthetic-only`` rows run at the ``"all"`` budget only,
            and with them ``"real"`` at ``"all"`` (their TRTR reference) even when ``"all"`` is not in ``budgets``.
        synthetic: ``{name: provider}``. A provider is called with keywords ``split_seed``, ``train_mask``
            (``(rows, cols)`` bool, the only ground it may draw from), ``real_windows`` ``(n_real, bands, 3, 3)``,
            ``real_labels`` ``(n_real,)``, ``n_pixels`` (``round(ratio * n_real)``), ``random_state`` (from
            ``(name, split seed, draw)``: the same for every budget, ratio and classifier), ``budget``, ``draw``,
            ``classifier`` - those its signature names, all of them with ``**kwargs`` - and ``classify`` only if
            it names that parameter: ``classify(windows) -> labels``, the run's classifier fitted on the run's real
            labels (the row-1 model, see :func:`pseudo_label_provider`). It returns ``(windows (N, bands, 3, 3),
            labels (N,) in 1..n_classes)``. Its output is reused across classifiers unless it takes ``classify``.
        ratios: synthetic (or augmented) pixels per real label of the rows other than ``"real"``: one number, or
            ``{row: ratio}`` (missing rows: 1).
        sweep: optional ``{"row": name, "budget": b, "ratios": (1, 4, 16)}``: that row (not ``"real"``) at
            budget ``b`` for each ratio, recorded with ``sweep=True``.
        progress: tqdm bar over the runs.
        window: window side (odd, >= the net's window).
        size, holdout, block: :func:`spatial_split` settings (32 = the generated patch size: no held-out pixel
            lies inside any 32 x 32 crop around a training pixel).
        net_steps, net_kwargs: :func:`fit_net` steps and further arguments (``batch_size``, ``lr``,
            ``weight_decay``, ``model_kwargs``); svm_kwargs: :func:`fit_svm` arguments (``C``, ``gamma``);
            augment_kwargs: :func:`augment` arguments (``noise``, ``brightness``, ``mixup``, ...).
        device: torch device of the net.

    Every run is scored on every held-out labelled pixel. The net's seed depends on (split seed, draw, budget)
    only, so rows are compared with common random numbers.

    Returns:
        JSON-able dict: ``runs`` (one per row x classifier x budget x split seed x draw [x ratio]: OA, AA, kappa,
        per_class, n_real, n_real_per_class, n_synthetic, n_held, wall_time_s, ...; an undefined kappa is None),
        ``aggregate`` (mean, sample std and count over split seeds x draws), ``tstr``, ``settings``, ``machine``,
        ``wall_time_s``.
    """
    t_start = time.perf_counter()
    sc, cube, gt = _scene_arrays(scene)
    n_classes = int(getattr(sc, "n_classes", int(gt.max())))
    bands = cube.shape[0]
    synthetic = dict(synthetic or {})
    split_seeds, draws, rows, row_ratio, plan = _benchmark_plan(budgets, split_seeds, draws, classifiers, rows,
                                                                synthetic, ratios, sweep)
    window = _check_window_size(window)
    _positive("net_steps", net_steps)
    net_kwargs, svm_kwargs = dict(net_kwargs or {}), dict(svm_kwargs or {})
    augment_kwargs = dict(augment_kwargs or {})
    plan_budgets = list(dict.fromkeys(b for _, b, _, _ in plan))
    dev = resolve_device(device)
    machine = _machine(dev)

    runs: list[dict] = []
    bar = tqdm(total=len(plan) * len(split_seeds) * len(draws) * len(classifiers), desc=f"downstream {sc.name}",
               disable=not progress)
    for split_seed in split_seeds:
        train_mask, held_mask = spatial_split(gt, size=size, holdout=holdout, block=block, random_state=split_seed)
        hr, hc = np.nonzero(held_mask)
        if len(hr) == 0:
            raise DataError("holdout: no held-out pixel to score on; expected holdout > 0")
        held_w, held_y = scene_windows(cube, hr, hc, window), gt[hr, hc].astype(np.int64)
        for budget in plan_budgets:
            for draw in draws:
                rr, cc, counts = draw_labels(gt, train_mask, budget, random_state=_seed(split_seed, draw), cap=True,
                                             n_classes=n_classes, return_counts=True)
                if len(rr) == 0:
                    raise DataError(f"split seed {split_seed}: no labelled pixel in the training region")
                real_w, real_y = scene_windows(cube, rr, cc, window), gt[rr, cc].astype(np.int64)
                model_seed = _seed("model", split_seed, draw, budget)
                real_models: dict[str, object] = {}
                added: dict[tuple, tuple] = {}

                def fit(clf, X, y):
                    if clf == "svm":
                        return fit_svm(X, y, random_state=model_seed, **svm_kwargs)
                    return fit_net(X, y, n_classes, steps=net_steps, random_state=model_seed, device=dev,
                                   **net_kwargs)

                def real_model(clf):
                    if clf not in real_models:
                        real_models[clf] = fit(clf, real_w, real_y)
                    return real_models[clf]

                for clf in classifiers:
                    for row, _, ratio, is_sweep in (p for p in plan if p[1] == budget):
                        t0 = time.perf_counter()
                        source = _row_source(row)
                        n_pixels = 0 if ratio is None else max(1, int(round(ratio * len(real_y))))
                        if source is None:
                            model, X_syn = real_model(clf), None
                        else:
                            key = (source, n_pixels, clf if source != "aug" and _wants_classify(
                                synthetic[source]) else None)
                            if key not in added:
                                if source == "aug":
                                    added[key] = augment(real_w, real_y, ratio, random_state=_seed(
                                        "aug", split_seed, draw), **augment_kwargs)
                                else:
                                    offered = dict(split_seed=split_seed, train_mask=train_mask.copy(),
                                                   real_windows=real_w, real_labels=real_y, n_pixels=n_pixels,
                                                   random_state=_seed(source, split_seed, draw), budget=budget,
                                                   draw=draw, classifier=clf,
                                                   classify=lambda W, c=clf: predict(real_model(c), W))
                                    fn = synthetic[source]
                                    added[key] = _check_provider_output(source, fn(**_accepted_kwargs(fn, offered)),
                                                                        bands, window, n_classes)
                            X_syn, y_syn = added[key]
                            if row.startswith("synthetic-only:"):
                                X_tr, y_tr = X_syn, y_syn
                            else:
                                X_tr, y_tr = np.concatenate([real_w, X_syn]), np.concatenate([real_y, y_syn])
                            model = fit(clf, X_tr, y_tr)
                        m = classification_metrics(held_y, predict(model, held_w))
                        only = row.startswith("synthetic-only:")
                        runs.append(dict(
                            row=row, classifier=clf, budget=budget, split_seed=split_seed, draw=draw, ratio=ratio,
                            sweep=is_sweep, OA=m["OA"], AA=m["AA"],
                            kappa=m["kappa"] if math.isfinite(m["kappa"]) else None,  # 0/0: one class, all right
                            per_class={str(k): v for k, v in m["per_class"].items()},
                            n_real=0 if only else int(len(real_y)),
                            n_real_per_class={str(k): v for k, v in counts.items()},
                            n_synthetic=0 if X_syn is None else int(len(X_syn)), n_held=int(len(held_y)),
                            wall_time_s=round(time.perf_counter() - t0, 3)))
                        bar.update(1)
    bar.close()
    aggregate = _aggregate(runs)

    settings = dict(version=DOWNSTREAM_VERSION, scene=sc.name, budgets=list(budgets), split_seeds=list(split_seeds),
                    draws=list(draws), classifiers=list(classifiers), rows=list(rows), ratios=row_ratio,
                    sweep=None if sweep is None else dict(sweep, ratios=list(sweep["ratios"])), window=window,
                    split=dict(size=int(size), holdout=float(holdout), block=int(block)),
                    net=dict(steps=int(net_steps), **{k: v for k, v in net_kwargs.items()}),
                    svm=dict(dict(C=100.0, gamma="scale"), **svm_kwargs), augment=augment_kwargs,
                    providers=sorted(synthetic))
    return dict(scene=sc.name, settings=settings, machine=machine, runs=runs, aggregate=aggregate,
                tstr=_tstr(aggregate), wall_time_s=round(time.perf_counter() - t_start, 1))


# --------------------------------------------------------------------------------------------- report
def _pm(stat: dict | None, scale: float = 100.0, digits: int = 1) -> str:
    if stat is None:
        return "—"
    s = f"{stat['mean'] * scale:.{digits}f}"
    return s if stat.get("std") is None else f"{s} ± {stat['std'] * scale:.{digits}f}"


def _budget_label(b) -> str:
    return "all" if b == "all" else f"{b}/class"


def benchmark_markdown(result: dict, profile: str) -> str:
    """The Markdown report of a :func:`run_benchmark` result (see :func:`write_benchmark`)."""
    st = result["settings"]
    agg = [a for a in result["aggregate"] if not a["sweep"]]
    budgets = list(st["budgets"])
    out = [f"# Downstream classification on {result['scene']} (profile `{profile}`)", "",
           "Trained on real labels drawn per class inside the training region of a spatially disjoint split, plus "
           "the row's added pixels; scored on every held-out labelled pixel. Cells: OA / AA / κ, all × 100, "
           "mean ± sample std over split seeds × label draws.", ""]
    names = {"svm": "SVM (RBF, centre spectrum)", "net": "PixelNeighbourhoodNet (3 × 3 windows)"}
    row_order = list(dict.fromkeys([*st["rows"], *(a["row"] for a in agg)]))
    cols = budgets + (["all"] if "all" not in budgets and any(a["budget"] == "all" for a in agg) else [])
    header = ["| row | " + " | ".join(_budget_label(b) for b in cols) + " |", "|---|" + "---|" * len(cols)]

    def three(d):
        return "—" if d is None else f"{_pm(d['OA'])} / {_pm(d['AA'])} / {_pm(d['kappa'])}"

    for clf in st["classifiers"]:
        cells = {(a["row"], a["budget"]): a for a in agg if a["classifier"] == clf}
        out += [f"## {names[clf]}", "", *header]
        out += [f"| {row} | " + " | ".join(three(cells.get((row, b))) for b in cols) + " |" for row in row_order]
        gains = [row for row in row_order if row != "real"]
        if gains:
            out += ["", "Paired gain over `real` (same split, draw and real labels; TSTR − TRTR for synthetic-only): "
                        "ΔOA / ΔAA / Δκ × 100, mean ± std of the per-run differences.", "", *header]
            out += [f"| {row} | " + " | ".join(three(cells[(row, b)].get("gain_vs_real")) if (row, b) in cells
                                               else "—" for b in cols) + " |" for row in gains]
        out.append("")
    ints = [b for b in budgets if b != "all"]
    smallest = min(ints) if ints else "all"
    small = [a for a in agg if a["budget"] == smallest]
    if small:
        classes = sorted({c for a in small for c in a["per_class"]}, key=int)
        held = {}
        for r in result["runs"]:
            if r["budget"] == smallest and not r["sweep"]:
                for c in r["per_class"]:
                    held.setdefault(c, set()).add(r["split_seed"])
        out += [f"## Per-class accuracy at {_budget_label(smallest)} (× 100)", "",
                "| class | held out in splits | " + " | ".join(f"{a['row']} ({a['classifier']})" for a in small) + " |",
                "|---|---|" + "---|" * len(small)]
        for c in classes:
            vals = [_pm(a["per_class"].get(c)) for a in small]
            out.append(f"| {c} | {len(held.get(c, ()))}/{len(st['split_seeds'])} | " + " | ".join(vals) + " |")
        out.append("")
    sweep = [a for a in result["aggregate"] if a["sweep"]]
    if sweep:
        ratios = sorted({a["ratio"] for a in sweep})
        out += [f"## Ratio sweep: {st['sweep']['row']} at {_budget_label(st['sweep']['budget'])} (OA / AA / κ × 100)",
                "", "| classifier | " + " | ".join(f"{q:g} px per label" for q in ratios) + " |",
                "|---|" + "---|" * len(ratios)]
        for clf in st["classifiers"]:
            cells = {a["ratio"]: a for a in sweep if a["classifier"] == clf}
            out.append(f"| {clf} | " + " | ".join(
                f"{_pm(cells[q]['OA'])} / {_pm(cells[q]['AA'])} / {_pm(cells[q]['kappa'])}" if q in cells else "—"
                for q in ratios) + " |")
        out.append("")
    if result.get("tstr"):
        out += ["## TSTR vs TRTR at the 'all' budget (OA × 100)", "",
                "| provider | classifier | TSTR | TRTR | TSTR / TRTR |", "|---|---|---|---|---|"]
        for t in result["tstr"]:
            ratio = "—" if t["ratio"] is None else f"{t['ratio']:.2f}"
            out.append(f"| {t['provider']} | {t['classifier']} | {t['TSTR_OA'] * 100:.1f} | {t['TRTR_OA'] * 100:.1f} "
                       f"| {ratio} |")
        out.append("")
    if len(st["split_seeds"]) > 1:
        seeds = st["split_seeds"]
        out += ["## OA per split seed (× 100, mean over draws)", "",
                "| classifier | row | budget | " + " | ".join(f"split {q}" for q in seeds) + " |",
                "|---|---|---|" + "---|" * len(seeds)]
        for clf in st["classifiers"]:
            for row in row_order:
                for b in cols:
                    rs = [r for r in result["runs"] if r["classifier"] == clf and r["row"] == row
                          and r["budget"] == b and not r["sweep"]]
                    if rs:
                        vals = [_stat(r["OA"] for r in rs if r["split_seed"] == q) for q in seeds]
                        out.append(f"| {clf} | {row} | {_budget_label(b)} | " + " | ".join(
                            "—" if v is None else f"{v['mean'] * 100:.1f}" for v in vals) + " |")
        out.append("")
    sp, net, mc = st["split"], st["net"], result["machine"]
    where = (f"{mc['gpu']} (nets), " if mc.get("gpu") else f"CPU {mc['arch']}, nets on {mc['net_threads']} thread, ") \
        + f"{mc['cpu_count']} CPUs, torch {mc['torch']}, scikit-learn {mc['sklearn']}"
    n_runs = len(st["split_seeds"]) * len(st["draws"])
    out.append(
        f"*{result['scene']}, profile `{profile}`: split seeds {', '.join(map(str, st['split_seeds']))} × label draws "
        f"{', '.join(map(str, st['draws']))} ({n_runs} runs per cell; at 'all' the draws differ only in classifier "
        f"seeds, so the SVM's are identical); spatial_split(size={sp['size']}, holdout={sp['holdout']}, "
        f"block={sp['block']}); a budget caps at a class's training pixels. Net: {net['steps']} AdamW steps "
        f"(one-cycle, dihedral batches); SVM: C={st['svm']['C']}, gamma={st['svm']['gamma']}. Added pixels per real "
        f"label: {', '.join(f'{r} {q:g}' for r, q in st['ratios'].items()) or '—'}. Machine: {where}. Wall time {result['wall_time_s']:.0f} s; {st['version']}.*")
    return "\n".join(out) + "\n"


def _json_safe(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.generic):
        return _json_safe(x.item())
    return x


def write_benchmark(result: dict, out_dir, profile: str) -> tuple[Path, Path]:
    """Write ``downstream_<profile>.json`` (the whole result; NaN as null) and ``downstream_<profile>.md`` (a
    table per classifier: rows x budgets with OA/AA/kappa mean ± std; per-class accuracy at the smallest budget; the
    ratio sweep and TSTR/TRTR when run; a footnote with seeds, draws, machine and profile) into ``out_dir``,
    each atomically. Returns both paths."""
    if not isinstance(profile, str) or not re.fullmatch(r"[A-Za-z0-9_\-]+", profile):
        raise DataError(f"profile: expected a name of letters, digits, '_' or '-', got {profile!r}")
    if not isinstance(result, dict) or not {"runs", "aggregate", "settings"} <= set(result):
        raise DataError("result: expected the dict returned by run_benchmark")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jpath, mpath = out / f"downstream_{profile}.json", out / f"downstream_{profile}.md"
    atomic_write_text(jpath, json.dumps(_json_safe(dict(result, profile=profile)), indent=1, allow_nan=False))
    atomic_write_text(mpath, benchmark_markdown(result, profile))
    return jpath, mpath


# --------------------------------------------------------------------------------------------- with HUD-cond
def layout_crops(gt, held, size: int, per_class: int, random_state=0, rearrange: bool = False,
                 tile: int = 8) -> np.ndarray:
    """Label layouts ``(m, size, size)`` cropped from the labelled ground outside the held-out region: for every
    class k with pixels there, ``per_class`` crops (top-left corners drawn among those whose crop holds no held-out
    pixel, weighted by how many class-k pixels the crop holds). ``rearrange``: each crop's ``tile`` x ``tile``
    tiles are shuffled (same classes and local fields, another arrangement)."""
    from .models.hud_cond import allowed_corners

    gt = np.asarray(gt)
    corners = allowed_corners(held, size)
    rng = np.random.default_rng(random_state)
    out = []
    for k in range(1, int(gt.max()) + 1):
        S = np.zeros((gt.shape[0] + 1, gt.shape[1] + 1), np.int64)
        S[1:, 1:] = (gt == k).cumsum(0).cumsum(1)
        r, c = corners[:, 0], corners[:, 1]
        cnt = S[r + size, c + size] - S[r, c + size] - S[r + size, c] + S[r, c]
        if cnt.sum() == 0:
            continue
        pick = rng.choice(len(corners), per_class, p=cnt / cnt.sum())
        out += [gt[r[i]:r[i] + size, c[i]:c[i] + size] for i in pick]
    L = np.stack(out).astype(np.int64)
    if rearrange:
        t = size // tile
        tiles = L.reshape(len(L), t, tile, t, tile).transpose(0, 1, 3, 2, 4).reshape(len(L), t * t, tile, tile)
        tiles = np.stack([tl[rng.permutation(t * t)] for tl in tiles])
        L = tiles.reshape(len(L), t, t, tile, tile).transpose(0, 1, 3, 2, 4).reshape(len(L), size, size)
    return np.ascontiguousarray(L)


def _pool(gen, gt, held, per_class: int, random_state, guidance: float, rearrange: bool) -> tuple:
    """(windows, labels) of the labelled pixels of HUD-cond samples drawn for :func:`layout_crops` layouts."""
    L = layout_crops(gt, held, gen.config_.train.patch_size, per_class, random_state, rearrange)
    Y = gen.sample(len(L), random_state=random_state, layout=L, guidance=guidance)
    return patch_windows(Y, L)


def _draw_like(pool: tuple, real_labels, n_pixels: int, random_state) -> tuple:
    """``n_pixels`` pool pixels with the real labels' class proportions (without replacement where the pool has
    enough of a class, with replacement where it has fewer)."""
    W, y = pool
    rng = np.random.default_rng(random_state)
    classes, counts = np.unique(real_labels, return_counts=True)
    want = np.round(n_pixels * counts / counts.sum()).astype(int)
    idx = []
    for k, q in zip(classes, want):
        have = np.flatnonzero(y == k)
        if len(have) and q:
            idx.append(rng.choice(have, q, replace=len(have) < q))
    idx = np.concatenate(idx) if idx else np.empty(0, int)
    return W[idx], y[idx]


def layout_fidelity(gen, scene, split_seed: int, guidances=(0.0, 1.0, 3.0), per_class: int = 8, random_state=0,
                    net_steps: int = 300, device=None) -> dict:
    """How well HUD-cond's samples follow their layouts: a 3x3 net trained on every real training-region label of
    split ``split_seed`` labels the synthetic pixels drawn for layouts of that ground; the per-pixel agreement
    with the conditioning map at each guidance weight, beside the same net's accuracy on the held-out pixels (the
    ceiling). Only training-side data enter (the held-out accuracy is reported, never used to choose)."""
    _, cube, gt = _scene_arrays(scene)
    train, held = spatial_split(gt, size=32, random_state=split_seed)
    r, c = np.nonzero(train)
    net = fit_net(scene_windows(cube, r, c), gt[r, c], int(scene.n_classes), steps=net_steps,
                  random_state=random_state, device=device)
    hr, hc = np.nonzero(held)
    ceiling = float((predict_windows(net, scene_windows(cube, hr, hc), device=device) == gt[hr, hc]).mean())
    out = {"split_seed": int(split_seed), "heldout_accuracy": ceiling, "per_guidance": {}}
    for w in guidances:
        W, y = _pool(gen, gt, held, per_class, random_state, float(w), False)
        out["per_guidance"][str(float(w))] = {"agreement": float((predict_windows(net, W, device=device) == y).mean()),
                                              "n_pixels": int(len(y))}
    return out


def experiment_generators(scene, profile: str, runs=None, device="auto", progress: bool = False) -> dict:
    """``{split seed: fitted HUD-cond}``: one per split seed of the profile's benchmark, trained (or reused: a
    finished run or a shipped checkpoint) on that split's training ground only."""
    from . import models

    seeds = PROFILES[settings_name(profile)]["split_seeds"]
    return {s: models.create(GENERATOR).fit(scene, profile, runs, overrides={"cond": {"split_seed": int(s)}},
                                            device=device, progress=progress) for s in seeds}


def experiment_key(gens: dict, per_class_crops: int = 8, net_steps: int | None = None) -> dict:
    """What an :func:`experiment` result depends on besides its code (:data:`DOWNSTREAM_VERSION`): the HUD-cond
    weights of each split and the settings."""
    return {"version": DOWNSTREAM_VERSION, "weights": {str(s): g.weights_hash() for s, g in gens.items()},
            "per_class_crops": per_class_crops, "net_steps": net_steps}


def run_or_reuse(scene, profile: str, runs=None, results=None, recompute: bool = True, device="auto",
                 progress: bool = False) -> tuple[dict, bool]:
    """``(result, reused)``: the stored ``results/downstream_<profile>.json`` when it was computed with the same
    HUD-cond weights and settings (:func:`experiment_key`) and ``recompute`` is False, else a fresh
    :func:`experiment` (written with :func:`write_experiment`). The default ``./run_all.sh`` reuses the committed
    benchmark (it takes minutes); ``--downstream`` or ``--retrain`` recompute it."""
    from . import paths

    gens = experiment_generators(scene, profile, runs, device, progress)
    crops = LAYOUT_CROPS[settings_name(profile)]
    key = experiment_key(gens, per_class_crops=crops)
    path = paths.results_dir(results) / f"downstream_{profile}.json"
    if not recompute and path.is_file():
        old = json.loads(path.read_text())
        if old.get("key") == key:
            write_experiment(old, path.parent, profile)  # the Markdown, rendered again from the stored runs
            return old, True
    result = experiment(scene, profile, runs, device, progress, per_class_crops=crops, gens=gens)
    result["key"] = key
    write_experiment(result, path.parent, profile)
    return result, False


def experiment(scene, profile: str = "quick", runs=None, device="auto", progress: bool = False,
               per_class_crops: int | None = None, net_steps: int | None = None, gens: dict | None = None) -> dict:
    """The downstream benchmark with HUD-cond (README "Does synthetic data help?"), on ``scene``'s spatially
    disjoint splits: one HUD-cond per split seed, trained (or reused, a shipped checkpoint) on the training side
    only, and the rows

    1. ``real`` and 2. ``real+aug`` (classic augmentation); 3. ``real+HUD-cond`` (samples for layouts cropped from
    the labelled training ground) and ``real+HUD-cond-rearranged`` (their tiles shuffled); 4. ``real+pseudo``
    (HUD-cond's unconditional samples labelled by the row-1 classifier: generate-then-label); 5.
    ``synthetic-only:HUD-cond`` (TSTR) against ``real`` at every training label (TRTR); and the ratio sweep
    (1, 4, 16 synthetic pixels per real label) of row 3 at 10 labels per class.

    The guidance weight of rows 3 is chosen per split by :func:`layout_fidelity` (the training-side agreement; ties
    to the smaller w). Synthetic pixels follow the class proportions of the row's real labels. Note: HUD-cond saw
    the label maps of the whole training ground, so rows 3-5 carry more label information than the budget (the
    budget counts the labelled pixels handed to the classifier). ``per_class_crops``: layouts per class in each
    pool (None: :data:`LAYOUT_CROPS` of the profile). Returns :func:`run_benchmark`'s dict with
    ``"layout_fidelity"`` and ``"generators"`` (weights hash per split) added."""
    from .classifier import spatial_split as split

    sc, cube, gt = _scene_arrays(scene)
    settings = dict(PROFILES[settings_name(profile)])
    if per_class_crops is None:
        per_class_crops = LAYOUT_CROPS[settings_name(profile)]
    if net_steps is not None:
        settings["net_steps"] = int(net_steps)
    gens = gens or experiment_generators(sc, profile, runs, device, progress)
    fidelity, guidance = {}, {}
    for s in settings["split_seeds"]:
        if gens[s].config_.cond.split_seed != s:
            raise DataError(f"HUD-cond: expected a run with split seed {s}")
        fidelity[s] = layout_fidelity(gens[s], sc, s, per_class=per_class_crops, net_steps=settings["net_steps"],
                                      device=device)
        ag = fidelity[s]["per_guidance"]
        guidance[s] = float(max(ag, key=lambda w: (ag[w]["agreement"], -float(w))))
    pools: dict = {}

    def layout_provider(rearrange: bool):
        def provider(split_seed, train_mask, real_labels, n_pixels, random_state):
            key = (split_seed, rearrange)
            if key not in pools:
                held = split(gt, size=32, random_state=split_seed)[1]
                pools[key] = _pool(gens[split_seed], gt, held, per_class_crops, _seed(split_seed, int(rearrange)),
                                   guidance[split_seed], rearrange)
            return _draw_like(pools[key], real_labels, n_pixels, random_state)
        return provider

    def pseudo(split_seed, n_pixels, random_state, classify):
        return pseudo_label_provider(lambda n, rs: gens[split_seed].sample(n, random_state=rs))(
            n_pixels=n_pixels, random_state=random_state, classify=classify)

    synthetic = {"HUD-cond": layout_provider(False), "HUD-cond-rearranged": layout_provider(True), "pseudo": pseudo}
    rows = ("real", "real+aug", "real+HUD-cond", "real+HUD-cond-rearranged", "real+pseudo", "synthetic-only:HUD-cond")
    result = run_benchmark(sc, rows=rows, synthetic=synthetic, ratios=1.0, progress=progress, device=device,
                           sweep={"row": "real+HUD-cond", "budget": 10 if 10 in settings["budgets"] else
                                  settings["budgets"][0], "ratios": (1, 4, 16)}, **settings)
    result["layout_fidelity"] = {str(s): {**v, "chosen_guidance": guidance[s]} for s, v in fidelity.items()}
    result["generators"] = {str(s): {"weights_hash": g.weights_hash(), "run": g.run_dir_.name,
                                     "sampler": g.sampler_settings()} for s, g in gens.items()}
    result["profile"] = profile
    return result


def experiment_markdown(result: dict) -> str:
    """The layout-fidelity table and the notes of :func:`experiment` (appended to the benchmark's Markdown)."""
    lines = ["", "## Layout fidelity of HUD-cond", "",
             "A 3x3 network trained on every real label of the split's training ground labels HUD-cond's synthetic "
             "pixels; agreement with the conditioning map at guidance weight w, beside the same network's accuracy "
             "on the real held-out pixels (the ceiling).", "",
             "| split seed | held-out accuracy (ceiling) | " + " | ".join(
                 f"agreement, w = {w}" for w in next(iter(result["layout_fidelity"].values()))["per_guidance"])
             + " | w used |", "|---|---|" + "---|" * (len(next(iter(result["layout_fidelity"].values()))
                                                        ["per_guidance"]) + 1)]
    for s, f in result["layout_fidelity"].items():
        lines.append(f"| {s} | {f['heldout_accuracy']:.3f} | " + " | ".join(
            f"{v['agreement']:.3f} ({v['n_pixels']} px)" for v in f["per_guidance"].values())
            + f" | {f['chosen_guidance']:g} |")
    gens = ", ".join(f"split {s}: {g['run']} (weights {g['weights_hash']})" for s, g in result["generators"].items())
    lines += ["", f"*HUD-cond runs: {gens}. Each saw only its split's training ground (no held-out pixel in any "
                  "training crop, VCA outside the held-out region), but all of that ground's label maps: rows with "
                  "HUD-cond carry more label information than the budget, which counts only the labelled pixels "
                  "given to the classifier. The guidance weight of the layout rows is the one with the best "
                  "training-side agreement.*", ""]
    return "\n".join(lines)


def write_experiment(result: dict, out_dir, profile: str) -> tuple[Path, Path]:
    """:func:`write_benchmark` of an :func:`experiment` result, the layout fidelity appended to the Markdown."""
    jpath, mpath = write_benchmark(result, out_dir, profile)
    atomic_write_text(mpath, mpath.read_text() + experiment_markdown(result))
    return jpath, mpath
