"""How far the same weights, evaluated on "another CPU", move every number of a record (docs/running.md "Verify").

Another CPU is emulated on this one: the generators' finished runs are copied (weights only, no samples) and
evaluated from scratch in a child process whose oneDNN kernels are limited to another instruction set
(``ONEDNN_MAX_CPU_ISA`` and ``MKL_ENABLE_INSTRUCTIONS``, default AVX2 where this machine has AVX-512) and whose torch uses another thread count;
then every value of the two records (metrics, paper-exact and physical blocks) is compared. The largest difference
per value family is what ``hudlib.verify.TOLERANCE`` must allow; the training-seed spread (docs/running.md
"Reproducibility") is what it must stay far below.

    python benchmarks/verify_tolerance.py --models HUD VAE UD RealCopy --profile quick
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from hudlib import models, paths
from hudlib.config import make_config
from hudlib.verify import _numbers


def _evaluate(scene, model, profile, runs, results, env=None, threads=None) -> dict:
    code = ("import sys, torch; " + (f"torch.set_num_threads({threads}); " if threads else "")
            + "from hudlib.evaluate import evaluate; "
            f"print(evaluate({scene!r}, {model!r}, {profile!r}, runs={str(runs)!r}, results={str(results)!r}, "
            "progress=False))")
    r = subprocess.run([sys.executable, "-c", code], env={**os.environ, **(env or {})}, capture_output=True,
                       text=True, check=True)
    return json.loads(Path(r.stdout.strip().splitlines()[-1]).read_text())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scene", default="IndianPines")
    p.add_argument("--models", nargs="*", default=["HUD", "VAE", "UD", "RealCopy"])
    p.add_argument("--profile", default="quick")
    p.add_argument("--isa", default="AVX2", help="ONEDNN_MAX_CPU_ISA of the second evaluation")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the second evaluation")
    a = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="hud-verify-"))
    worst: dict[str, tuple[float, float, str]] = {}
    try:
        for m in a.models:
            cfg = make_config(a.scene, m, a.profile)
            src = models.run_dir_for(cfg, paths.runs_dir())
            if not (src / "DONE").is_file():
                raise SystemExit(f"{src}: not trained; run ./run_all.sh first")
            recs = []
            other = {"ONEDNN_MAX_CPU_ISA": a.isa, "MKL_ENABLE_INSTRUCTIONS": a.isa}
            for tag, env, threads in (("a", None, None), ("b", other, a.threads)):
                runs = tmp / tag / "runs"
                dest = models.run_dir_for(cfg, runs)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copytree(src, dest, ignore=shutil.ignore_patterns("samples_*", "abundances_*", "xhat_*",
                                                                        "checkpoint.pt"))
                shutil.copytree(paths.runs_dir() / "classifiers", runs / "classifiers", dirs_exist_ok=True)
                recs.append(_evaluate(a.scene, m, a.profile, runs, tmp / tag / "results", env, threads))
            x, y = _numbers(recs[0]), _numbers(recs[1])
            for k in sorted(set(x) & set(y)):
                d = abs(x[k] - y[k])
                rel = d / max(abs(x[k]), 1e-300)
                fam = k.split(".")[1] if k.startswith(("metrics.", "physical.")) else ".".join(k.split(".")[:2])
                if fam not in worst or d > worst[fam][0]:
                    worst[fam] = (d, rel, f"{m} {k}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{a.scene}, profile {a.profile}, generators {', '.join(a.models)}; second evaluation: "
          f"oneDNN/MKL limited to {a.isa}, {a.threads} torch thread(s)\n")
    print("| value | largest |diff| | relative | where |\n|---|---|---|---|")
    for fam, (d, rel, where) in sorted(worst.items()):
        print(f"| {fam} | {d:.3g} | {rel:.3g} | {where} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
