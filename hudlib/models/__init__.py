"""The one registry of generators: tables and figures iterate over it.

Every generator implements :class:`hudlib.models.base.Generator` (``fit``, ``sample``, ``load``, ``weights_hash``
…). A new baseline is one module in this package plus one :func:`register` line below. Reference generators
(controls) are registered with ``control=True``: trivial by construction, they show which metrics discriminate.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path

from ..config import PROFILES, RunConfig, make_config
from .base import ComplexitySpec, Generator, NetworkGenerator, run_dir_for

__all__ = ["register", "get", "names", "is_control", "create", "load", "Generator", "NetworkGenerator", "ComplexitySpec",
           "run_dir_for", "ModelInfo", "finished_profile", "paper_name"]


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    name: str
    target: str  # "module:Class", imported lazily
    control: bool
    description: str
    paper_name: str | None  # its column in the paper's Tables I–III (None: not in the paper)


_REGISTRY: dict[str, ModelInfo] = {}


def register(name: str, target: str, control: bool = False, description: str = "",
             paper_name: str | None = None) -> None:
    """Register a generator class given as ``"package.module:Class"``; ``paper_name`` is its column in the paper's
    tables (``"GAN"`` for WGAN-GP)."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is registered already")
    _REGISTRY[name] = ModelInfo(name, target, control, description, paper_name)


def paper_name(name: str) -> str | None:
    """The paper's name for a registered generator (None for the controls and our additions)."""
    return _info(name).paper_name


def names(controls: bool | None = None) -> list[str]:
    """Registered names; ``controls=True``/``False`` selects reference generators / real models only."""
    return [n for n, m in _REGISTRY.items() if controls is None or m.control == controls]


def _info(name: str) -> ModelInfo:
    if name not in _REGISTRY:
        raise ValueError(f"model: unknown model {name!r}; expected one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def is_control(name: str) -> bool:
    return _info(name).control


def get(name: str) -> type[Generator]:
    """The generator class registered as ``name``."""
    mod, cls = _info(name).target.split(":")
    return getattr(importlib.import_module(mod), cls)


def create(name: str) -> Generator:
    """A fresh, unfitted generator."""
    return get(name)()


def load(run_dir, scene=None) -> Generator:
    """Rebuild a fitted generator from its run directory (reads ``config.json``)."""
    cfg_path = Path(run_dir) / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: no config.json; expected a run directory written by fit()")
    cfg = RunConfig.from_dict(json.loads(cfg_path.read_text()))
    return get(cfg.model).load(run_dir, scene)


def finished_profile(scene: str, model: str, runs, fallback: str = "smoke") -> str:
    """The most complete profile (paper, then quick, then smoke) with a finished run of the current config under
    ``runs``; ``fallback`` when there is none. Lets a notebook show the model ``./run_all.sh`` trained."""
    for profile in reversed(list(PROFILES)):
        if (run_dir_for(make_config(scene, model, profile), runs) / "DONE").is_file():
            return profile
    return fallback


# ------------------------------------------------------------------------------------------------- the registry
register("HUD", "hudlib.models.hud:HUD", description="VCA + frozen UAE + DDPM on relaxed abundances (the paper)",
         paper_name="HUD")
register("HUD-asrun", "hudlib.models.hud_asrun:HUDAsRun",
         description="HUD as the authors' code ran it: unconstrained linear encoder, standardised abundances x 10, "
                     "no ln/softmax")
register("RealCopy", "hudlib.models.controls:RealCopy", control=True,
         description="random real crops of the scene (perfect fidelity, pure memorisation)")
register("UAECopy", "hudlib.models.controls:UAECopy", control=True,
         description="random real crops through HUD's frozen UAE (encode, decode): HUD's ceiling")
register("PixelShuffle", "hudlib.models.controls:PixelShuffle", control=True,
         description="real pixels at shuffled positions (real spectra, no spatial structure)")
register("MeanSpectrum", "hudlib.models.controls:MeanSpectrum", control=True,
         description="the scene's mean spectrum at every pixel")
register("RandomMixture", "hudlib.models.controls:RandomMixture", control=True,
         description="i.i.d. Dirichlet(1) abundances of the scene's VCA endmembers")
register("Noise", "hudlib.models.controls:Noise", control=True,
         description="Gaussian noise around the mean spectrum with the per-band std")
register("VAE", "hudlib.models.vae:VAE", paper_name="VAE",
         description="the authors' convolutional VAE (latent 20), decoding z ~ N(0, I)")
register("WGAN-GP", "hudlib.models.wgan:WGANGP", paper_name="GAN",
         description="WGAN-GP with the authors' DCGAN-style generator and critic")
register("MPRNet", "hudlib.models.mprnet:MPRNet", paper_name="MPRNet",
         description="conditional: MPRNet(pseudo-RGB of a real crop), the authors' MPRNet baseline")
register("UD", "hudlib.models.unmixdiff:UD", paper_name="UD",
         description="UnmixDiff: learned unmixing autoencoder (all bands) + diffusion on its abundances")
register("UBF", "hudlib.models.ubf:UBF", paper_name="UBF",
         description="Unmixing-before-fusion: learned unmixing autoencoder reading the pseudo-RGB bands + diffusion")
