"""Evaluate one generator on one scene: every metric into ``results/<scene>/<model>/<profile>.json``.

Metrics (hudlib.metrics, hudlib.classifier):

- the paper's: point fidelity F_p (eq. 16), block diversity D_b (eq. 17, 8×8 blocks), D_b/F_p, IS and FID from a
  per-scene classifier (IV-C), and HyperLDM's SD from the same classifier;
- distribution metrics that discriminate: improved precision/recall in spectral and patch space, sliced
  Wasserstein distance between real and generated pixel spectra, and the copy rate (memorisation).

A result is reused when its file holds the same training hash, n, seed and metric version (``force`` recomputes).
"""
from __future__ import annotations

import json
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from . import classifier as clf
from . import metrics, models, paths
from .config import make_config
from .data import load_scene, patches
from .train import atomic_write_text, resolve_device

__all__ = ["evaluate", "METRIC_VERSION", "METRICS", "machine_description", "git_commit", "generate"]

METRIC_VERSION = 3

# name -> (direction, family, description); direction +1: higher is better, -1: lower is better.
METRICS = {
    "F_p": (+1, "paper", "point fidelity, eq. 16"),
    "D_b": (-1, "paper", "block diversity, eq. 17 (8x8 blocks; lower = less copying)"),
    "D_b/F_p": (-1, "paper", "Table I's ratio"),
    "IS": (+1, "paper", "inception score with the per-scene classifier"),
    "FID": (-1, "paper", "Frechet distance of classifier features"),
    "SD": (+1, "HyperLDM", "spectral diversity, HyperLDM eq. 28"),
    "precision_spectra": (+1, "ours", "k-NN precision of pixel spectra"),
    "recall_spectra": (+1, "ours", "k-NN recall of pixel spectra"),
    "precision_patches": (+1, "ours", "k-NN precision of 32x32 patches"),
    "recall_patches": (+1, "ours", "k-NN recall of 32x32 patches"),
    "SWD": (-1, "ours", "sliced Wasserstein distance of pixel spectra"),
    "copy_rate": (-1, "ours", "share of generated patches that copy a real window"),
    "roughness_gap": (-1, "ours", "|ln| of the neighbour-angle ratio, generated vs real patches (noise or flat "
                                  "colour both raise it)"),
    "coherence_gap": (-1, "ours", "|ln| of the spatial-coherence ratio (neighbour angle / in-patch pair angle), "
                                  "generated vs real patches (no structure or flat colour both raise it)"),
}


def git_commit() -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                           cwd=paths.project_root(), timeout=10)
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_description(device: torch.device | str = "cpu") -> str:
    """e.g. ``"CPU x86_64, 2 threads, torch 2.13.0+cpu"`` or ``"NVIDIA H100 ..., torch ..."``."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)}, torch {torch.__version__}"
    return f"CPU {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def generate(gen, n: int, seed: int, device="auto", progress: bool = False) -> np.ndarray:
    """``n`` samples ``(n, bands, 32, 32)`` from a fitted generator with its config's sampler, cached in its run
    directory under a name holding n, seed and the sampler settings."""
    cache = gen.run_dir_ / f"samples_n{n}_seed{seed}_{gen.config_.sampling_key()}.npy"
    if cache.is_file():
        return np.load(cache)
    kw = dict(device=device, progress=progress) if hasattr(gen, "sample_abundances") else {}
    Y = gen.sample(n, random_state=seed, **kw)
    tmp = cache.with_name(f".{cache.name}.tmp.npy")
    np.save(tmp, Y)
    tmp.replace(cache)
    return Y


def _timed(times: dict, name: str, fn):
    t0 = time.perf_counter()
    out = fn()
    times[name] = round(time.perf_counter() - t0, 2)
    return out


def evaluate(scene: str, model: str, profile: str, n: int | None = None, runs=None, results=None,
             device: str = "auto", progress: bool = True, data_root=None, force: bool = False,
             scene_obj=None) -> Path:
    """Fit (or reuse) ``model`` on ``scene`` with ``profile``, sample ``n`` patches, compute every metric.

    Returns the path of the written JSON.
    """
    t_start = time.perf_counter()
    cfg = make_config(scene, model, profile)
    n = n or cfg.eval.n_samples
    seed = cfg.eval.seed
    out = paths.results_dir(results) / scene / model / f"{profile}.json"
    if out.is_file() and not force:
        old = json.loads(out.read_text())
        if (old.get("training_hash"), old.get("sampling_key"), old.get("n"), old.get("seed"),
                old.get("metric_version")) == (cfg.training_hash(), cfg.sampling_key(), n, seed, METRIC_VERSION):
            return out
    s = scene_obj or load_scene(scene, data_root)
    dev = resolve_device(device)
    runs = paths.runs_dir(runs)
    gen = models.create(model).fit(s, profile, runs, device=device, progress=progress)
    times: dict[str, float] = {}
    Y = _timed(times, "sample", lambda: generate(gen, n, seed, device, progress))
    if Y.shape[1:] != (s.bands, 32, 32) and Y.shape[1] != s.bands:
        raise ValueError(f"{model}: samples have shape {Y.shape}; expected (n, {s.bands}, h, w)")
    real = patches(s, Y.shape[-1], n, random_state=seed + 1)
    m: dict[str, float] = {}
    m["F_p"] = _timed(times, "F_p", lambda: float(metrics.point_fidelity(Y, s.cube, device=dev)))
    m["D_b"] = _timed(times, "D_b", lambda: float(metrics.block_diversity(Y, s.cube, block=8, device=dev)))
    m["D_b/F_p"] = m["D_b"] / m["F_p"] if m["F_p"] else float("nan")
    for space in ("spectra", "patches"):
        pr = _timed(times, f"pr_{space}", lambda: metrics.precision_recall(Y, s.cube, k=3, space=space,
                                                                          random_state=seed, device=dev))
        m[f"precision_{space}"], m[f"recall_{space}"] = float(pr["precision"]), float(pr["recall"])
    m["SWD"] = _timed(times, "SWD", lambda: float(metrics.sliced_wasserstein(Y, s.cube, random_state=seed,
                                                                            device=dev)))
    m["copy_rate"] = _timed(times, "copy_rate", lambda: float(metrics.copy_rate(Y, s.cube, random_state=seed,
                                                                               device=dev)))
    m["roughness_gap"], det = _timed(times, "roughness", lambda: metrics.roughness_gap(Y, real, return_details=True))
    m["neighbour_angle"], m["neighbour_angle_real"] = det["generated"], det["real"]
    m["coherence_gap"], det = _timed(times, "coherence", lambda: metrics.coherence_gap(Y, real, return_details=True))
    m["spatial_coherence"], m["spatial_coherence_real"] = det["generated"], det["real"]
    net, cinfo = _timed(times, "classifier", lambda: clf.train_classifier(
        s, steps=cfg.eval.classifier_steps, random_state=seed, device=dev, cache_dir=runs / "classifiers",
        progress=progress))
    sc = _timed(times, "IS_FID_SD", lambda: clf.classifier_scores(net, Y, real, device=dev))
    m.update({"IS": float(sc["IS"]), "FID": float(sc["FID"]), "SD": float(sc["SD"]),
              "IS_real": float(sc["IS_real"]), "SD_real": float(sc["SD_real"])})
    train_info = {}
    if (gen.run_dir_ / "train_info.json").is_file():
        train_info = json.loads((gen.run_dir_ / "train_info.json").read_text())
    record = {
        "scene": scene, "model": model, "profile": profile, "control": models.is_control(model),
        "n": n, "seed": seed, "metric_version": METRIC_VERSION, "metrics": m,
        "classifier": {k: cinfo.get(k) for k in ("holdout_accuracy", "holdout_balanced_accuracy",
                                                  "holdout_majority_share", "train_accuracy", "steps", "n_train",
                                                  "n_holdout") if k in cinfo},
        "training_hash": cfg.training_hash(), "sampling_key": cfg.sampling_key(), "run_dir": str(gen.run_dir_),
        "train_info": train_info,
        "sampler": {"sampler": cfg.diffusion.sampler, "steps": cfg.diffusion.sample_steps,
                    "eta": cfg.diffusion.eta, "clip_z0": cfg.diffusion.clip_z0} if model == "HUD" else None,
        "git_commit": git_commit(), "device": str(dev), "machine": machine_description(dev),
        "times_s": times, "wall_time_s": round(time.perf_counter() - t_start, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(record, indent=2))
    return out
