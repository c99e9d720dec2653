"""Texture metrics against real patches: neighbour angle, roughness gap, within-patch angle, spatial coherence
and the coherence gap."""
from __future__ import annotations

import numpy as np
import torch

from ._common import EPS, FLAT_ANGLE, _check_generated, memo


# --------------------------------------------------------------------------------------------- texture
def _of_real(fn, real_patches) -> float:
    """``fn(real_patches)``, memoised by the content of ``real_patches`` (:func:`~._common.memo`)."""
    r = _check_generated(real_patches, "real_patches")
    return memo(fn.__name__, lambda: fn(r), r)


def neighbour_angle(generated) -> float:
    """Mean spectral angle (radians) between each pixel and its right and lower neighbours.

    generated: ``(n, bands, h, w)``. A measure of spatial texture: pixel noise raises it, flat colour drives it
    to 0. Pixels whose spectrum is all zero count as parallel to anything (angle 0).
    """
    G = torch.from_numpy(_check_generated(generated)).double()
    U = G / G.norm(dim=1, keepdim=True).clamp_min(EPS)
    angles = []
    for a, b in ((U[..., :, 1:], U[..., :, :-1]), (U[..., 1:, :], U[..., :-1, :])):
        c = (a * b).sum(dim=1)
        zero = (a.abs().sum(1) == 0) | (b.abs().sum(1) == 0)
        angles.append(torch.where(zero, torch.zeros_like(c), torch.arccos(c.clamp(-1.0, 1.0))).flatten())
    return float(torch.cat(angles).mean())


def roughness_gap(generated, real_patches, floor: float = 1e-3, return_details: bool = False):
    """|ln(neighbour_angle(generated) / neighbour_angle(real_patches))|: 0 when the generated patches have the
    real texture; large for pixel noise (ratio > 1) and for flat colour (ratio < 1). The ratio is clipped to
    ``[floor, 1/floor]`` so flat patches give a finite ``ln(1/floor)`` ≈ 6.9.

    generated, real_patches: ``(n, bands, h, w)`` and ``(m, bands, h, w)`` with the same bands.
    ``return_details``: also return ``{"generated": angle, "real": angle}``.
    """
    g = neighbour_angle(generated)
    r = _of_real(neighbour_angle, real_patches)
    if r <= 0:
        raise ValueError("real_patches: expected patches with some spatial texture, got all-flat patches")
    gap = float(abs(np.log(np.clip(g / r, floor, 1.0 / floor))))
    return (gap, {"generated": g, "real": r}) if return_details else gap


def within_patch_angle(generated, chunk: int = 16, pixel_block: int = 256) -> float:
    """Mean spectral angle (radians) over all pairs of distinct pixels of the same patch, averaged over patches.

    generated: ``(n, bands, h, w)``; computed exactly (float64) from each patch's Gram matrix, ``chunk`` patches at
    a time. The Gram matrix is symmetric: only its blocks on and above the diagonal (``pixel_block`` pixels a
    side) are evaluated, off-diagonal blocks counted twice (the arccos is most of the cost).
    """
    G = _check_generated(generated)
    n, b, h, w = G.shape
    m = h * w
    if m < 2:
        raise ValueError(f"generated: patches need at least 2 pixels, got {h}x{w}")
    starts = list(range(0, m, max(1, pixel_block)))
    total = 0.0
    for i in range(0, n, chunk):
        F = torch.from_numpy(G[i:i + chunk]).double().reshape(-1, b, m)
        F = F / F.norm(dim=1, keepdim=True).clamp_min(EPS)
        Ft = F.transpose(1, 2)
        for k, p0 in enumerate(starts):
            p1 = min(m, p0 + pixel_block)
            for q0 in starts[k:]:
                q1 = min(m, q0 + pixel_block)
                A = torch.arccos((Ft[:, p0:p1] @ F[:, :, q0:q1]).clamp_(-1.0, 1.0))  # (c, p, q)
                if q0 == p0:
                    A.diagonal(dim1=1, dim2=2).zero_()
                    total += float(A.sum())
                else:
                    total += 2.0 * float(A.sum())
    return total / (n * m * (m - 1))


def spatial_coherence(generated) -> float:
    """neighbour_angle / within_patch_angle: how much closer adjacent pixels are than any two pixels of the same
    patch. About 1 for pixels drawn independently (noise, shuffles, i.i.d. mixtures); well below 1 for fields with
    spatial structure (Indian Pines 32 px patches: ≈ 0.38); 0 for flat patches (by convention: mean pair angle
    at most ``FLAT_ANGLE`` = 1e-6 rad, the level of float rounding).

    generated: ``(n, bands, h, w)``.
    """
    pair = within_patch_angle(generated)
    return 0.0 if pair <= FLAT_ANGLE else neighbour_angle(generated) / pair


def coherence_gap(generated, real_patches, floor: float = 1e-3, return_details: bool = False):
    """|ln(spatial_coherence(generated) / spatial_coherence(real_patches))|, the ratio clipped to
    ``[floor, 1/floor]``: 0 for the real spatial structure, ≈ 0.96 on Indian Pines for pixels without any
    structure, ln(1/floor) for flat colour.

    generated, real_patches: ``(n, bands, h, w)`` and ``(m, bands, h, w)``.
    ``return_details``: also return ``{"generated": coherence, "real": coherence}``.
    """
    r = _of_real(spatial_coherence, real_patches)
    if r <= 0:
        raise ValueError("real_patches: expected patches with some spatial texture, got all-flat patches")
    g = spatial_coherence(generated)
    gap = float(abs(np.log(np.clip(g / r, floor, 1.0 / floor))))
    return (gap, {"generated": g, "real": r}) if return_details else gap
