"""The trained weights shipped with the repository (``checkpoints/``): export from ``runs/``, install into ``runs/``.

``checkpoints/<scene>/<model>/<profile>-<training hash>/`` is laid out like a run directory and loads with
:func:`hudlib.models.load`, but holds only what sampling and the figures read: the generator's artefact files
(:meth:`~hudlib.models.Generator.artefact_files`: the EMA network in fp32, HUD's frozen UAE, a control's state),
``config.json``, ``train_info.json``, ``losses.json`` and ``DONE`` — no optimiser state, no samples.
``checkpoints/classifiers/`` holds the evaluation's own trained networks (the sound classifier and the authors'
two classifiers), keyed by their cache names. ``checkpoints/MANIFEST.json`` lists every file with its sha256 and
size, and every run with the weights hash the results name, its training wall time and machine.

:func:`install` copies a shipped run into ``runs/`` when the config hash matches and no finished run is there (it
marks the copy with ``SHIPPED``), checking every file against the manifest first, so ``./run_all.sh`` samples and
evaluates the shipped weights instead of training them; ``--retrain`` removes such copies and trains from scratch.
"""
from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path

from . import models
from .runstore import (MANIFEST, SHIPPED, _sha256, checkpoints_dir, install, manifest, remove_shipped, shipped_run,
                       verify_files)
from .utils import atomic_write_text

__all__ = ["export", "install", "manifest", "shipped_run", "remove_shipped", "checkpoints_dir", "SHIPPED",
           "MANIFEST", "verify_files", "machine_name"]

_RUN_FILES = ("config.json", "train_info.json", "losses.json", "DONE")


def machine_name() -> str:
    """The CPU model (``/proc/cpuinfo``) or the platform's processor string, and the core count."""
    import os

    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} logical CPUs"


def export(run_dirs, root=None, classifier_files=(), machine: str | None = None) -> Path:
    """Copy the finished runs ``run_dirs`` (and the evaluation's ``classifier_files``: weights ``.pt`` beside their
    ``.json``) into ``root`` (default ``checkpoints/``) and rewrite its manifest. Runs are keyed by their relative
    path; an existing entry is replaced. Returns the manifest's path."""
    root = checkpoints_dir(root)
    man = manifest(root)
    machine = machine or machine_name()
    for run in map(Path, run_dirs):
        gen = models.load(run)  # a finished, loadable run
        cfg = gen.config_
        rel = Path(cfg.scene) / cfg.model / run.name
        dest = root / rel
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        files = [f for f in type(gen).artefact_files(run)] + [run / f for f in _RUN_FILES if (run / f).is_file()]
        for f in files:
            shutil.copy2(f, dest / f.name)
        info = json.loads((run / "train_info.json").read_text()) if (run / "train_info.json").is_file() else {}
        man["runs"][rel.as_posix()] = {
            "scene": cfg.scene, "model": cfg.model, "profile": cfg.profile, "training_hash": cfg.training_hash(),
            "weights_hash": gen.weights_hash(),
            "files": {f.name: {"sha256": _sha256(dest / f.name), "bytes": (dest / f.name).stat().st_size}
                      for f in files},
            "train_wall_time_s": info.get("wall_time_s"), "train_device": info.get("device"),
            "train_threads": info.get("threads"), "torch": info.get("torch"),
            "machine": machine if info else None}
    cdir = root / "classifiers"
    for w in map(Path, classifier_files):
        cdir.mkdir(parents=True, exist_ok=True)
        for f in (w, w.with_suffix(".json")):
            shutil.copy2(f, cdir / f.name)
        info = json.loads(w.with_suffix(".json").read_text())
        man["classifiers"][w.name] = {
            "files": {f.name: {"sha256": _sha256(cdir / f.name), "bytes": (cdir / f.name).stat().st_size}
                      for f in (w, w.with_suffix(".json"))},
            "weights_sha256": info.get("weights_sha256"), "train_wall_time_s": info.get("wall_time_s"),
            "machine": machine}
    man["total_bytes"] = sum(e["bytes"] for grp in ("runs", "classifiers") for r in man[grp].values()
                             for e in r["files"].values())
    out = root / MANIFEST
    atomic_write_text(out, json.dumps(man, indent=1, sort_keys=True))
    return out
