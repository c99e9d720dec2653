"""HUD-asrun: HUD as the authors' public code ran it (docs/authors_code.md §A).

The same generator class as :class:`~hudlib.models.hud.HUD`, configured as their experiments were: VCA on the centre square crop of their
x + 1 = clip(raw, 0, V) / V * 2, the linear encoder (AᵀA)⁻¹Aᵀ(x + 1) without any constraint, each endmember's
abundance standardised by its mean and std over the crop and multiplied by the scene's scale factor (Indian Pines
10), diffusion on that, no ln/softmax (eqs. 4-6 absent), decoded images clamped to their data range. The paper
profile adds their square-root-linear β schedule (0.0015 → 0.0155), ε-prediction, DDIM-250 with η = 1 and their
U-Net size; smoke/quick keep HUD's U-Net, steps, sampler and prediction so that the ablation
(notebook 07_ablation) changes one thing at a time.
"""
from __future__ import annotations

from ..config import merge_layers
from .hud import HUD

__all__ = ["HUDAsRun", "AUTHORS_SCHEDULE", "AUTHORS_SCALE_FACTOR"]

# the authors' β schedule (latent diffusion's "linear": square-root-linear) and per-scene scale factor (their logs)
AUTHORS_SCHEDULE = dict(schedule="sqrt_linear", beta_start=0.0015, beta_end=0.0155)
AUTHORS_SCALE_FACTOR = {"IndianPines": 10.0, "KSC": 20.0, "Pavia": 5.0, "PaviaU": 5.0, "Salinas": 10.0}

_UNMIXING = dict(encoder="linear", simplex=False, projection="none", space="authors")
_DIFFUSION = dict(z_scale="per_endmember", clip_z0=False)


class HUDAsRun(HUD):
    """HUD with the authors' as-run latent (no projection, per-endmember standardisation, scale factor)."""

    name = "HUD-asrun"
    # smoke/quick: only the latent changes (HUD's U-Net, steps, sampler and prediction, so that the ablation compares
    # like with like; no x̂₀ clipping, as run); paper: their schedule, ε, DDIM-250 with η = 1, their U-Net size and
    # optimisation (docs/authors_code.md §A; lr = 1e-6 x batch 32 x one GPU: their December script asks for two GPUs,
    # i.e. 6.4e-5, which no surviving log confirms)
    profiles = merge_layers(HUD.profiles, {
        "smoke": {"unmixing": _UNMIXING, "diffusion": _DIFFUSION},
        "quick": {"unmixing": _UNMIXING, "diffusion": _DIFFUSION},
        "paper": {"unmixing": _UNMIXING,
                  "diffusion": dict(_DIFFUSION, **AUTHORS_SCHEDULE, sampler="ddim", sample_steps=250, eta=1.0,
                                    prediction="eps"),
                  "unet": dict(model_channels=192, channel_mult=(1, 2, 2, 4, 4), num_res_blocks=2,
                               attention_resolutions=(32, 16, 8, 4), dropout=0.0, num_heads=8),
                  "train": dict(steps=16_300, batch_size=32, lr=3.2e-5, ema_decay=0.9999)},
    })
    scene_overrides = {scene: {"diffusion": {"scale_factor": v}} for scene, v in AUTHORS_SCALE_FACTOR.items()}
