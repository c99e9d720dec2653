"""The benchmark loop: for one fold and one label budget, choose every row's options on validation data, then train
and score every row on the fold's held-out pixels (:func:`run_fold_budget`); :func:`run` does every (fold, budget)
of a :class:`~.protocol.Protocol`, in worker processes.

One (fold *f*, budget *b*):

1. **Validation** (never a held-out pixel of *f*): inner fold 0 of an inner spatial k-fold of *f*'s training
   ground (:meth:`hudlib.splits.Fold.inner`). Its own label draws (budget *b*, inside the inner training ground) and
   its held-out pixels (windows read from *f*'s ground) score each candidate by
   :func:`~.labels.validation_score`. The net's epochs are chosen on ``real``; then each row's options by
   coordinate search, in this order, each step kept only if it beats the best so far: added pixels per real label
   (every ratio; 0, i.e. ``real``, is the starting point), HUD-cond's guidance, the weight of added pixels, the
   agreement filter (keep added pixels the real-label classifier labels as they are labelled). Providers are handed
   the inner training ground; HUD-cond's pools are drawn for its layouts, but HUD-cond itself was trained on all of
   *f*'s ground (its validation can only flatter it: its test cannot).
2. **Test**: ``draws`` label draws of budget *b* inside *f*'s training ground (nested across budgets); the SVM's
   ``C``/``gamma`` by a grouped CV of each draw's real labels (:func:`~.classifiers.tune_svm`); every row trained on
   the real labels plus its added pixels (ratio, weight, filter, guidance as chosen) and scored on every held-out
   pixel of *f* (windows from the scene). The net's training length is ``epochs`` over the real labels in every
   row. With ``ceiling``: real with every label of *f*'s training ground, once per fold. With levers: the HUD-cond
   row with one option forced (reported, never chosen from).

Every random choice is seeded from what it is (fold, budget, draw, row, stage), so a (fold, budget) gives the same
records alone or in a worker.
"""
from __future__ import annotations

import math
import time

import numpy as np
from tqdm.auto import tqdm

from ..errors import DataError
from ._checks import seed
from .classifiers import confidence, fit_classifier, tune_svm
from .labels import classification_metrics, draw_labels, scene_windows, validation_score
from .protocol import Protocol
from .providers import GENERATOR_ROWS, PROVIDERS, FoldResources, Ground, Request, _draw, class_quota

__all__ = ["run_fold_budget", "run", "RealSet"]


class RealSet:
    """A run's real labelled pixels: ``windows`` ``(n, bands, 3, 3)``, ``labels`` ``(n,)``, ``groups`` ``(n,)`` (the
    spatial cell of each pixel, for the SVM's grouped CV) and the per-class ``counts``."""

    def __init__(self, ground: Ground, gt, mask, budget, random_state, n_classes: int, block: int):
        r, c, self.counts = draw_labels(gt, mask, budget, random_state=random_state, cap=True, n_classes=n_classes,
                                        return_counts=True)
        if len(r) == 0:
            raise DataError(f"{ground.name}: no labelled pixel to draw on its training ground")
        self.windows, self.labels = ground.windows(r, c), gt[r, c].astype(np.int64)
        self.groups = (r // block) * 100_000 + c // block
        self.rows, self.cols = r, c

    def __len__(self):
        return len(self.labels)


class _Stage:
    """One classifier on one ground with one held-out set: fits a row's model and scores it."""

    def __init__(self, protocol: Protocol, clf: str, held_windows, held_labels, n_classes: int, resources,
                 ground: Ground, providers: dict):
        self.p, self.clf, self.H, self.Hy, self.K = protocol, clf, held_windows, held_labels, n_classes
        self.resources, self.ground, self.providers = resources, ground, providers

    def params(self, real: RealSet, epochs: float) -> dict:
        if self.clf == "svm":
            t = tune_svm(real.windows, real.labels, real.groups, self.p.svm_C, self.p.svm_gamma_factors,
                         self.p.svm_cv_splits)
            return {"C": t["C"], "gamma": t["gamma"]}
        return {**self.p.net_params, "epochs": float(epochs)}

    def fit(self, real: RealSet, params: dict, added=None, weight: float = 1.0, random_state=0, base=None):
        X, y, sw = real.windows, real.labels, None
        if added is not None and len(added[1]):
            X, y = np.concatenate([X, added[0]]), np.concatenate([y, added[1]])
            if weight != 1.0:
                sw = np.concatenate([np.ones(len(real)), np.full(len(added[1]), float(weight))])
        return fit_classifier(self.clf, X, y, params=params, sample_weight=sw, epoch_size=len(real),
                              random_state=random_state, n_classes=self.K, base=base)

    def score(self, model) -> dict:
        return classification_metrics(self.Hy, model.predict(self.H))

    def added(self, row: str, real: RealSet, model, option: dict, random_state: int, quota_labels=None):
        """The row's added pixels for ``option`` (ratio, guidance, filter): ``(windows, labels)``."""
        n = max(1, int(round(option["ratio"] * len(real))))
        labels = real.labels if quota_labels is None else quota_labels
        req = Request(ground=self.ground, real_windows=real.windows, real_labels=labels,
                      n_pixels=n * (3 if option["filter"] else 1), random_state=random_state,
                      classify=model.predict, confidence=lambda W, m=model: confidence(m, W),
                      guidance=float(option.get("guidance") or 0.0), resources=self.resources)
        W, y = self.providers[row](req)
        if option["filter"] and len(y):
            keep = np.asarray(model.predict(W)) == y
            W, y = W[keep], y[keep]
            idx = _draw(y, class_quota(labels, n), np.random.default_rng(random_state + 7))
            W, y = W[idx], y[idx]
        return np.asarray(W, np.float32), np.asarray(y, np.int64)


def _base_option(row: str, protocol: Protocol) -> dict:
    return {"ratio": 0.0, "weight": 1.0, "filter": False,
            "guidance": float(protocol.guidances[0]) if row in GENERATOR_ROWS else None}


def _validate(protocol: Protocol, clf: str, fold_index: int, budget, stage: _Stage, reals: list[RealSet]) -> dict:
    """The net's epochs and each row's options, chosen on the inner split (module docstring)."""
    p = protocol
    trace: dict = {}
    epochs = p.net_epochs[0]
    if clf == "net" and len(p.net_epochs) > 1:
        best = None
        for e in p.net_epochs:
            s = float(np.mean([validation_score(stage.Hy, stage.fit(r, stage.params(r, e), random_state=seed(
                "val-model", fold_index, budget, v)).predict(stage.H)) for v, r in enumerate(reals)]))
            trace[f"epochs={e:g}"] = s
            if best is None or s > best[0]:
                best = (s, e)
        epochs = best[1]
    params = [stage.params(r, epochs) for r in reals]
    models = [stage.fit(r, pr, random_state=seed("val-model", fold_index, budget, v))
              for v, (r, pr) in enumerate(zip(reals, params))]
    real_score = float(np.mean([validation_score(stage.Hy, m.predict(stage.H)) for m in models]))
    cache: dict = {}

    def evaluate(row, opt):
        if opt["ratio"] == 0:
            return real_score
        scores = []
        for v, (r, pr, m) in enumerate(zip(reals, params, models)):
            key = (row, v, opt["ratio"], opt["guidance"], opt["filter"])
            if key not in cache:
                cache[key] = stage.added(row, r, m, opt, seed("val-added", row, fold_index, budget, v))
            model = stage.fit(r, pr, cache[key], opt["weight"], random_state=seed("val-model", fold_index, budget, v))
            scores.append(validation_score(stage.Hy, model.predict(stage.H)))
        return float(np.mean(scores))

    choices = {}
    for row in p.rows:
        best_opt = _base_option(row, p)
        best = real_score
        steps = [("ratio", q) for q in p.ratios]
        tried = [(dict(best_opt), best)]

        def consider(key, value):
            nonlocal best_opt, best
            opt = {**best_opt, key: value}
            s = evaluate(row, opt)
            tried.append((opt, s))
            if s > best:
                best_opt, best = opt, s

        for key, value in steps:
            consider(key, value)
        if best_opt["ratio"] > 0:
            if row in GENERATOR_ROWS:
                for g in p.guidances[1:]:
                    consider("guidance", float(g))
            for w in p.weights[1:]:
                consider("weight", float(w))
            for f in p.filters[1:]:
                consider("filter", bool(f))
        choices[row] = {**best_opt, "val_score": best, "val_real": real_score,
                        "tried": [{**o, "val_score": s} for o, s in tried]}
    return {"epochs": float(epochs), "epochs_trace": trace, "rows": choices}


def _lever_options(row_choice: dict, protocol: Protocol, clf: str) -> list[tuple[str, dict]]:
    base = {k: row_choice[k] for k in ("ratio", "weight", "filter", "guidance")}
    if base["ratio"] == 0:
        base = {"ratio": 1.0, "weight": 1.0, "filter": False, "guidance": base["guidance"]}
    out = []
    for lever in protocol.levers:
        if lever == "filter-on":
            out.append(("HUD-cond [filter on]", {**base, "filter": True}))
        elif lever == "filter-off":
            out.append(("HUD-cond [filter off]", {**base, "filter": False}))
        elif lever == "guidance":
            out += [(f"HUD-cond [w={g:g}]", {**base, "guidance": float(g)}) for g in protocol.lever_guidances]
        elif lever == "confident-classes":
            out.append(("HUD-cond [confident classes]", dict(base)))
        elif lever == "pretrain" and clf == "net":
            out.append(("HUD-cond [pretrain, fine-tune]", dict(base)))
    return out


def run_fold_budget(scene, protocol: Protocol, fold_index: int, budget, resources: FoldResources | None = None,
                    providers: dict | None = None) -> dict:
    """Validation choices and test records of one fold and one budget (module docstring). ``providers``: the
    row functions (default: :data:`~.providers.PROVIDERS`' entries for the protocol's rows). Returns
    ``{"records": [...], "choices": {classifier: ...}}``; a record holds fold, draw, budget, classifier, row, OA,
    AA, kappa, per_class, n_real, n_added, the options used and the wall time."""
    p = protocol
    providers = _providers(p, providers)
    gt, K = np.asarray(scene.gt), int(scene.n_classes)
    folds = p.splitter.split(gt)
    fold = folds[fold_index]
    outer = Ground.of(fold, scene)
    inner_fold = fold.inner(gt, n_folds=p.inner_folds)[0]
    inner = Ground.of(inner_fold, scene, name=f"{fold.name} inner")
    vr, vc = np.nonzero(inner_fold.held)
    V, Vy = outer.windows(vr, vc), gt[vr, vc].astype(np.int64)  # validation pixels, read from f's ground only
    hr, hc = np.nonzero(fold.held)
    H, Hy = scene_windows(scene.cube, hr, hc), gt[hr, hc].astype(np.int64)
    block = p.splitter.block
    records, choices = [], {}
    needs_generator = p.uses_generator
    if needs_generator and resources is None:
        raise DataError("resources: the HUD-cond rows need the fold's generator resources (pools, UAE)")

    def record(clf, row, draw, real, m, n_added, option, t0, **extra):
        return dict(fold=fold_index, draw=draw, budget=budget, classifier=clf, row=row, OA=m["OA"], AA=m["AA"],
                    kappa=m["kappa"] if math.isfinite(m["kappa"]) else None,
                    per_class={str(k): v for k, v in m["per_class"].items()}, n_real=int(len(real)),
                    n_added=int(n_added), option=option, wall_s=round(time.perf_counter() - t0, 3), **extra)

    for clf in p.classifiers:
        vstage = _Stage(p, clf, V, Vy, K, resources, inner, providers)
        vreals = [RealSet(inner, inner.gt, inner.mask, budget, seed("val-draw", fold_index, v), K, block)
                  for v in range(p.val_draws(clf))]
        ch = _validate(p, clf, fold_index, budget, vstage, vreals)
        choices[clf] = ch
        stage = _Stage(p, clf, H, Hy, K, resources, outer, providers)
        for d in range(p.draws):
            real = RealSet(outer, outer.gt, outer.mask, budget, seed("draw", fold_index, d), K, block)
            params = stage.params(real, ch["epochs"])
            mseed = seed("model", fold_index, budget, d)
            t0 = time.perf_counter()
            model = stage.fit(real, params, random_state=mseed)
            m_real = stage.score(model)
            records.append(record(clf, "real", d, real, m_real, 0, None, t0, params=params))
            done: dict = {}

            def scored(label, row, opt, rs, quota_labels=None):
                """(metrics, pixels added, the label of the run they come from) of ``row`` with options ``opt`` on
                this draw; the same row and options are trained once (a lever equal to options already run reuses
                that run)."""
                key = (row, tuple(sorted(opt.items())))
                if quota_labels is None and key in done:
                    return done[key]
                added = stage.added(row, real, model, opt, rs, quota_labels=quota_labels)
                m = stage.score(stage.fit(real, params, added, opt["weight"], random_state=mseed))
                if quota_labels is None:
                    done[key] = (m, len(added[1]), label)
                return m, len(added[1]), label

            for row in p.rows:
                c = ch["rows"][row]
                opt = {k: c[k] for k in ("ratio", "weight", "filter", "guidance")}
                t0 = time.perf_counter()
                m, n, _ = (m_real, 0, row) if opt["ratio"] == 0 else scored(row, row, opt,
                                                                            seed("added", row, fold_index, budget, d))
                records.append(record(clf, row, d, real, m, n, opt, t0, params=params))
            if "HUD-cond" in p.rows:
                rs = seed("added", "HUD-cond", fold_index, budget, d)
                for label, opt in _lever_options(ch["rows"]["HUD-cond"], p, clf):
                    t0 = time.perf_counter()
                    extra = {}
                    if label.endswith("[confident classes]"):
                        agree = resources.agreement.get(float(opt["guidance"] or 0.0), {}) if resources else {}
                        ok = {int(k) for k, a in agree.items() if a is not None and a >= p.agreement_threshold}
                        keep = np.isin(real.labels, list(ok))
                        extra["classes"] = sorted(ok) if keep.any() else []
                        m, n, _ = scored(label, "HUD-cond", opt, rs, quota_labels=real.labels[keep]) if keep.any() \
                            else (m_real, 0, label)
                    elif label.endswith("[pretrain, fine-tune]"):
                        added = stage.added("HUD-cond", real, model, opt, rs)
                        pre = fit_classifier(clf, added[0], added[1], params=params, epoch_size=len(real),
                                             random_state=mseed, n_classes=K)
                        m, n = stage.score(stage.fit(real, params, random_state=mseed, base=pre)), len(added[1])
                    else:
                        m, n, source = scored(label, "HUD-cond", opt, rs)
                        if source != label:
                            extra["same_as"] = source
                    records.append(record(clf, label, d, real, m, n, opt, t0, params=params, **extra))
        if p.ceiling and budget == p.budgets[0]:
            t0 = time.perf_counter()
            real = RealSet(outer, outer.gt, outer.mask, "all", seed("draw", fold_index, 0), K, block)
            params = stage.params(real, ch["epochs"])
            m = stage.score(stage.fit(real, params, random_state=seed("model", fold_index, "all", 0)))
            records.append(record(clf, "ceiling", None, real, m, 0, None, t0, params=params))
    return {"records": records, "choices": choices}


def _providers(protocol: Protocol, providers: dict | None) -> dict:
    table = PROVIDERS if providers is None else providers
    missing = [r for r in protocol.rows if r not in table]
    if missing:
        raise DataError(f"rows: no provider registered for {missing}; expected names among {list(table)}")
    return {r: table[r] for r in protocol.rows}


def _task(scene, protocol, f, b, resources, providers):
    import torch

    torch.set_num_threads(1)
    return (f, b), run_fold_budget(scene, protocol, f, b, resources, providers)


def run(scene, protocol: Protocol, resources: dict[int, FoldResources] | None = None, progress: bool = False,
        n_jobs: int | None = None) -> dict:
    """Every (fold, budget) of ``protocol`` (in ``n_jobs`` worker processes, default ``protocol.n_jobs``).
    ``resources``: ``{fold: FoldResources}`` when the rows need the generator. Returns ``{"records", "choices":
    {fold: {budget: {classifier: ...}}}, "wall_time_s"}``."""
    t0 = time.perf_counter()
    tasks = [(f, b) for f in protocol.fold_indices for b in protocol.budgets]
    resources = resources or {}
    providers = _providers(protocol, None)  # handed to workers: a provider registered at run time reaches them
    n_jobs = protocol.n_jobs if n_jobs is None else int(n_jobs)
    bar = tqdm(total=len(tasks), desc=f"downstream {scene.name}", disable=not progress)
    out = []
    if n_jobs <= 1:
        for f, b in tasks:
            out.append(_task(scene, protocol, f, b, resources.get(f), providers))
            bar.update(1)
    else:
        from joblib import Parallel, delayed

        for res in Parallel(n_jobs=n_jobs, backend="loky", return_as="generator_unordered")(
                delayed(_task)(scene, protocol, f, b, resources.get(f), providers) for f, b in tasks):
            out.append(res)
            bar.update(1)
    bar.close()
    out.sort(key=lambda x: (x[0][0], protocol.budgets.index(x[0][1])))
    records = [r for _, res in out for r in res["records"]]
    choices: dict = {}
    for (f, b), res in out:
        choices.setdefault(str(f), {})[str(b)] = res["choices"]
    return {"records": records, "choices": choices, "wall_time_s": round(time.perf_counter() - t0, 1)}
