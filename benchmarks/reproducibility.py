"""How far two trainings of the same generator land apart when only the training seed differs.

Trains (or reuses) ``--model`` on ``--scene`` at ``--profile`` with training seeds 0 and 1 (everything else equal:
same samples' seed, same real references, same classifier), evaluates both exactly like ``./run_all.sh`` does, and
prints per metric both values, |difference| and the relative difference. A user comparing their own run with the
committed tables reads this as the scale of run-to-run noise. Same seed on the same machine is bit-identical
(tests/test_train.py::test_same_seed_same_machine_is_bit_identical); across machines it is not (float reductions).

    python benchmarks/reproducibility.py --profile quick          # ≈ 2 × (training + evaluation) on a CPU
"""
from __future__ import annotations

import argparse
import json

from hudlib.evaluate import evaluate
from hudlib.metrics.registry import metric_names


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scene", default="IndianPines")
    p.add_argument("--model", default="HUD")
    p.add_argument("--profile", default="quick")
    p.add_argument("--seeds", type=int, nargs=2, default=(0, 1))
    p.add_argument("--results", default="results")
    p.add_argument("--device", default="auto")
    a = p.parse_args(argv)
    recs = []
    for seed in a.seeds:
        path = evaluate(a.scene, a.model, a.profile, results=a.results, device=a.device,
                        overrides={"train": {"seed": seed}} if seed else None, tag=f"seed{seed}" if seed else "")
        recs.append(json.loads(path.read_text()))
    r0, r1 = recs
    print(f"{a.model} on {a.scene}, profile {a.profile}, n = {r0['n']}, machine {r0['machine']}; "
          f"training seeds {a.seeds[0]} (weights {r0['weights_hash']}, {r0['train_info'].get('wall_time_s', 0):.0f} s) "
          f"and {a.seeds[1]} (weights {r1['weights_hash']}, {r1['train_info'].get('wall_time_s', 0):.0f} s)\n")
    print(f"| metric | seed {a.seeds[0]} | seed {a.seeds[1]} | abs. difference | rel. difference |\n|---|---|---|---|---|")
    for m in metric_names():
        x, y = r0["metrics"][m], r1["metrics"][m]
        rel = abs(x - y) / max(abs(x), abs(y), 1e-12)
        print(f"| {m} | {x:.4g} | {y:.4g} | {abs(x - y):.3g} | {100 * rel:.1f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
