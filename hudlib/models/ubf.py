"""UBF: Unmixing-before-fusion (Yu et al., CVPR 2024) as the HUD authors ran it (authors_code.md section D).

As UD (:mod:`hudlib.models.unmixdiff`: learned unmixing autoencoder, then diffusion on its abundances), except that
the encoder reads only the scene's 3 pseudo-RGB bands (``scene.rgb_bands``) and must still reconstruct every band
through its decoder, and stage 1's learning rate drops ×0.1 every 30 epochs (config: ``MODEL_PROFILES["UBF"]``).
"""
from __future__ import annotations

from .unmixdiff import UnmixDiffGenerator

__all__ = ["UBF"]


class UBF(UnmixDiffGenerator):
    """Unmixing-before-fusion: the encoder reads the pseudo-RGB bands only."""

    name = "UBF"
    rgb_encoder = True
