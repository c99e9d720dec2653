"""Soak test of the main command: the full smoke pipeline (hudlib.runner.run_notebooks) N times in a row.

Each run gets a fresh project root (a copy of notebooks/, an empty build/, results/ and figures/), as a new user's
clone would; runs/ is shared across the N runs unless --fresh-runs (then every run trains again). Prints per run:
ok/FAIL, wall time, any timeout and the failure; then the wall-time spread and the smoke numbers behind
hudlib/timings.json (seconds per training step, per evaluated generator, per notebook). Exits non-zero on
any failure. Usage::

    PYTHONPATH=. python benchmarks/runner_soak.py --n 10 [--scenes IndianPines] [--fresh-runs] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from hudlib import runner
from hudlib.config import make_config
from hudlib.models import run_dir_for

ROOT = Path(__file__).resolve().parents[1]


def one_run(root: Path, runs: Path, scenes: list[str], cell_timeout_s: float | None,
            results: Path | None = None) -> dict:
    """One full smoke pipeline in the fresh project root ``root``; the runner's terminal output goes to
    ``root/terminal.txt``. ``results``: a results folder shared between runs (every cell still runs; the
    evaluations' cached results are reused). Returns the runner's summary plus ``wall_s``."""
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    os.symlink(runs, root / "runs")
    if results is not None:
        os.symlink(results, root / "results")
    old_cwd, old_root = Path.cwd(), os.environ.get("HUD_ROOT")
    os.environ["HUD_ROOT"] = str(root)
    os.chdir(root)
    t0 = time.perf_counter()
    try:
        with open(root / "terminal.txt", "w") as term:
            summary = runner.run_notebooks("smoke", scenes=scenes, nb_dir=root / "notebooks", build=root / "build",
                                           cell_timeout_s=cell_timeout_s, term=term)
    except Exception as e:  # a crash of the runner itself is a failed run, reported like the others
        summary = {"ok": False, "steps": [{"ok": False, "error": f"runner raised {type(e).__name__}: {e}"}]}
    finally:
        os.chdir(old_cwd)
        if old_root is None:
            os.environ.pop("HUD_ROOT", None)
        else:
            os.environ["HUD_ROOT"] = old_root
    summary["wall_s"] = time.perf_counter() - t0
    return summary


def smoke_numbers(root: Path, runs: Path, scene: str, summary: dict) -> dict:
    """The measured smoke numbers hudlib/timings.json holds, from one finished run."""
    out = {}
    info = run_dir_for(make_config(scene, "HUD", "smoke"), runs) / "train_info.json"
    if info.is_file():
        ti = json.loads(info.read_text())
        out["step_s"] = ti["wall_time_s"] / ti["steps"]
    walls = [json.loads(p.read_text()).get("wall_time_s") for p in (root / "results").glob(f"{scene}/*/smoke.json")]
    walls = [w for w in walls if w is not None]
    if walls:
        out["eval_s"] = statistics.mean(walls)
    per_nb = [s["wall_s"] for s in summary.get("steps", []) if Path(s.get("notebook", "x")).name[:2] in
              ("00", "01", "02")]
    if per_nb:
        out["notebook_s"] = statistics.mean(per_nb)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=10, help="pipelines in a row (default 10)")
    p.add_argument("--scenes", nargs="*", default=["IndianPines"])
    p.add_argument("--fresh-runs", action="store_true", help="train again in every run (default: share runs/)")
    p.add_argument("--cell-timeout", type=float, default=None, help="override the smoke profile's cell_timeout_s (hudlib.profiles)")
    p.add_argument("--shared-results", action="store_true",
                   help="share results/ between runs (every notebook and cell still runs; evaluations are reused)")
    p.add_argument("--keep", default=None, help="keep every run's root under this folder (default: a temp dir)")
    a = p.parse_args(argv)
    base = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="hud_soak_"))
    base.mkdir(parents=True, exist_ok=True)
    shared_runs = base / "runs"
    shared_runs.mkdir(exist_ok=True)
    print(f"soak: {a.n} smoke pipelines, scenes {', '.join(a.scenes)}, roots under {base}", flush=True)
    rows = []
    for i in range(a.n):
        root = base / f"run{i:02d}"
        runs = base / f"runs{i:02d}" if a.fresh_runs else shared_runs
        runs.mkdir(exist_ok=True)
        results = (base / "results") if a.shared_results else None
        if results is not None:
            results.mkdir(exist_ok=True)
        s = one_run(root, runs.resolve(), a.scenes, a.cell_timeout, results.resolve() if results else None)
        bad = next((st for st in s.get("steps", []) if not st.get("ok")), None)
        timeout = bool(bad and bad.get("timeout"))
        rows.append((s["ok"], s["wall_s"], timeout))
        print(f"run {i + 1:2d}/{a.n}: {'ok  ' if s['ok'] else 'FAIL'} {s['wall_s']:7.1f} s"
              + (" TIMEOUT" if timeout else "") + (f"  {bad['error']}" if bad else ""), flush=True)
        if i == 0 or a.fresh_runs:
            nums = smoke_numbers(root, runs, a.scenes[0], s)
            print("       measured: " + ", ".join(f"{k} {v:.3f}" for k, v in nums.items()), flush=True)
    walls = [w for _, w, _ in rows]
    n_fail, n_timeout = sum(not ok for ok, _, _ in rows), sum(t for _, _, t in rows)
    print(f"\n{a.n} runs: {a.n - n_fail} ok, {n_fail} failed, {n_timeout} timed out; wall min {min(walls):.1f} s, "
          f"median {statistics.median(walls):.1f} s, max {max(walls):.1f} s, total {sum(walls) / 60:.1f} min")
    if not a.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
