"""Distribution metrics that discriminate where F_p cannot: improved k-NN precision/recall (spectra, patches),
sliced Wasserstein distance of pixel spectra, and the copy rate (memorisation)."""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import NotApplicable

from ._common import (EPS, _MAX_BYTES, DataError, memo, _device, _finite_float32, _check_generated, _check_real,
                     _positive_int, _tensor, _box_sum, _sq_norm_map, _sliding_dots)


# --------------------------------------------------------------------------------------------- precision/recall
def _sq_dists(a: torch.Tensor, b: torch.Tensor, a2: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``(len(a), len(b))`` from float64 rows and their squared norms."""
    return (a2[:, None] + b2[None, :] - 2.0 * (a @ b.T)).clamp_min_(0.0)


def _kth_nn_sq_radii(x: torch.Tensor, k: int, rows: int) -> torch.Tensor:
    """Squared distance of every row of ``x`` ``(m, d)`` to its k-th nearest other row -> ``(m,)``."""
    m = x.shape[0]
    x2 = x.square().sum(1)
    out = torch.empty(m, dtype=x.dtype, device=x.device)
    for i0 in range(0, m, rows):
        d = _sq_dists(x[i0:i0 + rows], x, x2[i0:i0 + rows], x2)
        idx = torch.arange(i0, min(m, i0 + rows), device=x.device)
        d[idx - i0, idx] = 0.0  # self distance exactly 0: the k+1-th smallest is the k-th other neighbour
        out[i0:i0 + rows] = torch.kthvalue(d, k + 1, dim=1).values
    return out


def _covered(x: torch.Tensor, centres: torch.Tensor, sq_radii: torch.Tensor, rows: int) -> torch.Tensor:
    """Boolean ``(len(x),)``: row lies in some ball ``||x - centre_j|| <= radius_j``."""
    x2, c2 = x.square().sum(1), centres.square().sum(1)
    out = torch.empty(x.shape[0], dtype=torch.bool, device=x.device)
    for i0 in range(0, x.shape[0], rows):
        out[i0:i0 + rows] = (_sq_dists(x[i0:i0 + rows], centres, x2[i0:i0 + rows], c2) <= sq_radii).any(1)
    return out


def manifold_precision_recall(fake, real, k: int = 3, device=None, max_bytes: int = _MAX_BYTES) -> dict:
    """Improved precision and recall (Kynkäänniemi et al., NeurIPS 2019) of two point sets.

    The real manifold is the union of balls around each real point with radius its distance to its k-th nearest
    real neighbour (itself excluded); likewise for the fake manifold.
    ``precision = mean_{g in fake} [g in real manifold]``, ``recall = mean_{r in real} [r in fake manifold]``
    (boundary counts as inside). Distances in float64.

    Args:
        fake: ``(m, d)`` generated points.
        real: ``(m', d)`` real points; both sets need more than ``k`` points.
    Returns:
        ``{"precision": float, "recall": float}``.
    """
    k = _positive_int(k, "k")
    fake = _finite_float32(fake, "fake")
    real = _finite_float32(real, "real")
    if fake.ndim != 2 or real.ndim != 2 or fake.shape[1] != real.shape[1]:
        raise DataError(f"fake, real: expected (m, d) and (m', d) point sets, got {fake.shape} and {real.shape}")
    if min(len(fake), len(real)) <= k:
        raise ValueError(f"k: {k} needs more than k points in each set, got {len(fake)} fake and {len(real)} real")
    dev = _device(device)
    with torch.inference_mode():
        X = _tensor(fake, dev).double()
        Y = _tensor(real, dev).double()
        rows = max(1, _positive_int(max_bytes, "max_bytes") // (8 * max(len(X), len(Y))))
        rad_real = memo("kth_nn_sq_radii", lambda: _kth_nn_sq_radii(Y, k, rows), real, key=(k, str(dev)))
        rad_fake = _kth_nn_sq_radii(X, k, rows)
        precision = _covered(X, Y, rad_real, rows).double().mean().item()
        recall = _covered(Y, X, rad_fake, rows).double().mean().item()
    return {"precision": float(precision), "recall": float(recall)}


def _subsample(x: np.ndarray, max_points: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_points is None or len(x) <= max_points:
        return x
    return x[np.sort(rng.choice(len(x), max_points, replace=False))]


def _random_corners(shape, h: int, w: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """``(m, 2)`` uniform top-left corners of ``h x w`` windows in a ``(bands, H, W)`` scene (rows drawn first)."""
    _, H, W = shape
    return np.stack([rng.integers(0, H - h + 1, m), rng.integers(0, W - w + 1, m)], 1)


def _spectra(G: np.ndarray) -> np.ndarray:
    """``(n, bands, h, w)`` -> pixel spectra ``(n*h*w, bands)``."""
    return G.transpose(0, 2, 3, 1).reshape(-1, G.shape[1])


def precision_recall(generated, real, k: int = 3, space: str = "spectra", max_points: int | None = 5000,
                     n_components: int | None = None, random_state=0, device=None) -> dict:
    """Improved precision & recall (Kynkäänniemi et al. 2019) of generated vs real data, k-NN radii manifolds.

    Spaces:

    * ``"spectra"``: points are pixel spectra ``(bands,)``: all generated pixels and all real scene pixels, each
      set subsampled (without replacement, ``random_state``) to ``max_points`` if larger.
    * ``"patches"``: points are flattened patches ``(bands*h*w,)``: the generated patches (subsampled to
      ``max_points``) and as many random ``h x w`` crops of ``real`` (uniform top-left corners, ``random_state``).

    Dimension reduction (optional, off by default): ``n_components`` replaces every spectrum, generated and real,
    by its coordinates on the top principal axes of the real scene's pixels (centred by the scene mean spectrum)
    before building the points; in ``"patches"`` space this divides the raw dimension ``bands*h*w`` (204,800 for
    Indian Pines 32 x 32 patches) by ``bands / n_components``. (Principal axes of the flattened patches would be
    fitted on only as many points as patches and collapse the sets; spectral axes use every scene pixel.)

    Args:
        generated: ``(n, bands, h, w)``.
        real: ``(bands, H, W)`` (or a Scene).
        k: neighbour rank of the radii (paper of Kynkäänniemi et al.: k = 3).
    Returns:
        ``{"precision": float, "recall": float}``: precision = share of generated points inside the real manifold
        (fidelity); recall = share of real points inside the generated manifold (coverage).
    """
    G = _check_generated(generated)
    n, C, h, w = G.shape
    R = _check_real(real, C)
    if max_points is not None:
        max_points = _positive_int(max_points, "max_points")
    if space not in ("spectra", "patches"):
        raise ValueError(f"space: expected 'spectra' or 'patches', got {space!r}")
    if space == "patches" and (h > R.shape[1] or w > R.shape[2]):
        raise ValueError(f"space: 'patches' needs generated patches ({h}x{w}) no larger than the real scene "
                         f"({R.shape[1]}x{R.shape[2]})")
    if n_components is not None:
        n_components = _positive_int(n_components, "n_components")
        mu, V = _pca_axes(R, n_components)
        G, R = _project_bands(G, mu, V, 1), _project_bands(R, mu, V, 0)
        C = R.shape[0]
    rng = np.random.default_rng(random_state)
    if space == "spectra":
        fake = _subsample(_spectra(G), max_points, rng)
        pts = _subsample(R.reshape(C, -1).T, max_points, rng)
    else:
        fake = _subsample(G.reshape(n, -1), max_points, rng)
        corners = _random_corners(R.shape, h, w, len(fake), rng)
        pts = np.stack([R[:, r:r + h, c:c + w] for r, c in corners]).reshape(len(fake), -1)
    fake = np.ascontiguousarray(fake, dtype=np.float32)
    pts = np.ascontiguousarray(pts, dtype=np.float32)
    return manifold_precision_recall(fake, pts, k=k, device=device)


# --------------------------------------------------------------------------------------------- sliced Wasserstein
def _sorted_rows(x: torch.Tensor) -> torch.Tensor:
    """Each row of ``x`` sorted ascending, in its own dtype (on CPU, without autograd, numpy's vectorised sort:
    several times faster than torch's; the sorted values are the same)."""
    if x.device.type == "cpu" and not x.requires_grad:
        return torch.from_numpy(np.sort(x.numpy(), axis=1))
    return torch.sort(x, dim=1)[0]


def wasserstein_1d(x: torch.Tensor, y: torch.Tensor, p: int = 2, y_sorted: bool = False) -> torch.Tensor:
    """Exact ``W_p^p`` between equal-weight empirical measures on the line, batched.

    Args:
        x: ``(P, n)`` samples (one row per projection), y: ``(P, m)``; n and m may differ.
        y_sorted: ``y``'s rows are sorted already.
    Returns:
        ``(P,)`` tensor ``int_0^1 |F_x^{-1}(t) - F_y^{-1}(t)|^p dt`` (quantile functions are piecewise constant,
        so the integral is an exact sum over the merged breakpoints ``{i/n} u {j/m}``), in float64.
    """
    # sorting before the float64 cast orders the same values (the cast is exact and monotone)
    xs = _sorted_rows(x).double()
    ys = (y if y_sorted else _sorted_rows(y)).double()
    n, m = xs.shape[1], ys.shape[1]
    if n == m:
        return (xs - ys).abs().pow(p).mean(1)
    dev = xs.device
    t = torch.cat([torch.arange(n + 1, device=dev, dtype=torch.float64) / n,
                   torch.arange(1, m, device=dev, dtype=torch.float64) / m])
    t, _ = torch.sort(t)
    width = t[1:] - t[:-1]
    mid = 0.5 * (t[1:] + t[:-1])
    i = (mid * n).long().clamp_(0, n - 1)
    j = (mid * m).long().clamp_(0, m - 1)
    return ((xs[:, i] - ys[:, j]).abs().pow(p) * width).sum(1)


def sliced_wasserstein(generated, real, n_projections: int = 256, p: int = 2, max_points: int | None = 50000,
                       directions=None, random_state=0, device=None) -> float:
    """Sliced Wasserstein distance ``SW_p`` between real and generated pixel-spectrum distributions.

    ``SW_p = ( 1/P sum_theta W_p^p(theta # mu_gen, theta # mu_real) )^(1/p)`` with P random unit directions theta
    in band space (Gaussian draws normalised, ``random_state``) and the exact 1-D Wasserstein distance between the
    projected empirical measures (sorted quantile functions; unequal sample sizes handled exactly). Default order
    p = 2 (in the reflectance units of the inputs; 0 for identical sets).

    Args:
        generated: ``(n, bands, h, w)``; all its pixels (subsampled to ``max_points``).
        real: ``(bands, H, W)`` (or a Scene); all its pixels (subsampled to ``max_points``).
        n_projections: number of directions P (ignored when ``directions`` is given).
        p: order, 1 or 2.
        directions: optional ``(P, bands)`` directions (rows are normalised to unit length).
    Returns:
        ``SW_p`` (float).
    """
    G = _check_generated(generated)
    C = G.shape[1]
    R = _check_real(real, C)
    if p not in (1, 2):
        raise ValueError(f"p: expected order 1 or 2, got {p!r}")
    if max_points is not None:
        max_points = _positive_int(max_points, "max_points")
    rng = np.random.default_rng(random_state)
    if directions is None:
        theta = rng.standard_normal((_positive_int(n_projections, "n_projections"), C))
    else:
        theta = np.asarray(directions, dtype=np.float64)
        if theta.ndim != 2 or theta.shape[1] != C or len(theta) < 1:
            raise DataError(f"directions: expected (P, {C}), got shape {theta.shape}")
    theta = theta / np.maximum(np.linalg.norm(theta, axis=1, keepdims=True), EPS)
    x = _subsample(_spectra(G), max_points, rng)
    y = _subsample(R.reshape(C, -1).T, max_points, rng)
    dev = _device(device)
    with torch.inference_mode():
        theta32 = theta.astype(np.float32)
        th = torch.from_numpy(theta32).to(dev)
        xt = _tensor(np.ascontiguousarray(x), dev)
        chunks = range(0, len(th), 64)

        def real_side():  # the real set's sorted projections: the same for every generator of a table
            yt = _tensor(np.ascontiguousarray(y), dev)
            return [_sorted_rows(th[p0:p0 + 64] @ yt.T) for p0 in chunks]
        ys = memo("swd_real_sorted", real_side, theta32, y, key=(str(dev),))
        total = 0.0
        for p0, y_sorted in zip(chunks, ys):
            total += wasserstein_1d(th[p0:p0 + 64] @ xt.T, y_sorted, p, y_sorted=True).sum().item()
    return float((total / len(theta)) ** (1.0 / p))


# --------------------------------------------------------------------------------------------- copy rate
def _pca_axes(R: np.ndarray, q: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean spectrum ``(bands,)`` and top-``q`` principal axes ``(bands, q)`` of the scene pixels (None: all).

    Covariance accumulated in float64 over pixel chunks (bounded memory for large scenes).
    """
    C = R.shape[0]
    X = torch.from_numpy(R).reshape(C, -1)
    N = X.shape[1]
    mu = torch.zeros(C, dtype=torch.float64)
    for p0 in range(0, N, 65536):
        mu += X[:, p0:p0 + 65536].double().sum(1)
    mu /= N
    if q is None or q >= C:
        return mu.numpy(), None
    cov = torch.zeros((C, C), dtype=torch.float64)
    for p0 in range(0, N, 65536):
        xc = X[:, p0:p0 + 65536].double() - mu[:, None]
        cov += xc @ xc.T
    _, evecs = torch.linalg.eigh(cov / max(N - 1, 1))
    return mu.numpy(), np.ascontiguousarray(evecs.flip(1)[:, :q].numpy())


def _project_bands(x: np.ndarray, mu: np.ndarray, V: np.ndarray | None, axis: int) -> np.ndarray:
    """Centre by ``mu`` and project the band axis ``axis`` (0 or 1) of ``x`` on ``V`` (or keep all bands).

    ``x`` is ``(bands, H, W)`` (axis 0) or ``(n, bands, h, w)`` (axis 1); returns float32 of the same layout with
    ``q`` channels, computed in pixel chunks (float32 matmul after float64 centring).
    """
    C = x.shape[axis]
    lead = x.shape[:axis]
    q = C if V is None else V.shape[1]
    xt = torch.from_numpy(x).reshape(int(np.prod(lead, dtype=np.int64)), C, -1)  # (m, C, P)
    out = torch.empty((xt.shape[0], q, xt.shape[2]), dtype=torch.float32)
    mu_t = torch.from_numpy(mu)[:, None]
    Vt = None if V is None else torch.from_numpy(np.ascontiguousarray(V.T, dtype=np.float32))  # (q, C)
    for i in range(xt.shape[0]):
        for p0 in range(0, xt.shape[2], 65536):
            xc = (xt[i, :, p0:p0 + 65536].double() - mu_t).float()
            out[i, :, p0:p0 + 65536] = xc if Vt is None else Vt @ xc
    return out.reshape(*lead, q, *x.shape[axis + 1:]).numpy()


def _nn_windows(Rt: torch.Tensor, kern: torch.Tensor, stride: int, max_bytes: int, progress: bool, desc: str,
                exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Nearest scene window (Euclidean) of every kernel, on a ``stride`` grid, optionally excluding windows.

    Args:
        Rt: ``(c, H, W)`` scene; kern: ``(K, c, h, w)`` patches.
        exclude: ``(K, E, 2)`` top-left corners; for kernel i, every window overlapping an ``h x w`` crop at one
            of ``exclude[i]`` is left out.
    Returns:
        ``(d, corner)``: ``d`` ``(K,)`` float64 distances (``inf`` if every window is excluded) and ``corner``
        ``(K, 2)`` top-left corner (pixels) of the nearest window. ``d^2 = |g|^2 + |r|^2 - 2 g.r`` with ``g.r``
        from conv2d and ``|r|^2`` from a box filter selects the window; its distance is then recomputed exactly.
    """
    K, _, kh, kw = kern.shape
    dev = Rt.device
    r2 = _box_sum(_sq_norm_map(Rt), kh, kw, stride).float()  # (Ho, Wo)
    Wo = r2.shape[1]
    best = torch.full((K,), math.inf, dtype=torch.float32, device=dev)
    arg = torch.zeros((K, 2), dtype=torch.long, device=dev)
    cols = torch.arange(Wo, device=dev) * stride
    ex = None if exclude is None else torch.as_tensor(np.asarray(exclude), device=dev)
    for k0, k1, r0, r1, dots in _sliding_dots(Rt, kern, stride, max_bytes, 256, progress, desc):
        d2 = r2[r0:r1][None] - 2.0 * dots  # (k, rows, Wo); + |g|^2 later
        if ex is not None:
            rows = torch.arange(r0, r1, device=dev) * stride
            for e in range(ex.shape[1]):
                er, ec = ex[k0:k1, e, 0], ex[k0:k1, e, 1]
                over_r = (rows[None, :] - er[:, None]).abs() < kh  # (k, rows)
                over_c = (cols[None, :] - ec[:, None]).abs() < kw  # (k, Wo)
                d2.masked_fill_(over_r[:, :, None] & over_c[:, None, :], math.inf)
        m, idx = d2.reshape(k1 - k0, -1).min(dim=1)
        better = m < best[k0:k1]
        best[k0:k1] = torch.where(better, m, best[k0:k1])
        pos = torch.stack([(r0 + idx // Wo) * stride, (idx % Wo) * stride], 1)
        arg[k0:k1] = torch.where(better[:, None], pos, arg[k0:k1])
    # refine: exact float64 distance to the selected window (the expansion above loses ~1e-7 * |g|^2 to
    # cancellation, i.e. ~1e-3 * |g| after the square root; an exact copy must give 0)
    d = torch.full((K,), math.inf, dtype=torch.float64, device=dev)
    found = torch.isfinite(best)
    ar_h, ar_w = torch.arange(kh, device=dev), torch.arange(kw, device=dev)
    for k0 in range(0, K, 256):
        k1 = min(K, k0 + 256)
        rr = (arg[k0:k1, 0, None] + ar_h)[:, :, None]  # (k, kh, 1)
        cc = (arg[k0:k1, 1, None] + ar_w)[:, None, :]  # (k, 1, kw)
        win = Rt[:, rr, cc].permute(1, 0, 2, 3)  # (k, c, kh, kw)
        diff = (kern[k0:k1].double() - win.double()).reshape(k1 - k0, -1)
        d[k0:k1] = torch.where(found[k0:k1], torch.linalg.vector_norm(diff, dim=1), d[k0:k1])
    return d.cpu().numpy(), arg.cpu().numpy()


def _ratio(d1: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """``d1 / d2`` with ``0/0 := 0`` (a patch equal to two disjoint windows is a copy) and ``x/inf := nan``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(d2 > 0, d1 / np.where(d2 > 0, d2, 1.0), 0.0)
    return np.where(np.isfinite(d2), r, np.nan)


def _check_copy_args(generated, real, criterion, quantile, n_components, stride, n_calibration, max_bytes):
    """Validate :func:`copy_rate`'s arguments; returns the checked ``(G, R)`` arrays."""
    G = _check_generated(generated)
    n, C, h, w = G.shape
    R = _check_real(real, C)
    _, H, W = R.shape
    if criterion not in ("relative", "absolute"):
        raise ValueError(f"criterion: expected 'relative' or 'absolute', got {criterion!r}")
    for v, name in ((stride, "stride"), (n_calibration, "n_calibration"), (max_bytes, "max_bytes")):
        _positive_int(v, name)
    if not 0.0 < float(quantile) < 1.0:
        raise ValueError(f"quantile: expected a value in (0, 1), got {quantile!r}")
    if n_components is not None:
        _positive_int(n_components, "n_components")
    if h > H or w > W:
        raise ValueError(f"generated: patches {h}x{w} exceed the real scene {H}x{W}")
    if H < 2 * h and W < 2 * w:
        raise NotApplicable(f"real: scene {H}x{W} too small for non-overlapping {h}x{w} windows (need H >= 2h or "
                            f"W >= 2w)")
    return G, R


def copy_rate(generated, real, criterion: str = "relative", quantile: float = 0.05, n_components: int | None = 32,
              stride: int = 1, n_calibration: int = 128, random_state=0, device=None, max_bytes: int = _MAX_BYTES,
              return_details: bool = False, progress: bool = False):
    """Memorisation rate: share of generated patches that are (near-)copies of a window of the real scene.

    Distances are Euclidean between flattened ``h x w`` patches; the real windows are every ``h x w`` window of
    the scene on a ``stride`` grid; nearest neighbours are exact (conv trick ``|g|^2 + |r|^2 - 2 g.r``).

    For a generated patch g: ``d1(g)`` = distance to its nearest window ``p1``; ``d2(g)`` = distance to the nearest
    window that does not overlap ``p1`` (the nearest *other* real content); ``rho(g) = d1 / d2``.

    Calibration with held-out real patches: ``n_calibration`` real crops c at uniform random corners
    (``random_state``) are treated as if generated, with every window overlapping c removed from the search
    (so c's own pixels cannot match): ``d1_0(c)``, ``d2_0(c)`` (excluding windows overlapping c or c's match) and
    ``rho_0(c)``. A held-out real patch is what a perfect, non-copying generator would produce.

    * ``criterion="relative"`` (default): g is a copy if ``rho(g) <= quantile(rho_0, quantile)``: its nearest real
      patch is relatively closer (vs the runner-up) than for 95 % of held-out real patches.
    * ``criterion="absolute"``: g is a copy if ``d1(g) <= quantile(d1_0, quantile)``: closer to the scene than
      held-out real patches are to the rest of it.

    Why relative by default: the absolute rule flags smooth patches (the mean spectrum, blurred crops) as copies,
    since they lack the sensor noise that separates two real patches; a smooth patch is about equally near many
    windows, a copy near one (docs/results.md gives the measurements on Indian Pines).

    Cost: the spectra are centred by the scene mean and projected on its top ``n_components`` principal axes
    (distances are translation invariant; the projection shrinks them alike for generated and held-out patches).
    ``stride > 1`` divides the cost by ``stride^2`` but a copy at an off-grid position may then go undetected.

    Args:
        generated: ``(n, bands, h, w)``.
        real: ``(bands, H, W)`` (or a Scene) with ``H >= 2h`` or ``W >= 2w``.
        criterion: ``"relative"`` or ``"absolute"``.
        quantile: quantile of the held-out statistic used as threshold, in (0, 1).
        n_components: principal axes kept (None: all bands, exact).
        stride: window grid step.
        n_calibration: number of held-out real crops.
        return_details: also return a dict with ``d1``, ``d2``, ``rho`` ``(n,)`` (``d2``/``rho`` only for the
            relative rule), ``copy`` ``(n,)`` bool, ``tau``, the calibration ``d1_0``, ``d2_0``, ``rho_0``
            ``(n_calibration,)`` (NaN/inf where no admissible window is left; left out of the quantile) and
            ``corners`` ``(n_calibration, 2)``.
    Returns:
        ``copy_rate`` (float), or ``(copy_rate, details)``.
    """
    G, R = _check_copy_args(generated, real, criterion, quantile, n_components, stride, n_calibration, max_bytes)
    n, C, h, w = G.shape
    dev = _device(device)

    def scene_side():
        # everything that depends on the real scene only (its axes, the held-out crops and their statistics):
        # memoised, so that every generator of a table pays for the calibration once
        rng = np.random.default_rng(random_state)
        corners = _random_corners(R.shape, h, w, n_calibration, rng)
        mu, V = _pca_axes(R, n_components)
        Rp = _project_bands(R, mu, V, 0)  # (q, H, W)
        Cp = np.stack([Rp[:, r:r + h, c:c + w] for r, c in corners])  # (n_cal, q, h, w)
        cal = {"corners": corners}
        with torch.inference_mode():
            Rt, Ct = _tensor(Rp, dev), _tensor(Cp, dev)
            cal["d1_0"], p1_0 = _nn_windows(Rt, Ct, stride, max_bytes, progress, "copy: held-out",
                                            exclude=corners[:, None])
            if criterion == "relative":
                cal["d2_0"], _ = _nn_windows(Rt, Ct, stride, max_bytes, progress, "copy: held-out 2nd",
                                             exclude=np.stack([corners, p1_0], 1))
        return mu, V, Rp, cal

    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        mu, V, Rp, cal = memo("copy_rate_scene", scene_side, R,
                              key=(h, w, criterion, n_components, stride, n_calibration, int(random_state), max_bytes,
                                   str(dev)))
    else:  # a Generator or None: a draw of its own, not memoised
        mu, V, Rp, cal = scene_side()
    Gp = _project_bands(G, mu, V, 1)  # (n, q, h, w)
    det: dict = {"corners": cal["corners"].copy(), "d1_0": cal["d1_0"].copy()}
    with torch.inference_mode():
        Rt, Gt = _tensor(Rp, dev), _tensor(Gp, dev)
        d1, p1 = _nn_windows(Rt, Gt, stride, max_bytes, progress, "copy: generated")
        det["d1"] = d1
        if criterion == "relative":
            d2, _ = _nn_windows(Rt, Gt, stride, max_bytes, progress, "copy: generated 2nd", exclude=p1[:, None])
            stat, stat0 = _ratio(d1, d2), _ratio(cal["d1_0"], cal["d2_0"])
            det.update(d2=d2, rho=stat, d2_0=cal["d2_0"].copy(), rho_0=stat0)
        else:
            stat, stat0 = d1, cal["d1_0"]
    ok = np.isfinite(stat0)
    if not ok.any():
        raise NotApplicable(f"stride: {stride} leaves no admissible windows for calibration in a "
                         f"{R.shape[1]}x{R.shape[2]} scene")
    tau = float(np.quantile(stat0[ok], quantile))
    copy = stat <= tau
    rate = float(np.mean(copy))
    if return_details:
        det.update(tau=tau, copy=copy)
        return rate, det
    return rate


