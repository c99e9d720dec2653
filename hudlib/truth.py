"""Unmixing judged against a scene's reference unmixing (Samson: reference endmembers and abundances).

For a scene with :attr:`hudlib.data.Scene.reference`, HUD's first steps and its output are scored against the truth:

- **VCA** (III-B): the spectral angle (SAD, radians) of each VCA endmember to its reference endmember, after the
  Hungarian matching of :func:`hudlib.unmixing.match_endmembers`, for the run's endmembers and for VCA seeds 0..4;
- **abundances** (eq. 2 and the encoder): the RMSE to the reference abundances of FCLS on the run's VCA endmembers,
  of the UAE encoder (what HUD's diffusion model learns from), and of FCLS on the reference endmembers rescaled to the
  cube (one factor per endmember by least squares of Y ≈ M diag(c) A_ref: the file's M is on another scale than Y), the
  oracle of the linear mixing model;
- **generated abundances** (eqs. 5-6): for each generator with abundances (HUD and the controls UAECopy and
  RandomMixture; HUD-asrun where selected), n generated 32 × 32 abundance patches against n random crops of the
  reference abundances, each generated map matched to a reference endmember through the generator's own endmembers:
  per endmember the 1-D Wasserstein distance of the abundance values and the total-variation distance of their
  20-bin histograms, and the autocorrelation length of the maps (radially averaged, first fall below 1/e;
  :func:`hudlib.metrics.field_scale_statistics` per patch, median over patches) beside the reference's.

Sources of the facts used here: docs/methods.md ("Unmixing against a reference").
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import paths
from .errors import DataError

__all__ = ["GENERATORS", "reference_report", "write_report", "markdown", "generator_endmembers"]

# The generators whose abundances are judged (the reference generator first), when selected.
GENERATORS = ("HUD", "HUD-asrun", "UAECopy", "RandomMixture")


def generator_endmembers(gen) -> np.ndarray | None:
    """A fitted generator's endmembers ``(bands, d)`` (its UAE decoder, or a control's VCA endmembers), or None."""
    if getattr(gen, "uae_", None) is not None:
        return np.asarray(gen.uae_.endmembers, np.float64)
    E = getattr(gen, "E_", None)
    return None if E is None else np.asarray(E, np.float64)


def _rmse(A, B) -> float:
    return float(np.sqrt(np.mean((np.asarray(A, np.float64) - np.asarray(B, np.float64)) ** 2)))


def _matched(E, M) -> tuple[np.ndarray, np.ndarray]:
    """``(order, SAD)``: ``E[:, order[j]]`` is matched to reference endmember j, at angle SAD[j] (radians)."""
    from .unmixing import match_endmembers

    order, ang = match_endmembers(E, M)
    return np.asarray(order), np.asarray(ang, np.float64)


def _acl(maps: np.ndarray) -> float:
    """Median over patches of the autocorrelation length of abundance maps ``(n, d, h, w)``."""
    from .metrics import field_scale_statistics

    return float(np.median([field_scale_statistics(x)["autocorrelation_length"] for x in maps]))


def reference_report(scene, profile: str = "quick", runs=None, device="auto", models=None, n: int | None = None,
                     seed: int = 0) -> dict:
    """The module docstring's report on ``scene`` (which must carry a reference) for the generators of
    :data:`GENERATORS` among ``models`` (default all of them) at ``profile`` (trained or installed by ``fit``)."""
    from scipy.stats import wasserstein_distance

    import time

    from . import models as registry
    from .data import crop, patch_corners
    from .evaluate import machine_description
    from .utils import resolve_device
    from .unmixing import fcls, vca

    t0 = time.perf_counter()
    if scene.reference is None:
        raise DataError(f"scene: {scene.name} has no reference unmixing to judge against")
    M = np.asarray(scene.reference["endmembers"], np.float64)
    A = np.asarray(scene.reference["abundances"], np.float64)
    names = [str(v) for v in scene.reference.get("names", [f"endmember {j + 1}" for j in range(M.shape[1])])]
    p = M.shape[1]
    Y = scene.cube.reshape(scene.bands, -1).astype(np.float64)
    want = [m for m in GENERATORS if models is None or m in models]
    gens = {m: registry.create(m).fit(scene, profile, paths.runs_dir(runs), device=device, progress=False)
            for m in want}
    out = {"scene": scene.name, "profile": profile, "endmember_names": names, "labels_note": scene.labels_note}
    # VCA: the run's endmembers (HUD's UAE decoder) and seeds 0..4
    ref_gen = next((g for g in gens.values() if generator_endmembers(g) is not None), None)
    vca_rows = {}
    if ref_gen is not None:
        vca_rows["run"] = _matched(generator_endmembers(ref_gen), M)[1].tolist()
    for s in range(5):
        vca_rows[f"seed {s}"] = _matched(vca(scene.cube, p, random_state=s)[0], M)[1].tolist()
    out["vca_sad"] = vca_rows
    # abundances against the reference
    ab = {}
    c = np.linalg.lstsq((M[:, :, None] * A.reshape(p, -1)[None]).transpose(0, 2, 1).reshape(-1, p),
                        Y.reshape(-1), rcond=None)[0]
    X_oracle = fcls(scene.cube, M * c[None, :], progress=False)
    ab["FCLS, reference endmembers (rescaled)"] = _rmse(X_oracle, A)
    if ref_gen is not None:
        E = generator_endmembers(ref_gen)
        order, _ = _matched(E, M)
        X = fcls(scene.cube, E, progress=False)
        ab["FCLS, the run's VCA endmembers"] = _rmse(X[order], A)
        if getattr(ref_gen, "uae_", None) is not None:
            enc = ref_gen.uae_.encode(scene.cube)
            ab["UAE encoder (what the diffusion model learns from)"] = _rmse(np.asarray(enc)[order], A)
    out["abundance_rmse"] = ab
    # generated abundances against crops of the reference
    size = 32
    if n is None:
        n = next(iter(gens.values())).config_.eval.n_samples if gens else 64
    n = int(n)
    rng = np.random.default_rng(seed + 1)
    R = crop(A, patch_corners(A.shape, size, n, rng), size)  # (n, p, 32, 32)
    bins = np.linspace(0.0, 1.0, 21)
    rows = {"reference crops": {"acl": _acl(R)}}
    for m, g in gens.items():
        if not getattr(g, "has_abundances", False):
            continue
        E = generator_endmembers(g)
        if E is None or E.shape[1] != p:
            rows[m] = {"skipped": f"{E.shape[1] if E is not None else 'no'} endmembers, the reference has {p}"}
            continue
        order, _ = _matched(E, M)
        _, X = g.sample(n, random_state=seed, device=device, return_abundances=True)
        X = np.asarray(X, np.float64)[:, order]
        if X.min() < -1e-6 or np.abs(X.sum(1) - 1).max() > 1e-3:
            rows[m] = {"skipped": "its abundances are not on the simplex (another decoding)"}
            continue
        w1, tv = [], []
        for j in range(p):
            a, b = X[:, j].ravel(), R[:, j].ravel()
            w1.append(float(wasserstein_distance(a, b)))
            ha, hb = np.histogram(np.clip(a, 0, 1), bins)[0] / a.size, np.histogram(np.clip(b, 0, 1), bins)[0] / b.size
            tv.append(float(0.5 * np.abs(ha - hb).sum()))
        rows[m] = {"wasserstein": w1, "tv": tv, "acl": _acl(X), "weights_hash": g.weights_hash(),
                   "sampling": g.sampling_key()}
    out["generated"] = rows
    out["n"] = n
    out["seed"] = seed
    out["machine"] = machine_description(resolve_device(device))
    out["wall_time_s"] = round(time.perf_counter() - t0, 1)
    return out


def write_report(report: dict, results=None) -> Path:
    """``results/<scene>/unmixing_<profile>.json`` and ``.md`` (:func:`markdown`); returns the .md."""
    from .utils import atomic_write_text

    folder = paths.results_dir(results) / report["scene"]
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / f"unmixing_{report['profile']}.json", json.dumps(report, indent=1))
    md = folder / f"unmixing_{report['profile']}.md"
    atomic_write_text(md, markdown(report))
    return md


def markdown(r: dict) -> str:
    """The report as tables."""
    names = r["endmember_names"]
    hashes = ", ".join(f"{m} {v['weights_hash']}" + (f" ({v['sampling']})" if "sampling" in v else "")
                       for m, v in r["generated"].items() if "weights_hash" in v)
    lines = [f"# Unmixing against the reference: {r['scene']} (profile `{r['profile']}`)", "",
             f"Weights: {hashes or 'none'}; n = {r['n']} generated patches per generator; "
             f"{r.get('machine', 'machine not recorded')}"
             + (f", {r['wall_time_s']:.0f} s" if "wall_time_s" in r else "") + ".", "",
             "## VCA endmembers: spectral angle to the reference (radians; Hungarian matching)", "",
             "| VCA | " + " | ".join(names) + " | mean |", "|---|" + "---|" * (len(names) + 1)]
    for k, v in r["vca_sad"].items():
        lines.append(f"| {k} | " + " | ".join(f"{x:.3f}" for x in v) + f" | {np.mean(v):.3f} |")
    lines += ["", "## Abundances: RMSE to the reference abundances", "", "| abundances | RMSE |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in r["abundance_rmse"].items()]
    lines += ["", f"## Generated abundances against {r['n']} random 32 × 32 crops of the reference (seed {r['seed']})",
              "", "1-D Wasserstein distance and histogram total variation (20 bins) of each endmember's abundance "
              "values; autocorrelation length of the maps (px, median over patches).", "",
              "| generator | " + " | ".join(f"W1 {x}" for x in names) + " | " + " | ".join(f"TV {x}" for x in names)
              + " | autocorrelation length |", "|---|" + "---|" * (2 * len(names) + 1)]
    for m, v in r["generated"].items():
        if "skipped" in v:
            lines.append(f"| {m} | skipped: {v['skipped']} |" + " |" * (2 * len(names)))
        elif m == "reference crops":
            lines.append(f"| {m} |" + " 0 |" * (2 * len(names)) + f" {v['acl']:.2f} |")
        else:
            lines.append(f"| {m} | " + " | ".join(f"{x:.4f}" for x in v["wasserstein"]) + " | "
                         + " | ".join(f"{x:.3f}" for x in v["tv"]) + f" | {v['acl']:.2f} |")
    if r.get("labels_note"):
        lines += ["", f"Labels of this scene (for the classifier-based metrics elsewhere): {r['labels_note']}."]
    return "\n".join(lines) + "\n"
