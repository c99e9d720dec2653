"""One abundance prior across sensors (the paper's future work 1): does a diffusion prior trained on one scene's
abundance maps serve another scene, recorded by another sensor, with the same number of endmembers d?

HUD's prior lives on abundances, not spectra: the sensor enters only through the endmembers, in the UAE's decoder.
So only VCA + UAE need fitting per scene (:meth:`hudlib.models.hud.HUD.unmix`), and a prior over d-channel
abundance maps might be shared. :class:`TransferStudy` measures it with three arms on the target scene:

- ``as_is``: the source scene's prior, sampled unchanged and decoded through the target's endmembers (0 steps);
- ``finetune``: the source prior trained on the target's latent for N more steps (a fresh optimiser, the EMA
  starting from the prior);
- ``scratch``: a prior trained on the target's latent from random weights for N steps (at the profile's full
  budget this is HUD's ordinary training on the target).

Endmembers have no identity across scenes, so channel k of one latent means nothing in the other: both latents are
put in one canonical order, descending mean abundance over the scene (:func:`canonical_order`), before any prior
sees them, and every sample is put back in the target's own order before its decoder. Everything else is the
profile's: U-Net, optimiser, batch, learning rate, EMA and sampler are those of HUD at that profile, and the budgets
N are steps of that training. The quality of each arm at each N is measured on the target with the evaluation's own
metrics (sound-classifier FID, SWD, k-NN patch recall/precision) against the same real patches as the records.

A budget is reached by resuming the arm's run (:func:`hudlib.train.train_diffusion`, exact: a resumed run is the
uninterrupted one), and the EMA weights at each budget are kept (``ema-<N>.safetensors``), so a study is resumable
and N = 500 of a 3000-step arm is the 500-step run.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from . import evaluate as E
from . import models, paths
from .config import make_config
from .data import load_scene, patches
from .errors import DataError
from .metrics import registry
from .parity import no_worse
from .train import build_diffusion, build_unet, train_diffusion
from .utils import atomic_write_text
from .weights import load_weights, save_weights

__all__ = ["ARMS", "METRICS", "TransferStudy", "canonical_order", "markdown"]

ARMS = ("as_is", "finetune", "scratch")
METRICS = ("FID", "SWD", "recall_patches", "precision_patches")
RULE = ("FID", "SWD", "recall_patches")  # the goal's metrics (precision: reported; the tables flag it)


def canonical_order(X: np.ndarray) -> np.ndarray:
    """The permutation that sorts abundance channels by descending mean over the scene (ties: lower index first).

    X: ``(d, rows, cols)`` abundances. Returns int64 ``(d,)``: channel ``order[k]`` of X is canonical channel k."""
    X = np.asarray(X)
    if X.ndim != 3:
        raise DataError(f"X: expected abundances (d, rows, cols), got shape {X.shape}")
    return np.argsort(-X.mean(axis=(1, 2)), kind="stable").astype(np.int64)


@dataclasses.dataclass
class TransferStudy:
    """The study's one configuration (every consumer reads it from here).

    ``source``/``target``: registered scene names; ``d``: endmembers in both (default: the target's class count);
    ``finetune_steps``/``scratch_steps``: the budgets N where each arm is measured (0 in ``finetune_steps`` is the
    ``as_is`` arm); ``goal_fraction``: the goal's budget ratio (fine-tuned at ``goal_fraction`` × the full budget
    against scratch at the full budget = the profile's HUD training steps); ``n`` patches per sample set;
    ``seeds``: sampling seeds at every budget; ``goal_seeds``: at the two budgets the goal compares (the spread the
    test needs); ``full_steps``: the full budget — the source prior's training and the goal's scratch budget
    (default: HUD's training steps at the profile)."""

    source: str = "IndianPines"
    target: str = "Samson"
    d: int | None = None
    profile: str = "quick"
    finetune_steps: tuple[int, ...] = (0, 125, 250, 500, 750, 1000, 1500)
    scratch_steps: tuple[int, ...] = (250, 500, 750, 1000, 1500, 2000, 3000)
    goal_fraction: float = 0.25
    n: int = 256
    seeds: tuple[int, ...] = (0,)
    goal_seeds: tuple[int, ...] = (0, 1, 2)
    full_steps: int | None = None

    # ----------------------------------------------------------------------------------------- setup
    def _check(self, full: int) -> None:
        for name in ("finetune_steps", "scratch_steps"):
            v = getattr(self, name)
            if not v or any(int(k) != k or k < 0 for k in v) or list(v) != sorted(set(v)):
                raise DataError(f"{name}: expected distinct non-negative step counts in ascending order, got {v!r}")
        if 0 in self.scratch_steps:
            raise DataError("scratch_steps: 0 steps of a prior from scratch is noise; expected budgets above 0")
        if not 0 < self.goal_fraction <= 1:
            raise DataError(f"goal_fraction: expected a fraction in (0, 1], got {self.goal_fraction!r}")
        if self.goal_budgets(full)[0] not in self.finetune_steps or full not in self.scratch_steps:
            raise DataError(f"finetune_steps/scratch_steps: the goal compares fine-tuning at "
                            f"{self.goal_budgets(full)[0]} with scratch at {full} steps; both must be budgets")
        if self.n < 8:
            raise DataError(f"n: expected at least 8 patches, got {self.n}")

    def goal_budgets(self, full: int) -> tuple[int, int]:
        """(fine-tuning budget, scratch budget) the goal compares: ``goal_fraction`` × full, and full."""
        return int(round(self.goal_fraction * full)), int(full)

    def key(self) -> str:
        return f"{self.source}-to-{self.target}-d{self.d}-{self.profile}"

    # ----------------------------------------------------------------------------------------- running
    def run(self, runs=None, out: Path | None = None, device: str = "cpu", progress: bool = True) -> dict:
        """Train what is missing, measure every arm at every budget, return (and with ``out``, write after every
        sample set, atomically) ``{"meta", "arms": {arm: {N: {seed: record}}}, "goal"}``; a rerun reuses what
        ``out`` already holds and the runs' per-budget EMA snapshots."""
        runs = paths.runs_dir(runs)
        tgt_scene, src_scene = load_scene(self.target), load_scene(self.source)
        d = int(self.d or tgt_scene.n_classes)
        study = dataclasses.replace(self, d=d)
        tgt_cfg, src_cfg = (_config_at(s, self.profile, d) for s in (tgt_scene, src_scene))
        full = int(self.full_steps or tgt_cfg.train.steps)
        if full < 1:
            raise DataError(f"full_steps: expected a positive number of training steps, got {self.full_steps!r}")
        study = dataclasses.replace(study, full_steps=full)
        study._check(full)
        if tgt_cfg.unet != src_cfg.unet or tgt_cfg.diffusion != src_cfg.diffusion:
            raise DataError(f"profile {self.profile}: HUD's network or diffusion differ between {self.source} and "
                            f"{self.target}; one prior needs one network")
        tgt, src = models.create("HUD"), models.create("HUD")
        Z_t, Z_s = tgt.unmix(tgt_scene, tgt_cfg, runs), src.unmix(src_scene, src_cfg, runs)
        if tgt.z0_range() != src.z0_range():
            raise DataError("the two latents have different supports (z_scale); one prior needs one latent space")
        order_t = canonical_order(tgt.decode_latent(Z_t.numpy()[None])[1][0])
        order_s = canonical_order(src.decode_latent(Z_s.numpy()[None])[1][0])
        inverse_t = np.argsort(order_t)
        root = runs / "transfer" / study.key()
        res = json.loads(out.read_text()) if out is not None and out.is_file() else {}
        spec = json.loads(json.dumps(dataclasses.asdict(study)))  # as the file holds it (tuples as lists)
        if res.get("meta", {}).get("study") not in (None, spec):
            raise DataError(f"{out}: holds another study's results ({res['meta']['study']}); expected "
                            f"{spec}; remove it or pass another --out")
        res.setdefault("arms", {})
        dev = torch.device(device)
        scored = E.with_labels(tgt_scene, tgt_cfg)
        net, _ = E.sound_classifier(scored, tgt_cfg, dev, runs / "classifiers", progress=progress)
        real = patches(tgt_scene, tgt_cfg.train.patch_size, self.n, random_state=tgt_cfg.eval.seed + 1)
        res["meta"] = {"study": spec, "machine": E.machine_description(dev),
                       "git_commit": E.git_commit(), "labels": scored.labels_note or "the scene's class map",
                       "channel_order": {self.source: order_s.tolist(), self.target: order_t.tolist()},
                       "uae_runs": {self.source: str(src.run_dir_.relative_to(runs)),
                                    self.target: str(tgt.run_dir_.relative_to(runs))},
                       "full_budget": full, "goal_budgets": list(study.goal_budgets(full))}

        def save():  # the goal follows what is measured; the file, after every sample set
            res["goal"] = study.goal(res)
            if out is not None:
                atomic_write_text(out, json.dumps(res, indent=1))

        prior = _budget_snapshots(src_cfg, Z_s[order_s], root / "source", (full,), None, progress, str(dev))[full]
        tgt_canon = Z_t[order_t]
        plans = {"finetune": (study.finetune_steps, prior), "scratch": (study.scratch_steps, None)}
        for arm, (budgets, init) in plans.items():
            wanted = [N for N in budgets if not _done(res, arm if N else "as_is", N, study.seeds_at(arm, N, full))]
            snaps = _budget_snapshots(tgt_cfg, tgt_canon, root / arm, [N for N in wanted if N > 0], init, progress,
                                      str(dev))
            snaps[0] = prior
            for N in wanted:
                name = arm if N else "as_is"
                for seed in study.seeds_at(arm, N, full):
                    cell = res["arms"].setdefault(name, {}).setdefault(str(N), {})
                    if str(seed) in cell:
                        continue
                    cell[str(seed)] = _measure(tgt, tgt_cfg, snaps[N], inverse_t, seed, self.n, scored, real, net,
                                               dev, progress)
                    save()
        save()
        return res

    def seeds_at(self, arm: str, N: int, full: int) -> tuple[int, ...]:
        """Sampling seeds at budget ``N`` of ``arm``: ``goal_seeds`` at the goal's two budgets, else ``seeds``."""
        fine, scratch = self.goal_budgets(full)
        goal = (arm == "finetune" and N == fine) or (arm == "scratch" and N == scratch)
        return tuple(dict.fromkeys((*self.seeds, *self.goal_seeds))) if goal else tuple(self.seeds)

    def goal(self, res: dict) -> dict:
        """The goal: fine-tuning at ``goal_fraction`` × the full budget is no worse than scratch at the full budget
        on each of :data:`RULE` (:func:`hudlib.parity.no_worse` over the sampling seeds); None until both are
        measured."""
        fine, scratch = res["meta"]["goal_budgets"]
        a = res["arms"].get("finetune", {}).get(str(fine), {})
        b = res["arms"].get("scratch", {}).get(str(scratch), {})
        if not a or not b:
            return {"passes": None, "budgets": [fine, scratch]}
        out = {"budgets": [fine, scratch], "metrics": {}}
        for k in RULE:
            ref = [b[s]["metrics"][k] for s in sorted(b)]
            cand = [a[s]["metrics"][k] for s in sorted(a)]
            out["metrics"][k] = no_worse(ref, cand, registry.get_metric(k).direction)
        out["passes"] = all(v["passes"] for v in out["metrics"].values())
        return out


def _config_at(scene, profile: str, d: int):
    """HUD's config on ``scene`` at ``profile`` with ``d`` endmembers (the scene's own run, shipped weights and
    all, where ``d`` is its default)."""
    cfg = make_config(scene.name, "HUD", profile)
    if (cfg.unmixing.d or scene.n_classes) == d:
        return cfg
    return make_config(scene.name, "HUD", profile, {"unmixing": {"d": int(d)}})


def _done(res: dict, arm: str, N: int, seeds) -> bool:
    cell = res.get("arms", {}).get(arm, {}).get(str(N), {})
    return all(str(s) in cell for s in seeds)


def _budget_snapshots(cfg, Z: torch.Tensor, run_dir: Path, budgets, init, progress: bool,
                      device: str = "cpu") -> dict[int, dict]:
    """EMA state dicts of the prior trained on ``Z`` (canonical order) at each of ``budgets`` (ascending), resuming
    ``run_dir``'s run from one budget to the next; a budget whose snapshot exists is read, not trained."""
    out: dict[int, dict] = {}
    run_dir.mkdir(parents=True, exist_ok=True)
    for N in budgets:
        snap = run_dir / f"ema-{N}.safetensors"
        if not snap.is_file():
            ck = run_dir / "checkpoint.pt"
            at = int(torch.load(ck, map_location="cpu", weights_only=True)["step"]) if ck.is_file() else 0
            if at > N:
                raise DataError(f"{run_dir}: its run is at step {at}, past the budget {N} whose snapshot is missing; "
                                f"remove the directory to retrain the arm")
            c = cfg.replace(train=dataclasses.replace(cfg.train, steps=int(N)))
            train_diffusion(c, Z, run_dir, device=device, resume=True, progress=progress, init=init)
            save_weights(load_weights(run_dir / "ema.safetensors"), snap)
        out[N] = load_weights(snap)["ema"]
    return out


def _measure(tgt, cfg, state: dict, inverse: np.ndarray, seed: int, n: int, scored, real, net, dev,
             progress: bool) -> dict:
    """One sample set of the prior ``state`` (canonical order) on the target: samples put back in the target's
    order, decoded through its UAE, scored."""
    tgt.unet_ = build_unet(cfg, len(inverse))
    tgt.unet_.load_state_dict(state)
    tgt.unet_.eval()
    tgt.diffusion_ = build_diffusion(cfg)
    t0 = time.perf_counter()
    z = tgt.sample_latent(n, seed, device=dev, progress=progress)
    Y, _ = tgt.decode_latent(z[:, inverse])
    t_sample = time.perf_counter() - t0
    ctx = registry.MetricContext(Y, real, scored, cfg, net, dev, times={})
    m, _ = registry.compute_metrics(ctx, list(METRICS))
    return {"metrics": {k: float(m[k]) for k in METRICS}, "sample_s": round(t_sample, 1),
            "sampling_key": tgt.sampling_key()}


def markdown(res: dict) -> str:
    """The study as Markdown: quality against budget per arm, and the goal's verdict."""
    meta, st = res["meta"], res["meta"]["study"]
    arrows = {k: registry.get_metric(k).arrow for k in METRICS}
    lines = [f"# One abundance prior across sensors: {st['source']} → {st['target']} (d = {st['d']}, profile "
             f"`{st['profile']}`)", "",
             f"n = {st['n']} patches per sample set; {meta['machine']}; commit {meta['git_commit']}. Arms: `as_is` "
             f"the {st['source']} prior unchanged, `finetune` it trained N more steps on {st['target']}, `scratch` "
             f"a prior trained N steps from random weights on {st['target']} (full budget {meta['full_budget']} "
             f"steps = HUD's training at this profile). Endmembers in both latents ordered by descending mean "
             f"abundance ({st['source']} {meta['channel_order'][st['source']]}, {st['target']} "
             f"{meta['channel_order'][st['target']]}). Labels for FID: {meta['labels']}. Mean over the sampling "
             "seeds [min – max] where there are several; one training run per arm. Generated by "
             "`benchmarks/cross_sensor.py` (`hudlib.transfer`).", "",
             "| arm | N (steps) | seeds | " + " | ".join(f"{k} {arrows[k]}" for k in METRICS) + " |",
             "|---|---|---|" + "---|" * len(METRICS)]
    for arm in ARMS:
        for N, cell in sorted(res["arms"].get(arm, {}).items(), key=lambda kv: int(kv[0])):
            vals = []
            for k in METRICS:
                v = [cell[s]["metrics"][k] for s in sorted(cell)]
                f = (lambda x: f"{x:.4f}") if k == "SWD" else (lambda x: f"{x:.3f}")
                vals.append(f(float(np.mean(v))) + (f" [{f(min(v))}–{f(max(v))}]" if len(v) > 1 else ""))
            lines.append(f"| {arm} | {N} | {len(cell)} | " + " | ".join(vals) + " |")
    g = res.get("goal", {})
    fine, scratch = meta["goal_budgets"]
    lines += ["", f"**Goal**: fine-tuned at {fine} steps (≤ {st['goal_fraction']:g} of the budget) no worse than "
              f"scratch at {scratch} steps on {', '.join(RULE)} (mean inside scratch's seed range or better, and a "
              "one-sided Welch test of \"worse\" with p ≥ 0.05; `hudlib.parity`)."]
    if g.get("passes") is None:
        lines.append("Not measured yet.")
    else:
        for k, v in g["metrics"].items():
            p = "n/a" if v["p_worse"] != v["p_worse"] else f"{v['p_worse']:.3f}"
            lines.append(f"- {k}: {v['mean']:.4g} vs scratch; within or better: {'yes' if v['within'] else 'no'}, "
                         f"p(worse) {p} → {'passes' if v['passes'] else 'fails'}")
        lines.append(f"\nVerdict: **{'met' if g['passes'] else 'missed'}**.")
    return "\n".join(lines) + "\n"


def plot(res: dict):
    """Quality against training steps on the target, one panel per metric of :data:`RULE`: the fine-tuned prior
    (its 0 is the source prior as is) and the prior from scratch; error bars span the sampling seeds where there
    are several. Returns the matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta, st = res["meta"], res["meta"]["study"]
    fig, axes = plt.subplots(1, len(RULE), figsize=(4.0 * len(RULE), 3.2))
    for ax, k in zip(axes, RULE):
        for arm, label, colour in (("finetune", f"{st['source']} prior fine-tuned", "C0"),
                                   ("scratch", "from scratch", "C1")):
            cells = dict(res["arms"].get(arm, {}))
            if arm == "finetune" and "0" in res["arms"].get("as_is", {}):
                cells["0"] = res["arms"]["as_is"]["0"]
            Ns = sorted(cells, key=int)
            vals = [[cells[N][s]["metrics"][k] for s in cells[N]] for N in Ns]
            x = [int(N) for N in Ns]
            mean = [float(np.mean(v)) for v in vals]
            err = [[m - min(v) for m, v in zip(mean, vals)], [max(v) - m for m, v in zip(mean, vals)]]
            ax.errorbar(x, mean, yerr=err, marker="o", ms=3, capsize=2, color=colour, label=label)
        fine, scratch = meta["goal_budgets"]
        ax.axvline(fine, color="0.6", lw=0.8, ls=":")
        ax.set_xlabel("training steps on the target")
        ax.set_title(f"{k} {registry.get_metric(k).arrow}", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"One abundance prior across sensors: {st['source']} → {st['target']}, d = {st['d']} "
                 f"[profile {st['profile']}, n = {st['n']}, {meta['machine']}]", fontsize=8)
    fig.tight_layout()
    return fig
