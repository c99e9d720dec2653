"""The one registry of generators. Tables and figures iterate over it.

A generator is a class with

- ``fit(scene, profile, out_dir, resume=False, **kw) -> self``: trains (or reuses a finished run of the same config)
  under ``out_dir/<scene>/<model>/<profile>-<hash>/`` and keeps the run directory in ``run_dir_``;
- ``sample(n, random_state=0, **sampler_options) -> ndarray (n, bands, 32, 32)`` in the scene's normalised units;
- ``save(run_dir)`` and the class method ``load(run_dir)``.

A new baseline is one module plus one :func:`register` line below. Reference generators (controls) are registered
with ``control=True``: they are trivial by construction and show which metrics discriminate.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path

import numpy as np

from .config import RunConfig, make_config

__all__ = ["register", "get", "names", "is_control", "create", "load", "Generator", "run_dir_for", "ModelInfo"]


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    name: str
    target: str  # "module:Class", imported lazily
    control: bool
    description: str


_REGISTRY: dict[str, ModelInfo] = {}


def register(name: str, target: str, control: bool = False, description: str = "") -> None:
    """Register a generator class given as ``"package.module:Class"``."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is registered already")
    _REGISTRY[name] = ModelInfo(name, target, control, description)


def names(controls: bool | None = None) -> list[str]:
    """Registered names; ``controls=True``/``False`` selects reference generators / real models only."""
    return [n for n, m in _REGISTRY.items() if controls is None or m.control == controls]


def is_control(name: str) -> bool:
    return _info(name).control


def _info(name: str) -> ModelInfo:
    if name not in _REGISTRY:
        raise ValueError(f"model: unknown model {name!r}; expected one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def get(name: str):
    """The generator class registered as ``name``."""
    mod, cls = _info(name).target.split(":")
    return getattr(importlib.import_module(mod), cls)


def create(name: str):
    """A fresh, unfitted generator."""
    return get(name)()


def load(run_dir) -> "Generator":
    """Rebuild a fitted generator from its run directory (reads ``config.json``)."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: no config.json; expected a run directory written by fit()")
    cfg = RunConfig.from_dict(json.loads(cfg_path.read_text()))
    return get(cfg.model).load(run_dir)


def run_dir_for(cfg: RunConfig, out_dir) -> Path:
    """``out_dir/<scene>/<model>/<profile>-<hash of the training config>``."""
    return Path(out_dir) / cfg.scene / cfg.model / f"{cfg.profile}-{cfg.training_hash()}"


class Generator:
    """Base class: config handling and run directories. Subclasses implement ``_fit``, ``sample``, ``_load_state``."""

    name = "?"

    def __init__(self):
        self.config_: RunConfig | None = None
        self.run_dir_: Path | None = None

    def _resolve_config(self, scene, profile, overrides) -> RunConfig:
        if isinstance(profile, RunConfig):
            cfg = profile
        else:
            cfg = make_config(scene.name, self.name, profile, overrides)
        if cfg.scene != scene.name or cfg.model != self.name:
            raise ValueError(f"profile: config is for {cfg.model}/{cfg.scene}, not {self.name}/{scene.name}")
        return cfg

    def fit(self, scene, profile="quick", out_dir="runs", resume: bool = False, overrides=None,
            device: str = "auto", progress: bool = True):
        """Train on ``scene`` (or reuse the finished run with the same config). Returns self."""
        from .train import atomic_write_text

        cfg = self._resolve_config(scene, profile, overrides)
        run_dir = run_dir_for(cfg, out_dir)
        self.config_, self.run_dir_ = cfg, run_dir
        if (run_dir / "DONE").is_file():
            self._load_state(run_dir, scene)
            return self
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.json", cfg.to_json())
        self._fit(scene, cfg, run_dir, resume=resume, device=device, progress=progress)
        from .train import dist_info

        if dist_info()[0] == 0:
            atomic_write_text(run_dir / "DONE", "finished\n")
        return self

    @classmethod
    def load(cls, run_dir, scene=None):
        run_dir = Path(run_dir)
        self = cls()
        self.config_ = RunConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
        self.run_dir_ = run_dir
        if not (run_dir / "DONE").is_file():
            raise FileNotFoundError(f"{run_dir}: run not finished (no DONE marker); resume it with --resume")
        self._load_state(run_dir, scene)
        return self

    # subclass hooks -----------------------------------------------------------------------------------------
    def _fit(self, scene, cfg: RunConfig, run_dir: Path, resume: bool, device: str, progress: bool) -> None:
        raise NotImplementedError

    def _load_state(self, run_dir: Path, scene=None) -> None:
        raise NotImplementedError

    def sample(self, n: int, random_state=0, **options) -> np.ndarray:
        raise NotImplementedError


# ------------------------------------------------------------------------------------------------- the registry
register("HUD", "hudlib.hud:HUD", description="VCA + frozen UAE + DDPM on relaxed abundances (the paper)")
register("RealCopy", "hudlib.baselines.controls:RealCopy", control=True,
         description="random real crops of the scene (perfect fidelity, pure memorisation)")
register("UAECopy", "hudlib.baselines.controls:UAECopy", control=True,
         description="random real crops through HUD's frozen UAE (encode, decode): HUD's ceiling")
register("PixelShuffle", "hudlib.baselines.controls:PixelShuffle", control=True,
         description="real pixels at shuffled positions (real spectra, no spatial structure)")
register("MeanSpectrum", "hudlib.baselines.controls:MeanSpectrum", control=True,
         description="the scene's mean spectrum at every pixel")
register("RandomMixture", "hudlib.baselines.controls:RandomMixture", control=True,
         description="i.i.d. Dirichlet(1) abundances of the scene's VCA endmembers")
register("Noise", "hudlib.baselines.controls:Noise", control=True,
         description="Gaussian noise around the mean spectrum with the per-band std")
