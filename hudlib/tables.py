"""Tables I–IV from ``results/``: ours beside the paper's, profile and machine stated, controls included.

A metric is flagged *non-discriminating* on a scene when a trivial control (registry role ``trivial``: the mean
spectrum, random mixtures) scores as well as the reference generator (HUD) or better (within 1 % relative): such a
metric cannot tell the reference from a trivial generator there.
"""
from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

from . import audit, complexity, models, paths
from .config import make_config
from .data import load_scene
from .evaluate import evaluate
from .metrics import registry
from .utils import atomic_write_text

__all__ = ["paper_results", "load_results", "variant_row", "split_row", "paper_exact_tables", "discrimination",
           "metric_table", "paper_tables", "write_tables", "complexity_markdown", "make_tables"]

def paper_results() -> dict:
    """The paper's Tables I–IV, transcribed once in ``hudlib/paper_results.json``."""
    return json.loads(resources.files("hudlib").joinpath("paper_results.json").read_text())


def paper_models() -> list[str]:
    """The generators' columns of the paper's Tables I–III, in the paper's order."""
    return list(paper_results()["table1"]["F_p"]["IndianPines"])


def _local(rec: dict, runs) -> bool:
    """Was ``rec`` computed from weights present under ``runs`` (same content hash)?"""
    try:
        cfg = make_config(rec["scene"], rec["model"], rec["profile"], rec.get("train_overrides") or None)
        local = models.get(rec["model"]).weights_hash_at(models.run_dir_for(cfg, paths.runs_dir(runs)))
    except (KeyError, ValueError):
        return False
    return local is not None and local == rec.get("weights_hash")


def load_results(profile: str, results=None, scenes=None, model_names=None, runs=None,
                 local_only: bool = True) -> dict[str, dict[str, dict]]:
    """``{scene: {model: record}}`` of ``results/<scene>/<model>/<profile>.json``.

    With ``local_only`` (the default) a record is kept only when the weights it was computed from are the ones in
    ``runs`` (content hash): results committed from another machine's training are never shown as this machine's.
    A generator's sampling variants (:attr:`~hudlib.models.Generator.variants`, ``<profile>-<tag>.json``) come
    keyed ``"<model> [<tag>]"`` (:func:`variant_row`).
    """
    root = paths.results_dir(results)
    out: dict[str, dict[str, dict]] = {}
    files = [(f, None) for f in sorted(root.glob(f"*/*/{profile}.json"))]
    for m in models.names():
        files += [(f, tag) for tag in models.get(m).variants for f in sorted(root.glob(f"*/{m}/{profile}-{tag}.json"))]
    for f, tag in files:
        rec = json.loads(f.read_text())
        if scenes and rec["scene"] not in scenes:
            continue
        if model_names and rec["model"] not in model_names:
            continue
        if local_only and not _local(rec, runs):
            continue
        out.setdefault(rec["scene"], {})[variant_row(rec["model"], tag)] = rec
    return out


def variant_row(model: str, tag: str | None) -> str:
    """The table row of a generator's sampling variant: ``"UD [authors-decoding]"`` (``model`` itself for None)."""
    return f"{model} [{tag}]" if tag else model


def split_row(row: str) -> tuple[str, str | None]:
    """Inverse of :func:`variant_row`: ``"UD [p5]"`` -> ``("UD", "p5")``, ``"HUD"`` -> ``("HUD", None)``."""
    base, _, tag = row.partition(" [")
    return base, tag[:-1] if tag else None


def _row_order(rows) -> list[str]:
    """``rows`` in registry order, each generator followed by its variants in their declared order; rows of
    unregistered models last."""
    order = []
    for m in models.names():
        order += [r for r in [m] + [variant_row(m, t) for t in models.get(m).variants] if r in rows]
    return order + [r for r in rows if r not in order]


def _better_or_equal(a: float, b: float, direction: int, rel: float = 0.01) -> bool:
    """Is ``a`` at least as good as ``b`` (within ``rel`` of |b|)?"""
    if any(map(lambda v: v is None or (isinstance(v, float) and math.isnan(v)), (a, b))):
        return False
    return direction * (a - b) >= -rel * abs(b)


def discrimination(scene_results: dict[str, dict], reference: str | None = None) -> dict[str, list[str]]:
    """``{metric: [trivial controls that score level with or better than the reference]}`` for one scene."""
    flags = {}
    ref = scene_results.get(reference or models.reference_name())
    if ref is None:
        return flags
    for name in registry.metric_names():
        direction = registry.get_metric(name).direction
        hits = [c for c in models.names(trivial=True) if c in scene_results and
                _better_or_equal(scene_results[c]["metrics"].get(name), ref["metrics"].get(name), direction)]
        if hits:
            flags[name] = hits
    return flags


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"


def metric_table(scene: str, scene_results: dict[str, dict], profile: str) -> str:
    """Markdown: rows = our models (controls marked) + the paper's models, columns = every metric."""
    cols = list(registry.metric_names())
    flags = discrimination(scene_results)
    head = "| model | " + " | ".join(f"{c} {registry.get_metric(c).arrow}{' ⚠' if c in flags else ''}"
                                   for c in cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 1)]
    order = _row_order(scene_results)
    pr = paper_results()

    def paper_row(pm: str) -> str:
        vals = {"F_p": pr["table1"]["F_p"].get(scene, {}).get(pm), "D_b": pr["table1"]["D_b"].get(scene, {}).get(pm),
                "D_b/F_p": pr["table1"]["D_b/F_p"].get(scene, {}).get(pm),
                "IS": pr["table2"]["IS"].get(scene, {}).get(pm), "FID": pr["table3"]["FID"].get(scene, {}).get(pm)}
        return f"| {pm} (paper) | " + " | ".join(_fmt(vals.get(c)) for c in cols) + " |"

    shown = set()
    for i, mname in enumerate(order):  # each of our rows; the paper's row of the same model under its last variant
        rec = scene_results[mname]
        base, tag = split_row(mname)
        label = f"{mname} (control)" if rec.get("control") else f"**{base}**{f' [{tag}]' if tag else ''} (ours)"
        lines.append(f"| {label} | " + " | ".join(_fmt(rec["metrics"].get(c)) for c in cols) + " |")
        if i + 1 < len(order) and split_row(order[i + 1])[0] == base:
            continue
        pm = models.paper_name(base) if base in models.names() else None
        if pm in paper_models():
            lines.append(paper_row(pm))
            shown.add(pm)
    lines += [paper_row(pm) for pm in paper_models() if pm not in shown]  # the paper's models we have not run
    any_rec = next(iter(scene_results.values()))
    hashes = ", ".join(f"{m} {scene_results[m].get('weights_hash')}" for m in order)
    note = (f"\n*{scene}, profile `{profile}`, n = {any_rec['n']} patches per model, machine: {any_rec['machine']}, "
            f"git {any_rec.get('git_commit')}, weights hashes: {hashes}. Paper rows: the paper's Tables I–III (its own setting, RTX 4090). "
            f"↑/↓: better direction. ⚠ non-discriminating here: ")
    ref = models.reference_name()
    note += ", ".join(f"{k} ({'/'.join(v)} ≥ {ref})" for k, v in flags.items()) if flags else "none"
    clfinfo = scene_results.get(ref, any_rec).get("classifier", {})
    if clfinfo:
        note += (f". Classifier held-out accuracy {_fmt(clfinfo.get('holdout_accuracy'))} on a spatially disjoint "
                 f"region (always guessing its majority class: {_fmt(clfinfo.get('holdout_majority_share'))}); "
                 f"IS/FID/SD rest on this classifier")
    return "\n".join(lines) + note + "*\n"


# metric -> (paper_exact key, our sound metric, label); IS has two paper-exact forms
_EXACT = {"F_p": ("F_p", "F_p", "F_p ↑"), "D_b": ("D_b", "D_b", "D_b ↓"), "IS": ("IS_paper", "IS", "IS ↑"),
          "FID": ("FID", "FID", "FID ↓")}


def _pm(d: dict | None) -> str:
    return "—" if not d else f"{_fmt(d['draw_mean'])} ± {_fmt(d['draw_std'])}"


def paper_exact_tables(scene: str, scene_results: dict[str, dict], profile: str) -> str:
    """Per metric of Tables I–III: the paper's value, the authors' logged value (hudlib/paper_audit.json), ours with
    the paper-exact metrics (at all n patches, and mean ± std over repeated draws of the paper's 8 patches) and ours
    with the sound metrics, for every generator of the paper's tables and the anchor controls (real crops, the mean
    spectrum)."""
    cells = {(c["model"], c["metric"]): c for c in audit.audit_rows(scene)} if scene in audit.load_audit()["scenes"] \
        else {}
    rows = [r for r in scene_results if split_row(r)[0] in models.names() and (
        models.paper_name(split_row(r)[0]) in paper_models() or r in models.names(anchor=True))]
    order = _row_order(rows)
    any_rec = next(iter(scene_results.values()), {})
    ex = any_rec.get("paper_exact", {})
    n, draws, size = any_rec.get("n"), ex.get("draws"), ex.get("draw_size")
    out = []
    for metric, (ekey, skey, label) in _EXACT.items():
        head = (f"| {label} | paper | authors' log | ours, paper-exact (n = {n}) | ours, paper-exact, {size} patches "
                f"(mean ± std of {draws} draws) | ours, hudlib (n = {n}) |")
        if metric == "IS":
            head += f" ours, paper-exact standard IS (n = {n}) |"
        lines = [head, "|" + "---|" * (head.count("|") - 1)]
        for r in order:
            rec = scene_results[r]
            pe = rec.get("paper_exact", {})
            base = split_row(r)[0]
            pm = models.paper_name(base)
            av = models.get(base).authors_variant
            closest = variant_row(base, av) if av and variant_row(base, av) in scene_results else base
            c = cells.get((pm, metric), {}) if r == closest else {}  # the paper's values on the row closest to it
            flag = " ⚑" if c.get("flags") else ""
            cols = [_fmt(c.get("paper")), _fmt(c.get("log")) + flag, _fmt(pe.get(ekey, {}).get("value")),
                    _pm(pe.get(ekey)), _fmt(rec["metrics"].get(skey))]
            if metric == "IS":
                cols.append(_fmt(pe.get("IS_standard", {}).get("value")))
            name = f"{r} (control)" if rec.get("control") else f"{r} (paper: {pm})" if pm and pm != r else r
            lines.append(f"| {name} | " + " | ".join(cols) + " |")
        out.append("\n".join(lines))
    acc = any_rec.get("authors_classifier", {})
    note = (f"*{scene}, profile `{profile}`, machine {any_rec.get('machine')}. Paper: the printed Tables I–III "
            f"(its setting: 8 generated patches per model for the baselines, 64 for HUD's IS/FID on three scenes; docs/authors_code.md §A). Authors' log: their stored run (hudlib/paper_audit.json, with "
            f"sources; ⚑ = the log and the paper differ or the cell is flagged, see the audit below). Paper-exact: "
            f"their definitions in their [−1, 1] space against the centre square crop, whole-patch D_b with 4 "
            f"rotations, IS = exp(mean KL / C) with C = classes + background, FID of 64-d per-pixel features; the "
            f"authors' classifier, trained with their recipe under the profile's budget, has per-pixel accuracy "
            f"{_fmt((acc.get('authors_split') or {}).get('val_accuracy'))} on their overlapping 80/20 window split and "
            f"{_fmt((acc.get('spatial_split') or {}).get('val_accuracy'))} on a spatially disjoint held-out region "
            f"(same recipe, trained without it). hudlib: F_p and D_b as the paper's text defines them, in our units (D_b "
            f"on 8×8 blocks), IS and FID on our 3×3-neighbourhood classifier (the Tables I–III columns above). The "
            f"paper's values sit on "
            f"the row closest to the authors' run (UD/UBF: p = 5 with their decoding).*")
    return "\n\n".join(out) + "\n\n" + note + "\n"


_PHYSICAL = (("negative_reflectance_share", "pixels with a negative reflectance ↓"),
             ("negative_abundance_share", "pixels with a negative abundance ↓"),
             ("sum_to_one_max_dev", "max \\|ΣX̂ − 1\\| ↓"),
             ("simplex_angle_mean", "angle to the VCA simplex, mean (rad)"),
             ("simplex_angle_p95", "angle, 95th percentile (rad)"))


def _fmt_small(v) -> str:
    """:func:`_fmt`, with values below 1e-3 (but not 0) in scientific notation."""
    return f"{v:.1e}" if v is not None and 0 < abs(v) < 1e-3 else _fmt(v)


def physical_table(scene: str, scene_results: dict[str, dict], profile: str) -> str:
    """Physical consistency (:mod:`hudlib.metrics.physical`) of every generator with a ``physical`` block."""
    rows = [r for r in _row_order(list(scene_results)) if scene_results[r].get("physical")]
    if not rows:
        return ""
    head = "| model | " + " | ".join(label for _, label in _PHYSICAL) + " |"
    lines = [head, "|" + "---|" * (len(_PHYSICAL) + 1)]
    for r in rows:
        ph = scene_results[r]["physical"]
        lines.append(f"| {r} | " + " | ".join(_fmt_small(ph.get(k)) for k, _ in _PHYSICAL)
                     + " |")
    any_ph = scene_results[rows[0]]["physical"]
    n = scene_results[rows[0]].get("n")
    return ("\n".join(lines) + f"\n\n*{scene}, profile `{profile}`, n = {n} patches per model. Simplex: "
            f"{any_ph.get('endmembers')}; the angle of a pixel is to its FCLS reconstruction (eq. 2). Real patches "
            f"(n = {n}): mean angle {_fmt(any_ph.get('simplex_angle_mean_real'))} rad — real pixels are not on the "
            f"simplex either, so 0 is not the goal, only a mark of the linear mixing model. — : the generator has "
            f"no abundances.*\n")


def paper_tables() -> str:
    """The paper's Tables I–IV as Markdown (for reference beside ours)."""
    pr = paper_results()
    out = []
    for key, title in (("table1", "Table I"), ("table2", "Table II"), ("table3", "Table III")):
        for metric, by_scene in pr[key].items():
            scenes = list(by_scene)
            mods = list(next(iter(by_scene.values())))
            out.append(f"**{title} (paper): {metric}**\n\n| scene | " + " | ".join(mods) + " |\n|" + "---|" *
                       (len(mods) + 1))
            for s in scenes:
                out.append(f"| {s} | " + " | ".join(_fmt(by_scene[s].get(m)) for m in mods) + " |")
            out.append("")
    t4 = pr["table4"]
    out.append("**Table IV (paper v1): computational complexity**\n")
    for size, block in t4.items():
        mods = list(next(iter(block.values())))
        out.append(f"| {size} px | " + " | ".join(mods) + " |\n|" + "---|" * (len(mods) + 1))
        for metric, vals in block.items():
            out.append(f"| {metric} | " + " | ".join(_fmt(vals.get(m)) for m in mods) + " |")
        out.append("")
    return "\n".join(out)


def write_tables(profile: str, results=None, scenes=None, model_names=None, complexity_md: str | None = None,
                 runs=None, left_out: dict | None = None) -> Path:
    """Write ``results/tables_<profile>.md`` (Tables I–III per scene with controls, Table IV) and return its path.
    ``left_out``: ``{scene: {model: reason}}`` of generators that cannot be trained there, named under its table."""
    res = load_results(profile, results, scenes, model_names, runs=runs)
    parts = [f"# Results, profile `{profile}`\n",
             "Generated by notebooks/06_tables.ipynb from results/*/*/" + profile + ".json. "
             "Columns F_p … FID are the paper's metrics (Tables I–III), SD is HyperLDM's; the rest are ours "
             "(k-NN precision/recall, sliced Wasserstein, copy rate, roughness gap = |ln| of the neighbour-angle "
             "ratio to real patches, coherence gap = |ln| of the ratio of neighbour angle to in-patch pair angle, "
             "against real patches). Controls are reference generators: UAECopy is real crops through HUD's frozen "
             "autoencoder, the best a HUD sample can be. Only results computed from the weights present in runs/ "
             "are shown (weights hashes in each footnote).\n"]
    for scene in sorted(set(res) | set(left_out or {})):
        if scene not in res:  # every generator of the run was left out here
            parts.append(f"## {scene}\n\n" + "".join(f"*{m} not run on {scene}: {why}.*\n\n"
                                                     for m, why in left_out[scene].items()))
            continue
        notes = sorted({r.get("labels_note") for r in res[scene].values() if r.get("labels_note")})
        note = "".join(f"*Labels behind IS, FID and SD on {scene}: {n}.*\n\n" for n in notes)
        skipped = sorted({(k, v) for r in res[scene].values() for k, v in (r.get("skipped_metrics") or {}).items()})
        note += "".join(f"*{k} not computed on {scene} (shown as nan): {v}.*\n\n" for k, v in skipped)
        note += "".join(f"*{m} not run on {scene}: {why}.*\n\n" for m, why in (left_out or {}).get(scene, {}).items())
        parts.append(f"## {scene}\n\n" + note + metric_table(scene, res[scene], profile))
    if complexity_md:
        parts.append("## Table IV: computational complexity (ours)\n\n" + complexity_md + "\n")
    for scene in sorted(res):
        phys = physical_table(scene, res[scene], profile)
        if phys:
            parts.append(f"## {scene}: physical consistency\n\n" + phys)
    for scene in sorted(res):
        if any("paper_exact" in r for r in res[scene].values()):
            parts.append(f"## {scene}: the paper's metrics four ways (paper / authors' log / ours paper-exact / ours "
                         f"hudlib)\n\n" + paper_exact_tables(scene, res[scene], profile))
    parts.append("## What the paper's own code shows (audit of Tables I–III)\n\n"
                 + "\n".join(f"- {f}" for f in audit.findings()) + "\n")
    for scene in sorted(set(res) & set(audit.load_audit()["scenes"])):  # the paper's scenes only
        parts.append(f"### Audit, {scene}: the paper's value beside the authors' logged value\n\n"
                     + audit.audit_markdown(scene) + "\n")
    parts.append("## The paper's tables\n\n" + paper_tables())
    out = paths.results_dir(results) / f"tables_{profile}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "\n".join(parts))
    return out


def complexity_markdown(scene: str, profile: str) -> str:
    """Table IV for the paper profile's networks and, if different, ``profile``'s, with how it was measured."""
    rows = []
    for prof in sorted({"paper", profile}):
        for r in complexity.complexity_table(scene, prof):
            if not r.get("control"):
                rows.append({**r, "model": f"{r['model']} [{prof} networks]"})
    return complexity.format_table(rows) + (f"\n\n*{scene}; FLOPs via torch.utils.flop_counter on meta tensors; "
                                            f"memory: {rows[0]['memory_method']}.*")


def make_tables(scenes, model_names, profile: str, results=None, runs=None, device: str = "auto", data_root=None,
                n: int | None = None, progress: bool = True) -> Path:
    """What ``06_tables`` does: evaluate every (scene, model) (cached by artefacts, see hudlib.evaluate), then write
    Tables I–IV. Returns the Markdown file's path."""
    left_out: dict[str, dict[str, str]] = {}
    for s in scenes:
        sc = load_scene(s, data_root)
        for m in model_names:
            why = models.unsupported(m, sc, profile)
            if why:  # cannot be trained on this scene: a line under its table instead of a failed run
                left_out.setdefault(s, {})[m] = why
                continue
            default = make_config(s, m, profile).to_dict()
            for tag, ov in [(None, None), *models.get(m).variants.items()]:
                if ov and make_config(s, m, profile, ov).to_dict() == default:
                    continue  # a variant this profile already is (p = 5 in the paper profile)
                p = evaluate(s, m, profile, n=n, runs=runs, results=results, device=device, scene_obj=sc,
                             progress=progress, overrides=ov, tag=tag or "")
                rec = json.loads(p.read_text())["metrics"]
                print(f"{s:12} {variant_row(m, tag):30} F_p {rec['F_p']:.4f}  D_b {rec['D_b']:.4f}  recall(spectra) "
                      f"{rec['recall_spectra']:.3f}  FID {rec['FID']:.2f}", flush=True)
    return write_tables(profile, results, scenes, model_names, complexity_markdown(scenes[0], profile), runs=runs,
                        left_out=left_out)
