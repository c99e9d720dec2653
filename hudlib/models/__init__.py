"""The generators: their base classes, creating, loading and saving them. The registry and the generators' roles
(reference, control, trivial, anchor, paper name) are :mod:`hudlib.generators`, re-exported here; a new baseline is
one module in this package plus one ``register(...)`` line there."""
from __future__ import annotations

import json
from pathlib import Path

from ..config import PROFILES, RunConfig, make_config
from ..generators import (ModelInfo, all_sections, get, info, is_control, names, paper_name, reference_name, register,
                          unregister)
from .base import ComplexitySpec, DiffusionGenerator, Generator, NetworkGenerator, run_dir_for

__all__ = ["register", "get", "names", "info", "reference_name", "is_control", "create", "load", "Generator",
           "NetworkGenerator", "DiffusionGenerator", "ComplexitySpec", "run_dir_for", "ModelInfo",
           "finished_profile", "paper_name", "all_sections", "unregister", "from_pretrained", "unsupported"]


def create(name: str, config: RunConfig | None = None) -> Generator:
    """A fresh, unfitted generator, with its config when given (:func:`hudlib.config.make_config`)."""
    cls = get(name)
    if cls.name != name:
        raise ValueError(f"model {name!r}: registered class {cls.__name__} has name {cls.name!r}")
    return cls(config)


def unsupported(name: str, scene, profile="quick", overrides=None) -> str | None:
    """Why generator ``name`` cannot be trained on ``scene`` (a :class:`hudlib.data.Scene`) at ``profile`` (a name or
    a :class:`RunConfig`) with ``overrides``, or None (:meth:`Generator.unsupported`)."""
    cfg = profile if isinstance(profile, RunConfig) else make_config(scene.name, name, profile, overrides)
    return get(name).unsupported(scene, cfg)


def load(run_dir, scene=None) -> Generator:
    """Rebuild a fitted generator from its run directory (reads ``config.json``), e.g. a shipped checkpoint
    ``checkpoints/<scene>/<model>/<profile>-<hash>/``."""
    cfg_path = Path(run_dir) / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: no config.json; expected a run directory written by fit()")
    cfg = RunConfig.from_dict(json.loads(cfg_path.read_text()))
    return get(cfg.model).load(run_dir, scene)


def from_pretrained(path, scene=None, verify: bool = True) -> Generator:
    """A generator from a shipped checkpoint (``checkpoints/<scene>/<model>/<profile>-<hash>``, or that path relative
    to ``checkpoints/``) or any finished run directory. A shipped one's files are first checked against
    ``checkpoints/MANIFEST.json`` (size and sha256; a damaged file is refused); weights load with
    ``torch.load(weights_only=True)``."""
    from .. import runstore

    p = Path(path)
    root = runstore.checkpoints_dir()
    if not p.exists() and (root / p).exists():
        p = root / p
    if not p.is_dir():
        raise FileNotFoundError(f"{path}: not a run directory or a shipped checkpoint (see checkpoints/MANIFEST.json)")
    if verify:
        try:
            rel = p.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            rel = None
        entry = runstore.manifest(root)["runs"].get(rel) if rel else None
        if entry is not None:
            runstore.verify_files(p, entry["files"])
    return load(p, scene)


def finished_profile(scene: str, model: str, runs, fallback: str = "smoke") -> str:
    """The most complete profile (paper, then quick, then smoke) with a finished run of the current config under
    ``runs``; ``fallback`` when there is none. Lets a notebook show the model ``./run_all.sh`` trained."""
    for profile in reversed(list(PROFILES)):
        if (run_dir_for(make_config(scene, model, profile), runs) / "DONE").is_file():
            return profile
    return fallback
