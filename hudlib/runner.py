"""The main job behind ``./run_all.sh``: run the numbered notebooks headless through papermill, in order.

Per-scene notebooks (``00`` … ``04``) run once per scene into ``build/notebooks/<scene>/``; the cross-scene
notebooks (``05_figures``, ``06_tables`` …, marked by ``SCENE_NOTEBOOK_MAX``) run once with the list of scenes and
models. Every notebook's stdout/stderr goes to ``build/logs/``. Success is recorded per notebook in
``build/run_summary.json``; the summary with wall times is printed; the exit status is non-zero on any failure, and
the failure names the notebook and the cell.

Scenes missing locally are skipped with the exact download command (Indian Pines is always there via tensorly).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

__all__ = ["run_notebooks", "available_scenes", "main"]

SCENE_NOTEBOOK_MAX = 4  # notebooks 00..04 are per scene; 05 and later take all scenes at once


def available_scenes(names=None, root=None) -> tuple[list[str], dict[str, str]]:
    """``(present, {missing: download command})`` among ``names`` (default: every registered scene)."""
    from .data import SCENES, DataError, _info, _locate

    present, missing = [], {}
    for n in names or list(SCENES):
        info = _info(n)  # an unknown name is an error, not a skip
        try:
            _locate(info, root)
            present.append(n)
        except DataError as e:
            missing[n] = str(e)
    return present, missing


def _notebooks(nb_dir: Path) -> list[Path]:
    return sorted(p for p in nb_dir.glob("[0-9][0-9]_*.ipynb"))


def run_notebooks(profile: str = "quick", scenes=None, models=None, nb_dir="notebooks", build="build",
                  only=None, progress: bool = True, extra_params: dict | None = None) -> dict:
    """Run every numbered notebook; returns the summary dict (also written to ``build/run_summary.json``).

    Args:
        profile: smoke | quick | paper.
        scenes: scene names (default: all found locally).
        models: generator names (default: all registered).
        only: optional list of notebook name prefixes (``["00", "05"]``) to run.
    """
    import papermill as pm

    from . import models as registry
    from .config import PROFILES

    if profile not in PROFILES:
        raise ValueError(f"--profile: unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    nb_dir, build = Path(nb_dir), Path(build)
    present, missing = available_scenes(scenes)
    for name, why in missing.items():
        print(f"[skip] {name}: {why}", flush=True)
    models = list(models or registry.names())
    for m in models:
        registry.get(m)  # fail fast on an unknown name
    steps = []
    for nb in _notebooks(nb_dir):
        if only and not any(nb.name.startswith(o) for o in only):
            continue
        num = int(nb.name[:2])
        if num <= SCENE_NOTEBOOK_MAX:
            for s in present:
                steps.append((nb, build / "notebooks" / s / nb.name, dict(scene=s, profile=profile)))
        else:
            steps.append((nb, build / "notebooks" / nb.name, dict(scenes=present, models=models, profile=profile,
                                                                         fig_dir="figures", results="results")))
    (build / "logs").mkdir(parents=True, exist_ok=True)
    summary = {"profile": profile, "scenes": present, "skipped": missing, "models": models, "steps": []}
    failed = None
    t_all = time.perf_counter()
    for nb, out, params in steps:
        params = {**params, **(extra_params or {})}
        declared = pm.inspect_notebook(str(nb))  # pass only what the parameters cell declares
        params = {k: v for k, v in params.items() if k in declared}
        out.parent.mkdir(parents=True, exist_ok=True)
        tag = f"{nb.stem}" + (f"[{params['scene']}]" if "scene" in params else "")
        log = build / "logs" / (tag.replace("[", "_").replace("]", "") + ".log")
        print(f"[run ] {tag} -> {out}", flush=True)
        t0 = time.perf_counter()
        rec = {"notebook": str(nb), "output": str(out), "params": params, "log": str(log)}
        try:
            with open(log, "w") as lf:
                pm.execute_notebook(str(nb), str(out), parameters=params, cwd=str(Path.cwd()),
                                    stdout_file=lf, stderr_file=lf, progress_bar=False, kernel_name="python3")
            rec["ok"] = True
        except Exception as e:  # recorded, reported, and turned into a non-zero exit below
            rec["ok"] = False
            cell = getattr(e, "exec_count", None)
            rec["error"] = (f"{nb.name} failed in cell {cell}: {getattr(e, 'ename', type(e).__name__)}: "
                            f"{getattr(e, 'evalue', str(e))}".strip())
            failed = rec
        rec["wall_s"] = round(time.perf_counter() - t0, 1)
        summary["steps"].append(rec)
        print(f"[{'ok' if rec['ok'] else 'FAIL'}  ] {tag} {rec['wall_s']:.1f} s", flush=True)
        if failed:
            break
    summary["total_wall_s"] = round(time.perf_counter() - t_all, 1)
    summary["ok"] = failed is None
    (build / "run_summary.json").write_text(json.dumps(summary, indent=2))
    print("\n== summary ==")
    for r in summary["steps"]:
        print(f"{'ok  ' if r['ok'] else 'FAIL'} {r['wall_s']:8.1f} s  {r['output']}")
    print(f"total {summary['total_wall_s']:.1f} s, profile {profile}, scenes {', '.join(present)}")
    if failed:
        print(f"\nFAILED: {failed['error']}\n  executed notebook: {failed['output']}\n  log: {failed['log']}",
              file=sys.stderr)
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="run_all.sh", description="Regenerate every figure and table of the paper.")
    p.add_argument("--profile", default=os.environ.get("HUD_PROFILE", "quick"))
    p.add_argument("--scenes", nargs="*", default=None)
    p.add_argument("--models", nargs="*", default=None)
    p.add_argument("--only", nargs="*", default=None, help="notebook number prefixes to run, e.g. 00 05")
    a = p.parse_args(argv)
    summary = run_notebooks(a.profile, a.scenes, a.models, only=a.only)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
