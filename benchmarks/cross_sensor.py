"""One abundance prior across sensors (issue 34 item 7; the paper's future work 1): HUD's diffusion prior trained on
one scene's abundances, used on another scene with the same number of endmembers — as is, fine-tuned N steps, or
replaced by a prior trained N steps from scratch (:mod:`hudlib.transfer`, where the study is defined).

Writes ``--out`` (JSON, after every sample set; a rerun continues), ``--md`` and the curves
``figures/<target>/cross_sensor_<profile>.{png,pdf}``; the runs (the source prior, each
arm's resumable run and its EMA snapshot at every budget) live under ``runs/transfer/``. On the 2-core CPU at quick
this trains 3000 + 1500 + 3000 steps of HUD's U-Net (about 35 min) and samples 19 sets of 256 patches.

Usage (alone on the machine; Samson must be under data/ or ``$HUD_DATA``):

    python benchmarks/cross_sensor.py [--source IndianPines] [--target Samson] [--profile quick] [--n 256]
        [--out results/Samson/cross_sensor_quick.json] [--md results/Samson/cross_sensor_quick.md]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hudlib import figures, transfer
from hudlib.utils import atomic_write_text


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=transfer.TransferStudy.source)
    ap.add_argument("--target", default=transfer.TransferStudy.target)
    ap.add_argument("--profile", default=transfer.TransferStudy.profile)
    ap.add_argument("--n", type=int, default=transfer.TransferStudy.n)
    ap.add_argument("--out", default=None, help="default results/<target>/cross_sensor_<profile>.json")
    ap.add_argument("--md", default=None, help="default: --out with .md")
    ap.add_argument("--device", default="cpu", help="cpu or cuda: training, sampling and the classifier")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    out = Path(a.out or f"results/{a.target}/cross_sensor_{a.profile}.json")
    md = Path(a.md) if a.md else out.with_suffix(".md")
    out.parent.mkdir(parents=True, exist_ok=True)
    study = transfer.TransferStudy(source=a.source, target=a.target, profile=a.profile, n=a.n)
    t0 = time.perf_counter()
    res = study.run(out=out, device=a.device, progress=not a.quiet)
    res["meta"]["wall_s_last_call"] = round(time.perf_counter() - t0, 1)
    atomic_write_text(out, json.dumps(res, indent=1))
    atomic_write_text(md, transfer.markdown(res))
    figures.save(transfer.plot(res), Path("figures") / a.target, f"cross_sensor_{a.profile}")
    print(md.read_text())


if __name__ == "__main__":
    main()
