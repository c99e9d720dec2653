"""One typed configuration per run.

A run is described by a :class:`RunConfig`: the scene, the generator, the profile, the shared sections
(``train``, ``eval``) and the generator's own sections. The generator class owns its sections and their
per-profile values (``Generator.sections`` / ``Generator.profiles`` in :mod:`hudlib.models`), registered with the
class; this module holds the shared sections and the machinery; the profile-wide values of the shared sections are
in :mod:`hudlib.profiles` (one :class:`~hudlib.profiles.Profile` per profile).
``config.json`` is written beside every run and rebuilt with :meth:`RunConfig.from_dict` (nanoGPT keeps the model
args in its checkpoint).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .generators import all_sections
from .generators import get as get_generator
from .profiles import PROFILES, get_profile, profile_names

__all__ = ["UnmixingConfig", "UNetConfig", "DiffusionConfig", "TrainConfig", "EvalConfig", "RunConfig",
           "PROFILES", "SHARED_SECTIONS", "DEFAULT_SCENE", "DEFAULT_MODEL", "DEFAULT_PROFILE", "profile_names",
           "make_config", "merge_layers", "sampling", "hash_neutral", "get_profile"]

DEFAULT_SCENE, DEFAULT_MODEL, DEFAULT_PROFILE = "IndianPines", "HUD", "quick"


def sampling(default):
    """A field that only changes how a trained network is sampled: never part of the training hash."""
    return field(default=default, metadata={"sampling": True})


def hash_neutral(default):
    """A field added after runs existed: at its default it is left out of the training hash, so the runs from
    before it keep their hashes (and their weights stay valid)."""
    return field(default=default, metadata={"hash_neutral": True})


@dataclass
class UnmixingConfig:
    """UAE settings (III-B) and how HUD turns abundances into the diffused latent. ``d=None`` means the scene's
    number of classes (the paper's choice).

    ``encoder``: ``"fcls"`` (eq. 2) or ``"linear"`` (eq. 3). ``simplex``: the linear encoder's abundances are
    projected onto the probability simplex (ours; eq. 4's ln needs it); False keeps ``(AᵀA)⁻¹Aᵀy`` as it is (the
    authors' run). ``projection``: ``"softmax"`` diffuses Z = ln(X + e) and constrains with softmax (eqs. 4-5);
    ``"clip"`` diffuses X itself and clips negatives and renormalises at the end; ``"none"`` diffuses X and decodes
    what comes out (the authors' run). ``space``: ``"ours"`` unmixes the scene in our units; ``"authors"`` unmixes
    their x + 1 = clip(raw, 0, V) / V * 2, with VCA and the statistics on the centre square crop, and clamps
    decoded images to their data range (docs/authors_code.md §A, §B).
    """

    d: int | None = None
    encoder: str = "fcls"
    random_state: int = 0
    simplex: bool = hash_neutral(True)
    projection: str = hash_neutral("softmax")
    space: str = hash_neutral("ours")


@dataclass
class UNetConfig:
    """U-Net size (hudlib.unet.UNet keyword arguments, less the channel counts)."""

    model_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.0
    num_heads: int = 4


@dataclass
class DiffusionConfig:
    """Schedule (paper IV-A: linear β 1e-4 → 0.02, T = 1000), training target and the default sampler.

    ``schedule``: ``"linear"`` β (DDPM) or ``"sqrt_linear"``, β = linspace(√β_start, √β_end)² (latent diffusion's
    "linear"). ``prediction``: ``"eps"`` (eq. 15) or ``"v"`` (Salimans & Ho 2022). ``loss_weighting``:
    ``"uniform"`` (eq. 15) or ``"min_snr"`` (min(SNR_t, γ)/SNR_t). ``z_scale``: ``"none"`` trains on the latent as
    it is; ``"standardize"`` applies one affine map (Z − mean) / std of the scene's latent; ``"per_endmember"``
    standardises each channel on its own (the authors' run). ``scale_factor`` then multiplies the network's data
    (latent diffusion's scale factor).
    Sampler (never in the training hash): ``sampler`` ``"ddim"``, ``"ddim-lambda"`` (DDIM on the λ-uniform grid),
    ``"ddpm"``, ``"dpmpp2m"`` (DPM-Solver++(2M)) or ``"dpmpp2m-sde"``, ``sample_steps`` (DDIM's and DPM-Solver++'s
    network evaluations), ``eta`` (both DDIM forms), ``clip_z0``: clip x̂₀ to the latent's exact support at every step.
    """

    T: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    schedule: str = hash_neutral("linear")
    scale_factor: float = hash_neutral(1.0)
    sampler: str = sampling("ddim")
    sample_steps: int = sampling(100)
    eta: float = sampling(0.0)
    clip_z0: bool = sampling(False)
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
    """Evaluation: how many patches, the seed of samples and real references, and the metrics' settings.

    The sound classifier (:func:`hudlib.classifier.train_classifier`): ``classifier_steps`` AdamW steps of
    ``classifier_batch`` pixels at ``classifier_lr`` with ``classifier_weight_decay``. D_b's ``block``; ``k`` of
    the k-NN precision/recall and ``max_points``, how many points of each set it compares (spectra are
    subsampled; smoke compares fewer). Paper-exact metrics: ``paper_draws`` draws of ``paper_draw_size`` patches (the
    paper scored 8); the authors' per-pixel classifier trains for at most ``authors_epochs`` epochs of
    ``authors_steps_per_epoch`` batches (None: every window), scoring ``authors_pixels`` pixels of each batch
    (None: all)."""

    n_samples: int = 256
    classifier_steps: int = 600
    classifier_batch: int = 128
    classifier_lr: float = 2e-3
    classifier_weight_decay: float = 0.05
    seed: int = 0
    block: int = 8
    k: int = 3
    max_points: int = 5000
    paper_draws: int = 32
    paper_draw_size: int = 8
    authors_epochs: int = 50
    authors_steps_per_epoch: int | None = None
    authors_pixels: int | None = None


SHARED_SECTIONS: dict[str, type] = {"train": TrainConfig, "eval": EvalConfig}

def merge_layers(*layers: dict) -> dict:
    """Deep merge of ``{profile or scene: {section: {field: value}}}`` layers, later ones winning field by field
    (how a subclass extends its base's per-profile values)."""
    out: dict = {}
    for layer in layers:
        for key, sections in layer.items():
            dst = out.setdefault(key, {})
            for section, values in sections.items():
                dst[section] = {**dst.get(section, {}), **copy.deepcopy(values)}
    return out


def _build(cls, v: dict, where: str):
    if not isinstance(v, dict):
        raise ValueError(f"config: expected a mapping for {where}, got {type(v).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(v) - names
    if unknown:
        raise ValueError(f"config: unknown keys {sorted(unknown)} in {where} ({cls.__name__})")
    return cls(**{k: tuple(x) if isinstance(x, list) else x for k, x in v.items()})


class RunConfig:
    """Everything that defines a trained generator on one scene: ``scene``, ``model``, ``profile`` and one
    dataclass per section (``cfg.train``, ``cfg.eval`` and the generator's own, e.g. ``cfg.diffusion`` or
    ``cfg.vae``). Build it with :func:`make_config`."""

    __slots__ = ("scene", "model", "profile", "_sections")

    def __init__(self, scene: str, model: str, profile: str, sections: dict[str, Any]):
        object.__setattr__(self, "scene", scene)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "profile", profile)
        object.__setattr__(self, "_sections", dict(sections))

    def __getattr__(self, name: str):
        try:
            return object.__getattribute__(self, "_sections")[name]
        except KeyError:
            raise AttributeError(f"config: generator {self.model!r} has no section {name!r} (its sections: "
                                 f"{', '.join(self._sections)})") from None

    def __setattr__(self, name, value):
        raise AttributeError("RunConfig is immutable; use replace() or make_config(overrides=...)")

    def __eq__(self, other) -> bool:
        return isinstance(other, RunConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"RunConfig({self.scene!r}, {self.model!r}, {self.profile!r}, sections={list(self._sections)})"

    @property
    def sections(self) -> dict[str, Any]:
        return dict(self._sections)

    def replace(self, **sections) -> "RunConfig":
        """A copy with some sections replaced by other dataclass instances of the same type."""
        for k in sections:
            if k not in self._sections:
                raise ValueError(f"config: generator {self.model!r} has no section {k!r}")
        return RunConfig(self.scene, self.model, self.profile, {**self._sections, **sections})

    def to_dict(self) -> dict[str, Any]:
        return {"scene": self.scene, "model": self.model, "profile": self.profile,
                **{k: dataclasses.asdict(v) for k, v in self._sections.items()}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        """Rebuild from :meth:`to_dict` output (lists become tuples where the field is a tuple).

        A ``config.json`` written before generators owned their sections holds every generator's sections; the
        sections of other registered generators are dropped (they never entered this run's hash)."""
        for k in ("scene", "model", "profile"):
            if k not in d:
                raise ValueError(f"config: missing key {k!r}")
        own = {**SHARED_SECTIONS, **get_generator(d["model"]).sections}
        unknown = set(d) - {"scene", "model", "profile"} - set(own) - set(all_sections())
        if unknown:
            raise ValueError(f"config: unknown keys {sorted(unknown)}")
        defaults = {name: typ() for name, typ in own.items()}
        sections = {name: _build(typ, d[name], name) if name in d else defaults[name] for name, typ in own.items()}
        return cls(d["scene"], d["model"], d["profile"], sections)

    def training_hash(self) -> str:
        """8-hex hash of what determines the trained weights: the generator's sections and ``train``, less the
        sampling fields and the hash-neutral fields at their defaults; so changing how a trained network is sampled
        or evaluated never retrains it."""
        d = {"scene": self.scene, "model": self.model, "profile": self.profile}
        own = get_generator(self.model).sections
        for name, sec in self._sections.items():
            if name != "train" and name not in own:
                continue
            vals = dataclasses.asdict(sec)
            for f in dataclasses.fields(sec):
                if f.metadata.get("sampling") or (f.metadata.get("hash_neutral") and vals[f.name] == f.default):
                    del vals[f.name]
            d[name] = vals
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]


def make_config(scene: str = DEFAULT_SCENE, model: str = DEFAULT_MODEL, profile: str = DEFAULT_PROFILE,
                overrides: dict[str, dict[str, Any]] | None = None) -> RunConfig:
    """The :class:`RunConfig` of ``model`` on ``scene`` at ``profile``: dataclass defaults, then the profile's
    shared values (:class:`hudlib.profiles.Profile` ``train``/``eval``), the generator's per-profile and per-scene
    values, and ``overrides`` (``{"train": {"steps": 10}, ...}``)."""
    prof = get_profile(profile)
    gen = get_generator(model)
    types = {**SHARED_SECTIONS, **gen.sections}
    d = {name: dataclasses.asdict(typ()) for name, typ in types.items()}
    shared = {"train": dict(prof.train), "eval": dict(prof.eval)}
    for layer in (shared, gen.profiles.get(profile, {}), gen.scene_overrides.get(scene, {}), overrides or {}):
        for section, values in layer.items():
            if section not in d:
                raise ValueError(f"overrides: unknown section {section!r} for generator {model!r}; expected one "
                                 f"of {', '.join(d)}")
            d[section].update(copy.deepcopy(values))
    return RunConfig(scene, model, profile, {name: _build(typ, d[name], name) for name, typ in types.items()})
