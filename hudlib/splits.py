"""Spatial k-fold splits of a labelled scene: what a generator may train on and what a classifier is scored on.

One object decides both. :class:`SpatialKFold` (its settings in one place, named by :attr:`SpatialKFold.spec`)
partitions the scene's labelled pixels into ``n_folds`` held-out sets made of square ``block`` × ``block`` cells,
so every labelled pixel is held out exactly once. For fold *f* (:class:`Fold`):

* ``region``: every pixel of the fold's cells (labelled or not), the ground nobody trains on;
* ``held``: the labelled pixels of ``region``, the pixels a classifier is scored on;
* ``buffer``: the pixels within Chebyshev distance ``buffer`` of ``region`` (outside it), seen by nobody;
* ``train``: everything else, the fold's *training ground*. A generator trained for fold *f* reads only these
  pixels (:meth:`Fold.view` hides the rest: NaN spectra, label 0), its crops lie inside them
  (:meth:`Fold.corners`), and a classifier's labels are drawn among them.

Block assignment (stratified by search, as spatial cross-validation does; docs/methods.md "Spatial k-fold"): a
candidate grows the ``n_folds`` regions at once over the grid of cells that hold labelled pixels, the region with
the fewest labelled pixels taking the free 4-neighbour cell with the most 8-neighbours already in it (compact,
balanced regions; a region with no free neighbour jumps to the free cell nearest its centroid). Among
``n_candidates`` candidates the chosen one maximises, in this order, the smallest share over folds of held-out
pixels whose class has at least ``min_class_pixels`` labelled pixels on the fold's training ground (to one
decimal), minus the largest share of one class in a fold's held-out pixels (to one decimal: no fold where always
answering one class scores well), the mean of the first share, and the mean number of labelled training pixels. A
partition whose largest fold holds more than 1.5 times the labelled pixels of its smallest is never chosen while a
balanced one exists.

The inner split of a fold (validation, :meth:`Fold.inner`) is the same procedure run on the fold's training ground
alone: its regions, buffers and grounds never leave the outer fold's training ground.
"""
from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import re
from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi

from .errors import DataError

__all__ = ["SpatialKFold", "Fold", "KFOLD", "SPLIT_VERSION", "mask_sha256", "crop_corners_inside", "pack_mask",
           "unpack_mask"]

SPLIT_VERSION = "v1"  # in every spec: bump when the same settings would give other folds


def mask_sha256(mask: np.ndarray) -> str:
    """sha256 of a bool mask's shape and C-order bytes (recorded beside weights trained on a fold)."""
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    return hashlib.sha256(repr(m.shape).encode() + m.tobytes()).hexdigest()


def pack_mask(mask: np.ndarray) -> dict:
    """A bool mask as JSON: ``{"shape": [rows, cols], "packbits_b64": ...}`` (numpy packbits, C order, base64)."""
    m = np.ascontiguousarray(mask, dtype=bool)
    return {"shape": list(m.shape), "packbits_b64": base64.b64encode(np.packbits(m).tobytes()).decode("ascii")}


def unpack_mask(d: dict) -> np.ndarray:
    """The bool mask of :func:`pack_mask`."""
    shape = tuple(int(x) for x in d["shape"])
    bits = np.unpackbits(np.frombuffer(base64.b64decode(d["packbits_b64"]), np.uint8))
    return bits[:int(np.prod(shape))].reshape(shape).astype(bool)


def crop_corners_inside(ground: np.ndarray, size: int) -> np.ndarray:
    """Top-left corners ``(m, 2)`` int64 (rows, cols; row-major) of the ``size`` × ``size`` crops of a
    ``(rows, cols)`` scene whose every pixel lies in the bool mask ``ground`` (an integral image count)."""
    g = np.asarray(ground, dtype=bool)
    s = int(size)
    if g.ndim != 2 or s < 1 or min(g.shape) < s:
        raise ValueError(f"ground: expected a (rows, cols) mask of at least {s} x {s}, got shape {g.shape}")
    S = np.zeros((g.shape[0] + 1, g.shape[1] + 1), np.int64)
    S[1:, 1:] = (~g).cumsum(0).cumsum(1)
    outside = S[s:, s:] - S[:-s, s:] - S[s:, :-s] + S[:-s, :-s]
    return np.argwhere(outside == 0).astype(np.int64)


@dataclass(frozen=True, eq=False)
class Fold:
    """One fold of a :class:`SpatialKFold` (module docstring): bool masks ``(rows, cols)`` ``train`` (the training
    ground), ``buffer``, ``region`` (the held-out cells) and ``held`` (their labelled pixels), with ``index``,
    ``n_folds``, the splitter's ``spec`` and ``within`` (the ground the split was made of: the whole scene, or an
    outer fold's training ground for an inner split)."""

    index: int
    n_folds: int
    spec: str
    train: np.ndarray
    buffer: np.ndarray
    region: np.ndarray
    held: np.ndarray
    within: np.ndarray

    @property
    def name(self) -> str:
        return f"fold {self.index + 1}/{self.n_folds}"

    def train_labels(self, gt) -> np.ndarray:
        """Bool mask of the labelled pixels of the training ground."""
        return self.train & (np.asarray(gt) > 0)

    def corners(self, size: int) -> np.ndarray:
        """The top-left corners of the ``size`` × ``size`` crops that lie wholly on the training ground."""
        return crop_corners_inside(self.train, size)

    def view(self, scene):
        """The scene as a generator or a provider of fold *f* may see it: a :class:`hudlib.data.Scene` of the same
        name whose cube is NaN and whose class map is 0 outside the training ground (buffer and held-out pixels do
        not exist in it)."""
        gt = np.asarray(scene.gt)
        if gt.shape != self.train.shape:
            raise DataError(f"scene: {scene.name!r} is {gt.shape[0]} x {gt.shape[1]}, the split was made for "
                            f"{self.train.shape[0]} x {self.train.shape[1]}")
        cube = np.array(scene.cube, dtype=np.float32, copy=True)
        cube[:, ~self.train] = np.nan
        return dataclasses.replace(scene, cube=cube, gt=np.where(self.train, gt, 0).astype(np.int64))

    def inner(self, gt, n_folds: int = 3, buffer: int | None = None, random_state: int | None = None
              ) -> list["Fold"]:
        """An inner spatial k-fold of this fold's training ground (validation): same block and candidate count,
        ``n_folds`` inner folds, ``buffer`` (default the outer one's) and seed (default: derived from the outer
        seed and this fold's index)."""
        outer = SpatialKFold.from_spec(self.spec)
        seed = int(np.random.SeedSequence([outer.random_state, 7919, self.index]).generate_state(1)[0]) \
            if random_state is None else random_state
        inner = dataclasses.replace(outer, n_folds=n_folds, buffer=outer.buffer if buffer is None else buffer,
                                    random_state=seed)
        return inner.split(gt, within=self.train)

    def record(self, gt) -> dict:
        """JSON-able facts of the fold on ``gt``: pixel counts, the sha256 of its masks, its class coverage (held-out
        pixels per class and whether the class has training pixels) and the majority-class baseline (the accuracy of
        always answering the most frequent held-out class)."""
        gt = np.asarray(gt)
        held_y, train_y = gt[self.held], gt[self.train_labels(gt)]
        classes, counts = np.unique(held_y, return_counts=True)
        in_train = set(np.unique(train_y).tolist())
        return {"index": self.index, "n_folds": self.n_folds, "spec": self.spec,
                "held_pixels": int(self.held.sum()), "region_pixels": int(self.region.sum()),
                "buffer_pixels": int(self.buffer.sum()), "train_ground_pixels": int(self.train.sum()),
                "train_labelled_pixels": int(len(train_y)),
                "held_classes": {str(int(k)): int(n) for k, n in zip(classes, counts)},
                "held_classes_unseen_in_train": [int(k) for k in classes if int(k) not in in_train],
                "majority_class": int(classes[np.argmax(counts)]) if len(classes) else None,
                "majority_baseline_OA": float(counts.max() / counts.sum()) if len(classes) else None,
                "held_sha256": mask_sha256(self.held), "train_sha256": mask_sha256(self.train)}


_SPEC = re.compile(r"SpatialKFold\(n_folds=(\d+),block=(\d+),buffer=(\d+),random_state=(\d+),"
                   r"n_candidates=(\d+),min_class_pixels=(\d+),version=(\w+)\)")


@dataclass(frozen=True)
class SpatialKFold:
    """Spatial k-fold splitter of a label map (module docstring). ``split(gt)`` gives the ``n_folds`` :class:`Fold`
    objects; ``spec`` names the settings (generators record it with their weights)."""

    n_folds: int = 5
    block: int = 16
    buffer: int = 16
    random_state: int = 0
    n_candidates: int = 256
    min_class_pixels: int = 5

    def __post_init__(self):
        for name, lo in (("n_folds", 2), ("block", 1), ("buffer", 0), ("random_state", 0), ("n_candidates", 1),
                         ("min_class_pixels", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise DataError(f"SpatialKFold.{name}: expected an int >= {lo}, got {v!r}")

    @property
    def spec(self) -> str:
        return (f"SpatialKFold(n_folds={self.n_folds},block={self.block},buffer={self.buffer},"
                f"random_state={self.random_state},n_candidates={self.n_candidates},"
                f"min_class_pixels={self.min_class_pixels},version={SPLIT_VERSION})")

    @classmethod
    def from_spec(cls, spec: str) -> "SpatialKFold":
        """The splitter named by :attr:`spec` (a spec of another version is refused: its folds are gone)."""
        m = _SPEC.fullmatch(str(spec))
        if not m:
            raise DataError(f"split: expected a SpatialKFold spec like {KFOLD.spec!r}, got {spec!r}")
        if m.group(7) != SPLIT_VERSION:
            raise DataError(f"split: spec of version {m.group(7)!r}; this hudlib makes folds of version "
                            f"{SPLIT_VERSION!r} (retrain what was trained on the old folds)")
        n, b, buf, seed, cand, mcp = (int(g) for g in m.groups()[:6])
        return cls(n_folds=n, block=b, buffer=buf, random_state=seed, n_candidates=cand, min_class_pixels=mcp)

    def get_n_splits(self) -> int:
        return self.n_folds

    def split(self, gt, within=None) -> list[Fold]:
        """The folds of the label map ``gt`` ``(rows, cols)`` (0 = unlabelled), or of the part of it inside the
        bool mask ``within`` (an inner split). Deterministic for the settings; computed once per map."""
        gt = np.asarray(gt)
        if gt.ndim != 2 or gt.dtype.kind not in "iu":
            raise DataError(f"gt: expected an int (rows, cols) label map, got {gt.dtype} shape {gt.shape}")
        w = np.ones(gt.shape, bool) if within is None else np.asarray(within)
        if w.shape != gt.shape or w.dtype != bool:
            raise DataError(f"within: expected a bool mask of shape {gt.shape}, got {w.dtype} {w.shape}")
        masks = _split_cached(self, gt.astype(np.int64).tobytes(), gt.shape, np.packbits(w).tobytes())
        return [Fold(i, self.n_folds, self.spec, *(m.copy() for m in ms), w.copy()) for i, ms in enumerate(masks)]


KFOLD = SpatialKFold()  # the project's one splitter: the downstream benchmark, HUD-cond's folds


# ------------------------------------------------------------------------------------------------- the search
@functools.lru_cache(maxsize=32)
def _split_cached(kf: SpatialKFold, gt_bytes: bytes, shape: tuple, within_bits: bytes):
    gt = np.frombuffer(gt_bytes, dtype=np.int64).reshape(shape)
    within = np.unpackbits(np.frombuffer(within_bits, np.uint8))[:shape[0] * shape[1]].reshape(shape).astype(bool)
    return _search(kf, gt, within)


def _cells(labelled: np.ndarray, b: int) -> np.ndarray:
    """Labelled pixels per ``b`` × ``b`` cell ``(R, C)`` (the last row/column of cells may be partial)."""
    R, C = -(-labelled.shape[0] // b), -(-labelled.shape[1] // b)
    pad = np.zeros((R * b, C * b), np.int64)
    pad[:labelled.shape[0], :labelled.shape[1]] = labelled
    return pad.reshape(R, b, C, b).sum(axis=(1, 3))


def _grow(count: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """One candidate: cell -> fold (-1 = a cell without labelled pixels)."""
    assign = np.full(count.shape, -1, np.int64)
    free = count > 0
    cells = np.argwhere(free)
    load = np.zeros(k)
    for f, (i, j) in enumerate(cells[rng.choice(len(cells), k, replace=False)]):
        assign[i, j], free[i, j] = f, False
        load[f] += count[i, j]
    four = ndi.generate_binary_structure(2, 1)
    ones = np.ones((3, 3), np.int64)
    while free.any():
        f = int(np.argmin(load + rng.random(k) * 1e-6))
        mine = assign == f
        near = ndi.binary_dilation(mine, structure=four) & free
        if near.any():
            opts = np.argwhere(near)
            n8 = ndi.convolve(mine.astype(np.int64), ones, mode="constant")[near]
            i, j = opts[np.argmax(n8 + rng.random(len(opts)) * 0.5)]
        else:
            opts = np.argwhere(free)
            i, j = opts[np.argmin(((opts - np.argwhere(mine).mean(0)) ** 2).sum(1))]
        assign[i, j], free[i, j] = f, False
        load[f] += count[i, j]
    return assign


def _fold_masks(assign: np.ndarray, f: int, b: int, buffer: int, within: np.ndarray, labelled: np.ndarray):
    rows, cols = within.shape
    region = np.kron(assign == f, np.ones((b, b), bool))[:rows, :cols] & within
    near = ndi.maximum_filter(region.astype(np.uint8), size=2 * buffer + 1, mode="constant") > 0 if buffer \
        else region
    buf = near & ~region & within
    return within & ~near, buf, region, region & labelled


def _search(kf: SpatialKFold, gt: np.ndarray, within: np.ndarray):
    labelled = (gt > 0) & within
    count = _cells(labelled, kf.block)
    if int((count > 0).sum()) < kf.n_folds:
        raise DataError(f"gt: {int((count > 0).sum())} cells of {kf.block} x {kf.block} hold labelled pixels; "
                        f"expected at least n_folds = {kf.n_folds} (use smaller blocks or fewer folds)")
    rng = np.random.default_rng(kf.random_state)
    best, best_key = None, None
    for _ in range(kf.n_candidates):
        assign = _grow(count, kf.n_folds, rng)
        folds = [_fold_masks(assign, f, kf.block, kf.buffer, within, labelled) for f in range(kf.n_folds)]
        seen, n_train, sizes, majority = [], [], [], []
        for train, _, _, held in folds:
            tl = gt[train & labelled]
            ok = np.flatnonzero(np.bincount(tl, minlength=int(gt.max()) + 1) >= max(kf.min_class_pixels, 1))
            seen.append(float(np.isin(gt[held], ok).mean()) if held.any() else 0.0)
            n_train.append(len(tl))
            sizes.append(int(held.sum()))
            majority.append(float(np.bincount(gt[held]).max() / held.sum()) if held.any() else 1.0)
        balanced = max(sizes) <= 1.5 * max(min(sizes), 1)
        key = (balanced, round(min(seen), 1), -round(max(majority), 1), round(float(np.mean(seen)), 6),
               float(np.mean(n_train)))
        if best_key is None or key > best_key:
            best, best_key = folds, key
    return best
