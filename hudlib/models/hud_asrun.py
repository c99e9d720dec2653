"""HUD-asrun: HUD as the authors' public code ran it (shared/reference/authors_code.md, section A).

The same generator class as :class:`~hudlib.models.hud.HUD`, configured (``MODEL_PROFILES["HUD-asrun"]`` and the
per-scene scale factor in :mod:`hudlib.config`) as their experiments were: VCA on the centre square crop of their
x + 1 = clip(raw, 0, V) / V * 2, the linear encoder (AᵀA)⁻¹Aᵀ(x + 1) without any constraint, each endmember's
abundance standardised by its mean and std over the crop and multiplied by the scene's scale factor (Indian Pines
10), diffusion on that, no ln/softmax (eqs. 4-6 absent), decoded images clamped to their data range. The paper
profile adds their square-root-linear β schedule (0.0015 → 0.0155), ε-prediction, DDIM-250 with η = 1 and their
U-Net size; smoke/quick keep HUD's U-Net, steps, sampler and prediction so that the ablation
(notebook 07_ablation) changes one thing at a time.
"""
from __future__ import annotations

from .hud import HUD

__all__ = ["HUDAsRun"]


class HUDAsRun(HUD):
    """HUD with the authors' as-run latent (no projection, per-endmember standardisation, scale factor)."""

    name = "HUD-asrun"
