"""UBF: Unmixing-before-fusion (Yu et al., CVPR 2024) as the HUD authors ran it (docs/authors_code.md §D).

As UD (:mod:`hudlib.models.unmixdiff`: learned unmixing autoencoder, then diffusion on its abundances), except that
the encoder reads only the scene's 3 pseudo-RGB bands (``scene.rgb_bands``) and must still reconstruct every band
through its decoder, and stage 1's learning rate drops ×0.1 every 30 epochs (batch 32 at the paper profile).
"""
from __future__ import annotations

from ..config import merge_layers
from .unmixdiff import UnmixDiffGenerator

__all__ = ["UBF"]


class UBF(UnmixDiffGenerator):
    """Unmixing-before-fusion: the encoder reads the pseudo-RGB bands only."""

    name = "UBF"
    rgb_encoder = True
    profiles = merge_layers(UnmixDiffGenerator.profiles,
                            {p: {"unmixdiff": dict(lr_step_epochs=30, lr_gamma=0.1)} for p in ("smoke", "quick", "paper")},
                            {"paper": {"unmixdiff": dict(uae_batch=32)}})
