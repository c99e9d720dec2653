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
sampler settings, both classifiers' weights, n, the seed and :data:`METRIC_VERSION`, and when it was computed on
this machine (the evaluation leaves a marker in the run directory, :func:`evaluation_marker`; cached samples do not
count, since 05 caches them before 06 evaluates). A fresh training therefore always
means a fresh evaluation, and a committed result (computed elsewhere, from the shipped weights) is recomputed once
here, which is what the verify report compares (``force`` recomputes anyway). Real-side statistics shared by every
generator of a table (classifier outputs of the real patches, their simplex angle, k-NN radii) are memoised by
content within a process.
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
from .metrics import registry
from .metrics._common import memo
from .utils import atomic_save_npy, atomic_write_text, resolve_device, state_hash

__all__ = ["evaluate", "METRIC_VERSION", "compute_metrics", "machine_description", "git_commit", "generate",
           "result_path", "cache_key", "result_status", "generate_with_abundances", "scene_endmembers",
           "sample_cache", "classifier_hash", "evaluation_marker"]

# The version of the two fixed blocks of every record, the paper-exact and the physical one (part of every record's
# key; the ``metrics`` block's metrics carry their own versions: hudlib.metrics.registry).
METRIC_VERSION = 5


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


def classifier_hash(net: torch.nn.Module) -> str:
    """The 16-hex content hash of a classifier's weights that keys every result."""
    return state_hash(net, 16)


def sample_cache(run_dir, weights_hash: str, sampling_key: str, n: int, seed: int, kind: str = "samples") -> Path:
    """``<run dir>/<kind>_<weights hash>_n<n>_seed<seed>_<sampling key>.npy`` (kind: samples or abundances)."""
    return Path(run_dir) / f"{kind}_{weights_hash}_n{n}_seed{seed}_{sampling_key}.npy"


def _gen_cache(gen, n: int, seed: int, kind: str = "samples") -> Path:
    return sample_cache(gen.run_dir_, gen.weights_hash(), gen.sampling_key(), n, seed, kind)


def generate(gen, n: int, seed: int, device="auto", progress: bool = False) -> np.ndarray:
    """``n`` samples ``(n, bands, 32, 32)`` from a fitted generator with its config's sampler, cached in its run
    directory under a name holding its weights hash, n, seed and the sampler settings. A generator with abundances
    caches them too (:func:`generate_with_abundances`), so that the figures (05) and the evaluation (06) sample it
    once, not twice."""
    if gen.has_abundances:
        return generate_with_abundances(gen, n, seed, device, progress)[0]
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


def scene_endmembers(s, cfg) -> np.ndarray:
    """The scene's VCA endmembers ``(bands, d)`` with the reference generator's (HUD's) d and seed at ``cfg``'s
    profile: the common simplex of every generator's physical-consistency block (memoised by the scene's content)."""
    from .unmixing import vca

    u = make_config(s.name, models.reference_name(), cfg.profile).unmixing
    d = u.d or s.n_classes
    return memo("vca", lambda: vca(s.cube, d, random_state=u.random_state)[0], s.cube, key=(d, u.random_state))


PSEUDO_LABELS_NOTE = ("pseudo-classes: argmax of the FCLS abundances on the scene's VCA endmembers (d = n_classes); "
                      "the cube has no class map")


def with_labels(s, cfg):
    """``s`` when it has labelled pixels; else a copy whose class map is the pseudo-classes of
    :data:`PSEUDO_LABELS_NOTE` (1 + argmax of the FCLS abundances on :func:`scene_endmembers`), so the
    classifier-based metrics (IS, FID, SD) are computed on stated classes instead of failing; ``labels_note`` says
    so wherever the numbers appear."""
    import dataclasses

    from .unmixing import fcls

    if (np.asarray(s.gt) > 0).any():
        return s
    X = fcls(s.cube, scene_endmembers(s, cfg), progress=False)
    return dataclasses.replace(s, gt=(np.argmax(X, axis=0) + 1).astype(np.int64), labels_note=PSEUDO_LABELS_NOTE)


def _physical(Y, X, real, s, cfg, times: dict) -> dict:
    """:func:`hudlib.metrics.physical_consistency` of samples ``Y`` and abundances ``X`` (or None), with the real
    patches' simplex angle as reference."""
    def run():
        E = scene_endmembers(s, cfg)
        out = metrics.physical_consistency(Y, E, X)
        out["simplex_angle_mean_real"] = memo("simplex_angle_real", lambda: metrics.physical_consistency(
            real, E)["simplex_angle_mean"], real, E)
        seed = make_config(s.name, models.reference_name(), cfg.profile).unmixing.random_state
        out["endmembers"] = f"VCA of the scene, d = {E.shape[1]}, seed {seed}"
        return out
    return _timed(times, "physical", run)


def result_path(scene: str, model: str, profile: str, results=None, tag: str = "") -> Path:
    """``results/<scene>/<model>/<profile>[-<tag>].json``."""
    return paths.results_dir(results) / scene / model / (f"{profile}-{tag}.json" if tag else f"{profile}.json")


def cache_key(weights_hash: str, sampling_key: str, classifier_hash: str | None, n: int, seed: int,
              authors_classifier_hash: str | None = None, metric_set: str = "all") -> dict:
    """Everything a result depends on besides the code of the metrics (the blocks': :data:`METRIC_VERSION`; each
    metric's: its registered version, stored beside its value in ``metric_versions``)."""
    return {"weights_hash": weights_hash, "sampling_key": sampling_key, "classifier_hash": classifier_hash,
            "authors_classifier_hash": authors_classifier_hash, "n": n, "seed": seed,
            "metric_version": METRIC_VERSION, "metric_set": metric_set}


_KEY_FIELDS = tuple(cache_key("", "", None, 0, 0))


def evaluation_marker(run_dir, result) -> Path:
    """Where :func:`evaluate` notes, in the run directory, that it computed the record at ``result`` on this machine.
    Run directories are never shipped (:mod:`hudlib.checkpoints` exports only the artefacts sampling reads), so a
    committed record has no marker in a fresh clone, even once 05 has cached its samples there."""
    h = hashlib.sha256(str(Path(result).resolve()).encode()).hexdigest()[:16]
    return Path(run_dir) / "evaluated" / f"{h}.json"


def _computed_here(rec: dict, run_dir, result) -> bool:
    """Was ``rec`` (stored at ``result``) computed on this machine from ``run_dir``? Only if the evaluation's own
    marker names the same key. A committed record computed elsewhere is recomputed here once, so that
    ``./run_all.sh`` verifies it (results/verify_*.md)."""
    f = evaluation_marker(run_dir, result)
    if not f.is_file():
        return False
    try:
        mark = json.loads(f.read_text())
    except json.JSONDecodeError:
        return False
    return mark == {k: rec.get(k) for k in _KEY_FIELDS}


def _reusable(path: Path, key: dict, run_dir: Path) -> dict | None:
    """The stored record at ``path`` if it matches ``key`` and was computed here (from ``run_dir``), else None."""
    if not path.is_file():
        return None
    old = json.loads(path.read_text())
    if not all(old.get(k) == v for k, v in key.items()):
        return None
    return old if _computed_here(old, run_dir, path) else None


def result_status(scene: str, model: str, profile: str, runs=None, results=None, n: int | None = None,
                  overrides=None, tag: str = "") -> dict:
    """What :func:`evaluate` would do, without training or sampling anything: ``{"trained": bool, "evaluated":
    bool}``. ``evaluated`` means a result exists for the weights now on disk (same weights hash, n, seed and metric
    version) and was computed on this machine (:func:`evaluation_marker`); the classifiers' hashes are checked
    when evaluating."""
    cfg = make_config(scene, model, profile, overrides)
    run_dir = models.run_dir_for(cfg, paths.runs_dir(runs))
    wh = models.get(model).weights_hash_at(run_dir)
    path = result_path(scene, model, profile, results, tag)
    if wh is None or not path.is_file():
        return {"trained": wh is not None, "evaluated": False}
    old = json.loads(path.read_text())
    same = all(old.get(k) == v for k, v in (("weights_hash", wh), ("n", n or cfg.eval.n_samples),
                                            ("seed", cfg.eval.seed), ("metric_version", METRIC_VERSION)))
    stale = _stale_metrics(old, old.get("metric_set", "all")) if old.get("metric_set") in registry.metric_sets() \
        else ["?"]
    return {"trained": True, "evaluated": same and not stale and _computed_here(old, run_dir, path)}


def _stale_metrics(rec: dict, metric_set: str) -> list[str]:
    """The metrics of ``metric_set`` that ``rec`` lacks or holds at another version than the registered one."""
    have = rec.get("metric_versions") or {}
    return [n for n in registry.metric_names(metric_set) if have.get(n) != registry.get_metric(n).version
            or n not in (rec.get("metrics") or {})]


def _timed(times: dict, name: str, fn):
    t0 = time.perf_counter()
    out = fn()
    times[name] = round(time.perf_counter() - t0, 2)
    return out


def compute_metrics(Y: np.ndarray, real: np.ndarray, s, cfg, net, dev, which, times: dict | None = None) -> dict:
    """The registered metrics ``which`` (:mod:`hudlib.metrics.registry`) of generated patches ``Y``
    ``(n, bands, 32, 32)`` against scene ``s`` and ``real`` patches, with their by-products (real-side values)."""
    ctx = registry.MetricContext(Y, real, s, cfg, net, dev, times=times if times is not None else {})
    return registry.compute_metrics(ctx, which)[0]


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


def sound_classifier(s, cfg, dev, cache_dir, progress: bool = False):
    """The sound classifier behind IS/FID/SD (:func:`hudlib.classifier.train_classifier` with the profile's
    ``eval`` settings), cached in ``cache_dir``."""
    e = cfg.eval
    return clf.train_classifier(s, steps=e.classifier_steps, batch_size=e.classifier_batch, lr=e.classifier_lr,
                                weight_decay=e.classifier_weight_decay, random_state=e.seed, device=dev,
                                cache_dir=cache_dir, progress=progress)


def _paper_exact(Y, s, cfg, net_a, dev, times: dict) -> dict:
    """:func:`hudlib.metrics.paper_exact.paper_exact_metrics` of ``Y`` with the authors' classifier ``net_a``."""
    from .metrics import paper_exact as PE

    e = cfg.eval
    out = lambda x: metrics.authors_pixel_outputs(net_a, x, device=dev)  # noqa: E731
    O = PE.original_image(s)
    real_feats = memo("authors_real_features", lambda: out(O[None])[1], O, key=(classifier_hash(net_a),))
    return _timed(times, "paper_exact", lambda: PE.paper_exact_metrics(
        Y, s, classifier=out, draws=e.paper_draws, draw_size=min(e.paper_draw_size, len(Y)), random_state=e.seed,
        device=dev, real_features=real_feats))


def evaluate(scene: str, model: str, profile: str, n: int | None = None, runs=None, results=None,
             device: str = "auto", progress: bool = True, data_root=None, force: bool = False,
             scene_obj=None, overrides=None, tag: str = "", metric_set: str = "all") -> Path:
    """Fit (or reuse) ``model`` on ``scene`` with ``profile`` (and training ``overrides``), sample ``n`` patches,
    compute the registered metrics of ``metric_set`` (:func:`hudlib.metrics.registry.metric_names`) and the
    paper-exact and physical blocks, unless a result for exactly these weights, sampler, classifiers, n, seed and
    block version was computed here already; then only the metrics it lacks or holds at an older version are
    computed and added to it.
    Returns the path of the JSON (:func:`result_path`; ``tag`` distinguishes e.g. a second seed).
    """
    names = registry.metric_names(metric_set)  # refuses an unknown set
    t_start = time.perf_counter()
    cfg = make_config(scene, model, profile, overrides)
    n = n or cfg.eval.n_samples
    s = scene_obj or load_scene(scene, data_root)
    dev, runs = resolve_device(device), paths.runs_dir(runs)
    gen = models.create(model).fit(s, cfg, runs, device=device, progress=progress)
    s = with_labels(s, cfg)  # a cube without a class map: the classifier-based metrics on stated pseudo-classes
    times: dict[str, float] = {}
    net, cinfo = _timed(times, "classifier", lambda: sound_classifier(s, cfg, dev, runs / "classifiers", progress))
    net_a, ainfo = _timed(times, "authors_classifier", lambda: authors_classifiers(
        s, cfg, dev, runs / "classifiers", progress))
    key = cache_key(gen.weights_hash(), gen.sampling_key(), classifier_hash(net), n, cfg.eval.seed,
                    classifier_hash(net_a), metric_set)
    out = result_path(scene, model, profile, results, tag)
    old = None if force else _reusable(out, key, gen.run_dir_)
    todo = _stale_metrics(old, metric_set) if old is not None else list(names)
    if old is not None and not todo:
        return out
    Y, X = _timed(times, "sample", lambda: generate_with_abundances(gen, n, cfg.eval.seed, device, progress))
    if Y.shape[:2] != (n, s.bands):
        raise ValueError(f"{model}: samples have shape {Y.shape}; expected ({n}, {s.bands}, h, w)")
    real = patches(s, Y.shape[-1], n, random_state=cfg.eval.seed + 1)
    ctx = registry.MetricContext(Y, real, s, cfg, net, dev, times=times)
    if old is not None:  # computed here for these weights: only the added or re-versioned metrics are computed
        ctx.values.update({k: v for k, v in old["metrics"].items() if k not in todo})
        m, versions = registry.compute_metrics(ctx, todo)
        old["metrics"] = {**old["metrics"], **m}  # m holds the kept values as they were, and the new ones
        old["metric_versions"] = {**(old.get("metric_versions") or {}), **versions}
        old["skipped_metrics"] = {**{k: v for k, v in (old.get("skipped_metrics") or {}).items() if k not in todo},
                                  **ctx.skipped}
        old["times_s"] = {**old.get("times_s", {}), **times}
        atomic_write_text(out, json.dumps(old, indent=2))
        return out
    m, versions = registry.compute_metrics(ctx, names)
    exact = _paper_exact(Y, s, cfg, net_a, dev, times)
    phys = _physical(Y, X, real, s, cfg, times)
    train_info = {}
    if (gen.run_dir_ / "train_info.json").is_file():
        train_info = json.loads((gen.run_dir_ / "train_info.json").read_text())
    record = {
        "scene": scene, "model": model, "profile": profile, "control": models.is_control(model), **key,
        "metrics": m, "metric_versions": versions, "paper_exact": exact, "authors_classifier": ainfo, "physical": phys,
        "training_hash": cfg.training_hash(), "run_dir": str(gen.run_dir_),
        "train_overrides": overrides or {}, "train_info": train_info, "sampler": gen.sampler_settings(),
        "classifier": {k: cinfo.get(k) for k in ("holdout_accuracy", "holdout_balanced_accuracy",
                                                  "holdout_majority_share", "train_accuracy", "steps", "n_train",
                                                  "n_holdout") if k in cinfo},
        "labels_note": getattr(s, "labels_note", ""), "skipped_metrics": ctx.skipped,
        "git_commit": git_commit(), "device": str(dev), "machine": machine_description(dev),
        "times_s": times, "wall_time_s": round(time.perf_counter() - t_start, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(record, indent=2))
    mark = evaluation_marker(gen.run_dir_, out)
    mark.parent.mkdir(exist_ok=True)
    atomic_write_text(mark, json.dumps(key))
    return out
