"""Evaluate one generator on one scene: every metric into ``results/<scene>/<model>/<profile>.json``.

Metrics (hudlib.metrics, hudlib.classifier):

- the paper's: point fidelity F_p (eq. 16), block diversity D_b (eq. 17, 8×8 blocks), D_b/F_p, IS and FID from a
  per-scene classifier (IV-C), and HyperLDM's SD from the same classifier;
- the paper's metrics exactly as the authors' code computed them (:mod:`hudlib.metrics.paper_exact`: their [−1, 1]
  space, the centre square crop as the original image, whole-patch D_b with rotations, IS as exp(mean KL / C) and
  standard, FID of their per-pixel classifier's features), at all n patches and over repeated 8-patch draws;
- distribution metrics that discriminate: improved precision/recall in spectral and patch space, sliced
  Wasserstein distance between real and generated pixel spectra, and the copy rate (memorisation);
- texture: roughness and coherence gaps against real patches;
- physical consistency (:mod:`hudlib.metrics.physical`): negative reflectances, negative abundances and
  sum-to-one of the generator's abundances, and the spectral angle to the scene's VCA endmember simplex.

Caches are keyed by artefacts, not by configs alone. A result is reused only when its file names the exact weights
it was computed from (:meth:`~hudlib.models.Generator.weights_hash`, a content hash of what sampling reads), the
sampler settings, the classifier's weights, n, the seed and :data:`METRIC_VERSION`; samples are cached in the run
directory under the weights hash. A fresh training therefore always means a fresh evaluation, and a committed result
computed from weights absent here is recomputed, never shown as this machine's (``force`` recomputes anyway).
"""
from __future__ import annotations

import hashlib
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
from .utils import atomic_save_npy, atomic_write_text, resolve_device

__all__ = ["evaluate", "METRIC_VERSION", "METRICS", "machine_description", "git_commit", "generate", "result_path",
           "cache_key", "result_status", "state_hash", "generate_with_abundances", "scene_endmembers", "sample_cache"]

METRIC_VERSION = 4
# The paper-exact block of a record (hudlib.metrics.paper_exact on the authors' classifier) has its own key: it is
# added to a record computed before it existed without recomputing the rest.
PAPER_EXACT_VERSION = 1
# Likewise the physical-consistency block (hudlib.metrics.physical, against the scene's VCA simplex).
PHYSICAL_VERSION = 1

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


def state_hash(net: torch.nn.Module) -> str:
    """Content hash of a network's state dict (names, shapes and bytes of every tensor, in order)."""
    h = hashlib.sha256()
    for k, v in net.state_dict().items():
        t = v.detach().cpu().contiguous()
        h.update(f"{k}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def sample_cache(run_dir, weights_hash: str, sampling_key: str, n: int, seed: int, kind: str = "samples") -> Path:
    """``<run dir>/<kind>_<weights hash>_n<n>_seed<seed>_<sampling key>.npy`` (kind: samples or abundances)."""
    return Path(run_dir) / f"{kind}_{weights_hash}_n{n}_seed{seed}_{sampling_key}.npy"


def _gen_cache(gen, n: int, seed: int, kind: str = "samples") -> Path:
    return sample_cache(gen.run_dir_, gen.weights_hash(), gen.sampling_key(), n, seed, kind)


def generate(gen, n: int, seed: int, device="auto", progress: bool = False) -> np.ndarray:
    """``n`` samples ``(n, bands, 32, 32)`` from a fitted generator with its config's sampler, cached in its run
    directory under a name holding its weights hash, n, seed and the sampler settings."""
    cache = _gen_cache(gen, n, seed)
    if cache.is_file():
        return np.load(cache)
    Y = gen.sample(n, random_state=seed, device=device, progress=progress)
    atomic_save_npy(cache, Y)
    return Y


def generate_with_abundances(gen, n: int, seed: int, device="auto", progress: bool = False):
    """``(Y, X)``: :func:`generate`'s samples and the generator's abundances ``(n, d, 32, 32)`` (None for a
    generator without), cached beside the samples. When only the samples are cached both are drawn again with
    the same seed (the same samples on the same machine) and both caches are written."""
    if not gen.has_abundances:
        return generate(gen, n, seed, device, progress), None
    ycache, xcache = _gen_cache(gen, n, seed), _gen_cache(gen, n, seed, "abundances")
    if ycache.is_file() and xcache.is_file():
        return np.load(ycache), np.load(xcache)
    Y, X = gen.sample(n, random_state=seed, device=device, progress=progress, return_abundances=True)
    atomic_save_npy(xcache, np.asarray(X, dtype=np.float32))
    atomic_save_npy(ycache, Y)
    return Y, np.asarray(X, dtype=np.float32)


_VCA_MEMO: dict = {}


def scene_endmembers(s, cfg) -> np.ndarray:
    """The scene's VCA endmembers ``(bands, d)`` with the config's d and seed (HUD's), the common simplex of the
    physical-consistency block (memoised per scene content)."""
    d = cfg.unmixing.d or s.n_classes
    key = (s.name, s.cube.shape, d, cfg.unmixing.random_state, hashlib.blake2b(s.cube.tobytes(), digest_size=8).hexdigest())
    if key not in _VCA_MEMO:
        from .unmixing import vca
        _VCA_MEMO[key] = vca(s.cube, d, random_state=cfg.unmixing.random_state)[0]
    return _VCA_MEMO[key]


def _physical(Y, X, real, s, cfg, times: dict) -> dict:
    """:func:`hudlib.metrics.physical_consistency` of samples ``Y`` and abundances ``X`` (or None), with the real
    patches' simplex angle as reference."""
    def run():
        E = scene_endmembers(s, cfg)
        out = metrics.physical_consistency(Y, E, X)
        out["simplex_angle_mean_real"] = metrics.physical_consistency(real, E)["simplex_angle_mean"]
        out["endmembers"] = f"VCA of the scene, d = {E.shape[1]}, seed {cfg.unmixing.random_state}"
        return out
    return _timed(times, "physical", run)


def result_path(scene: str, model: str, profile: str, results=None, tag: str = "") -> Path:
    """``results/<scene>/<model>/<profile>[-<tag>].json``."""
    return paths.results_dir(results) / scene / model / (f"{profile}-{tag}.json" if tag else f"{profile}.json")


def cache_key(weights_hash: str, sampling_key: str, classifier_hash: str | None, n: int, seed: int) -> dict:
    """Everything a result depends on besides the code of the metrics (covered by :data:`METRIC_VERSION`)."""
    return {"weights_hash": weights_hash, "sampling_key": sampling_key, "classifier_hash": classifier_hash,
            "n": n, "seed": seed, "metric_version": METRIC_VERSION}


def _matches(path: Path, key: dict) -> bool:
    if not path.is_file():
        return False
    old = json.loads(path.read_text())
    return all(old.get(k) == v for k, v in key.items())


def result_status(scene: str, model: str, profile: str, runs=None, results=None, n: int | None = None) -> dict:
    """What :func:`evaluate` would do, without training or sampling anything: ``{"trained": bool, "evaluated":
    bool}``. ``evaluated`` means a result exists for the weights now on disk (same weights hash, sampler, n, seed
    and metric version; the classifier's hash is checked when evaluating)."""
    cfg = make_config(scene, model, profile)
    run_dir = models.run_dir_for(cfg, paths.runs_dir(runs))
    wh = models.get(model).weights_hash_at(run_dir)
    key = cache_key(wh, "", None, n or cfg.eval.n_samples, cfg.eval.seed)
    for k in ("sampling_key", "classifier_hash"):
        key.pop(k)
    return {"trained": wh is not None, "evaluated": wh is not None and _matches(
        result_path(scene, model, profile, results), key)}


def _timed(times: dict, name: str, fn):
    t0 = time.perf_counter()
    out = fn()
    times[name] = round(time.perf_counter() - t0, 2)
    return out


def _metrics(Y: np.ndarray, real: np.ndarray, s, cfg, net, dev, times: dict) -> dict:
    """Every metric of generated patches ``Y`` ``(n, bands, 32, 32)`` against scene ``s`` and real patches."""
    e, seed = cfg.eval, cfg.eval.seed
    m: dict[str, float] = {}
    m["F_p"] = _timed(times, "F_p", lambda: float(metrics.point_fidelity(Y, s.cube, device=dev)))
    m["D_b"] = _timed(times, "D_b", lambda: float(metrics.block_diversity(Y, s.cube, block=e.block, device=dev)))
    m["D_b/F_p"] = m["D_b"] / m["F_p"] if m["F_p"] else float("nan")
    for space in ("spectra", "patches"):
        pr = _timed(times, f"pr_{space}", lambda: metrics.precision_recall(Y, s.cube, k=e.k, space=space,
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
    sc = _timed(times, "IS_FID_SD", lambda: clf.classifier_scores(net, Y, real, device=dev))
    m.update({k: float(sc[k]) for k in ("IS", "FID", "SD", "IS_real", "SD_real")})
    return m


def authors_classifiers(s, cfg, dev, cache_dir, progress: bool = False) -> tuple[torch.nn.Module, dict]:
    """The authors' per-pixel classifier for the paper-exact IS/FID (trained on their overlapping 80/20 window
    split, as they did) and its accuracy there and, for a second net trained with the spatially disjoint split, on
    the held-out region (how well that recipe generalises). Both cached in ``cache_dir``."""
    e = cfg.eval
    kw = dict(max_epochs=e.authors_epochs, steps_per_epoch=e.authors_steps_per_epoch, pixels_per_step=e.authors_pixels,
              random_state=e.seed, device=dev, progress=progress, cache_dir=cache_dir)
    net, info = clf.train_authors_classifier(s, split="authors", **kw)
    _, sp = clf.train_authors_classifier(s, split="spatial", **kw)
    keys = ("val_accuracy", "val_balanced_accuracy", "val_majority_share", "epochs", "steps", "wall_time_s")
    return net, {"authors_split": {k: info.get(k) for k in keys}, "spatial_split": {k: sp.get(k) for k in keys},
                 "weights_sha256": info.get("weights_sha256"), "train_config": info.get("train_config")}


def _paper_exact(Y, s, cfg, net_a, dev, times: dict) -> dict:
    """:func:`hudlib.metrics.paper_exact.paper_exact_metrics` of ``Y`` with the authors' classifier ``net_a``."""
    from .metrics import paper_exact as PE

    e = cfg.eval
    return _timed(times, "paper_exact", lambda: PE.paper_exact_metrics(
        Y, s, classifier=lambda x: clf.authors_pixel_outputs(net_a, x, device=dev), draws=e.paper_draws,
        draw_size=min(e.paper_draw_size, len(Y)), random_state=e.seed, device=dev))


def evaluate(scene: str, model: str, profile: str, n: int | None = None, runs=None, results=None,
             device: str = "auto", progress: bool = True, data_root=None, force: bool = False,
             scene_obj=None, overrides=None, tag: str = "") -> Path:
    """Fit (or reuse) ``model`` on ``scene`` with ``profile`` (and training ``overrides``), sample ``n`` patches,
    compute every metric, unless a result for exactly these weights, sampler, classifier, n, seed and metric
    version exists. Returns the path of the JSON (:func:`result_path`, ``tag`` distinguishes e.g. a second seed).
    """
    t_start = time.perf_counter()
    cfg = make_config(scene, model, profile, overrides)
    n = n or cfg.eval.n_samples
    s = scene_obj or load_scene(scene, data_root)
    dev, runs = resolve_device(device), paths.runs_dir(runs)
    gen = models.create(model).fit(s, cfg, runs, device=device, progress=progress)
    times: dict[str, float] = {}
    net, cinfo = _timed(times, "classifier", lambda: clf.train_classifier(
        s, steps=cfg.eval.classifier_steps, random_state=cfg.eval.seed, device=dev, cache_dir=runs / "classifiers",
        progress=progress))
    net_a, ainfo = _timed(times, "authors_classifier", lambda: authors_classifiers(
        s, cfg, dev, runs / "classifiers", progress))
    key = cache_key(gen.weights_hash(), gen.sampling_key(), state_hash(net), n, cfg.eval.seed)
    exact_key = {"version": PAPER_EXACT_VERSION, "authors_classifier_hash": state_hash(net_a),
                 "draws": cfg.eval.paper_draws, "draw_size": min(cfg.eval.paper_draw_size, n)}
    phys_key = {"version": PHYSICAL_VERSION, "d": cfg.unmixing.d or s.n_classes,
                "vca_seed": cfg.unmixing.random_state}
    out = result_path(scene, model, profile, results, tag)
    if not force and _matches(out, key):
        old = json.loads(out.read_text())
        new_exact, new_phys = old.get("paper_exact_key") != exact_key, old.get("physical_key") != phys_key
        if not (new_exact or new_phys):
            return out
        if new_exact:  # cached samples: only the paper-exact block is new
            Y = generate(gen, n, cfg.eval.seed, device, progress)
            old.update(paper_exact=_paper_exact(Y, s, cfg, net_a, dev, times), paper_exact_key=exact_key,
                       authors_classifier=ainfo, paper_exact_times_s=times, paper_exact_git_commit=git_commit())
        if new_phys:
            Y, X = generate_with_abundances(gen, n, cfg.eval.seed, device, progress)
            real = patches(s, Y.shape[-1], n, random_state=cfg.eval.seed + 1)
            old.update(physical=_physical(Y, X, real, s, cfg, times), physical_key=phys_key,
                       physical_git_commit=git_commit())
        atomic_write_text(out, json.dumps(old, indent=2))
        return out
    Y, X = _timed(times, "sample", lambda: generate_with_abundances(gen, n, cfg.eval.seed, device, progress))
    if Y.shape[:2] != (n, s.bands):
        raise ValueError(f"{model}: samples have shape {Y.shape}; expected ({n}, {s.bands}, h, w)")
    real = patches(s, Y.shape[-1], n, random_state=cfg.eval.seed + 1)
    m = _metrics(Y, real, s, cfg, net, dev, times)
    exact = _paper_exact(Y, s, cfg, net_a, dev, times)
    phys = _physical(Y, X, real, s, cfg, times)
    train_info = {}
    if (gen.run_dir_ / "train_info.json").is_file():
        train_info = json.loads((gen.run_dir_ / "train_info.json").read_text())
    record = {
        "scene": scene, "model": model, "profile": profile, "control": models.is_control(model), **key,
        "metrics": m, "paper_exact": exact, "paper_exact_key": exact_key, "authors_classifier": ainfo,
        "physical": phys, "physical_key": phys_key,
        "training_hash": cfg.training_hash(), "run_dir": str(gen.run_dir_),
        "train_overrides": overrides or {}, "train_info": train_info, "sampler": gen.sampler_settings(),
        "classifier": {k: cinfo.get(k) for k in ("holdout_accuracy", "holdout_balanced_accuracy",
                                                  "holdout_majority_share", "train_accuracy", "steps", "n_train",
                                                  "n_holdout") if k in cinfo},
        "git_commit": git_commit(), "device": str(dev), "machine": machine_description(dev),
        "times_s": times, "wall_time_s": round(time.perf_counter() - t_start, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(record, indent=2))
    return out
