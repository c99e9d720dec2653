"""Providers of added labelled pixels, one function each, and the training ground they are handed.

A provider sees a fold only through its :class:`Ground` (the fold's :meth:`hudlib.splits.Fold.view`: spectra are NaN
and labels 0 off the training ground, so buffer and held-out pixels do not exist for it) and a :class:`Request`
(the run's real labelled windows, how many pixels to add, a seed, the run's real-label classifier where a provider
needs one, and the fold's generator resources). It returns ``(windows (N, bands, 3, 3) float32, labels (N,))``.

Rows (:data:`PROVIDERS`; docs/methods.md "Downstream protocol" for the sources):

* ``aug``: classic augmentation of the real labels (within-class mixup, brightness, spectral noise, flips);
* ``HUD-cond``: HUD-cond samples for class layouts cropped from the ground, at guidance w;
* ``HUD-cond-shuffled``: the same pixels with their labels shuffled (is it class information or regularisation?);
* ``GMM``: a per-class Gaussian mixture of the ground's labelled spectra (Davari et al., GRSL 2018), in a PCA space;
* ``copies``: noisy copies of the ground's labelled pixels (the information HUD-cond had, without generation);
* ``UAE``: the ground's labelled pixels through the fold's UAE (encode, decode: the simplex's domain gap);
* ``self-training``: the ground's pixels (their labels unused), labelled by the run's classifier, most confident
  first.

Every provider follows the class proportions of the run's real labels (:func:`class_quota`).
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import unmixing
from ..classifier import _dihedral
from ..errors import DataError
from ..splits import crop_corners_inside
from ._checks import as_labels, as_windows, check_number
from .labels import ground_windows, patch_windows

__all__ = ["Ground", "Request", "FoldResources", "PROVIDERS", "GENERATOR_ROWS", "class_quota", "augment",
           "layout_crops", "pool_draw"]


@dataclass(frozen=True, eq=False)
class Ground:
    """A training ground as providers see it: ``cube`` ``(bands, rows, cols)`` float32, NaN off the ground; ``gt``
    ``(rows, cols)``, 0 off it; ``mask`` the ground; ``n_classes``; ``name`` (e.g. "fold 2/5", "fold 2/5 inner")."""

    name: str
    cube: np.ndarray
    gt: np.ndarray
    mask: np.ndarray
    n_classes: int

    @classmethod
    def of(cls, fold, scene, name: str | None = None) -> "Ground":
        """The ground of a :class:`hudlib.splits.Fold` of ``scene`` (through :meth:`~hudlib.splits.Fold.view`)."""
        v = fold.view(scene)
        return cls(name or fold.name, v.cube, v.gt, fold.train.copy(), int(scene.n_classes))

    @functools.cached_property
    def digest(self) -> str:
        h = hashlib.sha1(np.packbits(self.mask).tobytes())
        h.update(np.ascontiguousarray(self.gt).tobytes())
        return h.hexdigest()[:12]

    def labelled(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, cols)`` of the ground's labelled pixels (raster order)."""
        r, c = np.nonzero(self.gt > 0)
        return r.astype(np.int64), c.astype(np.int64)

    def windows(self, rows, cols, k: int = 3) -> np.ndarray:
        """Windows of ground pixels; positions off the ground take the centre's spectrum (:func:`ground_windows`)."""
        return ground_windows(self.cube, rows, cols, k)

    @functools.cached_property
    def labelled_windows(self) -> np.ndarray:
        """Windows of every labelled pixel of the ground, in :meth:`labelled` order (computed once per ground)."""
        return self.windows(*self.labelled())

    @functools.cached_property
    def band_std(self) -> np.ndarray:
        """Per-band std ``(bands,)`` of the ground's labelled spectra."""
        r, c = self.labelled()
        return self.cube[:, r, c].std(axis=1).astype(np.float32)


@dataclass
class FoldResources:
    """What a fold's generator gives providers, computed before the runs (picklable for worker processes):
    ``endmembers`` (the fold's UAE decoder A ``(bands, d)``), ``pools`` (``{(ground name, w): (Y (n, bands, h, w),
    L (n, h, w))}``: HUD-cond samples and their layouts; arrays or paths of ``.npy`` pairs), ``agreement``
    (``{w: {class: share}}``: how often a classifier of the fold's real labels agrees with the layout)."""

    endmembers: np.ndarray | None = None
    pools: dict = field(default_factory=dict)
    agreement: dict = field(default_factory=dict)

    def pool(self, ground: str, guidance: float) -> tuple[np.ndarray, np.ndarray]:
        key = (ground, float(guidance))
        if key not in self.pools:
            raise DataError(f"pools: no HUD-cond pool for {ground!r} at guidance {guidance:g}; prepared: "
                            f"{sorted(self.pools)}")
        Y, L = self.pools[key]
        if isinstance(Y, str):
            Y, L = np.load(Y, mmap_mode="r"), np.load(L)
        return Y, L


@dataclass
class Request:
    """One call of a provider (module docstring): ``ground``, the run's ``real_windows`` ``(n, bands, k, k)`` and
    ``real_labels`` ``(n,)``, ``n_pixels`` to add, ``random_state``, ``classify(windows) -> labels`` and
    ``confidence(windows) -> (N,)`` of the run's real-label classifier, HUD-cond's ``guidance`` and the fold's
    ``resources``."""

    ground: Ground
    real_windows: np.ndarray
    real_labels: np.ndarray
    n_pixels: int
    random_state: int
    classify: Callable | None = None
    confidence: Callable | None = None
    guidance: float = 0.0
    resources: FoldResources | None = None


# --------------------------------------------------------------------------------------------- helpers
def class_quota(real_labels, n_pixels: int) -> dict[int, int]:
    """``{class: count}`` summing to ``n_pixels`` in the proportions of ``real_labels`` (largest remainders)."""
    classes, counts = np.unique(np.asarray(real_labels), return_counts=True)
    raw = n_pixels * counts / counts.sum()
    q = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - q), kind="stable")[:n_pixels - q.sum()]:
        q[i] += 1
    return {int(k): int(n) for k, n in zip(classes, q) if n > 0}


def _draw(labels: np.ndarray, quota: dict, rng: np.random.Generator) -> np.ndarray:
    """Indices into ``labels`` meeting ``quota`` (without replacement where a class has enough, with where it has
    fewer; a class with none is skipped)."""
    out = []
    for k, q in quota.items():
        have = np.flatnonzero(labels == k)
        if len(have):
            out.append(rng.choice(have, q, replace=len(have) < q))
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _ground_labelled(req: Request, quota: dict, rng) -> tuple[np.ndarray, np.ndarray]:
    """Windows and labels of ground labelled pixels drawn to ``quota``."""
    r, c = req.ground.labelled()
    y = req.ground.gt[r, c].astype(np.int64)
    idx = _draw(y, quota, rng)
    return req.ground.windows(r[idx], c[idx]), y[idx]


# --------------------------------------------------------------------------------------------- classic augmentation
def augment(windows, labels, n_new: int, random_state=0, *, flips: bool = True, noise: float = 0.05,
            brightness: float = 0.1, mixup: float = 0.5, mixup_alpha: float = 1.0, return_info: bool = False):
    """Classic augmentation: ``n_new`` windows made from the real ``windows`` ``(N, bands, k, k)``.

    Each new window starts from a source window drawn uniformly (its label is kept), then: mixup within the class
    with probability ``mixup`` (``lam * a + (1 - lam) * b``, ``b`` a window of the same class, ``lam ~
    Beta(mixup_alpha, mixup_alpha)``: a convex combination of two pixels of one class is a plausible mixture of it
    under the linear mixing model); a random dihedral transform (``flips``; the net sees it, the centre-spectrum SVM
    does not); a brightness factor ``~ U(1 - brightness, 1 + brightness)``; Gaussian noise of ``noise`` times each
    band's std. ``return_info``: also the per-window ``source``, ``partner``, ``lam``, ``transform``, ``factor``.
    """
    X = as_windows(windows, "windows")
    y = as_labels(labels, "labels", len(X))
    if len(X) == 0:
        raise DataError("windows: expected at least one window to augment, got 0")
    if isinstance(n_new, bool) or not isinstance(n_new, (int, np.integer)) or n_new < 0:
        raise DataError(f"n_new: expected an int >= 0, got {n_new!r}")
    noise = check_number("noise", noise)
    brightness = check_number("brightness", brightness, 0.0, 1.0, hi_open=True)
    mixup = check_number("mixup", mixup, 0.0, 1.0)
    mixup_alpha = check_number("mixup_alpha", mixup_alpha, lo_open=True)
    rng = np.random.default_rng(random_state)
    m = int(n_new)
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


def aug_provider(req: Request):
    return augment(req.real_windows, req.real_labels, req.n_pixels, req.random_state)


# --------------------------------------------------------------------------------------------- controls
COPY_NOISE = 0.05  # std of the copies' Gaussian noise, as a share of each band's std over the ground


def copies_provider(req: Request):
    """Noisy copies of the ground's labelled pixels (noise ``COPY_NOISE`` times each band's std)."""
    rng = np.random.default_rng(req.random_state)
    W, y = _ground_labelled(req, class_quota(req.real_labels, req.n_pixels), rng)
    W = W + rng.standard_normal(W.shape, dtype=np.float32) * (COPY_NOISE * req.ground.band_std)[None, :, None, None]
    return W.astype(np.float32), y


GMM_PCA = 30  # principal components the mixtures are fitted in
GMM_MAX_COMPONENTS = 3


@functools.lru_cache(maxsize=8)
def _gmms(ground: Ground):
    """PCA of the ground's labelled spectra and one GaussianMixture per class fitted in it (cached per ground)."""
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    r, c = ground.labelled()
    S = ground.cube[:, r, c].T.astype(np.float64)
    y = ground.gt[r, c]
    pca = PCA(n_components=min(GMM_PCA, S.shape[1], len(S)), random_state=0).fit(S)
    P = pca.transform(S)
    out = {}
    for k in np.unique(y):
        Pk = P[y == k]
        n = int(min(GMM_MAX_COMPONENTS, max(1, len(Pk) // 50)))
        out[int(k)] = GaussianMixture(n_components=n, covariance_type="full", reg_covar=1e-4,
                                      random_state=int(k)).fit(Pk) if len(Pk) >= 2 else None
    return pca, out


def gmm_provider(req: Request):
    """Spectra sampled from per-class Gaussian mixtures of the ground's labelled spectra (in its PCA space), each
    made a homogeneous 3 x 3 window (most windows of a field are)."""
    rng = np.random.default_rng(req.random_state)
    pca, gmms = _gmms(req.ground)
    S, y = [], []
    k_win = req.real_windows.shape[2]
    for k, q in class_quota(req.real_labels, req.n_pixels).items():
        g = gmms.get(k)
        if g is None:
            continue
        g.random_state = int(rng.integers(2 ** 31))
        P, _ = g.sample(q)
        S.append(pca.inverse_transform(P))
        y.append(np.full(q, k, np.int64))
    if not S:
        return np.zeros((0, req.real_windows.shape[1], k_win, k_win), np.float32), np.zeros(0, np.int64)
    S = np.concatenate(S).astype(np.float32)
    return np.ascontiguousarray(np.broadcast_to(S[:, :, None, None], S.shape + (k_win, k_win))), np.concatenate(y)


def uae_provider(req: Request):
    """The ground's labelled pixels passed through the fold's UAE: FCLS abundances on its endmembers A, then A X."""
    if req.resources is None or req.resources.endmembers is None:
        raise DataError("UAE: expected the fold's UAE endmembers in the request's resources")
    rng = np.random.default_rng(req.random_state)
    W, y = _ground_labelled(req, class_quota(req.real_labels, req.n_pixels), rng)
    E = np.asarray(req.resources.endmembers, np.float64)
    Yc = np.moveaxis(W, 1, 0).astype(np.float64)  # (bands, N, k, k)
    X = unmixing.fcls(Yc, E, progress=False)
    return np.ascontiguousarray(np.moveaxis(np.einsum("bd,d...->b...", E, X), 0, 1), dtype=np.float32), y


def self_training_provider(req: Request):
    """Self-training: every labelled pixel of the ground with its label withheld, labelled by the run's classifier;
    per predicted class its ``class_quota`` most confident pixels."""
    if req.classify is None or req.confidence is None:
        raise DataError("self-training: expected the run's classifier (classify, confidence) in the request")
    W = req.ground.labelled_windows
    pred = np.asarray(req.classify(W), np.int64)
    conf = np.asarray(req.confidence(W), np.float64)
    idx = []
    for k, q in class_quota(req.real_labels, req.n_pixels).items():
        have = np.flatnonzero(pred == k)
        idx.append(have[np.argsort(-conf[have], kind="stable")[:q]])
    idx = np.concatenate(idx) if idx else np.zeros(0, np.int64)
    return W[idx], pred[idx]


# --------------------------------------------------------------------------------------------- HUD-cond
def layout_crops(ground: Ground, size: int, per_class: int, random_state=0) -> np.ndarray:
    """Class layouts ``(m, size, size)`` cropped from the ground's map, every crop wholly on the ground: for every
    class with pixels there, ``per_class`` crops whose top-left corner is drawn with probability proportional to
    the number of pixels of that class in the crop."""
    corners = crop_corners_inside(ground.mask, size)
    if len(corners) == 0:
        raise DataError(f"ground: {ground.name} holds no {size} x {size} crop to take a layout from")
    rng = np.random.default_rng(random_state)
    gt = ground.gt
    out = []
    for k in range(1, ground.n_classes + 1):
        S = np.zeros((gt.shape[0] + 1, gt.shape[1] + 1), np.int64)
        S[1:, 1:] = (gt == k).cumsum(0).cumsum(1)
        r, c = corners[:, 0], corners[:, 1]
        cnt = S[r + size, c + size] - S[r, c + size] - S[r + size, c] + S[r, c]
        if cnt.sum() == 0:
            continue
        pick = rng.choice(len(corners), per_class, p=cnt / cnt.sum())
        out += [gt[r[i]:r[i] + size, c[i]:c[i] + size] for i in pick]
    return np.ascontiguousarray(np.stack(out).astype(np.int64))


def pool_draw(Y, L, real_labels, n_pixels: int, rng: np.random.Generator, k: int = 3):
    """``n_pixels`` labelled pixels of a pool of patches ``Y`` with layouts ``L``, as windows, to the class quota
    of ``real_labels``."""
    i, r, c = np.nonzero(np.asarray(L) > 0)
    y = np.asarray(L)[i, r, c].astype(np.int64)
    idx = _draw(y, class_quota(real_labels, n_pixels), rng)
    return patch_windows(Y, L, k=k, index=(i[idx], r[idx], c[idx]))


def hud_cond_provider(req: Request):
    """Pixels of HUD-cond samples drawn for layouts of this ground at guidance ``req.guidance``."""
    if req.resources is None:
        raise DataError("HUD-cond: expected the fold's HUD-cond pools in the request's resources")
    Y, L = req.resources.pool(req.ground.name, req.guidance)
    return pool_draw(Y, L, req.real_labels, req.n_pixels, np.random.default_rng(req.random_state),
                     k=req.real_windows.shape[2])


def hud_cond_shuffled_provider(req: Request):
    """:func:`hud_cond_provider`'s pixels with their labels shuffled among them (class proportions kept)."""
    W, y = hud_cond_provider(req)
    return W, np.random.default_rng(req.random_state + 1).permutation(y)


PROVIDERS: dict[str, Callable[[Request], tuple]] = {
    "aug": aug_provider,
    "HUD-cond": hud_cond_provider,
    "HUD-cond-shuffled": hud_cond_shuffled_provider,
    "GMM": gmm_provider,
    "copies": copies_provider,
    "UAE": uae_provider,
    "self-training": self_training_provider,
}
# rows whose pixels come from the fold's HUD-cond (they take a guidance weight)
GENERATOR_ROWS = ("HUD-cond", "HUD-cond-shuffled")
