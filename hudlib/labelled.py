"""Labelled synthetic scenes: HUD-cond draws a whole scene from a class map; how real are its fields, does it keep
its labels, and could a classifier pretrain on such scenes?

Every generator here is a fold's HUD-cond of the downstream protocol (:func:`hudlib.downstream.fold_generators`):
it was trained on that fold's training ground only, and so were the maps it is given (procedural maps fitted to the
ground, :class:`hudlib.layouts.FieldLayout`) and every classifier (labels drawn on the ground by
:class:`hudlib.downstream.RealSet`); the fold's held-out pixels score them. The one split object is the protocol's
splitter (:func:`hudlib.downstream.protocol_for`).

The study (:func:`labelled_study`), at the real scene's size, for the profile's seeds
(:func:`hudlib.synthesis.study_seeds`):

1. **Field scale** (the protocol's first fold): scenes conditioned on the real map and on procedural maps;
   :func:`hudlib.metrics.field_scale_statistics` of their FCLS abundances (the scene's VCA endmembers, as the scene
   study) on ``crop`` × ``crop`` windows at a 4 × 4 grid of shifts, each seed's value the median over the shifts,
   against the real scene's spread (min..max) over the same shifts; seam score at the default stride against the
   real scene's over shifted grids; the statistics of the maps themselves (procedural against real).
2. **Label agreement** (every fold): a net trained on every real label of the fold's training ground (the protocol's
   net, its first epoch setting) labels the synthesized scene's labelled pixels; its agreement with the map, per
   class, beside the same net's accuracy on the fold's real held-out pixels (the ceiling).
3. **Crop quality**: the sound metrics (FID, SWD, patch recall) of random 32 × 32 crops of the scenes against real
   patches, beside the same generator's patches conditioned on crops of the real map.
4. **Train on synthetic, test on real** (every fold, the protocol's draws and budgets): a net trained only on the
   synthetic scenes' labelled pixels; nets pretrained on them and fine-tuned on a draw's real labels; the same with
   *class-statistics scenes* (the same maps, each pixel drawn from its class's Gaussian on the fold's ground: the
   trivial generator); real labels alone; every real label of the ground (ceiling). No option is tuned: every net
   uses the protocol's settings and first epoch count. Paired one-sided Wilcoxon tests with Holm's correction.

Sources of the facts used here: docs/methods.md ("Labelled scenes").
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np

from . import paths
from .errors import DataError

__all__ = ["STUDY_VERSION", "SETTINGS", "synthesize_labelled", "labelled_study", "study_key", "write_study",
           "read_study", "markdown", "labelled_figure", "figure_scenes", "class_statistics_scene", "run_or_reuse"]

STUDY_VERSION = 1
# The study's settings, in one place: the crop side for the field-scale spread (a fraction of the scene's shorter
# side), synthetic labelled pixels per class kept from each scene for training, crops for the quality metrics.
SETTINGS = {"crop_fraction": 0.75, "shifts": 4, "synthetic_per_class": 400, "n_crops": 256}


def _scene_stats(A: np.ndarray, crop: int, shifts: int) -> list[dict]:
    """:func:`hudlib.metrics.field_scale_statistics` of ``crop`` × ``crop`` windows of the abundances ``A``
    ``(d, H, W)`` at a ``shifts`` × ``shifts`` grid of offsets spread evenly over the scene."""
    from .metrics import field_scale_statistics

    H, W = A.shape[1:]
    rs = np.linspace(0, H - crop, shifts).round().astype(int)
    cs = np.linspace(0, W - crop, shifts).round().astype(int)
    return [field_scale_statistics(A[:, r:r + crop, c:c + crop]) for r in rs for c in cs]


FIELD_KEYS = ("autocorrelation_length", "median_region_size", "share_ge_256", "share_ge_1024")


def _median_stats(stats: list[dict]) -> dict:
    return {k: float(np.median([s[k] for s in stats])) for k in FIELD_KEYS}


def class_statistics_scene(ground, L: np.ndarray, random_state=0) -> np.ndarray:
    """The trivial generator's scene for the class map ``L`` ``(H, W)``: each pixel of class k drawn from the
    Gaussian (per-band mean and standard deviation) of class k's labelled spectra on ``ground``
    (:class:`hudlib.downstream.Ground`), each unlabelled pixel a random spectrum of the ground's unlabelled pixels.
    Classes the ground lacks are drawn from all its labelled spectra. Returns ``(bands, H, W)`` float32."""
    rng = np.random.default_rng(random_state)
    cube, gt, mask = ground.cube, ground.gt, ground.mask
    out = np.empty((cube.shape[0],) + L.shape, np.float32)
    labelled = cube[:, gt > 0]
    unl = cube[:, mask & (gt == 0)]
    if unl.shape[1] == 0:
        unl = labelled
    for k in np.unique(L):
        where = L == k
        n = int(where.sum())
        if k == 0:
            out[:, where] = unl[:, rng.integers(unl.shape[1], size=n)]
            continue
        S = cube[:, gt == k] if (gt == k).any() else labelled
        mu, sd = S.mean(axis=1), S.std(axis=1)
        out[:, where] = (mu[:, None] + sd[:, None] * rng.standard_normal((S.shape[0], n))).astype(np.float32)
    return np.clip(out, 0.0, None)


def synthesize_labelled(gen, scene, source: str = "procedural", size=None, seed: int = 0, fold="generator",
                        path=None, key=None, guidance=None, device="auto", progress: bool = False, **params):
    """A labelled scene ``(Y (bands, H, W), L (H, W))`` from the layout-conditioned ``gen`` (fitted) and a class map
    made by :func:`hudlib.layouts.make_layout` (``source``, ``size`` (default the scene's), ``seed``, ``path``/
    ``key`` for a file, ``params`` for the procedural generator). ``fold="generator"``: real and procedural maps use
    only the ground ``gen`` was trained on (:meth:`hudlib.models.HUDCond.fold_of`; the whole map for a run without a
    fold); None: the whole map; or a :class:`hudlib.splits.Fold`. The scene is sampled with ``random_state=seed``."""
    from .layouts import make_layout

    if fold == "generator":
        fold = gen.fold_of(scene)
    H, W = (int(v) for v in (size or scene.gt.shape))
    L = make_layout(source, (H, W), scene=scene, random_state=seed, fold=fold, path=path, key=key, **params)
    Y, _ = gen.synthesize(H, W, random_state=int(seed), layout=L, device=device, progress=progress,
                          **({} if guidance is None else {"guidance": float(guidance)}))
    return Y, L


def _pixels(Y: np.ndarray, L: np.ndarray, per_class: int, n_classes: int, random_state: int):
    """Windows ``(n, bands, 3, 3)`` and labels of up to ``per_class`` labelled pixels per class of a scene."""
    from .downstream import draw_labels, scene_windows

    r, c = draw_labels(L, np.ones(L.shape, bool), per_class, random_state=random_state, cap=True,
                       n_classes=n_classes)
    return scene_windows(Y, r, c), L[r, c].astype(np.int64)


def _agreement(net, Y: np.ndarray, L: np.ndarray) -> dict:
    """How often ``net`` labels the labelled pixels of a scene ``Y`` as its map ``L`` does: overall and per class."""
    from .downstream import scene_windows

    r, c = np.nonzero(L > 0)
    y = L[r, c]
    pred = net.predict(scene_windows(Y, r, c))
    return {"agreement": float((pred == y).mean()), "n_pixels": int(len(y)),
            "per_class": {str(int(k)): float((pred[y == k] == k).mean()) for k in np.unique(y)}}


def study_key(gens: dict, protocol, profile: str, seeds) -> dict:
    """What the study's numbers depend on: the generators' weights, the protocol, the seeds, the settings and the
    study's version (a committed result with the same key is reused)."""
    return {"version": STUDY_VERSION, "profile": profile, "seeds": [int(s) for s in seeds],
            "weights": {str(f): g.weights_hash() for f, g in gens.items()},
            "sampler": gens[min(gens)].sampler_settings(), "protocol": protocol.to_dict(), "settings": SETTINGS}


def labelled_study(scene, profile: str = "quick", runs=None, device="auto", progress: bool = False,
                   seeds=None, gens: dict | None = None) -> dict:
    """The study of the module docstring on ``scene`` at ``profile``; returns a JSON-able dict (and, under
    ``"_scenes"``, the first fold's first real-map and procedural scenes and maps for figures)."""
    from . import evaluate as ev
    from . import metrics
    from .downstream import (Ground, NetClassifier, RealSet, classification_metrics, fold_generators, paired_test,
                             protocol_for, scene_windows)
    from .downstream import holm as holm_adjust
    from .downstream._checks import seed
    from .layouts import FieldLayout
    from .synthesis import _grid, study_seeds
    from .unmixing import fcls

    t_start = time.perf_counter()
    prot = protocol_for(profile)
    seeds = study_seeds(profile, seeds)
    gens = gens or fold_generators(scene, profile, runs, device=device, progress=progress, protocol=prot)
    folds = prot.splitter.split(scene.gt)
    K, (H, W) = int(scene.n_classes), scene.gt.shape
    first = min(gens)
    cfg0 = gens[first].config_
    window = cfg0.train.patch_size
    crop = max(window, int(min(H, W) * SETTINGS["crop_fraction"]))
    shifts = SETTINGS["shifts"]
    E = ev.scene_endmembers(scene, cfg0)
    net_kw = {**prot.net_params, "epochs": float(prot.net_epochs[0])}
    block = prot.splitter.block

    def synth(gen, L, s):
        t = time.perf_counter()
        Y, _ = gen.synthesize(H, W, random_state=int(s), layout=L, device=device, progress=progress)
        return Y, time.perf_counter() - t

    # --- real reference: field scale over shifted crops, seams over shifted grids
    real_crops = _scene_stats(fcls(scene.cube, E, progress=False), crop, shifts)
    quarter = max(1, window // 4)
    real_seams = [metrics.seam_score(scene.cube, window, origins=_grid(H, W, window, dy, dx))["score"]
                  for dy in range(0, window, quarter) for dx in range(0, window, quarter)]
    field = {"crop": crop, "shifts": shifts * shifts,
             "real": {k: [float(min(s[k] for s in real_crops)), float(max(s[k] for s in real_crops))]
                      for k in FIELD_KEYS},
             "real_median": _median_stats(real_crops), "sources": {}}
    seams = {"real_shifted_grids": real_seams, "real": metrics.seam_score(scene.cube, window)["score"]}
    maps_stats = {"real": metrics.field_scale_statistics(scene.gt), "procedural": []}
    agreement, times, records, scenes_out = {}, [], [], {}
    crops_for_quality = {"the real map": [], "procedural maps": []}
    for f, gen in sorted(gens.items()):
        fold = folds[f]
        outer = Ground.of(fold, scene)
        hr, hc = np.nonzero(fold.held)
        Hx, Hy = scene_windows(scene.cube, hr, hc), scene.gt[hr, hc].astype(np.int64)
        # the fold's ceiling net: every real label of its training ground
        every = RealSet(outer, outer.gt, outer.mask, "all", seed("draw", f, 0), K, block)
        ceil_net = NetClassifier(n_classes=K, random_state=seed("model", f, "all", 0), **net_kw).fit(
            every.windows, every.labels)
        m = classification_metrics(Hy, ceil_net.predict(Hx))
        records.append(dict(fold=f, draw=None, budget="all", row="ceiling", OA=m["OA"], AA=m["AA"], kappa=m["kappa"]))
        agreement[str(f)] = {"heldout_accuracy": m["OA"], "heldout_per_class": {str(k): v for k, v in
                                                                                 m["per_class"].items()},
                             "procedural": [], "real map": []}
        # procedural maps fitted to the fold's training ground, and their scenes
        est = FieldLayout().fit(scene.gt, fold.train, n_classes=K)
        proc = []
        for s in seeds:
            L = est.sample((H, W), random_state=seed("layout", f, s))
            Y, dt = synth(gen, L, s)
            times.append(dt)
            proc.append((Y, L))
            agreement[str(f)]["procedural"].append(_agreement(ceil_net, Y, L))
        if f == first:
            scenes_out["procedural"] = proc[0]
            maps_stats["procedural"] = [metrics.field_scale_statistics(L) for _, L in proc]
            real_map = []
            for s in seeds:
                Y, dt = synth(gen, scene.gt, s)
                times.append(dt)
                real_map.append((Y, scene.gt))
                agreement[str(f)]["real map"].append(_agreement(ceil_net, Y, scene.gt))
            scenes_out["real map"] = real_map[0]
            for name, sc in (("the real map", real_map), ("procedural maps", proc)):
                per_seed = [_median_stats(_scene_stats(fcls(Y, E, progress=False), crop, shifts)) for Y, _ in sc]
                field["sources"][name] = per_seed
                seams[name] = [metrics.seam_score(Y, window)["score"] for Y, _ in sc]
                crops_for_quality[name] = [Y for Y, _ in sc]
        # train on synthetic (HUD-cond scenes, class-statistics scenes of the same maps), test on real
        hud_X, hud_y, triv_X, triv_y = [], [], [], []
        per = max(1, SETTINGS["synthetic_per_class"] // len(seeds))
        for i, (Y, L) in enumerate(proc):
            x, y = _pixels(Y, L, per, K, seed("synthetic pixels", f, i))
            hud_X.append(x)
            hud_y.append(y)
            T = class_statistics_scene(outer, L, seed("class statistics", f, i))
            x, y = _pixels(T, L, per, K, seed("synthetic pixels", f, i))
            triv_X.append(x)
            triv_y.append(y)
        pre = {}
        for row, X_, y_ in (("HUD-cond scenes", hud_X, hud_y), ("class-statistics scenes", triv_X, triv_y)):
            X_, y_ = np.concatenate(X_), np.concatenate(y_)
            net = NetClassifier(n_classes=K, random_state=seed("model", f, "pretrain", row), **net_kw).fit(X_, y_)
            m = classification_metrics(Hy, net.predict(Hx))
            records.append(dict(fold=f, draw=None, budget=0, row=f"{row} only", OA=m["OA"], AA=m["AA"],
                                kappa=m["kappa"], n_synthetic=int(len(y_))))
            pre[row] = net
        for d in range(prot.draws):
            for b in prot.budgets:
                real = RealSet(outer, outer.gt, outer.mask, b, seed("draw", f, d), K, block)
                mseed = seed("model", f, b, d)
                net = NetClassifier(n_classes=K, random_state=mseed, **net_kw).fit(real.windows, real.labels)
                m = classification_metrics(Hy, net.predict(Hx))
                records.append(dict(fold=f, draw=d, budget=b, row="real", OA=m["OA"], AA=m["AA"], kappa=m["kappa"]))
                for row, base in pre.items():
                    ft = copy.deepcopy(base).set_params(warm_start=True, random_state=mseed)
                    ft.fit(real.windows, real.labels)
                    m = classification_metrics(Hy, ft.predict(Hx))
                    records.append(dict(fold=f, draw=d, budget=b, row=f"pretrain on {row}, fine-tune", OA=m["OA"],
                                        AA=m["AA"], kappa=m["kappa"]))
    # crop quality against real patches (the evaluation's sound classifier and real patches)
    from .data import patches

    dev = ev.resolve_device(device)
    snet, _ = ev.sound_classifier(scene, cfg0, dev, paths.runs_dir(runs) / "classifiers")
    n = SETTINGS["n_crops"] if profile != "smoke" else min(SETTINGS["n_crops"], cfg0.eval.n_samples)
    real_p = patches(scene, window, n, random_state=cfg0.eval.seed + 1)
    from .synthesis import _crops

    which = ("FID", "SWD", "recall_patches", "precision_patches")
    sets = {k: _crops(v, window, n, np.random.default_rng(0)) for k, v in crops_for_quality.items() if v}
    from .downstream import layout_crops

    Lc = layout_crops(Ground(name="scene", cube=scene.cube, gt=scene.gt, mask=np.ones(scene.gt.shape, bool),
                             n_classes=K), window, max(1, n // K), seed("quality layouts"))[:n]
    sets["patches (real-map crops)"] = gens[first].sample(len(Lc), random_state=cfg0.eval.seed, layout=Lc,
                                                         device=device)
    quality = {k: {m_: v for m_, v in ev.compute_metrics(Y, real_p, scene, cfg0, snet, dev, which).items()
                   if m_ in which} for k, Y in sets.items()}
    quality_n = {k: int(len(Y)) for k, Y in sets.items()}
    # statistics: paired one-sided tests, Holm over the family
    tests = _tests(records, prot, paired_test, holm_adjust)
    return {"scene": scene.name, "model": cfg0.model, "profile": profile, "key": study_key(gens, prot, profile, seeds),
            "labels_note": scene.labels_note, "size": [H, W], "window": window,
            "seeds": seeds, "folds": sorted(int(f) for f in gens),
            "field_scale": field, "seams": seams, "maps": maps_stats, "agreement": agreement,
            "quality": quality, "quality_n": quality_n, "records": records, "tests": tests,
            "synthesis_s": [round(t, 2) for t in times], "machine": ev.machine_description(dev),
            "git_commit": ev.git_commit(), "wall_time_s": round(time.perf_counter() - t_start, 1),
            "_scenes": scenes_out}


def _tests(records: list[dict], prot, paired_test, holm_adjust) -> list[dict]:
    """Per budget and metric (OA, AA): each pretrained-then-fine-tuned row against real labels alone, paired by
    fold and draw (one-sided: greater); each synthetic-only row against real labels alone, paired by fold (the
    fold's mean over draws; one-sided: greater). Holm's correction over all of them."""
    def get(row, f, d, b, metric):
        for r in records:
            if r["row"] == row and r["fold"] == f and r["draw"] == d and r["budget"] == b:
                return r[metric]
        return None

    folds = sorted({r["fold"] for r in records})
    rows_ft = sorted({r["row"] for r in records if r["row"].startswith("pretrain")})
    rows_only = sorted({r["row"] for r in records if r["row"].endswith(" only")})
    out = []
    for b in prot.budgets:
        for metric in ("OA", "AA"):
            for row in rows_ft:
                a = [get(row, f, d, b, metric) for f in folds for d in range(prot.draws)]
                c = [get("real", f, d, b, metric) for f in folds for d in range(prot.draws)]
                out.append({"row": row, "versus": "real", "budget": b, "metric": metric, "paired_by": "fold, draw",
                            **paired_test(a, c, "greater")})
            for row in rows_only:
                a = [get(row, f, None, 0, metric) for f in folds]
                c = [float(np.mean([get("real", f, d, b, metric) for d in range(prot.draws)])) for f in folds]
                out.append({"row": row, "versus": "real", "budget": b, "metric": metric, "paired_by": "fold",
                            **paired_test(a, c, "greater")})
    for t, p in zip(out, holm_adjust([t["p"] for t in out])):
        t["p_holm"] = p
    return out


# --------------------------------------------------------------------------------------------- files
def _json_path(results, scene: str, model: str, profile: str) -> Path:
    return paths.results_dir(results) / scene / model / f"labelled_{profile}.json"


def write_study(study: dict, results=None) -> tuple[Path, Path]:
    """``results/<scene>/<model>/labelled_<profile>.json`` (the study without its arrays) and
    ``results/labelled_<profile>.md`` (:func:`markdown` of every scene's stored study of this model and profile, in
    scene-name order: the page covers every scene studied, not only the last one)."""
    from .utils import atomic_write_text

    out = _json_path(results, study["scene"], study["model"], study["profile"])
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps({k: v for k, v in study.items() if not k.startswith("_")}, indent=1))
    md = paths.results_dir(results) / f"labelled_{study['profile']}.md"
    stored = sorted(paths.results_dir(results).glob(f"*/{study['model']}/labelled_{study['profile']}.json"))
    atomic_write_text(md, "\n\n".join(markdown(json.loads(f.read_text())) for f in stored))
    return out, md


def read_study(scene: str, profile: str, results=None, model: str = "HUD-cond") -> dict | None:
    """The written study, or None."""
    p = _json_path(results, scene, model, profile)
    return json.loads(p.read_text()) if p.is_file() else None


def run_or_reuse(scene, profile: str, runs=None, results=None, recompute: bool = False, device="auto",
                 progress: bool = False) -> tuple[dict, bool]:
    """``(study, reused)``: the written study when its :func:`study_key` equals the present one (same weights,
    protocol, seeds, settings, version) and ``recompute`` is False; else :func:`labelled_study`, written."""
    from .downstream import fold_generators, protocol_for
    from .synthesis import study_seeds

    prot = protocol_for(profile)
    gens = fold_generators(scene, profile, runs, device=device, progress=progress, protocol=prot)
    key = study_key(gens, prot, profile, study_seeds(profile))
    old = read_study(scene.name, profile, results)
    if old is not None and not recompute and old.get("key") == json.loads(json.dumps(key, default=str)):
        write_study(old, results)  # the Markdown, rendered again from the stored study
        return old, True
    study = labelled_study(scene, profile, runs, device, progress, gens=gens)
    write_study(study, results)
    return study, False


# --------------------------------------------------------------------------------------------- report
def _inside(v: float, lo_hi) -> bool:
    return lo_hi[0] <= v <= lo_hi[1]


def _fmt(v, digits=2):
    return "—" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def markdown(study: dict) -> str:
    """The study as a results page: field scale against the real spread, seams, label agreement against the ceiling,
    crop quality, and the train-on-synthetic table with its tests."""
    f = study["field_scale"]
    folds = study["folds"]
    lines = [f"# Labelled synthetic scenes on {study['scene']} (profile `{study['profile']}`)", "",
             f"{study['model']} per fold of the downstream protocol's spatial split, sampler "
             f"{', '.join(f'{k} {v}' for k, v in study['key']['sampler'].items() if v is not None and k != 'sampler')}"
             f" ({study['key']['sampler']['sampler']}), "
             f"scenes of the real size {study['size'][0]} × {study['size'][1]}, seeds {study['seeds']}, machine "
             f"{study['machine']}, wall time {study['wall_time_s']:.0f} s (commit {study['git_commit']})."
             + (f" Class map: {study['labels_note']}." if study.get("labels_note") else ""), "",
             "## Field scale (fold 1's generator)", "",
             f"FCLS abundances on the scene's VCA endmembers; statistics on {f['crop']} × {f['crop']} crops at "
             f"{f['shifts']} shifts, a seed's value the median over the shifts; real: min..max over the shifts. "
             "✓ inside the real spread.", "",
             "| conditioned on | seed | autocorrelation length (px) | median region (px) | share ≥ 256 px "
             "| share ≥ 1024 px |",
             "|---|---|---|---|---|---|"]
    r = f["real"]
    lines.append("| — (the real scene) | — | " + " | ".join(f"{r[k][0]:.3g} .. {r[k][1]:.3g}" for k in FIELD_KEYS) + " |")
    for name, per_seed in f["sources"].items():
        for s, st in zip(study["seeds"], per_seed):
            lines.append(f"| {name} | {s} | " + " | ".join(
                f"{st[k]:.3g} {'✓' if _inside(st[k], r[k]) else '✗'}" for k in FIELD_KEYS) + " |")
    sm = study["seams"]
    lines += ["", f"Seam score (1 = none) at the default stride: real scene {sm['real']:.3f}, over "
                  f"{len(sm['real_shifted_grids'])} shifted grids {min(sm['real_shifted_grids']):.3f} .. "
                  f"{max(sm['real_shifted_grids']):.3f}; " + "; ".join(
                      f"conditioned on {k} {', '.join(f'{v:.3f}' for v in sm[k])}"
                      for k in sm if k not in ("real", "real_shifted_grids")) + ".", ""]
    mp = study["maps"]
    lines += ["Class maps themselves (whole map): real map autocorrelation length "
              f"{mp['real']['autocorrelation_length']:.1f} px, share ≥ 1024 px {mp['real']['share_ge_1024']:.2f}; "
              "procedural maps " + ", ".join(f"{m['autocorrelation_length']:.1f} px / {m['share_ge_1024']:.2f}"
                                            for m in mp["procedural"]) + ".", ""]
    lines += ["## Label agreement", "",
              "A net of every real label of the fold's training ground labels the synthesized scene's labelled pixels "
              "(share that agrees with the map, mean over seeds), beside that net's accuracy on the fold's real "
              "held-out pixels (the ceiling).", "",
              "| fold | held-out accuracy (ceiling) | procedural maps | real map |", "|---|---|---|---|"]
    for fo in folds:
        a = study["agreement"][str(fo)]
        pr = np.mean([x["agreement"] for x in a["procedural"]]) if a["procedural"] else None
        rm = np.mean([x["agreement"] for x in a["real map"]]) if a["real map"] else None
        lines.append(f"| {fo + 1} | {100 * a['heldout_accuracy']:.1f} | "
                     f"{'—' if pr is None else f'{100 * pr:.1f}'} | {'—' if rm is None else f'{100 * rm:.1f}'} |")
    lines += ["", "## Crop quality", "", "| set | n | FID ↓ | SWD ↓ | patch recall ↑ | patch precision ↑ |",
              "|---|---|---|---|---|---|"]
    for k, q in study["quality"].items():
        lines.append(f"| {k} | {study['quality_n'][k]} | {_fmt(q.get('FID'))} | {_fmt(q.get('SWD'), 4)} | "
                     f"{_fmt(q.get('recall_patches'), 3)} | {_fmt(q.get('precision_patches'), 3)} |")
    lines += ["", "## Train on synthetic scenes, test on real held-out folds", "",
              "PixelNeighbourhoodNet (3 × 3 windows), the protocol's settings and first epoch count for every row "
              "(nothing tuned). Synthetic scenes: the profile's seeds × procedural maps fitted to the fold's training "
              "ground; class-statistics scenes: the same maps filled from per-class Gaussians of the ground (the "
              "trivial generator). Cells: mean over folds (× draws) × 100.", "",
              "| row | " + " | ".join(f"{b}/class OA / AA" for b in study["key"]["protocol"]["budgets"]) + " |",
              "|---|" + "---|" * len(study["key"]["protocol"]["budgets"])]
    recs = study["records"]
    rows = ["real", "pretrain on HUD-cond scenes, fine-tune", "pretrain on class-statistics scenes, fine-tune"]
    for row in rows:
        cells = []
        for b in study["key"]["protocol"]["budgets"]:
            sel = [x for x in recs if x["row"] == row and x["budget"] == b]
            cells.append(f"{100 * np.mean([x['OA'] for x in sel]):.1f} / {100 * np.mean([x['AA'] for x in sel]):.1f}"
                         if sel else "—")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    for row in ("HUD-cond scenes only", "class-statistics scenes only", "ceiling"):
        sel = [x for x in recs if x["row"] == row]
        if sel:
            v = f"{100 * np.mean([x['OA'] for x in sel]):.1f} / {100 * np.mean([x['AA'] for x in sel]):.1f}"
            lines.append(f"| {row} ({'no real label' if row != 'ceiling' else 'every real label'}) | " +
                         " | ".join([v] * len(study["key"]["protocol"]["budgets"])) + " |")
    lines += ["", "Tests (one-sided: row > real; Wilcoxon signed-rank, Holm over the family):", "",
              "| row | budget | metric | paired by | n | mean Δ × 100 | wins / losses | p | p Holm |",
              "|---|---|---|---|---|---|---|---|---|"]
    for t in study["tests"]:
        md = "—" if t["mean_diff"] is None else f"{100 * t['mean_diff']:+.1f}"
        lines.append(f"| {t['row']} | {t['budget']}/class | {t['metric']} | {t['paired_by']} | {t['n']} | {md} | "
                     f"{t['wins']} / {t['losses']} | {t['p']:.3g} | {t['p_holm']:.3g} |")
    lines += ["", f"Synthesis time per {study['size'][0]} × {study['size'][1]} scene: "
                  f"{np.median(study['synthesis_s']):.1f} s median over {len(study['synthesis_s'])} scenes "
                  f"({study['machine']}).", ""]
    return "\n".join(lines)


def figure_scenes(study: dict, scene, gen, device="auto") -> dict:
    """The two scenes :func:`labelled_figure` draws, made again exactly as :func:`labelled_study` made them (first
    fold's generator ``gen``, first seed): ``{"real map": (Y, L), "procedural": (Y, L)}``. For a study read from its
    file, which keeps no arrays."""
    from .downstream._checks import seed
    from .layouts import FieldLayout

    f, s = study["folds"][0], study["seeds"][0]
    fold = gen.fold_of(scene)
    if fold is None or fold.index != f or gen.weights_hash() != study["key"]["weights"][str(f)]:
        raise DataError(f"gen: expected the study's fold-{f + 1} HUD-cond (weights {study['key']['weights'][str(f)]})")
    H, W = study["size"]
    L = FieldLayout().fit(scene.gt, fold.train, n_classes=scene.n_classes).sample((H, W),
                                                                                   random_state=seed("layout", f, s))
    out = {}
    for name, M in (("real map", scene.gt), ("procedural", L)):
        out[name] = (gen.synthesize(H, W, random_state=int(s), layout=M, device=device)[0], M)
    return out


def labelled_figure(study: dict, scene, gen=None, device="auto"):
    """The real map and scene beside a scene conditioned on the real map, and a procedural map beside its scene
    (fold 1's generator, first seed; the real scene's stretch). A study read from its file keeps no scenes: give
    that fold's generator ``gen`` and they are made again (:func:`figure_scenes`)."""
    import matplotlib.pyplot as plt

    from .data import pseudo_rgb, rgb_limits

    sc = study.get("_scenes")
    if not sc:
        if gen is None:
            raise DataError("study: its scenes are not kept (a study read from a file); pass the first fold's "
                            "generator (gen=) to make them again")
        sc = figure_scenes(study, scene, gen, device)
    lim = rgb_limits(scene.cube, scene.rgb_bands)
    K = scene.n_classes
    fig, ax = plt.subplots(2, 3, figsize=(11, 7.6))
    panels = [(scene.gt, "real class map", True), (scene.cube, "real scene", False),
              (sc["real map"][0], "conditioned on the real map", False),
              (sc["procedural"][1], "procedural map (fold 1's ground)", True),
              (sc["procedural"][0], "conditioned on the procedural map", False)]
    for a, (img, title, is_map) in zip(ax.ravel(), panels):
        if is_map:
            a.imshow(img, cmap="tab20", vmin=0, vmax=max(19, K), interpolation="nearest")
        else:
            a.imshow(pseudo_rgb(img, scene.rgb_bands, limits=lim), interpolation="nearest")
        a.set_title(title, fontsize=9)
    f = study["field_scale"]
    rows = [f"{k}: real {f['real'][k][0]:.3g}..{f['real'][k][1]:.3g}; real map "
            f"{f['sources']['the real map'][0][k]:.3g}; procedural {f['sources']['procedural maps'][0][k]:.3g}"
            for k in FIELD_KEYS]
    ax[1, 2].axis("off")
    ax[1, 2].text(0, 0.5, "\n".join(rows), fontsize=7, va="center", family="monospace")
    for a in ax.ravel()[:5]:
        a.set_xticks([])
        a.set_yticks([])
    fig.suptitle(f"{scene.name}: labelled synthetic scenes, {study['model']} [{study['profile']}] fold 1, seed "
                 f"{study['seeds'][0]}", fontsize=10)
    fig.tight_layout()
    return fig
