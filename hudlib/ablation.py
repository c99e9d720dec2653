"""The ablation the paper never made: do the ln/softmax projection (eqs. 4-6) and the unmixing constraints help?

Rows (one scene, one profile; the same U-Net, training steps, sampler and sampling seed for every row, only the latent
changes; see :data:`ROWS`):

- ``HUD`` as written: FCLS abundances (eq. 2), Z = ln(X + e), softmax (eqs. 4-5);
- ``HUD [linear + softmax]``: the linear encoder (eq. 3, projected onto the simplex) with the projection;
- ``HUD [no projection]``: FCLS abundances diffused directly (one global standardisation), negatives clipped and
  pixels renormalised only at the end;
- ``HUD-asrun``: the authors' run (unconstrained linear encoder, per-endmember standardisation x 10, no projection);
- the square-root-linear β schedule (0.0015 → 0.0155, the authors') on the best of these rows by the sound FID and
  on HUD as written (when that is not the best).

The two main rows (``HUD`` and ``HUD-asrun``) are trained with several seeds (``train.seed``) so that a difference
can be compared with the seed-to-seed spread. Every row is an evaluation record (:func:`hudlib.evaluate.evaluate`,
tag ``abl-…``; seed 0 of a main row is the generator's own record).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from . import evaluate as ev
from . import paths
from .metrics import registry
from .profiles import get_profile
from .models.hud_asrun import AUTHORS_SCHEDULE
from .utils import atomic_write_text

__all__ = ["AblationRow", "ROWS", "MAIN_ROWS", "SCHEDULE_OVERRIDES", "run_ablation", "ablation_table",
           "COLUMNS", "row_samples", "figure", "write_ablation", "default_seeds", "extra_runs", "row_configs"]


@dataclasses.dataclass(frozen=True)
class AblationRow:
    """One row: a label, the registered generator and its config overrides; ``key`` names its result files."""

    label: str
    model: str
    key: str
    overrides: dict = dataclasses.field(default_factory=dict)


ROWS = (
    AblationRow("HUD as written (FCLS + ln/softmax)", "HUD", "hud"),
    AblationRow("HUD, linear encoder + ln/softmax", "HUD", "linear", {"unmixing": {"encoder": "linear"}}),
    AblationRow("HUD, no projection (FCLS, clip + renormalise at the end)", "HUD", "clip",
                {"unmixing": {"projection": "clip"}, "diffusion": {"z_scale": "standardize"}}),
    AblationRow("HUD-asrun (the authors' run)", "HUD-asrun", "asrun"),
)
MAIN_ROWS = ("hud", "asrun")
SCHEDULE_OVERRIDES = {"diffusion": AUTHORS_SCHEDULE}  # the authors' square-root-linear β

# The ablation table's columns, in order: (record block, key, label). The metrics block's labels (and their better
# direction's arrow) come from the metric registry (hudlib.metrics.registry).
def _metric_column(name: str) -> tuple[str, str, str]:
    return ("metrics", name, f"{name.replace('_', ' ')} {registry.get_metric(name).arrow}")


COLUMNS = (
    *(_metric_column(m) for m in ("FID", "IS", "SWD", "recall_patches", "precision_patches", "coherence_gap")),
    ("paper_exact", "F_p", "F_p paper-exact"), ("paper_exact", "D_b", "D_b paper-exact"),
    ("paper_exact", "FID", "FID paper-exact ↓"),
    ("physical", "negative_reflectance_share", "neg. reflectance"),
    ("physical", "negative_abundance_share", "neg. abundance"),
    ("physical", "sum_to_one_max_dev", "max \\|ΣX̂−1\\|"), ("physical", "simplex_angle_mean", "angle to simplex"),
)


def default_seeds(profile: str) -> list[int]:
    """Training seeds of the main rows: the profile's :attr:`~hudlib.profiles.Profile.seeds`."""
    return list(get_profile(profile).seeds)


def extra_runs(profile: str, seeds=None, schedule: bool = True) -> int:
    """Trainings the ablation adds to the generators' own runs (an upper bound: finished runs are reused)."""
    seeds = default_seeds(profile) if seeds is None else list(seeds)
    return (len(ROWS) - len(MAIN_ROWS)) + len(MAIN_ROWS) * (len(seeds) - 1) + 2 * int(schedule)


def _merge(a: dict, b: dict) -> dict:
    out = json.loads(json.dumps(a))
    for sec, kv in b.items():
        out.setdefault(sec, {}).update(kv)
    return out


def _tag(row_key: str, seed: int, main_model_record: bool) -> str:
    return "" if main_model_record else f"abl-{row_key}" + (f"-s{seed}" if seed else "")


def _overrides(row: AblationRow, seed: int, schedule: bool) -> dict:
    over = _merge(row.overrides, {"train": {"seed": seed}} if seed else {})
    return _merge(over, SCHEDULE_OVERRIDES) if schedule else over


def row_configs(scene: str, profile: str, seeds=None, models=None) -> list[tuple[str, object]]:
    """``[(label, config)]`` of every training the ablation may use on ``scene``: each row at its seeds, and each row
    with the square-root-linear schedule (the candidates of the schedule rows), restricted to the generators
    ``models``. Labels name the row's key, seed and schedule (``"ablation linear, seed 0"``, ``"... sqrt β"``)."""
    from .config import make_config

    seeds = default_seeds(profile) if seeds is None else list(seeds)
    out = []
    for row in ROWS:
        if models is not None and row.model not in models:
            continue
        for seed in (seeds if row.key in MAIN_ROWS else seeds[:1]):
            out.append((f"ablation {row.key}, seed {seed}",
                        make_config(scene, row.model, profile, _overrides(row, seed, False) or None)))
        out.append((f"ablation {row.key}, seed {seeds[0]}, sqrt β",
                    make_config(scene, row.model, profile, _overrides(row, seeds[0], True))))
    return out


def _trained(scene, profile, row, seed, schedule, runs) -> bool:
    from .config import make_config
    from .models import get, run_dir_for

    cfg = make_config(scene, row.model, profile, _overrides(row, seed, schedule) or None)
    return get(row.model).weights_hash_at(run_dir_for(cfg, paths.runs_dir(runs))) is not None


def _run_row(scene, profile, row: AblationRow, seed: int, schedule: bool, **kw):
    over = _overrides(row, seed, schedule)
    own = row.key in MAIN_ROWS and seed == 0 and not schedule and not row.overrides
    tag = _tag(row.key + ("-sqrt" if schedule else ""), seed, own)
    path = ev.evaluate(scene, row.model, profile, overrides=over or None, tag=tag,
                       metric_set="all" if own else "ablation", **kw)
    return json.loads(path.read_text())


def run_ablation(scene: str = "IndianPines", profile: str = "quick", seeds=None, schedule: bool = True,
                 train: bool = True, models=None, **evaluate_kw) -> list[dict]:
    """Train (or reuse) and evaluate every row; the main rows with every seed in ``seeds``, the others with the first.

    ``train=False``: only rows whose run is finished already (shipped or trained earlier) are evaluated; the others
    are left out (``./run_all.sh --ablation`` trains them). ``models``: only the rows of these generators.
    ``evaluate_kw`` go to :func:`hudlib.evaluate.evaluate` (runs, results, device, progress, data_root, n, …).
    Returns ``[{"row", "label", "seed", "schedule", "record"}]`` in table order.
    """
    seeds = default_seeds(profile) if seeds is None else ([int(s) for s in seeds] or [0])
    runs = evaluate_kw.get("runs")

    def wanted(row, seed, sched):
        return (models is None or row.model in models) and (train or _trained(scene, profile, row, seed, sched, runs))

    out = []
    for row in ROWS:
        for seed in (seeds if row.key in MAIN_ROWS else seeds[:1]):
            if wanted(row, seed, False):
                out.append({"row": row.key, "label": row.label, "seed": seed, "schedule": "linear",
                            "record": _run_row(scene, profile, row, seed, False, **evaluate_kw)})
    firsts = [r for r in out if r["seed"] == seeds[0]]
    if schedule and firsts:
        best = min(firsts, key=lambda r: r["record"]["metrics"]["FID"])["row"]
        for key in dict.fromkeys((best, ROWS[0].key)):  # the best row, then HUD as written if it is not the best
            row = next(r for r in ROWS if r.key == key)
            if wanted(row, seeds[0], True):
                out.append({"row": row.key + "-sqrt", "label": f"{row.label}, square-root-linear β", "seed": seeds[0],
                            "schedule": "sqrt_linear", "record": _run_row(scene, profile, row, seeds[0], True,
                                                                          **evaluate_kw)})
    return out


def _value(rec: dict, block: str, key: str):
    v = (rec.get(block) or {}).get(key)
    return v.get("value") if isinstance(v, dict) else v


def _cell(vals: list) -> str:
    vals = [v for v in vals if v is not None]
    if not vals:
        return "—"
    f = (lambda v: f"{v:.1e}" if 0 < abs(v) < 1e-3 else f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}")
    if len(vals) == 1:
        return f(vals[0])
    return f"{f(float(np.mean(vals)))} ± {f(float(np.std(vals, ddof=1)))}"


def ablation_table(results: list[dict]) -> str:
    """Markdown: one line per row (mean ± sample std over its seeds where it has several) and a footnote saying
    the profile, n, the seeds and the machine."""
    order = []
    for r in results:
        if r["row"] not in order:
            order.append(r["row"])
    head = "| row | seeds | sampler | " + " | ".join(c[2] for c in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 3)]
    for key in order:
        rs = [r for r in results if r["row"] == key]
        cells = [_cell([_value(r["record"], b, k) for r in rs]) for b, k, _ in COLUMNS]
        lines.append(f"| {rs[0]['label']} | {', '.join(str(r['seed']) for r in rs)} | "
                     f"{rs[0]['record']['sampling_key']} | " + " | ".join(cells) + " |")
    rec = results[0]["record"]
    samplers = {r["record"]["sampling_key"].replace("-clip", "") for r in results}
    same = ("sampler and sampling seed" if len(samplers) == 1 else
            "sampling seed, and each generator's own sampler of the profile (the sampler column: one generator kept "
            "DDIM-50 where HUD's passed the sampler parity at fewer steps, docs/running.md \"Sampler parity\")")
    return "\n".join(lines) + (
        f"\n\n*{rec['scene']}, profile `{rec['profile']}`, n = {rec['n']} patches per row, sampling seed "
        f"{rec['seed']}, machine {rec['machine']}. Every row: the same U-Net, training steps, {same}; "
        f"only the latent (and, in the square-root-linear β rows, the schedule) changes, and with it whether "
        f"x̂₀ is clipped to the latent's support (\"-clip\" in the sampler column; HUD-asrun's latent has none, and "
        f"the authors did not clip). "
        f"Several seeds: mean ± sample std over training seeds. Sound metrics on our classifier; paper-exact "
        f"as the authors' code; physical consistency against the scene's VCA simplex."
        + (f" Labels behind IS and FID: {rec['labels_note']}." if rec.get("labels_note") else "") + "*\n")


def row_samples(results: list[dict]) -> dict[str, np.ndarray]:
    """``{row key: samples (n, bands, 32, 32)}`` of each row's first seed, from the sample cache of its run."""
    out = {}
    for r in results:
        if r["row"] in out:
            continue
        rec = r["record"]
        f = ev.sample_cache(rec["run_dir"], rec["weights_hash"], rec["sampling_key"], rec["n"], rec["seed"])
        out[r["row"]] = np.load(f, mmap_mode="r")
    return out


def figure(results: list[dict], scene):
    """Fig. 3-style mosaics: a real mosaic and one per ablation row (same stretch)."""
    from .figures import fig3

    if not results:
        return None
    samples = row_samples(results)
    rec = results[0]["record"]
    return fig3({scene.name: samples}, {scene.name: scene}, list(samples),
                title=f"Ablation, {scene.name}, profile {rec['profile']}: first 4 of n = {rec['n']} samples per row "
                      f"(training seed {results[0]['seed']})")


def write_ablation(results: list[dict], results_dir=None, scene="", profile: str = "") -> Path:
    """``results/ablation_<profile>.md``: the table and the rows' keys. ``scene``: a scene name or a list of them
    (the scenes the run covered, so that one without a trained row is named, not dropped); rows of several scenes
    give one section per scene."""
    names = [scene] if isinstance(scene, str) else list(scene)
    names = list(dict.fromkeys([n for n in names if n] + [r["record"]["scene"] for r in results]))
    profile = results[0]["record"]["profile"] if results else profile
    keys = "\n".join(f"- `{r.key}`: {r.label}" for r in ROWS)
    none = ("No row has a trained run on this machine: the ablation's trainings run only with `./run_all.sh "
            "--ablation` (or `--retrain`).")

    def table(name):
        rows = [r for r in results if r["record"]["scene"] == name]
        return ablation_table(rows) if rows else none

    if len(names) <= 1:
        body = table(names[0]) if names else none
    else:
        body = "\n\n".join(f"## {n}\n\n{table(n)}" for n in names)
    text = (f"# Ablation: does the ln/softmax projection help? ({', '.join(names)}, profile `{profile}`)\n\n"
            f"Generated by notebooks/07_ablation.ipynb (hudlib.ablation).\n\n" + body
            + f"\n\nRows:\n\n{keys}\n- `<key>-sqrt`: that row with the square-root-linear β schedule (0.0015 → "
              f"0.0155): the best of the rows above by the sound FID (training seed 0), and HUD as written; a row "
              f"whose run is not on this machine (not shipped, not trained: `./run_all.sh --ablation` trains it) is "
              f"left out.\n")
    out = paths.results_dir(results_dir) / f"ablation_{profile}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text)
    return out
