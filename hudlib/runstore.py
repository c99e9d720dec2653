"""Where a generator's run lives and how a shipped checkpoint becomes one: the run store.

A run of a config is the folder ``<runs>/<scene>/<model>/<profile>-<training hash>/`` (:func:`run_dir_for`); it is
finished when it holds ``DONE``. The weights shipped with the repository (``checkpoints/``, listed with their sha256
in ``checkpoints/MANIFEST.json``; exported by :mod:`hudlib.checkpoints`) are laid out the same way, and
:func:`install` copies one into the runs folder, checked against the manifest and marked ``SHIPPED``.
:meth:`hudlib.models.Generator.fit` asks :func:`reuse_or_install` first, so a generator whose config has shipped
weights is never trained again unless retraining is asked for (``--retrain``, or the ``HUD_RETRAIN`` environment
variable that the runner sets for its notebooks: ``all`` or generator names separated by commas).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from . import paths
from .utils import atomic_write_text, file_sha256

__all__ = ["run_dir_for", "checkpoints_dir", "manifest", "verify_files", "shipped_run", "install", "remove_shipped",
           "retrain_requested", "reuse_or_install", "SHIPPED", "MANIFEST", "RETRAIN_ENV"]

SHIPPED = "SHIPPED"  # marker file of a run directory copied from checkpoints/
MANIFEST = "MANIFEST.json"
RETRAIN_ENV = "HUD_RETRAIN"


def run_dir_for(cfg, out_dir) -> Path:
    """``out_dir/<scene>/<model>/<profile>-<hash of the training config>``."""
    return Path(out_dir) / cfg.scene / cfg.model / f"{cfg.profile}-{cfg.training_hash()}"


def checkpoints_dir(override=None) -> Path:
    """``checkpoints/`` at the project root (or ``override``)."""
    return paths._sub("checkpoints", override)


def manifest(root=None) -> dict:
    """The manifest of ``root`` (default ``checkpoints/``); an empty one when there is none."""
    path = checkpoints_dir(root) / MANIFEST
    if not path.is_file():
        return {"runs": {}, "classifiers": {}}
    return json.loads(path.read_text())


def verify_files(folder: Path, files: dict) -> None:
    """Check ``folder``'s files against a manifest entry's ``files`` (size, sha256); one-line error otherwise."""
    for name, meta in files.items():
        f = Path(folder) / name
        if not f.is_file():
            raise FileNotFoundError(f"{f}: missing from the shipped checkpoint (listed in {MANIFEST})")
        if f.stat().st_size != meta["bytes"] or file_sha256(f) != meta["sha256"]:
            raise ValueError(f"{f}: does not match {MANIFEST} (size or sha256 differs); the checkpoint is damaged "
                             f"— restore it with git checkout")


def shipped_run(cfg, root=None) -> Path | None:
    """The shipped checkpoint of ``cfg`` (same scene, model, profile and training hash), or None."""
    rel = Path(cfg.scene) / cfg.model / f"{cfg.profile}-{cfg.training_hash()}"
    return checkpoints_dir(root) / rel if rel.as_posix() in manifest(root)["runs"] else None


def install(cfgs, runs=None, root=None) -> list[Path]:
    """Copy the shipped checkpoint of each config in ``cfgs`` into ``runs/`` where no finished run of that config
    is (a run trained here is never replaced), marked ``SHIPPED``; and the shipped classifiers into
    ``runs/classifiers/`` where absent. Every file is checked against the manifest first. Returns the run
    directories installed."""
    runs, root = paths.runs_dir(runs), checkpoints_dir(root)
    man = manifest(root)
    done = []
    for cfg in cfgs:
        src = shipped_run(cfg, root)
        dest = run_dir_for(cfg, runs)
        if src is None or (dest / "DONE").is_file():
            continue
        verify_files(src, man["runs"][src.relative_to(root).as_posix()]["files"])
        if dest.exists():  # an interrupted training of the same config: the shipped run replaces it
            shutil.rmtree(dest)
        tmp = dest.with_name(f".{dest.name}.installing")
        if tmp.exists():
            shutil.rmtree(tmp)
        shutil.copytree(src, tmp)
        atomic_write_text(tmp / SHIPPED, f"copied from {src}\n")
        tmp.rename(dest)
        done.append(dest)
    cdir = runs / "classifiers"
    for name, entry in man["classifiers"].items():
        if all((cdir / f).is_file() for f in entry["files"]):
            continue
        verify_files(root / "classifiers", entry["files"])
        cdir.mkdir(parents=True, exist_ok=True)
        for f in entry["files"]:
            tmp = cdir / f".{f}.installing"
            shutil.copy2(root / "classifiers" / f, tmp)
            tmp.replace(cdir / f)
    return done


def remove_shipped(cfgs, runs=None) -> list[Path]:
    """Delete the run directories of ``cfgs`` that are copies of shipped checkpoints (``--retrain``); runs trained
    here are kept. Returns the directories removed."""
    out = []
    for cfg in cfgs:
        d = run_dir_for(cfg, paths.runs_dir(runs))
        if (d / SHIPPED).is_file():
            shutil.rmtree(d)
            out.append(d)
    return out


def retrain_requested(model: str) -> bool:
    """Does ``$HUD_RETRAIN`` (``all`` or comma-separated generator names) ask to train ``model`` from scratch?"""
    names = {s.strip() for s in os.environ.get(RETRAIN_ENV, "").split(",") if s.strip()}
    return "all" in names or model in names


def reuse_or_install(cfg, out_dir, shipped: bool = True) -> bool:
    """Is a finished run of ``cfg`` under ``out_dir`` now? If there is none, the shipped checkpoint of ``cfg`` (when
    ``shipped``, there is one, and retraining was not asked for) is installed first."""
    run_dir = run_dir_for(cfg, out_dir)
    if shipped and not (run_dir / "DONE").is_file() and not retrain_requested(cfg.model) \
            and shipped_run(cfg) is not None:
        install([cfg], out_dir)
    return (run_dir / "DONE").is_file()
