"""The downstream benchmark with HUD-cond (notebook 09, ``results/downstream_<profile>.{md,json}``).

One HUD-cond per fold of the protocol's splitter, trained (or reused: a finished run or a shipped checkpoint) on
that fold's training ground only (:class:`hudlib.models.hud_cond.HUDCond` with ``cond.fold``). Before the runs,
each fold's generator resources are prepared (:func:`prepare_resources`): HUD-cond pools for layouts cropped from
the fold's training ground and from its inner validation ground, at every guidance weight of the protocol (cached on
disk beside the runs, keyed by weights, layouts and sampler), the UAE's endmembers, and the training-side layout
agreement. Then :func:`hudlib.downstream.benchmark.run`, the statistics (:mod:`~.report`), the leak audit and the
report. :func:`run_or_reuse` returns the stored result when it was computed with the same weights and protocol.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import sklearn
import torch

from .. import paths
from ..errors import DataError
from ..splits import unpack_mask
from ..utils import atomic_save_npy
from ._checks import seed
from .benchmark import run
from .classifiers import NetClassifier
from .protocol import DOWNSTREAM_VERSION, Protocol, protocol_for
from .providers import FoldResources, Ground, layout_crops, pool_draw
from .report import summarise, write_result

__all__ = ["GENERATOR", "fold_configs", "fold_generators", "unsupported", "prepare_resources", "leak_audit", "assemble",
           "experiment", "experiment_key", "run_or_reuse"]

GENERATOR = "HUD-cond"


def fold_configs(scene_name: str, profile: str, protocol: Protocol | None = None) -> dict:
    """``{fold: RunConfig}`` of the HUD-cond of each fold the protocol runs (its splitter's spec in the config)."""
    from ..config import make_config

    protocol = protocol or protocol_for(profile)
    return {f: make_config(scene_name, GENERATOR, profile, {"cond": {"fold": int(f), "split": protocol.splitter.spec}})
            for f in protocol.fold_indices}


def unsupported(scene, profile: str, protocol: Protocol | None = None) -> str | None:
    """Why the protocol's folds cannot all be trained on ``scene`` (the first fold's reason), or None: the downstream
    benchmark and the labelled-scene study need every fold's generator."""
    from .. import models

    for f, cfg in fold_configs(scene.name, profile, protocol).items():
        why = models.unsupported(GENERATOR, scene, cfg)
        if why:
            return f"{GENERATOR}: {why} (the protocol's split {cfg.cond.split})"
    return None


def fold_generators(scene, profile: str, runs=None, device="auto", progress: bool = False,
                    protocol: Protocol | None = None) -> dict:
    """``{fold: fitted HUD-cond}``: trained on each fold's training ground (or reused)."""
    from .. import models

    out = {}
    for f, cfg in fold_configs(scene.name, profile, protocol).items():
        g = models.create(GENERATOR).fit(scene, cfg, paths.runs_dir(runs), device=device, progress=progress)
        out[f] = g
    return out


def _agreement_net(ground: Ground, protocol: Protocol, random_state: int) -> NetClassifier:
    """A net of every labelled pixel of the ground (the protocol's net settings, its smallest epoch count)."""
    r, c = ground.labelled()
    return NetClassifier(n_classes=ground.n_classes, epochs=protocol.net_epochs[0], random_state=random_state,
                         **protocol.net_params).fit(ground.windows(r, c), ground.gt[r, c])


def prepare_resources(scene, gens: dict, protocol: Protocol, cache_dir=None, device="auto",
                      progress: bool = False) -> tuple[dict, dict]:
    """``({fold: FoldResources}, {fold: layout fidelity})``. Pools: ``protocol.pool_per_class`` layouts per class
    cropped from each fold's training ground and from its inner validation ground, sampled by the fold's HUD-cond at
    every ``protocol.guidances`` weight (the same layouts and seed at every weight); stored as ``.npy`` under
    ``cache_dir`` (default ``runs/<scene>/downstream-pools``) and reused when weights, layouts and sampler agree.
    Layout fidelity: a net of every real label of the fold's training ground labels each outer pool's pixels;
    per class and overall agreement with the layout at each w, beside that net's accuracy on the fold's held-out
    pixels (reported as the ceiling, never used to choose)."""
    from .labels import scene_windows

    cache = Path(cache_dir) if cache_dir else paths.runs_dir(None) / scene.name / "downstream-pools"
    cache.mkdir(parents=True, exist_ok=True)
    folds = protocol.splitter.split(scene.gt)
    resources, fidelity = {}, {}
    for f, g in gens.items():
        fold = g.fold_of(scene)
        if fold is None or fold.index != f or fold.spec != protocol.splitter.spec:
            raise DataError(f"{GENERATOR}: expected a run on fold {f} of {protocol.splitter.spec}")
        outer = Ground.of(fold, scene)
        inner = Ground.of(fold.inner(scene.gt, n_folds=protocol.inner_folds)[0], scene, name=f"{fold.name} inner")
        pools = {}
        for ground in (outer, inner):
            L = layout_crops(ground, g.config_.train.patch_size, protocol.pool_per_class,
                             seed("layouts", f, ground.name))
            for w in protocol.guidances:
                st = g.sampler_settings(layout=L, guidance=float(w))
                key = hashlib.sha1(json.dumps([g.weights_hash(), st, len(L)], sort_keys=True,
                                              default=str).encode()).hexdigest()[:16]
                py, pl = cache / f"pool-{key}-Y.npy", cache / f"pool-{key}-L.npy"
                if not (py.is_file() and pl.is_file()):
                    Y = g.sample(len(L), random_state=seed("pool", f, ground.name), layout=L, guidance=float(w),
                                 device=device, progress=progress)
                    atomic_save_npy(py, np.asarray(Y, np.float32))
                    atomic_save_npy(pl, L)
                pools[(ground.name, float(w))] = (str(py), str(pl))
        res = FoldResources(endmembers=np.asarray(g.uae_.endmembers), pools=pools)
        net = _agreement_net(outer, protocol, seed("agreement", f))
        hr, hc = np.nonzero(folds[f].held)
        ceiling = float((net.predict(scene_windows(scene.cube, hr, hc)) == scene.gt[hr, hc]).mean())
        fid = {"heldout_accuracy": ceiling, "per_guidance": {}}
        for w in protocol.guidances:
            Y, L = res.pool(outer.name, w)
            i, r, c = np.nonzero(L > 0)
            W, y = pool_draw(Y, L, L[i, r, c], int(len(i)), np.random.default_rng(0))
            pred = net.predict(W)
            per = {int(k): float((pred[y == k] == k).mean()) for k in np.unique(y)}
            res.agreement[float(w)] = per
            fid["per_guidance"][f"{float(w):g}"] = {"agreement": float((pred == y).mean()), "n_pixels": int(len(y)),
                                                    "per_class": {str(k): v for k, v in per.items()}}
        resources[f], fidelity[f] = res, fid
    return resources, fidelity


def leak_audit(scene, gens: dict, protocol: Protocol) -> list[dict]:
    """Per fold: the pixels each learner was handed, counted in the fold's buffer and held-out region. HUD-cond:
    the training-ground mask saved with its weights (``split.json``, what VCA, the UAE and every crop were limited
    to); the providers: the ground object they are handed (the fold's training ground; its inner validation ground
    lies inside it). Both counts are 0 by construction; this records that they are."""
    out = []
    folds = protocol.splitter.split(scene.gt)
    for f in protocol.fold_indices:
        fold = folds[f]
        learners = [("providers (" + ", ".join(protocol.rows) + ") and classifiers", fold.train)]
        if f in gens:
            rec = json.loads((Path(gens[f].run_dir_) / "split.json").read_text())
            if "train_mask" not in rec:
                raise DataError(f"{gens[f].run_dir_}/split.json: no training-ground mask recorded; retrain the run")
            learners.insert(0, (f"{GENERATOR} ({Path(gens[f].run_dir_).name})", unpack_mask(rec["train_mask"])))
        for name, mask in learners:
            out.append({"fold": f, "learner": name, "pixels_trained_on": int(mask.sum()),
                        "pixels_in_buffer": int((mask & fold.buffer).sum()),
                        "pixels_in_held_out": int((mask & fold.region).sum())})
    return out


def _machine() -> dict:
    from ..checkpoints import machine_name

    return dict(cpu=machine_name(), arch=platform.machine(), cpu_count=os.cpu_count(), platform=platform.platform(),
                torch=torch.__version__, sklearn=sklearn.__version__, numpy=np.__version__)


def experiment_key(gens: dict, protocol: Protocol) -> dict:
    """What a result depends on besides its code (:data:`DOWNSTREAM_VERSION`): the protocol and the HUD-cond
    weights of each fold."""
    settings = {k: v for k, v in protocol.to_dict().items() if k != "n_jobs"}  # workers do not change a number
    return {"version": DOWNSTREAM_VERSION, "protocol": settings,
            "weights": {str(f): g.weights_hash() for f, g in gens.items()}}


def assemble(scene, profile: str, protocol: Protocol, gens: dict, fidelity: dict, out: dict) -> dict:
    """The JSON-able result of :func:`~.benchmark.run`'s ``out``: the protocol, the folds' records, the generators,
    the layout fidelity, the leak audit, the records and choices, the machine, and :func:`~.report.summarise`."""
    folds = protocol.splitter.split(scene.gt)
    result = {"version": DOWNSTREAM_VERSION, "scene": scene.name, "profile": profile, "protocol": protocol.to_dict(),
              "folds": [folds[f].record(scene.gt) for f in protocol.fold_indices],
              "generators": {str(f): {"weights_hash": g.weights_hash(), "run": Path(g.run_dir_).name,
                                      "sampler": {k: v for k, v in g.sampler_settings().items()
                                                  if k not in ("layout", "guidance")}} for f, g in gens.items()},
              "layout_fidelity": {str(f): v for f, v in fidelity.items()},
              "leak_audit": leak_audit(scene, gens, protocol),
              "records": out["records"], "choices": out["choices"], "machine": _machine(),
              "runs_wall_time_s": out["wall_time_s"]}
    result.update(summarise(result))
    result["key"] = experiment_key(gens, protocol)
    return result


def experiment(scene, profile: str = "quick", runs=None, device="auto", progress: bool = False,
               protocol: Protocol | None = None, gens: dict | None = None, n_jobs: int | None = None) -> dict:
    """The whole benchmark (module docstring); returns the JSON-able result (:func:`assemble`)."""
    t0 = time.perf_counter()
    protocol = protocol or protocol_for(profile)
    if protocol.uses_generator:
        gens = gens if gens is not None else fold_generators(scene, profile, runs, device, progress, protocol)
        resources, fidelity = prepare_resources(scene, gens, protocol, paths.runs_dir(runs) / scene.name /
                                                "downstream-pools", device, progress)
    else:
        gens, resources, fidelity = {}, {}, {}
    result = assemble(scene, profile, protocol, gens, fidelity, run(scene, protocol, resources, progress=progress,
                                                                   n_jobs=n_jobs))
    result["wall_time_s"] = round(time.perf_counter() - t0, 1)
    return result


def run_or_reuse(scene, profile: str, runs=None, results=None, recompute: bool = True, device="auto",
                 progress: bool = False) -> tuple[dict, bool]:
    """``(result, reused)``: the stored ``results/downstream_<profile>.json`` when it was computed with the same
    HUD-cond weights and protocol (:func:`experiment_key`) and ``recompute`` is False, else a fresh
    :func:`experiment` (written with :func:`~.report.write_result`). The default ``./run_all.sh`` reuses the
    committed benchmark; ``--downstream`` or ``--retrain`` recompute it."""
    protocol = protocol_for(profile)
    gens = fold_generators(scene, profile, runs, device, progress, protocol) if protocol.uses_generator else {}
    key = experiment_key(gens, protocol)
    path = paths.results_dir(results) / f"downstream_{profile}.json"
    if not recompute and path.is_file():
        old = json.loads(path.read_text())
        if old.get("key") == json.loads(json.dumps(key)):
            write_result(old, path.parent, profile)  # the Markdown, rendered again from the stored records
            return old, True
    result = experiment(scene, profile, runs, device, progress, protocol, gens)
    write_result(result, path.parent, profile)
    return result, False
