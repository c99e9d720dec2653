"""Verify a run against the committed results: ``results/verify_<profile>.md``.

For every evaluation record of a profile (``results/<scene>/<model>/<profile>*.json``) and every number in it (the
metrics, the paper-exact block, the physical block), the committed value (git ``HEAD``, or the snapshot the runner
took before it ran when the folder is not a git checkout) beside the value now in ``results/`` and whether they agree:
exactly, or within the metric's tolerance (:data:`TOLERANCE`). Disagreements beyond tolerance are listed first;
``./run_all.sh --verify strict`` exits non-zero on any.

Where the tolerances come from: the same weights sampled on another CPU (another instruction set, another thread
count) give samples that differ at float rounding, and every metric moves with them; docs/running.md "Verify" gives the
training-seed spread that bounds them from above, and benchmarks/verify_tolerance.py measures them from below by
emulating another CPU (numbers at :data:`TOLERANCE`).

Sources of the facts used here: docs/methods.md (What makes a re-run agree).
"""
from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

from . import paths
from .metrics import registry
from .utils import atomic_write_text

__all__ = ["TOLERANCE", "collect", "compare", "snapshot", "write_report", "committed_records"]

# (absolute, relative) tolerance per value of the paper-exact and physical blocks; a value agrees when
# |now - committed| <= abs + rel * |committed|. "_default" for values not listed. The metrics block's values take the
# tolerance registered with their metric (hudlib.metrics.registry; by-products this default). Bounded from above by
# the training-seed spread and from below by float differences between CPUs: docs/running.md "Verify".
TOLERANCE: dict[str, tuple[float, float]] = {
    "_default": registry.DEFAULT_TOLERANCE,
    "paper_exact.F_p": (1e-6, 0.0), "paper_exact.D_b": (1e-6, 0.0),
}


def _numbers(rec: dict) -> dict[str, float]:
    """``{"metrics.FID": v, "paper_exact.F_p.value": v, "physical.simplex_angle_mean": v, ...}`` of a record."""
    out = {}
    for k, v in (rec.get("metrics") or {}).items():
        if isinstance(v, (int, float)):
            out[f"metrics.{k}"] = float(v)
    for k, v in (rec.get("paper_exact") or {}).items():
        if isinstance(v, dict):
            for kk in ("value", "draw_mean", "draw_std"):
                if isinstance(v.get(kk), (int, float)):
                    out[f"paper_exact.{k}.{kk}"] = float(v[kk])
    for k, v in (rec.get("physical") or {}).items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"physical.{k}"] = float(v)
    return out


def _tolerance(key: str) -> tuple[float, float]:
    if key.startswith("metrics."):
        name = key.split(".", 1)[1]
        return registry.get_metric(name).tolerance if name in registry.metric_names() else TOLERANCE["_default"]
    name = key.split(".")[1] if key.startswith("physical.") else ".".join(key.split(".")[:2])
    return TOLERANCE.get(name, TOLERANCE["_default"])


def collect(profile: str, results=None) -> dict[str, dict]:
    """``{relative path: record}`` of every evaluation record of ``profile`` under ``results``."""
    root = paths.results_dir(results)
    out = {}
    for f in sorted(root.glob(f"*/*/{profile}*.json")):
        if f.name == f"{profile}.json" or f.name.startswith(f"{profile}-"):
            out[f.relative_to(root).as_posix()] = json.loads(f.read_text())
    return out


def committed_records(profile: str, results=None) -> dict[str, dict] | None:
    """The records of ``profile`` as committed (git ``HEAD``), or None when ``results`` is not in a git work tree."""
    root = paths.results_dir(results)
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True,
                             timeout=30)
        if top.returncode:
            return None
        # --full-name: paths from the top of the work tree (without it they are relative to ``root``)
        ls = subprocess.run(["git", "ls-tree", "-r", "--name-only", "--full-name", "HEAD", "--", "."], cwd=root,
                            capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    out = {}
    prefix = root.resolve().relative_to(Path(top.stdout.strip()).resolve()).as_posix()
    for name in ls.stdout.splitlines():
        rel = Path(name).relative_to(prefix).as_posix() if prefix != "." else name
        parts = Path(rel).parts
        if len(parts) != 3 or not (parts[2] == f"{profile}.json" or parts[2].startswith(f"{profile}-")) \
                or not parts[2].endswith(".json"):
            continue
        blob = subprocess.run(["git", "show", f"HEAD:{name}"], cwd=top.stdout.strip(), capture_output=True,
                              text=True, timeout=30)
        if blob.returncode == 0:
            out[rel] = json.loads(blob.stdout)
    return out


def snapshot(profile: str, results=None, build=None) -> Path:
    """Copy the records of ``profile`` as they are before a run to ``build/verify/before_<profile>.json``."""
    out = paths.build_dir(build) / "verify" / f"before_{profile}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(collect(profile, results)))
    return out


def compare(committed: dict[str, dict], now: dict[str, dict]) -> list[dict]:
    """One row per (record, value) present in both, with ``agree`` ("exact", "within tolerance", "no") and the
    tolerance; records present in only one side become a row with ``agree = "missing"``."""
    rows = []
    for rel in sorted(set(committed) | set(now)):
        a, b = committed.get(rel), now.get(rel)
        if a is None or b is None:
            rows.append({"record": rel, "value": "(record)", "committed": None, "now": None, "agree": "missing",
                         "why": "not committed" if a is None else "not computed in this run"})
            continue
        va, vb = _numbers(a), _numbers(b)
        for k in sorted(set(va) | set(vb)):
            x, y = va.get(k), vb.get(k)
            if x is None or y is None:
                rows.append({"record": rel, "value": k, "committed": x, "now": y, "agree": "missing",
                             "why": "value absent on one side"})
                continue
            at, rt = _tolerance(k)
            same = x == y or (math.isnan(x) and math.isnan(y))
            ok = same or abs(y - x) <= at + rt * abs(x)
            rows.append({"record": rel, "value": k, "committed": x, "now": y, "diff": abs(y - x) if not same else 0.0,
                         "tolerance": at + rt * abs(x), "agree": "exact" if same else ("within tolerance" if ok
                                                                                       else "no"),
                         "same_weights": a.get("weights_hash") == b.get("weights_hash"),
                         "recomputed": a.get("wall_time_s") != b.get("wall_time_s") or a.get("git_commit") !=
                         b.get("git_commit")})
    return rows


def _f(v) -> str:
    return "—" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))


def write_report(profile: str, rows: list[dict], source: str, results=None) -> Path:
    """``results/verify_<profile>.md`` from :func:`compare` rows; returns its path."""
    bad = [r for r in rows if r["agree"] in ("no", "missing")]
    n_exact = sum(r["agree"] == "exact" for r in rows)
    n_tol = sum(r["agree"] == "within tolerance" for r in rows)
    records = sorted({r["record"] for r in rows})
    recomputed = sorted({r["record"] for r in rows if r.get("recomputed")})
    lines = [f"# Verify, profile `{profile}`: committed results against this run\n",
             f"Committed values: {source}. {len(records)} records, {len(rows)} values: {n_exact} exactly equal, "
             f"{n_tol} within tolerance, {len(bad)} disagreeing or missing. {len(recomputed)} of the records were "
             f"recomputed by this machine (the others were already computed here).\n"]
    lines.append("## Disagreements beyond tolerance\n")
    if bad:
        lines += ["| record | value | committed | now | |diff| | tolerance | note |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['record']} | {r['value']} | {_f(r['committed'])} | {_f(r['now'])} | {_f(r.get('diff'))} | "
                  f"{_f(r.get('tolerance'))} | {r.get('why', '' if r.get('same_weights', True) else 'other weights')} |"
                  for r in bad]
    else:
        lines.append("None.")
    lines.append("\n## Every record\n")
    lines += ["| record | values | exact | within tolerance | largest |diff| (value) |", "|---|---|---|---|---|"]
    for rel in records:
        rs = [r for r in rows if r["record"] == rel]
        worst = max(rs, key=lambda r: (r.get("diff") or 0.0) / max(r.get("tolerance") or 1.0, 1e-300))
        lines.append(f"| {rel} | {len(rs)} | {sum(r['agree'] == 'exact' for r in rs)} | "
                     f"{sum(r['agree'] == 'within tolerance' for r in rs)} | {_f(worst.get('diff'))} "
                     f"({worst['value']}) |")
    lines.append("\n*Tolerance of a value: abs + rel · |committed| (the metric's registered tolerance, "
                 "hudlib/metrics/registry.py, or hudlib/verify.py TOLERANCE for the blocks; docs/running.md \"Verify\" "
                 "gives the measurements behind them).*\n")
    out = paths.results_dir(results) / f"verify_{profile}.md"
    atomic_write_text(out, "\n".join(lines))
    return out
