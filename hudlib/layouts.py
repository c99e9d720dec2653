"""Class maps (layouts) for labelled synthetic scenes: read a user's, take one from a real map, or generate one.

A layout-conditioned generator (HUD-cond) draws a whole scene from a class map ``L`` ``(H, W)`` of ids in 0..K
(0 = unlabelled). The maps come from

* a file (:func:`read_class_map`: a ``.npy``, a ``.mat`` variable, an ENVI image, classification or not, or an
  indexed / grey-level PNG whose values are the ids);
* the scene's real map (:func:`real_layout`): a crop, flip or quarter rotation of it, or a mosaic of such pieces for
  a canvas larger than the scene, optionally restricted to a fold's training ground (everything else unlabelled);
* :class:`FieldLayout`, a procedural generator of agricultural-looking maps — rectilinear fields in strips, jittered
  edges, straight roads and unlabelled gaps — whose class shares, field sizes, unlabelled share, road share and
  orientations are fitted to a real map (or a fold's part of it).

:func:`write_class_map` writes a map as an ENVI classification image (``file type = ENVI Classification``, class
names and lookup colours), which ENVI, SPy and GDAL (hence QGIS) read as a classification with its colour table.
:func:`make_layout` is the one entry point of the command line (``python -m hudlib layout``) and the notebook.

Sources of the facts used here: docs/methods.md ("Class maps").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from sklearn.base import BaseEstimator

from .errors import DataError

__all__ = ["ClassMap", "read_class_map", "write_class_map", "class_table", "class_colours", "real_layout",
           "FieldLayout", "make_layout", "LAYOUT_SOURCES"]

LAYOUT_SOURCES = ("real", "procedural", "file")


@dataclass(frozen=True)
class ClassMap:
    """A class map read from a file: ``labels`` int64 ``(H, W)`` (0 = unlabelled), and the file's class names and
    colours ``(n, 3)`` uint8 for ids 0..n-1 where it has them (ENVI classification files), else None."""

    labels: np.ndarray
    names: tuple[str, ...] | None = None
    colours: np.ndarray | None = None


# --------------------------------------------------------------------------------------------- files
def _as_labels(a, where: str) -> np.ndarray:
    """``a`` as an int64 ``(H, W)`` map of ids ≥ 0, or a one-line :class:`DataError` naming ``where``."""
    a = np.asarray(a)
    if a.ndim == 3 and 1 in (a.shape[0], a.shape[-1]):
        a = a.reshape(a.shape[1:] if a.shape[0] == 1 else a.shape[:2])
    if a.ndim != 2 or min(a.shape) < 1:
        raise DataError(f"{where}: expected a class map (rows, cols), got shape {a.shape}")
    if a.dtype.kind == "f":
        if not np.isfinite(a).all() or (a != np.round(a)).any():
            raise DataError(f"{where}: expected integer class ids, got non-integer values")
    elif a.dtype.kind not in "iub":
        raise DataError(f"{where}: expected integer class ids, got dtype {a.dtype}")
    if a.size and a.min() < 0:
        raise DataError(f"{where}: expected class ids >= 0 (0 = unlabelled), got {a.min()}")
    return np.ascontiguousarray(a.astype(np.int64))


def read_class_map(path, key: str | None = None) -> ClassMap:
    """Read a class map from ``path``: ``.npy``; ``.mat`` (variable ``key``, or ``path:KEY``, or the file's only
    2-D array); ENVI ``.hdr`` (one band; a classification file's ``class names`` and ``class lookup`` are kept);
    ``.png`` (an indexed image's palette indices, or a grey-level image's values). Ids must be integers ≥ 0."""
    from .data import read_mat

    spec = str(path)
    if key is None and ":" in Path(spec).name:
        spec, key = spec.rsplit(":", 1)
    p = Path(spec)
    if not p.is_file():
        raise DataError(f"{spec}: no such class-map file")
    ext = p.suffix.lower()
    if ext == ".npy":
        try:
            return ClassMap(_as_labels(np.load(p, allow_pickle=False), str(p)))
        except (ValueError, OSError) as e:
            raise DataError(f"{p}: unreadable .npy ({e})") from None
    if ext == ".mat":
        if key is None:
            import scipy.io

            try:
                two_d = [w[0] for w in scipy.io.whosmat(str(p)) if len(w[1]) == 2]
            except Exception as e:  # scipy raises several types for a bad header
                raise DataError(f"{p}: not a readable MATLAB .mat file ({type(e).__name__}: {e})") from None
            if len(two_d) != 1:
                raise DataError(f"{p}: expected one 2-D variable or a key (path.mat:KEY), found {two_d}")
            key = two_d[0]
        return ClassMap(_as_labels(read_mat(p, key), f"{p}:{key}" if key else str(p)))
    if ext == ".hdr":
        import spectral.io.envi as envi

        try:
            img = envi.open(str(p))
            a = np.asarray(img.load())
        except Exception as e:  # spectral raises several kinds for a bad header or a missing data file
            raise DataError(f"{p}: unreadable ENVI image ({type(e).__name__}: {e})") from None
        if a.ndim == 3 and a.shape[2] != 1:
            raise DataError(f"{p}: expected one band (a class map), got {a.shape[2]}")
        meta = img.metadata
        names = tuple(meta["class names"]) if "class names" in meta else None
        colours = None
        if "class lookup" in meta:
            v = np.asarray([int(float(x)) for x in meta["class lookup"]])
            if v.size % 3 == 0:
                colours = v.reshape(-1, 3).astype(np.uint8)
        return ClassMap(_as_labels(a, str(p)), names, colours)
    if ext == ".png":
        from PIL import Image

        try:
            im = Image.open(p)
            im.load()
        except Exception as e:
            raise DataError(f"{p}: unreadable PNG ({type(e).__name__}: {e})") from None
        if im.mode not in ("P", "L", "I", "I;16", "1"):
            raise DataError(f"{p}: expected an indexed or grey-level PNG whose values are class ids, got mode "
                            f"{im.mode!r}")
        colours = None
        if im.mode == "P" and im.getpalette():
            pal = np.asarray(im.getpalette(), np.uint8)
            colours = pal[: pal.size // 3 * 3].reshape(-1, 3)
        return ClassMap(_as_labels(np.asarray(im), str(p)), None, colours)
    raise DataError(f"{spec}: expected a class map as .npy, .mat, ENVI .hdr or indexed .png, got {ext or 'no'} "
                    f"extension")


def class_colours(n: int) -> np.ndarray:
    """``(n, 3)`` uint8 lookup colours for ids 0..n-1: black for 0 (unlabelled), then matplotlib's tab20 cycle."""
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    out = np.zeros((n, 3), np.uint8)
    for k in range(1, n):
        out[k] = np.round(np.asarray(cmap((k - 1) % 20)[:3]) * 255)
    return out


def class_table(K: int, class_names=None, colours=None) -> tuple[list[str], np.ndarray]:
    """The names (``"unlabelled"`` then ``class_names`` for 1..K, default "class k") and lookup colours ``(K + 1, 3)``
    (``colours``, default :func:`class_colours`) of a classification file with ids 0..K, checked: one-line errors
    for a missing name, a name ENVI's list syntax cannot hold, or colours of the wrong shape or range."""
    if class_names is None:
        class_names = [f"class {k}" for k in range(1, K + 1)]
    names = ["unlabelled"] + [str(v) for v in class_names]
    if len(names) < K + 1:
        raise DataError(f"class_names: expected a name for each class 1..{K}, got {len(names) - 1}")
    for v in names:
        if any(ch in v for ch in "{},\n"):
            raise DataError(f"class_names: names may not hold braces, commas or newlines (ENVI list syntax), got "
                            f"{v!r}")
    n = len(names)
    col = class_colours(n) if colours is None else np.asarray(colours)
    if col.shape != (n, 3) or col.min() < 0 or col.max() > 255:
        raise DataError(f"colours: expected ({n}, 3) values in 0..255, got shape {col.shape}")
    return names, col.astype(np.uint8)


def write_class_map(path, labels, class_names=None, colours=None, description: str = "") -> tuple[Path, Path]:
    """Write ``labels`` (int ``(H, W)``, ids 0..K) as an ENVI classification image ``path`` (.hdr) + ``.img``:
    ``file type = ENVI Classification``, ``classes = K + 1``, ``class names`` (``class_names`` for 1..K, "unlabelled"
    for 0; default "class k") and ``class lookup`` (``colours`` ``(K + 1, 3)``, default :func:`class_colours`),
    uint8 (uint16 past 255 classes), band-sequential, through :func:`spectral.envi.save_classification`. Both files
    are written under temporary names and renamed into place; nothing is left under the final names on failure.
    Returns ``(hdr, img)``."""
    import spectral.io.envi as envi

    from .envi_io import _hdr_path, check_writable, place_envi

    hdr = _hdr_path(path)
    folder = check_writable(hdr)
    L = _as_labels(labels, "labels")
    names, col = class_table(int(L.max()) if L.size else 0, class_names, colours)
    if description and any(ch in description for ch in "{}"):
        raise DataError(f"description: expected a string without braces, got {description!r}")
    n = len(names)
    dtype = np.uint8 if n <= 256 else np.uint16
    return place_envi(hdr, folder, lambda tmp: envi.save_classification(
        tmp, L.astype(dtype)[:, :, None], dtype=dtype, force=True, ext=".img", interleave="bsq", class_names=names,
        class_colors=[tuple(int(x) for x in c) for c in col], metadata={"description": description or "hud class map"}))


# --------------------------------------------------------------------------------------------- real maps
def _transform(a: np.ndarray, k: int, flip: bool) -> np.ndarray:
    a = np.rot90(a, k)
    return np.ascontiguousarray(a[:, ::-1] if flip else a)


def real_layout(gt, size=None, random_state=0, ground=None, transform: bool = True, origin=None) -> np.ndarray:
    """A class map ``(H, W)`` taken from the real map ``gt`` ``(rows, cols)``.

    ``ground``: a boolean ``(rows, cols)`` mask (a fold's training ground); labels outside it become 0 first, so
    nothing of the held-out region is handed on. ``size`` ``(H, W)`` (default the map's): a crop at ``origin``
    ``(row, col)`` (default drawn at random) when it fits, after a random quarter rotation / flip when
    ``transform``; a canvas larger than the map is a mosaic of such pieces (each a random crop, rotated or flipped
    at random when ``transform``), laid edge to edge. Seeded by ``random_state``; deterministic."""
    gt = _as_labels(gt, "gt")
    if ground is not None:
        ground = np.asarray(ground, bool)
        if ground.shape != gt.shape:
            raise DataError(f"ground: expected a mask of the map's shape {gt.shape}, got {ground.shape}")
        gt = np.where(ground, gt, 0)
    H, W = gt.shape if size is None else _size(size)
    rng = np.random.default_rng(random_state)
    src = gt
    if transform:
        src = _transform(gt, int(rng.integers(4)), bool(rng.integers(2)))
    if H <= src.shape[0] and W <= src.shape[1]:
        if origin is None:
            r, c = int(rng.integers(src.shape[0] - H + 1)), int(rng.integers(src.shape[1] - W + 1))
        else:
            r, c = (int(v) for v in origin)
            if not (0 <= r <= src.shape[0] - H and 0 <= c <= src.shape[1] - W):
                raise DataError(f"origin: a {H} x {W} crop at {(r, c)} does not fit the {src.shape} map")
        return np.ascontiguousarray(src[r:r + H, c:c + W])
    if origin is not None:
        raise DataError(f"origin: a {H} x {W} canvas is larger than the {gt.shape} map (a mosaic has no origin)")
    out = np.zeros((H, W), np.int64)
    side = min(gt.shape)
    for r0 in range(0, H, side):
        for c0 in range(0, W, side):
            piece = _transform(gt, int(rng.integers(4)), bool(rng.integers(2))) if transform else gt
            h, w = min(side, H - r0), min(side, W - c0)
            r, c = int(rng.integers(piece.shape[0] - h + 1)), int(rng.integers(piece.shape[1] - w + 1))
            out[r0:r0 + h, c0:c0 + w] = piece[r:r + h, c:c + w]
    return out


def _size(size) -> tuple[int, int]:
    try:
        H, W = (int(v) for v in size)
    except (TypeError, ValueError):
        raise DataError(f"size: expected (H, W), got {size!r}") from None
    if H < 1 or W < 1:
        raise DataError(f"size: expected positive (H, W), got {(H, W)}")
    return H, W


# --------------------------------------------------------------------------------------------- procedural maps
def _orientation(g: np.ndarray) -> tuple[float, float]:
    """The dominant orientation of a map's field edges, in degrees folded into [-45, 45) (rectilinear fields: edges
    at θ and θ + 90° are one orientation), and its strength in [0, 1] (1: every edge at θ or θ + 90°).

    Each class's indicator (pixels with id < 0 are outside: no edge there) is smoothed (Gaussian, σ = 1 px), its
    gradient angle φ taken at every pixel (Sobel), and the mean of exp(4iφ) weighted by the squared gradient
    magnitude gives 4θ (the four-fold symmetric orientation). θ follows :func:`scipy.ndimage.rotate`'s sense: a map
    of axis-aligned fields rotated by θ there has orientation θ here."""
    acc, total = 0j, 0.0
    inside = g >= 0
    core = ndimage.binary_erosion(inside, iterations=3, border_value=1)  # the mask's own edges are no field edges
    for k in np.unique(g[inside]):
        ind = ndimage.gaussian_filter((g == k).astype(np.float64), 1.0)
        gy, gx = ndimage.sobel(ind, 0), ndimage.sobel(ind, 1)
        w = (gx * gx + gy * gy) * core
        acc += np.sum(w * np.exp(4j * np.arctan2(gy, gx)))
        total += float(w.sum())
    if total <= 0:
        return 0.0, 0.0
    theta = -math.degrees(np.angle(acc)) / 4.0
    return float((theta + 45.0) % 90.0 - 45.0), float(abs(acc) / total)


class FieldLayout(BaseEstimator):
    """Procedural agricultural class maps fitted to a real one.

    Fitting (:meth:`fit`) reads the map's labelled regions (4-connected components of each class, at least
    ``min_region`` px): their bounding-box heights and widths (the field sizes), their pixel shares per class (the
    class mix), the dominant orientation of the field edges (folded into [-45°, 45°)), the share of
    unlabelled pixels, and the share of "road" pixels (unlabelled pixels within ``road_width`` px of labelled ones
    on both sides: thin unlabelled strips between fields).

    Sampling (:meth:`sample`): the canvas is cut into horizontal strips whose heights are drawn from the fitted
    field heights (× ``field_scale``); each strip into fields whose widths are drawn from the fitted widths; each
    field gets class k with probability ∝ its fitted share to the power ``class_mix`` (1: the fitted mix, 0: every
    fitted class alike; ``class_weights``, one per class, multiplies it) or stays unlabelled
    with the fitted unlabelled share; the map is warped by a smooth random displacement of amplitude ``jitter`` px
    (jittered field edges); straight roads ``road_width`` px wide run along strip and field borders until the road
    share (× ``road_density``) is reached; finally the map is rotated by the fitted
    orientation (``orientation_``; nearest neighbour, when ``rotate``) and cropped. Same ``random_state``, same map.

    Learned attributes: ``n_classes_``, ``class_share_`` ``(K,)``, ``unlabelled_share_``, ``road_share_``,
    ``field_heights_``/``field_widths_``/``field_areas_`` (per region), ``orientation_`` (degrees in [-45, 45):
    the field edges' dominant orientation, :func:`_orientation`), ``orientation_strength_`` (0..1: how rectilinear
    the edges are).
    """

    def __init__(self, field_scale: float = 1.0, road_density: float = 1.0, class_mix: float = 1.0,
                 class_weights=None, jitter: float = 1.5, road_width: int = 2, min_region: int = 16,
                 rotate: bool = True, random_state=0):
        self.field_scale = field_scale
        self.road_density = road_density
        self.class_mix = class_mix
        self.class_weights = class_weights
        self.jitter = jitter
        self.road_width = road_width
        self.min_region = min_region
        self.rotate = rotate
        self.random_state = random_state

    def _check_params(self):
        for name in ("field_scale", "road_density", "class_mix", "jitter"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 or (
                    name == "field_scale" and v == 0):
                raise DataError(f"{name}: expected a finite number {'> 0' if name == 'field_scale' else '>= 0'}, "
                                f"got {v!r}")
        for name in ("road_width", "min_region"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise DataError(f"{name}: expected an int >= 1, got {v!r}")

    def fit(self, gt, mask=None, n_classes: int | None = None):
        """Fit to the real map ``gt`` ``(rows, cols)`` (ids 0..K), read only where ``mask`` (e.g. a fold's training
        ground; default everywhere). ``n_classes``: K (default the map's largest id)."""
        self._check_params()
        gt = _as_labels(gt, "gt")
        mask = np.ones(gt.shape, bool) if mask is None else np.asarray(mask, bool)
        if mask.shape != gt.shape:
            raise DataError(f"mask: expected the map's shape {gt.shape}, got {mask.shape}")
        K = int(gt.max()) if n_classes is None else int(n_classes)
        if K < 1 or gt.max() > K:
            raise DataError(f"gt: expected labels in 0..{K} with at least one class, got max {gt.max()}")
        g = np.where(mask, gt, -1)
        heights, widths, areas, share = [], [], [], np.zeros(K)
        for k in range(1, K + 1):
            lab, n = ndimage.label(g == k)
            share[k - 1] = float((g == k).sum())
            for i, sl in enumerate(ndimage.find_objects(lab), start=1):
                if sl is None:
                    continue
                region = lab[sl] == i
                a = int(region.sum())
                if a < self.min_region:
                    continue
                heights.append(sl[0].stop - sl[0].start)
                widths.append(sl[1].stop - sl[1].start)
                areas.append(a)
        if not areas:
            raise DataError(f"gt: no labelled region of at least {self.min_region} px to fit field sizes to")
        inside = int(mask.sum())
        unl = (g == 0)
        rw = int(self.road_width)
        lab_near = ndimage.binary_dilation(g > 0, iterations=rw)
        # a road pixel: unlabelled, with labelled pixels within road_width on two opposite sides
        road = np.zeros_like(unl)
        for axis in (0, 1):
            before = np.zeros_like(unl)
            after = np.zeros_like(unl)
            for s in range(1, rw + 1):
                before |= np.roll(g > 0, s, axis=axis)
                after |= np.roll(g > 0, -s, axis=axis)
            road |= unl & before & after & lab_near
        self.n_classes_ = K
        self.class_share_ = share / max(share.sum(), 1.0)
        self.road_share_ = float(road.sum() / inside)
        self.unlabelled_share_ = float(max(unl.sum() - road.sum(), 0) / inside)
        self.field_heights_ = np.asarray(heights, np.int64)
        self.field_widths_ = np.asarray(widths, np.int64)
        self.field_areas_ = np.asarray(areas, np.int64)
        self.orientation_, self.orientation_strength_ = _orientation(np.where(mask, gt, -1))
        return self

    def _class_probabilities(self) -> np.ndarray:
        """Probabilities of ids 0..K for one field: unlabelled with the fitted share of non-road pixels, else the
        class mix (× ``class_weights``)."""
        p = self.class_share_.copy()
        present = p > 0
        p[present] = p[present] ** float(self.class_mix)  # 1: the fitted mix; 0: uniform over the fitted classes
        if self.class_weights is not None:
            w = np.asarray(self.class_weights, np.float64)
            if w.shape != p.shape or not np.isfinite(w).all() or (w < 0).any():
                raise DataError(f"class_weights: expected {p.size} finite weights >= 0 (classes 1..{p.size}), got "
                                f"shape {w.shape}")
            p = p * w
        if p.sum() <= 0:
            raise DataError("class_weights: no class left with a positive weight")
        u = min(self.unlabelled_share_ / max(1.0 - self.road_share_, 1e-9), 0.95)
        return np.concatenate([[u], (1.0 - u) * p / p.sum()])

    def sample(self, size, random_state=None) -> np.ndarray:
        """One class map ``(H, W)`` int64 (ids 0..K); ``random_state`` (default the estimator's)."""
        if not hasattr(self, "class_share_"):
            raise DataError("FieldLayout: call fit(gt) before sample()")
        self._check_params()
        H, W = _size(size)
        rng = np.random.default_rng(self.random_state if random_state is None else random_state)
        probs = self._class_probabilities()
        angle = self.orientation_ if self.rotate else 0.0
        pad = int(math.ceil(abs(math.sin(math.radians(angle))) * max(H, W))) + 2 if angle else 0
        h, w = H + 2 * pad, W + 2 * pad
        scale = float(self.field_scale)
        idx = np.arange(self.field_areas_.size)
        L = np.zeros((h, w), np.int64)
        row_cuts, col_cuts = [], []
        r = -int(rng.integers(0, max(1, int(self.field_heights_.max() * scale))))  # strips start above the canvas
        while r < h:
            sh = max(2, int(round(self.field_heights_[rng.choice(idx)] * scale)))
            c = -int(rng.integers(0, max(1, int(self.field_widths_.max() * scale))))
            while c < w:
                fw = max(2, int(round(self.field_widths_[rng.choice(idx)] * scale)))
                L[max(r, 0):max(r + sh, 0), max(c, 0):max(c + fw, 0)] = rng.choice(probs.size, p=probs)
                col_cuts.append((r, r + sh, c + fw))
                c += fw
            row_cuts.append(r + sh)
            r += sh
        if self.jitter > 0:
            L = self._jitter(L, rng)
        L = self._roads(L, row_cuts, col_cuts, rng)
        if angle:
            L = ndimage.rotate(L, angle, reshape=False, order=0, mode="nearest")
        return np.ascontiguousarray(L[pad:pad + H, pad:pad + W])

    def _jitter(self, L: np.ndarray, rng) -> np.ndarray:
        """``L`` read through a smooth random displacement field (Gaussian-filtered noise, σ = 4 px, scaled to an
        rms of ``jitter`` px), nearest neighbour: field edges wobble, fields stay fields."""
        h, w = L.shape
        field = []
        for _ in range(2):
            n = ndimage.gaussian_filter(rng.standard_normal((h, w)), 4.0, mode="wrap")
            field.append(n / max(float(n.std()), 1e-12) * float(self.jitter))
        rr, cc = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        r = np.clip(np.rint(rr + field[0]), 0, h - 1).astype(np.int64)
        c = np.clip(np.rint(cc + field[1]), 0, w - 1).astype(np.int64)
        return L[r, c]

    def _roads(self, L: np.ndarray, row_cuts, col_cuts, rng) -> np.ndarray:
        """Straight unlabelled roads ``road_width`` px wide along randomly chosen strip borders (whole rows) and
        field borders (within their strip) until the fitted road share × ``road_density`` is reached."""
        target = self.road_share_ * float(self.road_density) * L.size
        if target <= 0:
            return L
        h, w = L.shape
        rw = int(self.road_width)
        cands = [("row", v) for v in row_cuts if 0 <= v < h] + [("col", v) for v in col_cuts if 0 <= v[2] < w]
        done = 0
        for i in rng.permutation(len(cands)):
            if done >= target:
                break
            kind, v = cands[i]
            if kind == "row":
                a = max(v - rw // 2, 0)
                done += int((L[a:a + rw] != 0).sum())
                L[a:a + rw] = 0
            else:
                r0, r1, c = v
                a = max(c - rw // 2, 0)
                sl = (slice(max(r0, 0), max(r1, 0)), slice(a, a + rw))
                done += int((L[sl] != 0).sum())
                L[sl] = 0
        return L


# --------------------------------------------------------------------------------------------- one entry point
def make_layout(source: str, size, scene=None, random_state=0, fold=None, path=None, key=None, **params):
    """A class map ``(H, W)`` from ``source``:

    - ``"real"``: :func:`real_layout` of ``scene.gt`` (``fold``: a :class:`hudlib.splits.Fold`, its training ground
      only; ``params``: ``transform``, ``origin``);
    - ``"procedural"``: a :class:`FieldLayout` (``params``: its keyword arguments) fitted to ``scene.gt`` (on the
      fold's training ground with ``fold``) and sampled;
    - ``"file"``: :func:`read_class_map` of ``path`` (``key``), whose shape must be ``size``.
    Deterministic for a given ``random_state``."""
    H, W = _size(size)
    if source not in LAYOUT_SOURCES:
        raise DataError(f"source: expected one of {', '.join(LAYOUT_SOURCES)}, got {source!r}")
    if source == "file":
        if path is None:
            raise DataError("path: the 'file' layout source needs a class-map file")
        if params:
            raise DataError(f"params: the 'file' layout source takes none, got {sorted(params)}")
        L = read_class_map(path, key).labels
        if L.shape != (H, W):
            raise DataError(f"{path}: expected a class map of size {H} x {W}, got {L.shape[0]} x {L.shape[1]}")
        return L
    if scene is None:
        raise DataError(f"scene: the {source!r} layout source needs the scene whose map it uses")
    ground = None if fold is None else fold.train
    if source == "real":
        return real_layout(scene.gt, (H, W), random_state, ground=ground, **params)
    est = FieldLayout(**{"random_state": random_state, **params})  # procedural
    return est.fit(scene.gt, ground, n_classes=scene.n_classes).sample((H, W))
