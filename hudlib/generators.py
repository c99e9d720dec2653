"""The one registry of generators: tables, figures, the runner and the notebooks iterate over it.

It imports no generator code: a registration names its class as ``"package.module:Class"``, imported when first
asked for (:func:`get`), so the configuration machinery (:mod:`hudlib.config`) reads a generator's sections without an
import circle.

Every generator implements :class:`hudlib.models.base.Generator` and owns its configuration (``sections``,
``profiles``). A new baseline is one module in :mod:`hudlib.models` plus one :func:`register` line below. Roles say
what a generator is for, so that no caller compares names:

- ``reference``: the paper's generator, the row every other is compared with (HUD);
- ``control``: a reference generator, trivial by construction, that shows which metrics discriminate;
- ``trivial``: a control no metric should rank level with the reference (the mean spectrum, random mixtures);
- ``anchor``: a control shown beside the paper's generators in the paper-exact table (real crops, the mean
  spectrum);
- ``paper_name``: the generator's column in the paper's Tables I–III (None: not in the paper).
"""
from __future__ import annotations

import dataclasses
import importlib

__all__ = ["ModelInfo", "register", "unregister", "info", "paper_name", "names", "reference_name", "is_control", "get",
           "all_sections"]


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    name: str
    target: str  # "module:Class", imported lazily
    control: bool
    description: str
    paper_name: str | None  # its column in the paper's Tables I–III (None: not in the paper)
    reference: bool = False
    trivial: bool = False
    anchor: bool = False


_REGISTRY: dict[str, ModelInfo] = {}


def register(name: str, target: str, *, control: bool = False, description: str = "", paper_name: str | None = None,
             reference: bool = False, trivial: bool = False, anchor: bool = False) -> None:
    """Register a generator class given as ``"package.module:Class"`` (or the class itself) with its roles."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is registered already")
    if not isinstance(target, str):
        target = f"{target.__module__}:{target.__qualname__}"
    if reference and any(m.reference for m in _REGISTRY.values()):
        raise ValueError(f"model {name!r}: a reference generator is registered already ({reference_name()})")
    if (trivial or anchor) and not control:
        raise ValueError(f"model {name!r}: trivial and anchor are roles of controls (control=True)")
    _REGISTRY[name] = ModelInfo(name, target, control, description, paper_name, reference, trivial, anchor)


def unregister(name: str) -> None:
    """Remove a registered generator (tests register toy generators and remove them again)."""
    info(name)
    del _REGISTRY[name]


def info(name: str) -> ModelInfo:
    if name not in _REGISTRY:
        raise ValueError(f"model: unknown model {name!r}; expected one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def paper_name(name: str) -> str | None:
    """The paper's name for a registered generator (None for the controls and our additions)."""
    return info(name).paper_name


def names(controls: bool | None = None, trivial: bool | None = None, anchor: bool | None = None) -> list[str]:
    """Registered names, in registry order; ``controls=True``/``False`` selects reference generators / real
    models, ``trivial`` / ``anchor`` the controls with that role."""
    return [n for n, m in _REGISTRY.items() if (controls is None or m.control == controls)
            and (trivial is None or m.trivial == trivial) and (anchor is None or m.anchor == anchor)]


def reference_name() -> str:
    """The reference generator (role ``reference``)."""
    for n, m in _REGISTRY.items():
        if m.reference:
            return n
    raise ValueError("model: no reference generator is registered")



def is_control(name: str) -> bool:
    return info(name).control


def get(name: str):
    """The generator class registered as ``name``."""
    mod, cls = info(name).target.split(":")
    return getattr(importlib.import_module(mod), cls)


def all_sections() -> set[str]:
    """Every config section name of every registered generator (and the shared ones)."""
    out = {"train", "eval"}
    for n in _REGISTRY:
        out |= set(get(n).sections)
    return out


# ------------------------------------------------------------------------------------------------- the registry
register("HUD", "hudlib.models.hud:HUD", reference=True, paper_name="HUD",
         description="VCA + frozen UAE + DDPM on relaxed abundances (the paper)")
register("HUD-asrun", "hudlib.models.hud_asrun:HUDAsRun",
         description="HUD as the authors' code ran it: unconstrained linear encoder, standardised abundances x 10, "
                     "no ln/softmax")
register("HUD-cond", "hudlib.models.hud_cond:HUDCond",
         description="HUD conditioned on a label layout (one-hot map, classifier-free guidance), off a held-out region")
register("RealCopy", "hudlib.models.controls:RealCopy", control=True, anchor=True,
         description="random real crops of the scene (perfect fidelity, pure memorisation)")
register("UAECopy", "hudlib.models.controls:UAECopy", control=True,
         description="random real crops through HUD's frozen UAE (encode, decode): HUD's ceiling")
register("PixelShuffle", "hudlib.models.controls:PixelShuffle", control=True,
         description="real pixels at shuffled positions (real spectra, no spatial structure)")
register("MeanSpectrum", "hudlib.models.controls:MeanSpectrum", control=True, trivial=True, anchor=True,
         description="the scene's mean spectrum at every pixel")
register("RandomMixture", "hudlib.models.controls:RandomMixture", control=True, trivial=True,
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
