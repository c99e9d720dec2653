"""What hudlib's malloc settings (hudlib._malloc) buy: the same work in child processes with ``HUD_MALLOC=on`` and
``HUD_MALLOC=off``, alternated, best of ``--repeat``; wall and kernel (sys) seconds and their ratios.

Work: ``--steps`` U-Net evaluations of a batch of 64 patches (the quick HUD network, the sampler's batch), and a
metric block on Indian Pines (eq. 16 F_p, eq. 17 D_b, the physical block's FCLS of 64 noisy real crops).

    python benchmarks/allocator.py [--repeat 3] [--steps 30]

Run it alone on the machine: timings taken beside other jobs mean nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
import hudlib._malloc as A
from hudlib import data, metrics
from hudlib.config import make_config
from hudlib.train import build_unet
from hudlib.evaluate import scene_endmembers

steps = int(sys.argv[1])
s = data.load_scene("IndianPines")
cfg = make_config(s.name, "HUD", "quick")
net = build_unet(cfg, s.n_classes).eval()
x, t = torch.randn(64, s.n_classes, 32, 32), torch.full((64,), 500)
rng = np.random.default_rng(0)
crops = data.patches(s, 32, 64, random_state=1)
Y = (crops * (1 + 0.02 * rng.standard_normal(crops.shape))).astype(np.float32)
E = scene_endmembers(s, cfg)
out = {"applied": A._applied}
with torch.inference_mode():
    net(x, t)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_stime, time.perf_counter()
    for _ in range(steps):
        net(x, t)
    out["unet"] = (time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_stime - r0)
r0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_stime, time.perf_counter()
metrics.point_fidelity(Y, s.cube)
metrics.block_diversity(Y, s.cube)
metrics.physical_consistency(Y, E)
out["metrics"] = (time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_stime - r0)
print(json.dumps(out))
"""


def _run(flag: str, steps: int) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, str(steps)], capture_output=True, text=True,
                       env={**os.environ, "HUD_MALLOC": flag}, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30)
    a = ap.parse_args(argv)
    if a.repeat < 1 or a.steps < 1:
        ap.error("--repeat and --steps: expected positive integers")
    best: dict = {"on": {}, "off": {}}
    for _ in range(a.repeat):
        for flag in ("off", "on"):
            res = _run(flag, a.steps)
            if flag == "on" and not res["applied"]:
                sys.exit("the malloc settings are not in effect here (not glibc?): nothing to compare")
            for k in ("unet", "metrics"):
                if k not in best[flag] or res[k][0] < best[flag][k][0]:
                    best[flag][k] = res[k]
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, best of {a.repeat}")
    print(f"{'work':34s} {'off: wall s':>12s} {'sys s':>7s} {'on: wall s':>11s} {'sys s':>7s} {'off/on wall':>12s}")
    for k, label in (("unet", f"U-Net, {a.steps} x batch 64"), ("metrics", "F_p + D_b + FCLS, 64 crops")):
        (w0, s0), (w1, s1) = best["off"][k], best["on"][k]
        print(f"{label:34s} {w0:12.2f} {s0:7.2f} {w1:11.2f} {s1:7.2f} {w0 / w1:12.2f}")


if __name__ == "__main__":
    main()
