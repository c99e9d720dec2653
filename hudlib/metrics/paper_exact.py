"""The paper's metrics exactly as the authors' experiment code computed them (Tables I-III).

Facts from the authors' public code (Teemo341/latent-diffusion, experiments/metric/evaluation.py and
ldm/data/HSI.py; docs/authors_code.md §B, §C):

* data space: ``clip(raw, 0, V) / V * 2 - 1`` with a fixed V per scene (``Scene.authors_V``: the paper's value,
  else the scene's maximum), i.e. values in [-1, 1]; the "original image" is the centre square crop of the scene
  (``min(rows, cols)`` on a side);
* ``F_p``: for every generated pixel the largest cosine with any pixel of the original image, mean over pixels;
* ``D_b``: the block is the *whole* generated patch; a window's score is the per-pixel cosine between the patch
  and a same-size stride-1 window of the original, averaged over the patch's pixels; the patch's score is the
  maximum over every window and the 4 rotations ``rot90(patch, k)``, k = 0..3 (they rotate the generated patch);
  ``D_b`` = mean over patches. In the [-1, 1] space cosines, hence ``D_b``, can be negative;
* IS: per-pixel class probabilities (background class included); ``F.kl_div(...).mean()`` averages over all
  N x C elements, so the code's IS is ``exp(mean KL / C)`` = the standard IS to the power 1/C (at most
  ``C**(1/C)``: 1.18 for C = 17);
* FID: 64-d per-pixel features; reference = every pixel of the original image; ``sqrtm`` of ``S1 S2``.

Where this module deliberately differs: a zero pixel is normalised by ``max(||x||, EPS)`` (cosine 0) where the
authors' code would produce NaN, and the FID keeps the real part of ``sqrtm`` (theirs stored complex values).

Arrays are channel-first: a batch ``(n, bands, h, w)``, a scene ``(bands, H, W)``.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import linalg
from tqdm.auto import tqdm

from ..data import centre_square
from ..errors import DataError
from . import _common, paper
from .classifier_scores import kl_to_marginal

__all__ = [
    "to_authors_space", "original_image",
    "point_fidelity_paper", "block_diversity_paper", "inception_score_paper", "inception_score_standard",
    "inception_score_cap", "frechet_distance_paper", "paper_exact_metrics",
]

EPS = _common.EPS
_MAX_BYTES = 1 << 28  # 256 MiB for the largest spectrum block of the FFT correlation
_FAST = sorted({2 ** a * 3 ** b * 5 ** c for a in range(13) for b in range(8) for c in range(6)
                if 2 ** a * 3 ** b * 5 ** c <= 8192})


# --------------------------------------------------------------------------------------------- data space
def to_authors_space(Y, scene, chunk: int = 1 << 18) -> np.ndarray:
    """Any array in our units -> the authors' space (:meth:`hudlib.data.Scene.to_authors_space`), float32, after
    checking it is finite. Converted ``chunk`` elements at a time (float64 arithmetic on cache-sized pieces, no
    float64 copy of the whole batch)."""
    Y = np.asarray(Y)
    flat = Y.reshape(-1)
    out = np.empty(flat.shape, dtype=np.float32)
    bad = 0
    for i in range(0, flat.size, chunk):
        x = flat[i:i + chunk].astype(np.float64)
        bad += int((~np.isfinite(x)).sum())
        out[i:i + chunk] = scene.to_authors_space(x)
    if bad:
        raise DataError(f"Y: holds {bad} NaN/Inf values; expected finite values")
    return out.reshape(Y.shape)


def original_image(scene) -> np.ndarray:
    """The authors' "original image": the scene's centre square crop in their space -> ``(bands, s, s)``, s = min(H, W)."""
    return np.ascontiguousarray(centre_square(to_authors_space(scene.cube, scene)))


# --------------------------------------------------------------------------------------------- F_p
def point_fidelity_paper(G, O, device=None, return_per_pixel: bool = False, progress: bool = False):
    """The authors' ``F_p``: mean over generated pixels of the largest cosine with any pixel of ``O``.

    G: ``(n, bands, h, w)`` and O: ``(bands, H, W)`` (the original image), both in the authors' space.
    The definition is the same as eq. 16, so this is :func:`hudlib.metrics.point_fidelity` on these inputs.
    Returns the float, or ``(F_p, per_pixel (n, h, w))``.
    """
    return paper.point_fidelity(G, O, device=device, return_per_pixel=return_per_pixel, progress=progress)


# --------------------------------------------------------------------------------------------- D_b
def _fast_size(m: int) -> int:
    """Smallest 2^a 3^b 5^c >= m (a fast FFT length)."""
    for s in _FAST:
        if s >= m:
            return s
    return m


def _unit_pixels(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x / torch.linalg.vector_norm(x, dim=dim, keepdim=True).clamp_min(EPS)


def _plan(H: int, W: int, side: int, bands: int, max_bytes: int) -> int:
    """Tile side L: the 4 rotations' row spectra (``4 * L * (L//2+1) * bands`` complex64, present up to 3 times
    while built) stay within ``max_bytes``; L covers the whole scene when that fits, otherwise the scene is cut
    into overlapping tiles."""
    L = max(H, W)
    while L > side and L * (L // 2 + 1) * bands * 96 > max_bytes:
        L = max(side, int(L * 0.9))
    return L


def _tiles(n: int, L: int, side: int) -> list[int]:
    """Starts of tiles of length L (stride L - side + 1) that hold every window of length <= side of ``n``."""
    if n <= L:
        return [0]
    stride = L - side + 1
    starts = list(range(0, n - L + 1, stride))
    if starts[-1] + L < n:
        starts.append(n - L)
    return starts


def _dft_cols(L: int, w: int, xi0: int, xi1: int, dev) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of ``2 pi xi b / L`` for b < w, xi0 <= xi < xi1 -> two ``(w, xi1 - xi0)`` float32."""
    ang = 2.0 * np.pi * (np.outer(np.arange(w), np.arange(xi0, xi1)) % L) / L
    return torch.from_numpy(np.cos(ang)).float().to(dev), torch.from_numpy(np.sin(ang)).float().to(dev)


def _correlate_rows(Pu: torch.Tensor, That: torch.Tensor, Lx: int, xi_chunk: int) -> torch.Tensor:
    """Correlation spectra summed over bands and patch rows -> ``S (g, R, Ht - h + 1, n_xi)`` complex64:
    ``S[g, r, y, xi] = sum_{c, a} conj(Phat[g, c, a, xi]) That[r, xi, c, y + a]``, Phat the row DFT (length Lx) of
    the unit patches ``Pu (g, bands, h, w)`` and That ``(R, n_xi, bands, Ht)`` those of R same-shape scene tiles
    (rotations). One complex GEMM per frequency (inner length bands * h); the patch DFT is computed ``xi_chunk``
    frequencies at a time (bounded memory).
    """
    g, C, h, w = Pu.shape
    R, nxi, _, Ht = That.shape
    Ho = Ht - h + 1
    Pm = Pu.reshape(g * C * h, w)
    S = torch.empty(nxi, g, R * Ho, dtype=That.dtype, device=That.device)
    for x0 in range(0, nxi, xi_chunk):
        x1 = min(nxi, x0 + xi_chunk)
        cs, sn = _dft_cols(Lx, w, x0, x1, Pu.device)
        Phat = torch.complex(Pm @ cs, Pm @ sn).T.reshape(x1 - x0, g, C * h)  # conj of the patch row DFT
        for xi in range(x0, x1):
            # B[(c, a), (r, y)] = That[r, xi, c, y + a]
            B = That[:, xi].unfold(2, h, 1).permute(1, 3, 0, 2).reshape(C * h, R * Ho)
            torch.matmul(Phat[xi - x0], B, out=S[xi])
    return S.view(nxi, g, R, Ho).permute(1, 2, 3, 0)


def _exact_window_scores(Pu: torch.Tensor, T64: torch.Tensor, wins: list) -> torch.Tensor:
    """Float64 per-pixel cosine means of the unit patch ``Pu`` ``(bands, h, w)`` and windows of rotated tiles.

    T64: unit tile ``(bands, Ht, Wt)``; wins: ``(k, idx, y, x)`` per window: corner (y, x) in rot90(T64, -k), whose
    flat pixel indices into T64 are ``idx``. The window is the rotation of a rectangle of T64 whose top-left pixel
    is the window corners' smallest index. Returns ``(len(wins),)``.
    """
    C, h, w = Pu.shape
    stack = []
    for k, idx, y, x in wins:
        hh, ww = (h, w) if k % 2 == 0 else (w, h)
        r, c = divmod(int(min(idx[y, x], idx[y, x + w - 1], idx[y + h - 1, x], idx[y + h - 1, x + w - 1])),
                      T64.shape[2])
        stack.append(torch.rot90(T64[:, r:r + hh, c:c + ww], -k, dims=(1, 2)))
    return torch.einsum("rchw,chw->r", torch.stack(stack), Pu) / (h * w)


def _db_whole(G: np.ndarray, O: np.ndarray, dev, max_bytes: int, progress: bool, Q: np.ndarray | None = None
              ) -> np.ndarray:
    """Per-patch maximum of the authors' whole-patch score over windows and rotations -> ``(n,)`` float64.

    <rot_k(P), window of O> = <P, the same window of rot_{-k}(O)>, so every patch is correlated with the 4 rotated
    unit scene tiles: spatially along rows (one GEMM per column frequency, summing bands and patch rows, rotations
    of equal shape side by side) and by FFT along columns, in float32; the best window found for each patch is
    then re-scored exactly in float64 (so the value is an exact window score, within float32 error of the max).
    ``Q`` ``(bands, r)``: the unit pixels of every patch lie in span(Q) (``_common.subspace``): the correlation
    runs on the r coordinates of patches and tiles instead of every band (the re-scoring stays exact).
    """
    n, C, h, w = G.shape
    Qt = None if Q is None else torch.from_numpy(Q.T).to(dev)  # (r, bands) float64
    _, H, W = O.shape
    L = _plan(H, W, max(h, w), C, max_bytes)
    nxi_max = _fast_size(L) // 2 + 1
    group = int(min(n, max(1, max_bytes // (4 * 8 * 4 * L * nxi_max))))
    xi_chunk = int(min(nxi_max, max(1, max_bytes // (4 * 8 * 3 * group * C * h))))
    best = np.full(n, -np.inf)
    tiles = [(r, c) for r in _tiles(H, L, max(h, w)) for c in _tiles(W, L, max(h, w))]
    for r0, c0 in tqdm(tiles, desc="D_b (paper)", disable=not progress):
        T64 = _unit_pixels(torch.from_numpy(O[:, r0:r0 + L, c0:c0 + L]).to(dev, torch.float64), 0).contiguous()
        flat = torch.arange(T64.shape[1] * T64.shape[2], device=dev).view(T64.shape[1:])
        by_shape: dict = {}
        for k in range(4):
            idx = torch.rot90(flat, -k, dims=(0, 1))
            if idx.shape[0] >= h and idx.shape[1] >= w:
                by_shape.setdefault(tuple(idx.shape), []).append((k, idx))
        for (Ht, Wt), rots in by_shape.items():
            Lx, Wo = _fast_size(Wt), Wt - w + 1
            T = T64 if Qt is None else torch.einsum("rc,chw->rhw", Qt, T64)
            Tk = torch.stack([T.reshape(T.shape[0], -1)[:, idx].float() for _, idx in rots])  # (R, C|r, Ht, Wt)
            That = torch.fft.rfft(Tk, n=Lx, dim=3).permute(0, 3, 1, 2).contiguous()  # (R, n_xi, C|r, Ht)
            for i0 in range(0, n, group):
                Pu = _unit_pixels(torch.from_numpy(G[i0:i0 + group]).to(dev, torch.float64), 1)
                Pc = Pu if Qt is None else torch.einsum("rc,gchw->grhw", Qt, Pu)
                corr = torch.fft.irfft(_correlate_rows(Pc.float(), That, Lx, xi_chunk), n=Lx, dim=3)[..., :Wo]
                arg = corr.reshape(len(Pu), -1).argmax(1).tolist()  # best window over the rotations
                for j, a in enumerate(arg):
                    r, yx = divmod(a, corr.shape[2] * Wo)
                    k, idx = rots[r]
                    s = _exact_window_scores(Pu[j], T64, [(k, idx, *divmod(yx, Wo))])
                    best[i0 + j] = max(best[i0 + j], float(s[0]))
    return np.clip(best, -1.0, 1.0)


def block_diversity_paper(G, O, block: int | None = None, device=None, return_per_patch: bool = False,
                          max_bytes: int = _MAX_BYTES, progress: bool = False, low_rank: bool = True):
    """The authors' ``D_b`` (``block=None``) or hudlib's 8 x 8 variant (``block=8``).

    ``block=None``: for each generated patch P ``(bands, h, w)`` the maximum over the 4 rotations ``rot90(P, k)``
    and every stride-1 window of ``O`` of the same size of ``1/(h w) sum_p cos(rot90(P, k)[p], window[p])``; mean
    over patches. Computed as a correlation of the unit-normalised patch with the unit-normalised scene (float32:
    a GEMM per column frequency over bands x patch rows, FFT along columns; no loop over windows), in overlapping
    tiles so memory stays near ``max_bytes``; the best window found is re-scored exactly in float64.

    ``block=b``: :func:`hudlib.metrics.block_diversity` with b x b blocks (whole-block cosine, no rotations).

    Args:
        G: ``(n, bands, h, w)``; O: ``(bands, H, W)`` (the original image), both in the authors' space.
        block: None (the paper's whole patch) or a block side.
        device: torch device (default CPU).
        return_per_patch: also return the per-patch (``block=None``) or per-block maxima.
        max_bytes: approximate memory bound of the spectra and correlation blocks.
        low_rank: patches whose pixels lie in the generated set's subspace are correlated in its coordinates.
    Returns:
        ``D_b`` (float), or ``(D_b, per_patch (n,))`` (``(n, h//b, w//b)`` for ``block=b``).
    """
    if block is not None:
        return paper.block_diversity(G, O, block=block, device=device, return_per_block=return_per_patch,
                                       progress=progress)
    G = _common._check_generated(G, "G")
    n, C, h, w = G.shape
    O = _common._check_real(O, C, "O")
    max_bytes = _common._positive_int(max_bytes, "max_bytes")
    H, W = O.shape[1:]
    if not ((h <= H and w <= W) or (w <= H and h <= W)):
        raise ValueError(f"G: patches {h}x{w} do not fit in O of {O.shape[1]}x{O.shape[2]} in any rotation")
    dev = _common._device(device)
    per = np.empty(n)
    full = np.arange(n)
    with torch.inference_mode():
        sub = _common.subspace(G.transpose(0, 2, 3, 1).reshape(-1, C)) if low_rank else None
        if sub is not None:  # patches whose every unit pixel lies in span(Q): correlate in r coordinates
            Q, ok = sub
            low = np.flatnonzero(ok.reshape(n, h * w).all(1))
            if len(low):
                per[low] = _db_whole(G[low], O, dev, max_bytes, progress, Q)
            full = np.setdiff1d(full, low)
        if len(full):
            per[full] = _db_whole(G[full], O, dev, max_bytes, progress)
    db = float(per.mean())
    return (db, per) if return_per_patch else db


# --------------------------------------------------------------------------------------------- IS / FID
def _probabilities(p) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 2:
        raise DataError(f"p: expected class probabilities (N pixels, C >= 2 classes), got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or np.abs(p.sum(1) - 1.0).max() > 1e-3:
        raise DataError("p: expected finite non-negative rows summing to 1 (softmax outputs)")
    return p


def inception_score_paper(p) -> float:
    """The authors' IS: ``exp(mean over the N x C elements of p log(p / p_bar))`` = ``exp(mean_i KL_i / C)``.

    p: ``(N, C)`` per-pixel class probabilities (background class included), p_bar their mean over pixels.
    """
    p = _probabilities(p)
    return float(np.exp(kl_to_marginal(p).mean() / p.shape[1]))


def inception_score_standard(p) -> float:
    """The standard IS ``exp(mean_i KL(p_i || p_bar))`` of per-pixel probabilities ``(N, C)`` (= paper IS ** C)."""
    return float(np.exp(kl_to_marginal(_probabilities(p)).mean()))


def inception_score_cap(C: int) -> float:
    """Largest possible paper IS with C classes: ``exp(ln C / C)`` = C ** (1/C) (standard IS at most C)."""
    return float(np.exp(np.log(C) / C))


def frechet_distance_paper(feat_gen, feat_real) -> float:
    """FID as the authors': ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2))``, real part of sqrtm taken.

    feat_gen ``(N1, d)``, feat_real ``(N2, d)``: per-pixel features (64-d in the paper); covariances with
    ``np.cov`` (N - 1 denominator); float64.
    """
    out = []
    for name, f in (("feat_gen", feat_gen), ("feat_real", feat_real)):
        f = np.asarray(f, dtype=np.float64)
        if f.ndim != 2 or f.shape[0] < 2 or not np.isfinite(f).all():
            raise DataError(f"{name}: expected finite features (N >= 2, d), got shape {f.shape}")
        out.append(f)
    a, b = out
    if a.shape[1] != b.shape[1]:
        raise DataError(f"feat_real: has {b.shape[1]} features; expected {a.shape[1]} like feat_gen")
    s1, s2 = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = linalg.sqrtm(s1 @ s2)
    return float(np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s1 + s2 - 2.0 * np.real(root)))


# --------------------------------------------------------------------------------------------- all of them
def _draw_stats(values_fn, n: int, draws: int, draw_size: int, rng: np.random.Generator) -> dict:
    vals = np.array([values_fn(rng.choice(n, draw_size, replace=False)) for _ in range(draws)])
    return {"draw_mean": float(vals.mean(0)), "draw_std": float(vals.std(0, ddof=1)) if draws > 1 else 0.0}


def _classifier_outputs(classifier, G: np.ndarray, O: np.ndarray, real_features=None):
    n, _, h, w = G.shape
    probs, feats = (np.asarray(a, dtype=np.float64) for a in classifier(G))
    real_feats = classifier(O[None])[1] if real_features is None else real_features
    if probs.shape[0] != n * h * w or feats.shape[0] != n * h * w:
        raise DataError(f"classifier: returned {probs.shape[0]} probability and {feats.shape[0]} feature rows for "
                        f"{n} patches of {h}x{w}; expected {n * h * w} rows each, in (n h w) order")
    return probs.reshape(n, h * w, -1), feats.reshape(n, h * w, -1), np.asarray(real_feats, dtype=np.float64)


def paper_exact_metrics(Y, scene, classifier=None, draws: int = 32, draw_size: int = 8, random_state=0,
                        device=None, progress: bool = False, real_features=None) -> dict:
    """The paper's F_p, D_b (whole patch), D_b/F_p and, with a classifier, IS (both ways) and FID.

    Each metric at all n patches (``"value"``) and as mean +- std (ddof 1) over ``draws`` independent draws of
    ``draw_size`` distinct patches (the paper scored 8 per model), so paper differences can be told from noise.

    Args:
        Y: ``(n, bands, h, w)`` generated patches in our units (converted with :func:`to_authors_space`).
        scene: the real :class:`hudlib.data.Scene` (original image = its centre square crop).
        classifier: optional callable ``(m, bands, h, w)`` in the authors' space -> ``(probs (m h w, C),
            features (m h w, 64))``, rows in (m h w) order; also called on the original image ``(1, bands, s, s)``.
        draws, draw_size: repeated draws; random_state: seed of the draws.
        real_features: the classifier's features of the original image when already computed (else computed).
    Returns:
        ``{"n", "draws", "draw_size", metric: {"value", "draw_mean", "draw_std"}}`` for metrics ``F_p``, ``D_b``,
        ``D_b/F_p`` (+ ``IS_paper``, ``IS_standard``, ``FID`` with a classifier).
    """
    draws, draw_size = _common._positive_int(draws, "draws"), _common._positive_int(draw_size, "draw_size")
    G = to_authors_space(_common._check_generated(Y, "Y"), scene)
    n = G.shape[0]
    if draw_size > n:
        raise ValueError(f"draw_size: {draw_size} exceeds the {n} generated patches")
    O = original_image(scene)
    _, fp_pix = point_fidelity_paper(G, O, device=device, return_per_pixel=True, progress=progress)
    fp_patch = fp_pix.reshape(n, -1).astype(np.float64).mean(1)
    _, db_patch = block_diversity_paper(G, O, device=device, return_per_patch=True, progress=progress)
    fns = {"F_p": lambda i: fp_patch[i].mean(), "D_b": lambda i: db_patch[i].mean(),
           "D_b/F_p": lambda i: db_patch[i].mean() / fp_patch[i].mean()}
    if classifier is not None:
        probs, feats, real_feats = _classifier_outputs(classifier, G, O, real_features)
        fns.update({"IS_paper": lambda i: inception_score_paper(probs[i].reshape(-1, probs.shape[2])),
                    "IS_standard": lambda i: inception_score_standard(probs[i].reshape(-1, probs.shape[2])),
                    "FID": lambda i: frechet_distance_paper(feats[i].reshape(-1, feats.shape[2]), real_feats)})
    out: dict = {"n": n, "draws": draws, "draw_size": draw_size}
    everything = np.arange(n)
    for name, fn in fns.items():
        rng = np.random.default_rng(random_state)  # the same draws for every metric
        out[name] = {"value": float(fn(everything)), **_draw_stats(fn, n, draws, draw_size, rng)}
    return out
