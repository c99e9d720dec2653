"""Classifier-based scores: IS and FID (paper IV-C, with a per-scene classifier in place of InceptionV3) and SD
(HyperLDM III-E, eqs. 26-28), and the per-pixel outputs of the two classifiers they rest on
(:mod:`hudlib.classifier` trains them).

Arrays are channel-first: a batch of patches is ``(n, bands, h, w)``; probabilities ``(N pixels, C)``.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import scipy.special
import torch

from ..classifier_nets import AuthorsPixelClassifier, PixelNeighbourhoodNet
from ..errors import DataError
from ..utils import resolve_device

__all__ = ["classifier_outputs", "authors_pixel_outputs", "inception_score", "kl_to_marginal", "frechet_distance",
           "spectral_diversity", "classifier_scores"]


def _positive(name: str, v) -> None:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
        raise DataError(f"{name}: expected a positive int, got {v!r}")


def _as_batch(x, name: str, bands: int | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach().to(torch.float32)
    else:
        try:
            t = torch.from_numpy(np.ascontiguousarray(np.asarray(x, dtype=np.float32)))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{name}: expected a numeric array (n, bands, h, w), got {type(x).__name__}") from e
    if t.ndim != 4:
        raise ValueError(f"{name}: expected a batch of patches (n, bands, h, w), got shape {tuple(t.shape)}")
    if bands is not None and t.shape[1] != bands:
        raise ValueError(f"{name}: expected {bands} bands (the classifier's), got {t.shape[1]} in shape "
                         f"{tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one patch, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: expected finite values, got NaN/Inf")
    return t


def _pixel_outputs(net, x: torch.Tensor, batch_size: int, device, features, pick=None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel softmax ``(N, C)`` and features ``(N, F)`` (float64), in (patch, row, col) order, of the batch
    ``x`` through ``features(xb) -> (b, F, h, w)`` and ``net.head``; ``pick(b) -> (b, m)`` pixel indices keeps
    ``m`` pixels per patch. Eval mode and no gradients; the net's mode is restored."""
    dev = resolve_device(device) if device is not None else next(net.parameters()).device
    was_training = net.training
    net.to(dev).eval()
    probs, feats = [], []
    try:
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                f = features(x[i:i + batch_size].to(dev))  # (b, F, h, w)
                p = torch.softmax(net.head(f).double(), dim=1)
                f, p = f.flatten(2).transpose(1, 2), p.flatten(2).transpose(1, 2)  # (b, h*w, .)
                if pick is not None:
                    idx = torch.from_numpy(pick(len(f))).to(dev)[:, :, None]
                    f, p = f.gather(1, idx.expand(-1, -1, f.shape[2])), p.gather(1, idx.expand(-1, -1, p.shape[2]))
                probs.append(p.reshape(-1, p.shape[2]).cpu().numpy())
                feats.append(f.double().reshape(-1, f.shape[2]).cpu().numpy())
    finally:
        net.train(was_training)
    return np.concatenate(probs), np.concatenate(feats)


def classifier_outputs(net: PixelNeighbourhoodNet, x, batch_size: int = 32, device=None, max_pixels: int = 262144,
                       random_state=0) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel softmax ``(N, n_classes)`` and features ``(N, feature_dim)`` (float64) of patches ``x``
    ``(n, bands, h, w)`` (numpy or torch), each patch reflection-padded so every pixel has a full neighbourhood.

    ``N = n * m`` with ``m = min(h * w, max_pixels // n)`` pixels per patch (all of them, or ``m`` positions drawn
    per patch from ``random_state``), which bounds memory for large ``n``.
    """
    _positive("batch_size", batch_size)
    _positive("max_pixels", max_pixels)
    x = _as_batch(x, "x", net.config["bands"])
    n, _, h, w = x.shape
    m = max(1, min(h * w, int(max_pixels) // n))
    rng = np.random.default_rng(random_state)
    pick = None if m >= h * w else (lambda b: np.stack([rng.choice(h * w, m, replace=False) for _ in range(b)]))
    return _pixel_outputs(net, x, batch_size, device, lambda xb: net.features(xb, pad=True), pick)


def authors_pixel_outputs(net: AuthorsPixelClassifier, Y, device=None, batch_size: int = 16
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel softmax ``(N, C)`` and 64-d features ``(N, hidden)`` (float64) of ``Y`` ``(n, bands, h, w)`` in the
    authors' data space (:meth:`hudlib.data.Scene.to_authors_space`); ``N = n * h * w`` in (patch, row, col) order.
    This is the contract of the paper-exact IS/FID."""
    return _pixel_outputs(net, _as_batch(Y, "Y", net.config["bands"]), batch_size, device, net.features)


def _check_probs(probs, name: str = "probs") -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 1:
        raise ValueError(f"{name}: expected softmax probabilities (n, n_classes), got shape {p.shape}")
    if not np.isfinite(p).all() or p.min() < 0:
        raise ValueError(f"{name}: expected finite non-negative probabilities")
    s = p.sum(axis=1)
    if np.abs(s - 1).max() > 1e-3:
        raise ValueError(f"{name}: expected rows summing to 1 (softmax outputs), got sums in "
                         f"[{s.min():.4g}, {s.max():.4g}]")
    return p / s[:, None]


def inception_score(probs) -> float:
    """Inception Score ``exp(E_x KL(p(y|x) || p(y)))`` of softmax outputs ``probs`` ``(n, C)``.

    ``p(y)`` is the mean of the rows. One split over all samples (Salimans et al. average 10 splits; with the
    few hundred patches used here one split is less noisy). Range ``[1, C]``; ``0 log 0 = 0``.
    """
    return float(np.exp(kl_to_marginal(_check_probs(probs)).mean()))


def _flush_subnormal(p: np.ndarray) -> np.ndarray:
    """``p`` with subnormal entries set to 0. A saturated softmax gives entries ~1e-320 whose column mean over N rows
    underflows to 0, and rel_entr(p, 0) = inf although p log(p / p̄) <= p log N is ~1e-318; dropping them changes
    nothing representable."""
    return np.where(p < np.finfo(np.float64).tiny, 0.0, p)


def kl_to_marginal(p: np.ndarray) -> np.ndarray:
    """KL(p_i || p̄) per row ``(N,)`` of probabilities ``p`` ``(N, C)``, p̄ their mean row; 0 log 0 = 0."""
    p = _flush_subnormal(np.asarray(p, dtype=np.float64))
    return scipy.special.rel_entr(p, p.mean(axis=0, keepdims=True)).sum(axis=1)


def _trace_sqrt_product_psd(ca: np.ndarray, cb: np.ndarray) -> float:
    """``tr sqrt(ca cb) = tr sqrt(ca^1/2 cb ca^1/2)`` via symmetric eigendecompositions (eigenvalues < 0 -> 0)."""
    w, v = np.linalg.eigh(ca)
    sa = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = sa @ cb @ sa
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())


def frechet_distance(feat_a, feat_b) -> float:
    """Fréchet distance between Gaussian fits of features ``feat_a`` ``(n, d)`` and ``feat_b`` ``(m, d)``:
    ``||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^{1/2})`` (FID with unbiased covariances, n, m >= 2).

    ``(S_a S_b)^{1/2}`` comes from ``scipy.linalg.sqrtm``; a negligible imaginary part (from tiny negative
    eigenvalues) is dropped. When a covariance is rank-deficient (``n <= d`` or ``m <= d``), or sqrtm returns
    non-finite values, warns, or has a non-negligible imaginary part, the trace is computed instead as
    ``tr (S_a^{1/2} S_b S_a^{1/2})^{1/2}`` from symmetric eigendecompositions with negative eigenvalues set to 0
    (the same quantity, well defined for any positive semi-definite pair). Rounding-level negatives are clipped
    to 0.
    """
    a = np.asarray(feat_a, dtype=np.float64)
    b = np.asarray(feat_b, dtype=np.float64)
    for name, f in (("feat_a", a), ("feat_b", b)):
        if f.ndim != 2 or f.shape[0] < 2:
            raise ValueError(f"{name}: expected features (n >= 2, d), got shape {f.shape}")
        if not np.isfinite(f).all():
            raise ValueError(f"{name}: expected finite values, got NaN/Inf")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feat_b: expected feature dimension {a.shape[1]} (as feat_a), got {b.shape[1]}")
    d = a.shape[1]
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    ca = np.atleast_2d(np.cov(a, rowvar=False))
    cb = np.atleast_2d(np.cov(b, rowvar=False))
    tr_sqrt = None
    if a.shape[0] > d and b.shape[0] > d:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                covmean = scipy.linalg.sqrtm(ca @ cb)
            except (Warning, np.linalg.LinAlgError, ValueError):
                covmean = None
        if covmean is not None and np.isfinite(covmean).all():
            scale = max(1.0, float(np.abs(covmean).max()))
            if not np.iscomplexobj(covmean) or np.abs(covmean.imag).max() <= 1e-6 * scale:
                tr_sqrt = float(np.trace(covmean.real))
    if tr_sqrt is None:
        tr_sqrt = _trace_sqrt_product_psd(ca, cb)
    fid = float(((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * tr_sqrt)
    return max(fid, 0.0)


def spectral_diversity(probs) -> float:
    """Spectral diversity SD of HyperLDM (III-E, eqs. 26-28) from softmax outputs ``probs`` ``(n, C)``.

    Samples are grouped by predicted class ``i = argmax``; per group ``V_i`` the marginal ``p(y_i)`` is the
    mean softmax vector of the group (eq. 26); ``E KL`` is the mean over the group of ``KL(v || p(y_i))``
    (eq. 27); ``SD = (1 / n_s) sum_i exp(E KL)`` (eq. 28) where the sum and ``n_s`` run over the classes that
    occur as predictions (an empty group has no marginal; counting it as ``exp(0) = 1`` or 0 would make SD
    depend on classes nobody predicts). Range ``[1, C]``; 1 when every group is constant. ``0 log 0 = 0``.
    """
    p = _flush_subnormal(_check_probs(probs))
    pred = p.argmax(axis=1)
    terms = []
    for i in np.unique(pred):
        group = p[pred == i]
        marginal = group.mean(axis=0, keepdims=True)  # eq. 26
        kl = scipy.special.rel_entr(group, marginal).sum(axis=1)  # eq. 27
        terms.append(np.exp(kl.mean()))
    return float(np.mean(terms))  # eq. 28


def classifier_scores(net: PixelNeighbourhoodNet, generated, real_patches, batch_size: int = 32, device=None,
                      max_pixels: int = 262144, real_outputs: tuple | None = None) -> dict:
    """IS, FID and SD of ``generated`` ``(n, bands, h, w)`` against ``real_patches`` ``(m, bands, h, w)``.

    Every pixel (its 3 x 3 neighbourhood in the patch) is one sample (see :func:`classifier_outputs`): IS and SD
    of the generated pixels' softmax outputs, FID between the per-pixel features of real and generated patches,
    and IS/SD of the real patches for reference. ``real_outputs``: the real patches' ``classifier_outputs``
    when already computed (every generator of a table is compared with the same real patches). Returns
    ``{"IS", "FID", "SD", "IS_real", "SD_real", "n_generated", "n_real"}``.
    """
    bands = net.config["bands"]
    gen = _as_batch(generated, "generated", bands)
    real = _as_batch(real_patches, "real_patches", bands)
    pg, fg = classifier_outputs(net, gen, batch_size=batch_size, device=device, max_pixels=max_pixels)
    pr, fr = real_outputs if real_outputs is not None else classifier_outputs(
        net, real, batch_size=batch_size, device=device, max_pixels=max_pixels)
    for name, f in (("generated", fg), ("real_patches", fr)):
        if f.shape[0] < 2:
            raise ValueError(f"{name}: expected at least 2 pixels for FID, got {f.shape[0]}")
    return {
        "IS": inception_score(pg), "FID": frechet_distance(fr, fg), "SD": spectral_diversity(pg),
        "IS_real": inception_score(pr), "SD_real": spectral_diversity(pr),
        "n_generated": int(gen.shape[0]), "n_real": int(real.shape[0]),
    }
