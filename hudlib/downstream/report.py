"""Statistics and the written report of a downstream result.

:func:`summarise` pairs every row's test records with ``real``'s (same fold, draw, budget, classifier) and tests the
differences (:func:`~.stats.paired_test`, Wilcoxon signed-rank): each row against ``real`` (two-sided; one family,
Holm-corrected over every row, budget, classifier and metric shown) and, for the headline declared in the
protocol, HUD-cond against every other row (one-sided: HUD-cond better; its own Holm family over the headline
cells). :func:`write_result` writes ``downstream_<profile>.json`` and ``.md`` atomically.

Caveat written into the report: the draws of one fold share its held-out pixels, so the 25 pairs of a cell are not
independent; the p-values treat them as if they were (what the protocol prescribes), the per-fold table shows the
spread that remains.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..utils import atomic_write_text
from .stats import holm, paired_test

__all__ = ["summarise", "markdown", "write_result", "plot_gains", "HEADLINE_ROW"]

HEADLINE_ROW = "HUD-cond"
METRICS = ("OA", "AA")


def _mean(v):
    v = [x for x in v if x is not None]
    return float(np.mean(v)) if v else None


def _test_records(result: dict) -> list[dict]:
    return [r for r in result["records"] if r["row"] != "ceiling"]


def _pairs(records, row_a: str, row_b: str, clf: str, budget, metric: str):
    a = {(r["fold"], r["draw"]): r[metric] for r in records if r["row"] == row_a and r["classifier"] == clf
         and r["budget"] == budget}
    b = {(r["fold"], r["draw"]): r[metric] for r in records if r["row"] == row_b and r["classifier"] == clf
         and r["budget"] == budget}
    keys = sorted(set(a) & set(b))
    return [a[k] for k in keys], [b[k] for k in keys]


def summarise(result: dict) -> dict:
    """``{"summary": [...], "headline": {...}}`` of a result holding ``records`` and ``protocol`` (module
    docstring). A summary cell: row, classifier, budget, n, the mean of OA/AA/kappa, and per metric the paired test
    against ``real`` with its Holm-adjusted p (``p_holm``). The headline: each comparison of HUD-cond with another
    row at the declared cells, one-sided, Holm-adjusted; ``goal_met`` when HUD-cond beats every control row and
    augmentation at every headline cell with p_holm < 0.05."""
    p = result["protocol"]
    recs = _test_records(result)
    rows = list(dict.fromkeys(r["row"] for r in recs))
    summary = []
    for row in rows:
        for clf in p["classifiers"]:
            for b in p["budgets"]:
                rs = [r for r in recs if r["row"] == row and r["classifier"] == clf and r["budget"] == b]
                if not rs:
                    continue
                cell = {"row": row, "classifier": clf, "budget": b, "n": len(rs),
                        **{m: _mean(r[m] for r in rs) for m in ("OA", "AA", "kappa")},
                        "n_added": _mean(r["n_added"] for r in rs), "vs_real": {}}
                if row != "real":
                    for m in METRICS:
                        a, ref = _pairs(recs, row, "real", clf, b, m)
                        cell["vs_real"][m] = paired_test(a, ref, "two-sided")
                summary.append(cell)
    family = [(i, m) for i, c in enumerate(summary) for m in c["vs_real"]]
    adj = holm([summary[i]["vs_real"][m]["p"] for i, m in family])
    for (i, m), q in zip(family, adj):
        summary[i]["vs_real"][m]["p_holm"] = q

    headline = {"row": HEADLINE_ROW, "budgets": p["headline_budgets"], "metrics": p["headline_metrics"],
                "classifiers": p["classifiers"], "comparisons": [], "goal_met": None}
    if HEADLINE_ROW in rows:
        others = ["real"] + [r for r in p["rows"] if r != HEADLINE_ROW]
        comps = []
        for other in others:
            for clf in p["classifiers"]:
                for b in p["headline_budgets"]:
                    for m in p["headline_metrics"]:
                        a, ref = _pairs(recs, HEADLINE_ROW, other, clf, b, m)
                        comps.append({"versus": other, "classifier": clf, "budget": b, "metric": m,
                                      **paired_test(a, ref, "greater")})
        for c, q in zip(comps, holm([c["p"] for c in comps])):
            c["p_holm"] = q
        headline["comparisons"] = comps
        headline["goal_met"] = bool(comps) and all(c["p_holm"] is not None and c["p_holm"] < 0.05
                                                   and c["mean_diff"] > 0 for c in comps)
    return {"summary": summary, "headline": headline}


# --------------------------------------------------------------------------------------------- Markdown
def _pct(v, digits=1):
    return "—" if v is None else f"{100 * v:.{digits}f}"


def _pfmt(p):
    if p is None:
        return "—"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def _budget(b):
    return f"{b}/class"


def markdown(result: dict) -> str:
    """The report (module docstring) of a summarised result."""
    p = result["protocol"]
    recs = result["records"]
    prof = result["profile"]
    folds = result["folds"]
    out = [f"# Downstream classification on {result['scene']} (profile `{prof}`)", "",
           f"Spatial {len(p['folds'] or folds)}-of-{folds[0]['n_folds']}-fold protocol "
           f"(`{p['splitter']}`): every labelled pixel is held out exactly once; a fold's training ground excludes "
           f"its held-out cells and a buffer around them, and is all that the fold's HUD-cond, every provider of "
           f"added pixels and every classifier see. {p['draws']} label draws per fold and budget; SVM and net "
           f"options, added-pixel ratio, weight, guidance and filter chosen on an inner spatial split of the "
           f"training ground (never on held-out pixels). Cells: mean over folds × draws, × 100.", ""]
    # folds
    out += ["## Folds", "", "| fold | held-out pixels | classes held out | of them unseen in training | majority-class "
            "baseline OA | labelled training pixels | training ground (px) |", "|---|---|---|---|---|---|---|"]
    for fr in folds:
        out.append(f"| {fr['index'] + 1} | {fr['held_pixels']} | {len(fr['held_classes'])} | "
                   f"{', '.join(map(str, fr['held_classes_unseen_in_train'])) or '—'} | "
                   f"{_pct(fr['majority_baseline_OA'])} | {fr['train_labelled_pixels']} | "
                   f"{fr['train_ground_pixels']} |")
    out.append("")
    # headline
    h = result.get("headline") or {}
    if h.get("comparisons"):
        verdict = "**met**" if h["goal_met"] else "**not met**"
        out += ["## Headline (declared before running)", "",
                f"Goal: {h['row']} beats every other row at {', '.join(_budget(b) for b in h['budgets'])}, on "
                f"{' and '.join(h['metrics'])}, for {' and '.join(h['classifiers'])}, one-sided Wilcoxon signed-rank "
                f"p < 0.05 after Holm's correction over the {len(h['comparisons'])} comparisons: {verdict}.", "",
                "| versus | " + " | ".join(f"{c} {_budget(b)} {m}" for c in h["classifiers"] for b in h["budgets"]
                                           for m in h["metrics"]) + " |",
                "|---|" + "---|" * (len(h["classifiers"]) * len(h["budgets"]) * len(h["metrics"]))]
        for other in dict.fromkeys(c["versus"] for c in h["comparisons"]):
            cells = []
            for c in h["classifiers"]:
                for b in h["budgets"]:
                    for m in h["metrics"]:
                        x = next(q for q in h["comparisons"] if q["versus"] == other and q["classifier"] == c
                                 and q["budget"] == b and q["metric"] == m)
                        cells.append(f"{100 * x['mean_diff']:+.1f} (p {_pfmt(x['p_holm'])})")
            out.append(f"| {other} | " + " | ".join(cells) + " |")
        out += ["", f"*Cells: mean paired difference {h['row']} − row (× 100) and its Holm-adjusted one-sided p.*", ""]
    # main tables
    names = {"svm": "SVM (RBF, centre spectrum)", "net": "PixelNeighbourhoodNet (3 × 3 windows)"}
    summ = result["summary"]
    rows = list(dict.fromkeys(c["row"] for c in summ))
    main = [r for r in rows if "[" not in r]
    levers = [r for r in rows if "[" in r]
    for clf in p["classifiers"]:
        out += [f"## {names[clf]}", "",
                "| row | " + " | ".join(f"{_budget(b)} OA / AA | Δ vs real (p Holm)" for b in p["budgets"])
                + " |", "|---|" + "---|---|" * len(p["budgets"])]
        for row in main + levers:
            cells = []
            for b in p["budgets"]:
                c = next((c for c in summ if c["row"] == row and c["classifier"] == clf and c["budget"] == b), None)
                if c is None:
                    cells += ["—", "—"]
                    continue
                cells.append(f"{_pct(c['OA'])} / {_pct(c['AA'])}")
                cells.append("" if row == "real" else " · ".join(
                    f"{m} {100 * c['vs_real'][m]['mean_diff']:+.1f} ({_pfmt(c['vs_real'][m]['p_holm'])})"
                    for m in METRICS))
            out.append(f"| {row} | " + " | ".join(cells) + " |")
        ceil = [r for r in recs if r["row"] == "ceiling" and r["classifier"] == clf]
        if ceil:
            out += ["", f"Ceiling (real, every label of the fold's training ground, n = {len(ceil)} folds): OA "
                        f"{_pct(_mean(r['OA'] for r in ceil))}, AA {_pct(_mean(r['AA'] for r in ceil))}."]
        out.append("")
    out += ["*Δ: mean paired difference row − real over folds × draws (× 100); p: two-sided Wilcoxon signed-rank, "
            "Holm-corrected over every row × budget × classifier × metric of these tables. Rows with `[...]` are "
            "levers: HUD-cond with one option forced (reported, never chosen from).*", ""]
    # per fold
    out += ["## OA per fold (× 100, mean over draws)", "",
            "| classifier | budget | row | " + " | ".join(f"fold {f['index'] + 1}" for f in folds) + " |",
            "|---|---|---|" + "---|" * len(folds)]
    for clf in p["classifiers"]:
        for b in p["budgets"]:
            for row in main:
                vals = [_mean(r["OA"] for r in recs if r["row"] == row and r["classifier"] == clf
                              and r["budget"] == b and r["fold"] == f["index"]) for f in folds]
                out.append(f"| {clf} | {_budget(b)} | {row} | " + " | ".join(_pct(v) for v in vals) + " |")
        vals = [_mean(r["OA"] for r in recs if r["row"] == "ceiling" and r["classifier"] == clf
                      and r["fold"] == f["index"]) for f in folds]
        if any(v is not None for v in vals):
            out.append(f"| {clf} | all | ceiling | " + " | ".join(_pct(v) for v in vals) + " |")
    out.append("| — | — | majority-class baseline | " + " | ".join(_pct(f["majority_baseline_OA"]) for f in folds)
               + " |")
    out.append("")
    # validation choices
    out += ["## What validation chose", "",
            "Per row, over folds × budgets: how often each added-pixel ratio was chosen (0 = the row fell back to "
            "real), and how often the 0.25 weight, the agreement filter and each guidance weight were.", "",
            "| classifier | row | ratio chosen | weight < 1 | filter on | guidance |", "|---|---|---|---|---|---|"]
    for clf in p["classifiers"]:
        for row in p["rows"]:
            ch = [result["choices"][f][b][clf]["rows"][row] for f in result["choices"]
                  for b in result["choices"][f]]
            ratios = {}
            for c in ch:
                ratios[c["ratio"]] = ratios.get(c["ratio"], 0) + 1
            used = [c for c in ch if c["ratio"] > 0]
            g = {}
            for c in used:
                if c.get("guidance") is not None:
                    g[c["guidance"]] = g.get(c["guidance"], 0) + 1
            out.append(f"| {clf} | {row} | " + ", ".join(f"{q:g}: {n}" for q, n in sorted(ratios.items())) +
                       f" | {sum(c['weight'] < 1 for c in used)}/{len(used)} | {sum(bool(c['filter']) for c in used)}"
                       f"/{len(used)} | " + (", ".join(f"w={w:g}: {n}" for w, n in sorted(g.items())) or "—") + " |")
    out.append("")
    # layout fidelity
    if result.get("layout_fidelity"):
        ws = list(next(iter(result["layout_fidelity"].values()))["per_guidance"])
        out += ["## Layout fidelity of HUD-cond (training side)", "",
                "A net trained on every real label of the fold's training ground labels HUD-cond's pixels drawn for "
                "layouts of that ground; agreement with the layout at guidance w, beside that net's accuracy on the "
                "fold's held-out pixels (reported, never used to choose).", "",
                "| fold | held-out accuracy | " + " | ".join(f"agreement, w = {w}" for w in ws) + " |",
                "|---|---|" + "---|" * len(ws)]
        for f, v in result["layout_fidelity"].items():
            out.append(f"| {int(f) + 1} | {_pct(v['heldout_accuracy'])} | " + " | ".join(
                _pct(v["per_guidance"][w]["agreement"]) for w in ws) + " |")
        out.append("")
    # leak audit
    if result.get("leak_audit"):
        out += ["## Leak audit", "", "Pixels each learner was handed, counted in the fold's buffer and held-out cells "
                "(HUD-cond: the training-ground mask saved with its weights).", "",
                "| fold | learner | pixels | in buffer | in held-out cells |", "|---|---|---|---|---|"]
        for a in result["leak_audit"]:
            out.append(f"| {a['fold'] + 1} | {a['learner']} | {a['pixels_trained_on']} | {a['pixels_in_buffer']} | "
                       f"{a['pixels_in_held_out']} |")
        out.append("")
    mc = result.get("machine", {})
    gens = ", ".join(f"fold {int(f) + 1}: {g['run']} (weights {g['weights_hash']})"
                     for f, g in result.get("generators", {}).items())
    out.append(f"*{result['scene']}, profile `{prof}`, {result['version']}; HUD-cond runs: {gens or '—'}. The "
               f"draws of a fold share its held-out pixels, so the pairs of a cell are not independent (the per-fold "
               f"table shows the spread across test regions). Machine: {mc.get('cpu', '?')}, torch "
               f"{mc.get('torch', '?')}, scikit-learn {mc.get('sklearn', '?')}; wall time "
               f"{result.get('wall_time_s', 0):.0f} s (runs {result.get('runs_wall_time_s', 0):.0f} s).*")
    return "\n".join(out) + "\n"


def _json_safe(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.generic):
        return _json_safe(x.item())
    return x


def write_result(result: dict, out_dir, profile: str) -> tuple[Path, Path]:
    """Write ``downstream_<profile>.json`` (the whole result; NaN as null) and ``downstream_<profile>.md`` into
    ``out_dir``, each atomically. Returns both paths."""
    if not isinstance(profile, str) or not re.fullmatch(r"[A-Za-z0-9_\-]+", profile):
        raise DataError(f"profile: expected a name of letters, digits, '_' or '-', got {profile!r}")
    if not isinstance(result, dict) or not {"records", "protocol", "summary"} <= set(result):
        raise DataError("result: expected the dict returned by hudlib.downstream.experiment")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jpath, mpath = out / f"downstream_{profile}.json", out / f"downstream_{profile}.md"
    safe = _json_safe(result)
    atomic_write_text(jpath, json.dumps(safe, indent=1, allow_nan=False))
    atomic_write_text(mpath, markdown(safe))
    return jpath, mpath


def plot_gains(result: dict, metric: str = "OA"):
    """A figure of every row's paired gain over ``real`` (``metric`` × 100): one panel per classifier and budget,
    a small dot per (fold, draw), a ring per fold mean, a bar at the mean; rows top to bottom as in the tables.
    Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    p = result["protocol"]
    recs = _test_records(result)
    rows = [r for r in dict.fromkeys(r["row"] for r in recs) if r != "real"]
    fig, axes = plt.subplots(len(p["budgets"]), len(p["classifiers"]), squeeze=False, sharey=True,
                             figsize=(5.2 * len(p["classifiers"]), 0.32 * len(rows) * len(p["budgets"]) + 1.2))
    colours = plt.get_cmap("tab10")
    for i, b in enumerate(p["budgets"]):
        for j, clf in enumerate(p["classifiers"]):
            ax = axes[i][j]
            for y, row in enumerate(rows):
                ref = {(r["fold"], r["draw"]): r[metric] for r in recs if r["row"] == "real"
                       and r["classifier"] == clf and r["budget"] == b}
                d = [(r["fold"], 100 * (r[metric] - ref[(r["fold"], r["draw"])])) for r in recs
                     if r["row"] == row and r["classifier"] == clf and r["budget"] == b
                     and (r["fold"], r["draw"]) in ref]
                if not d:
                    continue
                folds = sorted({f for f, _ in d})
                for f in folds:
                    v = [x for g, x in d if g == f]
                    ax.scatter(v, np.full(len(v), y) + 0.12 * (f - (len(folds) - 1) / 2) / max(len(folds), 1),
                               s=6, color=colours(f % 10), alpha=0.5, lw=0)
                    ax.scatter([np.mean(v)], [y], s=40, facecolors="none", edgecolors=colours(f % 10), lw=1)
                ax.plot([np.mean([x for _, x in d])] * 2, [y - 0.35, y + 0.35], color="k", lw=2)
            ax.axvline(0, color="0.5", lw=0.8)
            ax.set_yticks(range(len(rows)), rows, fontsize=7)
            ax.set_title(f"{clf}, {b} labels/class", fontsize=9)
            ax.set_xlabel(f"Δ{metric} vs real (× 100)", fontsize=8)
            ax.grid(axis="x", alpha=0.3)
    axes[0][0].invert_yaxis()  # shared: once for all panels
    fig.suptitle(f"{result['scene']}: paired gain over real (dots: fold × draw, rings: fold means, bars: mean; "
                 f"profile {result['profile']})", fontsize=9)
    fig.tight_layout()
    return fig
