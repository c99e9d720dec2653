"""Physical consistency of generated pixels with the linear mixing model (issue: does eqs. 4-6's projection
matter?).

For any generator: the share of pixels with a negative reflectance and the spectral angle of each pixel to the
endmember simplex {A x : x >= 0, sum x = 1} (its angle to the FCLS reconstruction, eq. 2): how far off the linear
mixing model the pixel is. For generators that produce abundances X̂: the share of pixels with a negative abundance
and the largest |sum X̂ - 1| (sum-to-one).
"""
from __future__ import annotations

import numpy as np

from .. import unmixing
from ._common import EPS, _check_generated, _finite_float32

__all__ = ["physical_consistency", "simplex_angles"]


def simplex_angles(Y, E, chunk_size: int = 65536) -> np.ndarray:
    """Angle (radians) between every pixel y of ``Y`` ``(n, bands, h, w)`` and its closest point A x̂ on the
    endmember simplex (x̂ = FCLS, eq. 2) -> float64 ``(n, h, w)``.

    0 for a pixel on the simplex (or on the cone through it); zero vectors get angle π/2 (cosine 0, the metrics'
    ``max(||x||, EPS)`` convention).
    """
    Y = _check_generated(Y, "Y")
    E = _finite_float32(E, "E").astype(np.float64)
    if E.ndim != 2 or E.shape[0] != Y.shape[1]:
        raise ValueError(f"E: expected endmembers ({Y.shape[1]}, d), got shape {E.shape}")
    Yc = np.moveaxis(Y, 0, 1)  # (bands, n, h, w)
    X = unmixing.fcls(Yc, E, chunk_size=chunk_size, progress=False)  # (d, n, h, w)
    R = np.einsum("bd,d...->b...", E, X)  # closest simplex points
    Yd = Yc.astype(np.float64)
    cos = (Yd * R).sum(0) / (np.maximum(np.linalg.norm(Yd, axis=0), EPS) * np.maximum(np.linalg.norm(R, axis=0), EPS))
    return np.arccos(np.clip(cos, -1.0, 1.0))


def physical_consistency(Y, E, X=None) -> dict:
    """Physical-consistency measures of generated patches.

    Args:
        Y: ``(n, bands, h, w)`` generated pixels in our units.
        E: endmembers ``(bands, d)`` defining the simplex (e.g. the scene's VCA endmembers).
        X: the generator's abundances ``(n, d', h, w)`` (d' may differ from d) or None.
    Returns:
        ``negative_reflectance_share`` (pixels with any band < 0), ``simplex_angle_mean`` and
        ``simplex_angle_p95`` (radians), and with X: ``negative_abundance_share`` (pixels with any X̂ < 0) and
        ``sum_to_one_max_dev`` (max over pixels of |sum_d X̂ - 1|); None without X.
    """
    Y = _check_generated(Y, "Y")
    ang = simplex_angles(Y, E)
    out = {"negative_reflectance_share": float((Y < 0).any(axis=1).mean()),
           "simplex_angle_mean": float(ang.mean()), "simplex_angle_p95": float(np.quantile(ang, 0.95)),
           "negative_abundance_share": None, "sum_to_one_max_dev": None}
    if X is not None:
        X = _check_generated(X, "X")
        if X.shape[0] != Y.shape[0] or X.shape[2:] != Y.shape[2:]:
            raise ValueError(f"X: expected ({Y.shape[0]}, d, {Y.shape[2]}, {Y.shape[3]}) like Y, got {X.shape}")
        out["negative_abundance_share"] = float((X < 0).any(axis=1).mean())
        out["sum_to_one_max_dev"] = float(np.abs(X.astype(np.float64).sum(axis=1) - 1.0).max())
    return out
