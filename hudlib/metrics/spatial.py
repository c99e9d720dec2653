"""Spatial metrics of whole scenes: the seam score of tiled synthesis and field-scale structure statistics.

Both take one scene, generated or real, so a generated full scene is compared with the real scene measured at
the same positions and scales: :func:`seam_score` asks whether pixels that straddle a window border differ
more than other neighbours (the artefact of sampling a large canvas window by window), and
:func:`field_scale_statistics` measures the size of the spatial structure (fields, 8-128 px) that 32x32
training patches cannot show.
"""
from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from ..errors import DataError
from ..diffusion import tile_origins
from ._common import EPS, _finite_float32, _positive_int

__all__ = ["seam_score", "field_scale_statistics"]

_STRIP_BYTES = 1 << 26  # 64 MiB of float64 spectra per strip of rows


# --------------------------------------------------------------------------------------------- seams
def _check_cube(cube, name: str = "cube") -> np.ndarray:
    c = cube.cube if hasattr(cube, "cube") else cube
    c = np.asarray(c)
    if c.ndim != 3 or min(c.shape) < 1:
        raise DataError(f"{name}: expected a scene cube (bands, H, W), got shape {c.shape}")
    return _finite_float32(c, name)


def _border_masks(H: int, W: int, window: int, origins) -> tuple[np.ndarray, np.ndarray]:
    """Which neighbour pairs straddle a window border.

    Returns ``(across_h, across_v)``: ``across_h[r, c]`` (``(H, W-1)``) is True when the pair (r, c)-(r, c+1)
    is cut by the left or right edge of a window whose rows include r; ``across_v[r, c]`` (``(H-1, W)``) the
    same for the pair (r, c)-(r+1, c) and the top/bottom edges. Edges on the canvas border cut nothing.
    """
    across_h = np.zeros((H, max(W - 1, 0)), dtype=bool)
    across_v = np.zeros((max(H - 1, 0), W), dtype=bool)
    for r0, c0 in origins:
        rows, cols = slice(r0, r0 + window), slice(c0, c0 + window)
        for e in (c0, c0 + window):  # left and right edge: between columns e-1 and e
            if 0 < e < W:
                across_h[rows, e - 1] = True
        for e in (r0, r0 + window):  # top and bottom edge
            if 0 < e < H:
                across_v[e - 1, cols] = True
    return across_h, across_v


def _check_origins(origins) -> list[tuple[int, int]]:
    try:
        out = [(r, c) for r, c in origins]
    except (TypeError, ValueError):
        raise ValueError(f"origins: expected a sequence of (row, col) pairs, got {origins!r}") from None
    for r, c in out:
        for v in (r, c):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"origins: expected non-negative integer (row, col) pairs, got {(r, c)!r}")
    if not out:
        raise ValueError("origins: expected at least one (row, col) window corner, got none")
    return [(int(r), int(c)) for r, c in out]


def _pair_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spectral angle (radians) between the pixels of ``a`` and ``b`` ``(bands, h, w)`` (float64) -> ``(h, w)``.

    arccos of the cosine, clipped to [-1, 1]; a pair with an all-zero pixel counts as angle 0 (as in
    :func:`neighbour_angle`).
    """
    na, nb = np.sqrt(np.einsum("bij,bij->ij", a, a)), np.sqrt(np.einsum("bij,bij->ij", b, b))
    cos = np.einsum("bij,bij->ij", a, b) / (np.maximum(na, EPS) * np.maximum(nb, EPS))
    ang = np.arccos(np.clip(cos, -1.0, 1.0))
    ang[(na == 0) | (nb == 0)] = 0.0
    return ang


def seam_score(cube, window: int, stride: int | None = None, origins=None) -> dict:
    """How much more neighbouring pixels differ across window borders than elsewhere (1.0 = no seam).

    The spectral angle (radians) is taken between every pixel and its right and lower neighbour; a pair
    *straddles a border* when the edge of a window lies between its two pixels (and the pair lies along that
    edge). ``score = across / within``: the mean angle over the straddling pairs divided by the mean over the
    others. A window-by-window sampler that lets windows disagree leaves score > 1; a seamless scene (or a real
    scene measured at the same positions) gives ≈ 1.

    cube: ``(bands, H, W)`` (a :class:`hudlib.data.Scene` is accepted). The windows, of side ``window``, are
    those of the naive tiling (corners at multiples of ``window``) unless ``stride`` is given (the windows of
    :func:`hudlib.diffusion.tile_origins` with that stride) or ``origins``, a list of ``(row, col)`` corners
    (windows may stick out of the canvas; their outside edges cut nothing).

    Returns ``{"score", "across", "within", "n_across", "n_within"}`` (plain floats; the counts are numbers
    of pairs). ``within == 0`` gives score 1.0 when ``across == 0`` too, else ``inf``. Computed in float64 in
    strips of rows.
    """
    c = _check_cube(cube)
    window = _positive_int(window, "window")
    _, H, W = c.shape
    if stride is not None and origins is not None:
        raise ValueError("stride: expected None when origins are given (give one of stride, origins)")
    if origins is not None:
        origins = _check_origins(origins)
    elif stride is not None:
        origins = tile_origins(H, W, window, stride)
    else:
        origins = [(r, q) for r in range(0, H, window) for q in range(0, W, window)]
    across_h, across_v = _border_masks(H, W, window, origins)
    n_across = int(across_h.sum() + across_v.sum())
    n_within = across_h.size + across_v.size - n_across
    if n_across == 0:
        raise ValueError(f"window: no neighbour pair of the {H}x{W} cube straddles a border of {window}-px windows")
    if n_within == 0:
        raise ValueError(f"window: every neighbour pair of the {H}x{W} cube straddles a border of {window}-px "
                         f"windows; expected some pairs inside windows")
    sums = {True: 0.0, False: 0.0}
    rows = max(1, _STRIP_BYTES // (8 * c.shape[0] * W))
    for r0 in range(0, H, rows):
        r1 = min(H, r0 + rows)
        x = c[:, r0:min(H, r1 + 1)].astype(np.float64)  # one extra row for the vertical pairs
        h = _pair_angles(x[:, :r1 - r0, 1:], x[:, :r1 - r0, :-1])
        m = across_h[r0:r1]
        sums[True] += float(h[m].sum())
        sums[False] += float(h[~m].sum())
        if x.shape[1] > 1:
            v = _pair_angles(x[:, 1:], x[:, :-1])
            m = across_v[r0:r0 + v.shape[0]]
            sums[True] += float(v[m].sum())
            sums[False] += float(v[~m].sum())
    across, within = sums[True] / n_across, sums[False] / n_within
    if within > 0:
        score = across / within
    else:
        score = 1.0 if across == 0 else float("inf")
    return {"score": float(score), "across": float(across), "within": float(within),
            "n_across": float(n_across), "n_within": float(n_within)}


# --------------------------------------------------------------------------------------------- field scale
def _maps_and_labels(maps):
    """``(maps, label map (H, W) int)`` from abundances ``(d, H, W)`` or a label map ``(H, W)``; ``maps`` yields
    the ``(H, W)`` float64 maps to correlate (the abundances, or one indicator map per class, made one at a time)."""
    a = np.asarray(maps)
    if a.ndim == 3 and min(a.shape) >= 1:
        a = _finite_float32(a, "maps")
        return (m.astype(np.float64) for m in a), np.argmax(a, axis=0)
    if a.ndim == 2 and min(a.shape) >= 1:
        if not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
            raise DataError(f"maps: a 2-D input must be an integer label map (H, W), got dtype {a.dtype}")
        _, inverse = np.unique(a, return_inverse=True)
        labels = inverse.reshape(a.shape)
        return ((labels == k).astype(np.float64) for k in range(int(labels.max()) + 1)), labels
    raise DataError(f"maps: expected abundances (d, H, W) or a label map (H, W), got shape {a.shape}")


def _radial_correlation(m: np.ndarray, max_lag: int) -> tuple[np.ndarray, float]:
    """Radially averaged autocorrelation of the mean-removed map ``m`` ``(H, W)`` at lags 0..max_lag, and its variance.

    Linear (not circular) autocorrelation through a zero-padded FFT; each lag's sum is divided by its number
    of overlapping pixel pairs (H - |dy|)(W - |dx|) and by the variance, so the profile starts at 1.
    Radius bins are the rounded Euclidean lag lengths. Returns ``(profile (max_lag + 1,), variance)``; the
    profile is None for a constant map.
    """
    H, W = m.shape
    x = m - m.mean()
    var = float(np.mean(x * x))
    if not var > 0:
        return None, 0.0
    sh = (sfft.next_fast_len(2 * H - 1, real=True), sfft.next_fast_len(2 * W - 1, real=True))
    f = sfft.rfft2(x, s=sh)
    acf = sfft.irfft2(f.real ** 2 + f.imag ** 2, s=sh)  # acf[dy, dx] = Σ_p x[p] x[p + lag], negative lags wrapped
    dy = np.arange(-max_lag, max_lag + 1)
    sub = acf[np.ix_(dy % sh[0], dy % sh[1])]            # lags |dy|, |dx| <= max_lag
    pairs = np.outer(H - np.abs(dy), W - np.abs(dy)).astype(np.float64)
    corr = sub / pairs / var
    radius = np.rint(np.hypot(dy[:, None], dy[None, :])).astype(np.int64)
    keep = radius <= max_lag
    num = np.bincount(radius[keep], weights=corr[keep], minlength=max_lag + 1)
    den = np.bincount(radius[keep], minlength=max_lag + 1)
    return num / den, var


def _first_crossing(profile: np.ndarray, level: float) -> float | None:
    """Lag (pixels, linear interpolation between integer lags) where ``profile`` first falls below ``level``."""
    below = np.nonzero(profile < level)[0]
    if below.size == 0:
        return None
    k = int(below[0])
    p0, p1 = profile[k - 1], profile[k]  # k >= 1: profile[0] = 1 > level
    return float(k - 1 + (p0 - level) / (p0 - p1))


def field_scale_statistics(maps, *, max_lag: int | None = None, thresholds=(64, 256, 1024)) -> dict:
    """Spatial structure at field scale (8-128 px) of abundance maps or a label map.

    maps: abundances ``(d, H, W)`` (any real values; the regions are those of their argmax) or an integer
    label map ``(H, W)`` (its classes become indicator maps for the autocorrelation).

    (a) Autocorrelation length: for each map, the lag (pixels) where the radially averaged autocorrelation
    of the mean-removed map first falls below 1/e (linear autocorrelation through a zero-padded FFT, each lag
    normalised by its number of pixel pairs; interpolated linearly between integer lags). The lengths are
    averaged over the maps weighted by the maps' variances (constant maps weigh 0). A map whose correlation
    stays above 1/e up to ``max_lag`` (default ``min(128, min(H, W) // 2)``) counts with length ``max_lag``;
    the variance-weighted share of such maps is ``"autocorrelation_censored"``.

    (b) Regions: the connected regions (4-connectivity, :func:`scipy.ndimage.label`) of each class of the
    argmax / label map. ``"median_region_size"`` is the area-weighted median region size (px: half the pixels
    lie in regions at most that large) and ``"share_ge_{T}"`` the share of pixels in regions of at least ``T``
    pixels, for each ``T`` in ``thresholds``.

    Returns a dict of plain floats: ``autocorrelation_length``, ``autocorrelation_censored``, ``max_lag``,
    ``n_regions``, ``median_region_size``, ``share_ge_{T}``... All maps constant (no variance): length
    ``max_lag``, censored 1.0.
    """
    corr_maps, labels = _maps_and_labels(maps)  # a generator of (H, W) maps
    H, W = labels.shape
    if min(H, W) < 2:
        raise DataError(f"maps: expected at least 2x2 pixels, got {H}x{W}")
    if max_lag is None:
        max_lag = max(1, min(128, min(H, W) // 2))
    max_lag = _positive_int(max_lag, "max_lag")
    if max_lag > min(H, W) - 1:
        raise ValueError(f"max_lag: expected at most min(H, W) - 1 = {min(H, W) - 1}, got {max_lag}")
    thresholds = [_positive_int(t, "thresholds") for t in thresholds]

    lengths, weights, censored = [], [], []
    for m in corr_maps:
        profile, var = _radial_correlation(m, max_lag)
        if profile is None:
            continue
        length = _first_crossing(profile, 1.0 / np.e)
        censored.append(length is None)
        lengths.append(float(max_lag) if length is None else length)
        weights.append(var)
    if weights:
        w = np.asarray(weights) / np.sum(weights)
        acl, cens = float(np.dot(w, lengths)), float(np.dot(w, censored))
    else:
        acl, cens = float(max_lag), 1.0

    sizes = []
    for k in np.unique(labels):
        lab, n = ndimage.label(labels == k)  # default structure: 4-connectivity
        if n:
            sizes.append(np.bincount(lab.ravel())[1:])
    sizes = np.sort(np.concatenate(sizes))
    area = np.cumsum(sizes)
    median = float(sizes[np.searchsorted(area, 0.5 * area[-1])])
    out = {"autocorrelation_length": acl, "autocorrelation_censored": cens, "max_lag": float(max_lag),
           "n_regions": float(sizes.size), "median_region_size": median}
    for t in thresholds:
        out[f"share_ge_{t}"] = float(sizes[sizes >= t].sum() / area[-1])
    return out
