"""One typed configuration and the three profiles (smoke / quick / paper): the only place defaults live.

A run is fully described by a :class:`RunConfig`; it is saved as ``config.json`` next to every run and checkpoint and
rebuilt from it with :meth:`RunConfig.from_dict` (as nanoGPT keeps the model args in its checkpoint).

Profiles:

- ``smoke``: seconds on a CPU; used by the tests and CI. Numbers from it mean nothing about quality.
- ``quick``: a 2-core CPU. HUD on Indian Pines trains in under 15 minutes; sizes chosen by measurement
  (see README, benchmarks/diffusion.py). Departs from the paper in one training choice, made by measurement:
  the network predicts v instead of ε (and the sampler clips Ẑ_0 to Z's exact support).
- ``paper``: the paper's setting for a GPU: T = 1000, a 32-px U-Net in the spirit of DDPM / improved-diffusion
  (128 channels, multipliers 1-2-2-2, two residual blocks per level, attention at 16 px), batch 64, 100k steps,
  ε-prediction and an unclipped sampler as printed.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["UnmixingConfig", "UNetConfig", "DiffusionConfig", "TrainConfig", "EvalConfig", "VAEConfig",
           "WGANConfig", "MPRNetConfig", "UnmixDiffConfig", "RunConfig", "PROFILES", "MODEL_PROFILES", "MODEL_SECTIONS",
           "profile_names", "make_config", "ASRUN_SCALE_FACTOR"]


@dataclass
class UnmixingConfig:
    """UAE settings (III-B) and how HUD turns abundances into the diffused latent. ``d=None`` means the scene's
    number of classes (the paper's choice).

    ``encoder``: ``"fcls"`` (eq. 2) or ``"linear"`` (eq. 3). ``simplex``: the linear encoder's abundances are
    projected onto the probability simplex (ours; needed by eq. 4's ln); False keeps ``(AᵀA)⁻¹Aᵀy`` as is (the
    authors' run). ``projection``: ``"softmax"`` diffuses Z = ln(X + e) and constrains with softmax (eqs. 4-5);
    ``"clip"`` diffuses X itself and only clips negatives and renormalises at the end; ``"none"`` diffuses X and
    decodes what comes out (the authors' run). ``space``: ``"ours"`` unmixes the scene in our units; ``"authors"``
    unmixes clip(raw, 0, V) / V * 2 (their x + 1), VCA and statistics on the centre square crop, and clamps decoded
    images to their data range.
    """

    d: int | None = None
    encoder: str = "fcls"
    random_state: int = 0
    simplex: bool = True
    projection: str = "softmax"
    space: str = "ours"


@dataclass
class UNetConfig:
    """U-Net size (ε- or v-prediction, see DiffusionConfig.prediction) (hudlib.unet.UNet keyword arguments, less the channel counts)."""

    model_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.0
    num_heads: int = 4


@dataclass
class DiffusionConfig:
    """Schedule (paper IV-A: linear β 1e-4 → 0.02, T = 1000) and the default sampler.

    ``clip_z0``: clip the sampler's Ẑ_0 to Z's exact support [ln e, ln(1 + e)] (eq. 4) at every step.
    ``prediction``: the network's output, ``"eps"`` (the paper, eq. 15) or ``"v"`` (Salimans & Ho 2022).
    ``loss_weighting``: ``"uniform"`` is eq. 15; ``"min_snr"`` weights each timestep by min(SNR_t, γ)/SNR_t.
    ``z_scale``: ``"none"`` trains on Z as in the paper; ``"standardize"`` applies one fixed affine map
    (Z − mean) / std computed from the scene's Z once; ``"per_endmember"`` standardises each endmember channel by
    its own mean and std over the scene (the authors' run). ``scale_factor`` then multiplies the network's data
    (latent diffusion's scale factor; the authors': 10, 20, 5, 5, 10 per scene).
    ``schedule``: ``"linear"`` β (DDPM) or ``"sqrt_linear"``, β = linspace(√β_start, √β_end)² (latent diffusion's
    "linear", the authors' run with 0.0015 → 0.0155).
    """

    T: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    schedule: str = "linear"
    scale_factor: float = 1.0
    sampler: str = "ddim"
    sample_steps: int = 100
    eta: float = 0.0
    clip_z0: bool = False
    z_scale: str = "none"
    prediction: str = "eps"
    loss_weighting: str = "uniform"
    min_snr_gamma: float = 5.0


@dataclass
class TrainConfig:
    """Optimisation: AdamW, EMA, gradient clipping, checkpoints every ``ckpt_every`` steps."""

    steps: int = 2000
    batch_size: int = 16
    lr: float = 2e-4
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    ckpt_every: int = 500
    seed: int = 0
    patch_size: int = 32


@dataclass
class EvalConfig:
    """Evaluation: how many patches, the seed of samples and real references, classifier training steps, and the
    metrics' settings (D_b's block size, k of the k-NN precision/recall). Paper-exact metrics: ``paper_draws``
    independent draws of ``paper_draw_size`` patches (the paper scored 8); the authors' per-pixel classifier is
    trained with their recipe for at most ``authors_epochs`` epochs (early stopping) of ``authors_steps_per_epoch``
    batches (None: every window), scoring ``authors_pixels`` random pixels of each batch (None: all)."""

    n_samples: int = 256
    classifier_steps: int = 600
    seed: int = 0
    block: int = 8
    k: int = 3
    paper_draws: int = 32
    paper_draw_size: int = 8
    authors_epochs: int = 50
    authors_steps_per_epoch: int | None = None
    authors_pixels: int | None = None


@dataclass
class VAEConfig:
    """The authors' VAE (experiments/models/VAE.py): stride-2 conv encoder with a residual block after each
    convolution, flattened (widths[-1]·(p/8)² = 512 at p = 32), fc to ``fc`` then to (μ, log σ²) of size
    ``latent``; the decoder mirrors it (fc latent → flattened size, transposed convs). ``widths`` are the encoder's
    channels (the decoder uses them reversed). Loss: MSE (sum) + ``kl_weight``·KL.
    Learning rate × ``lr_gamma`` per epoch (one epoch = every 32×32 window of the scene once)."""

    latent: int = 20
    widths: tuple[int, ...] = (128, 64, 32)
    fc: int = 256
    kl_weight: float = 1.0
    lr_gamma: float = 0.95


@dataclass
class WGANConfig:
    """WGAN-GP (Gulrajani et al. 2017) with the authors' DCGAN-style networks (experiments/models/WGANGP.py).
    ``g_width``: the generator's widest channel count (g_width → g_width/2 → g_width/4 → bands);
    ``d_width``: the critic's first (d_width → 2·d_width → 4·d_width). The generator's lr is ``train.lr``.
    ``interpolation``: the gradient penalty's interpolation weight, ``"uniform"`` on [0, 1] (the paper of WGAN-GP)
    or ``"normal"`` (the authors' code draws it with randn)."""

    z_dim: int = 100
    g_width: int = 128
    d_width: int = 32
    n_critic: int = 5
    gp_lambda: float = 10.0
    lr_critic: float = 5e-5
    beta1: float = 0.0
    beta2: float = 0.9
    interpolation: str = "uniform"


@dataclass
class MPRNetConfig:
    """MPRNet (Zamir et al. 2021) behind a 3 → bands input convolution, as the authors ran it
    (experiments/models/MPRNet.py). ``n_feat=None`` means the band count (the authors hard-coded 200);
    ``scale_unetfeats`` / ``scale_orsnetfeats``: the widths added per encoder level / in the ORSNet
    (None: n_feat, as theirs); cosine-annealed learning rate from ``train.lr`` down to ``lr_min``."""

    n_feat: int | None = None
    scale_unetfeats: int | None = None
    scale_orsnetfeats: int | None = None
    num_cab: int = 4
    reduction: int = 4
    lr_min: float = 1e-7


@dataclass
class UnmixDiffConfig:
    """UD (UnmixDiff, Yu et al. TGRS 2024) and UBF (Unmixing-before-fusion, Yu et al. CVPR 2024) as the HUD authors
    ran them (authors_code.md section D; yuyang95/UnmixingDM): a *learned* unmixing autoencoder, then a diffusion
    model on its abundances scaled to [−1, 1]. The diffusion stage uses the run's ``unet``/``diffusion``/``train``
    sections (set per profile in MODEL_PROFILES); this section holds the autoencoder and what is specific to them.

    ``p``: abundance channels (None: the scene's class count, HUD's d; the authors used 5).
    ``widths``/``n_blocks``/``res_scale``/``reduction``: the SSPN-style encoder (a 3×3 conv to widths[0], then one
    SSPN group per width, each of ``n_blocks`` spatial residual + channel-attention blocks, ending in p channels).
    ``w_sad``, ``w_tv``, ``charbonnier_eps``: loss Charbonnier + w_sad·SAD + w_tv·TV(endmembers); ``tv_axis``:
    ``"endmembers"`` (the authors' code differences neighbouring endmembers) or ``"bands"`` (neighbouring bands of
    each endmember: spectral smoothness). ``uae_*``: stage 1's optimisation (Adam), learning rate × ``lr_gamma``
    every ``lr_step_epochs`` epochs (one epoch = every ``uae_patch`` window once). ``diffusion_loss``: ``"l1"``
    (theirs) or ``"l2"`` on ε. ``decode`` (a sampling setting, not hashed): ``"simplex"`` (project the sampled
    abundances onto the simplex and decode with the trained decoder) or ``"authors"`` ((x̂+1)/2 with no sum-to-one,
    decoded with min–max-normalised decoder weights, as their Synthesis.py)."""

    p: int | None = None
    widths: tuple[int, ...] = (32, 64, 128, 96, 48)
    n_blocks: int = 3
    res_scale: float = 0.1
    reduction: int = 16
    charbonnier_eps: float = 1e-3
    w_sad: float = 0.1
    w_tv: float = 0.015
    tv_axis: str = "endmembers"
    uae_steps: int = 500
    uae_batch: int = 64
    uae_lr: float = 2e-4
    uae_patch: int = 128
    lr_step_epochs: int = 40
    lr_gamma: float = 0.5
    diffusion_loss: str = "l1"
    decode: str = "simplex"


@dataclass
class RunConfig:
    """Everything that defines a trained generator on one scene."""

    scene: str = "IndianPines"
    model: str = "HUD"
    profile: str = "quick"
    unmixing: UnmixingConfig = field(default_factory=UnmixingConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    wgan: WGANConfig = field(default_factory=WGANConfig)
    mprnet: MPRNetConfig = field(default_factory=MPRNetConfig)
    unmixdiff: UnmixDiffConfig = field(default_factory=UnmixDiffConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        """Rebuild from :meth:`to_dict` output (lists become tuples where the field is a tuple)."""
        kw = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                continue
            v = d[f.name]
            sub = _SUB.get(f.name)
            kw[f.name] = _build(sub, v) if sub else v
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"config: unknown keys {sorted(unknown)}")
        return cls(**kw)

    def sampling_key(self) -> str:
        """``"ddim50-eta1.0"``-style tag of the sampler settings (part of every sample and result cache key)."""
        c = self.diffusion
        key = f"{c.sampler}{c.sample_steps if c.sampler == 'ddim' else c.T}-eta{c.eta}"
        return key + "-clip" if c.clip_z0 else key

    def training_hash(self) -> str:
        """8-hex hash of what determines the trained weights: evaluation and sampler settings are excluded, so
        changing how a trained network is sampled never retrains it."""
        d = self.to_dict()
        keep = MODEL_SECTIONS.get(self.model, _DIFFUSION_SECTIONS) + ("train",)
        d = {k: v for k, v in d.items() if k in keep or k not in _SUB}
        for section, keys in _SAMPLING_KEYS.items():
            for k in keys:
                d.get(section, {}).pop(k, None)
        for section, values in _HASH_NEUTRAL.items():
            for k, v in values.items():
                if section in d and d[section].get(k) == v:
                    del d[section][k]
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]


# per section, the keys that only change how a trained network is sampled (never in the training hash)
_SAMPLING_KEYS = {"diffusion": ("sampler", "sample_steps", "eta", "clip_z0"), "unmixdiff": ("decode",)}

# Fields added after runs existed: at these values they behave as before the field existed and are left out of the
# training hash, so existing runs keep their hashes (and their weights stay valid).
_HASH_NEUTRAL = {"unmixing": {"simplex": True, "projection": "softmax", "space": "ours"},
                 "diffusion": {"schedule": "linear", "scale_factor": 1.0}}

_SUB = {"unmixing": UnmixingConfig, "unet": UNetConfig, "diffusion": DiffusionConfig, "train": TrainConfig,
        "eval": EvalConfig, "vae": VAEConfig, "wgan": WGANConfig, "mprnet": MPRNetConfig,
        "unmixdiff": UnmixDiffConfig}

# The sections that determine each model's weights (with "train"); a model not listed (HUD, the controls) uses the
# diffusion sections. Only these enter RunConfig.training_hash, so a new model's section never moves another's runs.
_DIFFUSION_SECTIONS = ("unmixing", "unet", "diffusion")
MODEL_SECTIONS: dict[str, tuple[str, ...]] = {"VAE": ("vae",), "WGAN-GP": ("wgan",), "MPRNet": ("mprnet",),
                                              "UD": ("unmixdiff", "unet", "diffusion"),
                                              "UBF": ("unmixdiff", "unet", "diffusion")}


def _build(cls, v: dict):
    if not isinstance(v, dict):
        raise ValueError(f"config: expected a mapping for {cls.__name__}, got {type(v).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(v) - set(names)
    if unknown:
        raise ValueError(f"config: unknown keys {sorted(unknown)} in {cls.__name__}")
    return cls(**{k: tuple(x) if isinstance(x, list) else x for k, x in v.items()})


# Profile overrides, applied on the dataclass defaults. Edit here, nowhere else.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {
        "unet": dict(model_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(), num_heads=1),
        "diffusion": dict(sample_steps=10),
        "train": dict(steps=30, batch_size=4, ckpt_every=10, lr=1e-3, ema_decay=0.9),
        "eval": dict(n_samples=16, classifier_steps=20, paper_draws=4, authors_epochs=1, authors_steps_per_epoch=2,
                     authors_pixels=1024),
    },
    "quick": {
        "unet": dict(model_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1, attention_resolutions=(8,),
                     num_heads=2),
        # Measured on Indian Pines, 2-core CPU (README "Why the quick profile predicts v"): after 3000 CPU steps an
        # ε-network's Ẑ_0 at t = T has std 25 against the data's 4, and its samples drift to Z in [-281, 345]
        # (real: [-10.8, 0]), i.e. over-pure, saturated pixels. v-prediction keeps Z's scale; clipping Ẑ_0 to Z's
        # exact support removes the remaining outliers; DDIM-50 with η = 1 is smoother than η = 0.
        # z_scale "standardize", min-SNR weighting and a wider/attention-free U-Net did not help.
        "diffusion": dict(sample_steps=50, eta=1.0, prediction="v", clip_z0=True),
        "train": dict(steps=3000, batch_size=16, ckpt_every=250, lr=5e-4, ema_decay=0.995),
        # the authors' 16 x 256 1x1-conv classifier costs ~1 MFLOP per pixel: on the 2-core CPU 10 epochs of 50
        # batches of 4096 pixels (0.23 s per step, ~2 min per split; theirs: up to 50 epochs of every window)
        "eval": dict(n_samples=256, classifier_steps=600, authors_epochs=10, authors_steps_per_epoch=50,
                     authors_pixels=4096),
    },
    "paper": {
        "unet": dict(model_channels=128, channel_mult=(1, 2, 2, 2), num_res_blocks=2, attention_resolutions=(16,),
                     dropout=0.1, num_heads=4),
        "diffusion": dict(sample_steps=1000, sampler="ddpm"),
        "train": dict(steps=100_000, batch_size=64, ckpt_every=5000, lr=2e-4, ema_decay=0.9999),
        "eval": dict(n_samples=1024, classifier_steps=3000),
    },
}


# Per-model overrides applied after PROFILES[profile] (the "train" section there is HUD's).
MODEL_PROFILES: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    "VAE": {
        "smoke": {"train": dict(steps=30, batch_size=4, ckpt_every=10, lr=1e-3, grad_clip=0.0),
                  "vae": dict(widths=(16, 16, 8), fc=32)},
        # measured on the 2-core CPU: 0.31 s per step -> 2600 steps ~ HUD quick's 13.5 min; lr 5e-4 (authors 1e-4)
        # so that 4 epochs can converge
        "quick": {"train": dict(steps=2600, batch_size=20, ckpt_every=250, lr=5e-4, grad_clip=0.0)},
        # 100 epochs of Indian Pines' 12,996 windows at batch 20 (the authors' setting)
        "paper": {"train": dict(steps=65_000, batch_size=20, ckpt_every=5000, lr=1e-4, grad_clip=0.0)},
    },
    "WGAN-GP": {
        "smoke": {"train": dict(steps=10, batch_size=4, ckpt_every=5, lr=1e-3, grad_clip=0.0),
                  "wgan": dict(g_width=16, d_width=8, n_critic=2, lr_critic=1e-3)},
        # 2-core CPU: the authors' widths at batch 32 cost 1.73 s per iteration (470 iterations in HUD's budget);
        # halved widths at batch 16 cost 0.70 s -> 1150 iterations (5750 critic steps); lr 2e-4 for both nets
        "quick": {"train": dict(steps=1150, batch_size=16, ckpt_every=250, lr=2e-4, grad_clip=0.0),
                  "wgan": dict(g_width=64, d_width=16, lr_critic=2e-4)},
        # 200 epochs of Indian Pines' 12,996 windows at batch 32, one generator step per 5 critic batches
        "paper": {"train": dict(steps=16_300, batch_size=32, ckpt_every=1000, lr=1e-4, grad_clip=0.0),
                  "wgan": dict(interpolation="normal")},
    },
    "MPRNet": {
        "smoke": {"train": dict(steps=10, batch_size=2, ckpt_every=5, lr=1e-3, grad_clip=0.0),
                  "mprnet": dict(n_feat=8, scale_unetfeats=4, scale_orsnetfeats=4, num_cab=1)},
        # 2-core CPU: 0.72 s per step at these widths -> 1100 steps ~ HUD quick's 13.5 min
        "quick": {"train": dict(steps=1100, batch_size=8, ckpt_every=250, lr=2e-4, grad_clip=0.0),
                  "mprnet": dict(n_feat=32, scale_unetfeats=16, scale_orsnetfeats=16, num_cab=2, lr_min=1e-6)},
        # 30 epochs of Indian Pines' 12,996 windows at batch 40, Adam 1e-6 (theirs), n_feat = bands
        "paper": {"train": dict(steps=9_750, batch_size=40, ckpt_every=1000, lr=1e-6, grad_clip=0.0),
                  "mprnet": dict(lr_min=1e-8)},
    },
}


# UD and UBF: the authors' diffusion (T = 2000, linear β 1e-6 → 1e-2, ε-prediction with L1, x̂₀ clamped to [−1, 1])
# in every profile; UBF's autoencoder input is the 3 pseudo-RGB bands and its learning rate drops ×0.1 every 30 epochs
# (UD: halved every 40).
_UD_DIFFUSION = dict(T=2000, beta_start=1e-6, beta_end=1e-2, prediction="eps", clip_z0=True)
_UD_PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {"diffusion": dict(_UD_DIFFUSION, sample_steps=10),
              "train": dict(steps=20, batch_size=4, ckpt_every=10, lr=1e-3, ema_decay=0.9),
              "unmixdiff": dict(widths=(8, 8), n_blocks=1, reduction=4, uae_steps=20, uae_batch=4, uae_patch=32,
                                uae_lr=2e-3)},
    # 2-core CPU, Indian Pines (README, benchmarks/training.py): stage 1 (encoder 16-32-32-24-16, one block per group,
    # batch 16 at 32 px) and stage 2 (HUD quick's U-Net) together about HUD quick's training time
    "quick": {"unet": dict(model_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1, attention_resolutions=(8,),
                           num_heads=2),
              # v-prediction at quick, as HUD quick and for the same measured reason: after 2500 CPU steps the
              # eps-network's error (L1 0.049) divided by sqrt(abar_T) = 0.0067 puts x0-hat at t = T off by 7.5
              # (data in [-1, 1]), and its DDIM samples were clipped noise (mean abundance per channel ~ uniform)
              "diffusion": dict(_UD_DIFFUSION, sampler="ddim", sample_steps=50, eta=1.0, prediction="v"),
              "train": dict(steps=2500, batch_size=16, ckpt_every=250, lr=5e-4, ema_decay=0.995),
              "unmixdiff": dict(widths=(16, 32, 32, 24, 16), n_blocks=1, reduction=4, uae_steps=800, uae_batch=16,
                                uae_patch=32, uae_lr=1e-3)},
    # the authors' settings: UAE 100 epochs at batch 64 on 128-px windows (Indian Pines: 324 windows, 5 steps per
    # epoch), SR3 U-Net 64 ch 1-2-4-8-8, attention at 16 px, dropout 0.2, Adam 1e-4 batch 64 without EMA, ancestral
    # sampling over all 2000 steps; p = 5. The diffusion stage trains on 32-px crops (theirs: 128 px).
    "paper": {"unet": dict(model_channels=64, channel_mult=(1, 2, 4, 8, 8), num_res_blocks=2,
                           attention_resolutions=(16,), dropout=0.2, num_heads=1),
              "diffusion": dict(_UD_DIFFUSION, sampler="ddpm"),
              "train": dict(steps=100_000, batch_size=64, ckpt_every=5000, lr=1e-4, ema_decay=0.0),
              "unmixdiff": dict(p=5, uae_steps=500, uae_batch=64, uae_patch=128, uae_lr=2e-4)},
}
MODEL_PROFILES["UD"] = _UD_PROFILES

# HUD as the authors ran it (shared/reference/authors_code.md, A): linear encoder without any constraint on their
# x + 1, per-endmember standardisation, a per-scene scale factor, no ln/softmax. At smoke/quick only these change
# (the U-Net, steps, sampler and prediction stay HUD's, so the ablation compares like with like; no x̂₀ clipping, as
# run); at paper their schedule (square-root-linear 0.0015 -> 0.0155), ε, DDIM-250 with η = 1 and their U-Net size
# (192 ch, 1-2-2-4-4, attention at 32/16/8/4 px, 2 res blocks, 8 heads).
_ASRUN_UNMIXING = dict(encoder="linear", simplex=False, projection="none", space="authors")
_ASRUN_DIFFUSION = dict(z_scale="per_endmember", clip_z0=False)
MODEL_PROFILES["HUD-asrun"] = {
    "smoke": {"unmixing": _ASRUN_UNMIXING, "diffusion": _ASRUN_DIFFUSION},
    "quick": {"unmixing": _ASRUN_UNMIXING, "diffusion": _ASRUN_DIFFUSION},
    "paper": {"unmixing": _ASRUN_UNMIXING,
              "diffusion": dict(_ASRUN_DIFFUSION, schedule="sqrt_linear", beta_start=0.0015, beta_end=0.0155,
                                sampler="ddim", sample_steps=250, eta=1.0, prediction="eps"),
              "unet": dict(model_channels=192, channel_mult=(1, 2, 2, 4, 4), num_res_blocks=2,
                           attention_resolutions=(32, 16, 8, 4), dropout=0.0, num_heads=8),
              "train": dict(steps=16_300, batch_size=32, lr=3.2e-5, ema_decay=0.9999)},
}
# the authors' per-scene scale factor (their logs); other scenes: 1
ASRUN_SCALE_FACTOR = {"IndianPines": 10.0, "KSC": 20.0, "Pavia": 5.0, "PaviaU": 5.0, "Salinas": 10.0}

# Per-model, per-scene overrides applied after MODEL_PROFILES (every profile).
MODEL_SCENE_OVERRIDES: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    "HUD-asrun": {scene: {"diffusion": {"scale_factor": v}} for scene, v in ASRUN_SCALE_FACTOR.items()},
}
MODEL_PROFILES["UBF"] = {prof: {**sec, "unmixdiff": dict(sec["unmixdiff"], lr_step_epochs=30, lr_gamma=0.1,
                                                         **({"uae_batch": 32} if prof == "paper" else {}))}
                         for prof, sec in _UD_PROFILES.items()}


def profile_names() -> list[str]:
    return list(PROFILES)


def make_config(scene: str = "IndianPines", model: str = "HUD", profile: str = "quick",
                overrides: dict[str, dict[str, Any]] | None = None) -> RunConfig:
    """The :class:`RunConfig` of a profile, with optional ``{"train": {"steps": 10}, ...}`` overrides."""
    if profile not in PROFILES:
        raise ValueError(f"profile: unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    d = RunConfig(scene=scene, model=model, profile=profile).to_dict()
    for layer in (PROFILES[profile], MODEL_PROFILES.get(model, {}).get(profile, {}),
                  MODEL_SCENE_OVERRIDES.get(model, {}).get(scene, {}), overrides or {}):
        for section, values in layer.items():
            if section not in _SUB:
                raise ValueError(f"overrides: unknown section {section!r}; expected one of {', '.join(_SUB)}")
            d[section].update(copy.deepcopy(values))
    return RunConfig.from_dict(d)


# ---------------------------------------------------------------------------------------------------------- runner
# How ./run_all.sh (hudlib.runner) runs each profile's notebooks; not part of RunConfig (no config hash depends on it).
#   cell_timeout_s: papermill's per-cell execution_timeout; a cell running longer fails the run, naming the cell.
#       Generous where training cells run long; never None, so nothing waits forever.
#   idle_grace_s: a cell whose kernel reported idle but sent no execute reply for this long is declared hung
#       (jupyter/nbclient#312) and its kernel is killed.
#   step_s: {generator: seconds per training iteration}, for the plan's time estimate; absent: unmeasured.
#   eval_s: seconds to sample and evaluate one generator (06_tables, cold cache).
#   notebook_s: seconds per notebook run outside training and evaluation (kernel start, data, figures).
# Measured on the development machine (2-core x86_64 CPU, torch 2.13.0+cpu, shared with other jobs):
#   quick: 0.27 s per HUD training step at batch 16 (3000 steps, README / benchmarks/diffusion.py); evaluation
#       ~100 s per generator; ~30 s per notebook outside those (issue #9's 20-min quick run: 15 min training).
#   smoke: benchmarks/runner_soak.py with the machine loaded (load average 7-9 on the 2 cores): 1.07-2.93 s per HUD
#       step (batch 4), 35 s per evaluated generator, ~10 s per notebook (00-02). Under that load 04's 1000-step
#       DDPM sampling of 8 patches took 600-850 s, hence a 30-min cell timeout.
#   baselines (benchmarks/training.py, the machine otherwise idle): smoke VAE 0.024, WGAN-GP 0.071, MPRNet 0.27 s per
#       iteration (HUD 0.051 idle); quick VAE 0.31, WGAN-GP 0.70, MPRNet 0.72 s.
#   evaluation with the paper-exact block (+26 s per generator on the 2.2x faster CPU, 45 s -> 71 s there): ~160 s
#       per generator at quick here; after the metric speed-ups (F_p blocks, texture memo) 49-53 s on the faster CPU
#       plus sampling: ~100 s per generator here. HUD-asrun: HUD's U-Net and steps (HUD's step time).
#   UD / UBF (benchmarks/training.py on a 2.2x faster 2-core CPU, scaled by HUD's ratio; per diffusion-stage step,
#       the autoencoder stage included): smoke 0.09 / 0.08, quick 0.33 / 0.31 s.
RUNNER: dict[str, dict[str, Any]] = {
    "smoke": {"cell_timeout_s": 1800, "idle_grace_s": 60, "step_s": {"HUD": 1.07, "VAE": 0.024, "WGAN-GP": 0.071, "MPRNet": 0.27, "UD": 0.09, "UBF": 0.08, "HUD-asrun": 1.07}, "eval_s": 35.0, "notebook_s": 10.0},
    "quick": {"cell_timeout_s": 3 * 3600, "idle_grace_s": 60, "step_s": {"HUD": 0.27, "VAE": 0.31, "WGAN-GP": 0.70, "MPRNet": 0.72, "UD": 0.33, "UBF": 0.31, "HUD-asrun": 0.27}, "eval_s": 100.0, "notebook_s": 30.0},
    "paper": {"cell_timeout_s": 3 * 24 * 3600, "idle_grace_s": 60, "step_s": {}, "eval_s": None,
              "notebook_s": None},
}
