"""Where one quick evaluation record spends its time, block by block, from the shipped checkpoints.

For each ``--models`` generator (quick profile, Indian Pines, the weights in checkpoints/ installed into runs/ as
``./run_all.sh`` does): sampling of ``--n`` patches (read from the run's sample cache when an earlier call made them), our F_p (eq. 16) and D_b (eq. 17, 8 x 8 blocks), the
authors' F_p and whole-patch D_b (hudlib.metrics.paper_exact, their [-1, 1] space), the authors' classifier's
per-pixel outputs, and the whole paper-exact block as evaluate() runs it. This is the profile behind the README's
"where the time goes" and the #20 analysis of the default run's cost (full-rank generators pay the dense
max-cosine searches; generators decoding abundances through endmembers get the low-rank path).

Usage: ``python benchmarks/evaluation_profile.py [--models VAE HUD] [--n 256]`` (run it alone on the machine:
timings taken beside other jobs mean nothing).
"""
from __future__ import annotations

import argparse
import time

import torch

from hudlib import checkpoints, evaluate as E, metrics, models as registry, paths, runner
from hudlib.config import make_config
from hudlib.data import load_scene
from hudlib.metrics import paper_exact as PE


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["VAE", "HUD"])
    ap.add_argument("--n", type=int, default=256, help="generated patches (quick profile: 256)")
    a = ap.parse_args(argv)
    unknown = sorted(set(a.models) - set(registry.names()))
    if unknown:
        ap.error(f"--models: unknown {', '.join(unknown)}; expected some of {', '.join(registry.names())}")
    if a.n < 8:
        ap.error(f"--n: expected at least 8 patches, got {a.n}")
    runs = paths.runs_dir()
    checkpoints.install([c for _, _, c in runner.run_configs("IndianPines", a.models, "quick", {"03", "07", "09"})],
                        runs)
    s, dev = load_scene("IndianPines"), torch.device("cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, n = {a.n}, quick profile, shipped weights")
    print(f"{'model':10s} {'block':28s} {'s':>7s}")
    for model in a.models:
        cfg = make_config("IndianPines", model, "quick")
        gen = registry.create(model).fit(s, cfg, runs, device="cpu", progress=False)
        t = time.perf_counter()
        Y, _ = E.generate_with_abundances(gen, a.n, cfg.eval.seed, "cpu", False)
        rows = [("sample (run cache if any)", time.perf_counter() - t)]
        G, O = PE.to_authors_space(Y, s), PE.original_image(s)
        net_a, _ = E.authors_classifiers(s, cfg, dev, runs / "classifiers")
        rows += [
            ("F_p ours (eq. 16)", timed(lambda: metrics.point_fidelity(Y, s.cube))),
            ("D_b ours (eq. 17, 8x8)", timed(lambda: metrics.block_diversity(Y, s.cube, block=cfg.eval.block))),
            ("F_p authors", timed(lambda: PE.point_fidelity_paper(G, O, return_per_pixel=True))),
            ("D_b authors (whole, 4 rot)", timed(lambda: PE.block_diversity_paper(G, O, return_per_patch=True))),
            ("authors' classifier outputs", timed(lambda: metrics.authors_pixel_outputs(net_a, G, device=dev))),
            ("paper-exact block (all)", timed(lambda: E._paper_exact(Y, s, cfg, net_a, dev, {}))),
        ]
        for name, sec in rows:
            print(f"{model:10s} {name:28s} {sec:7.2f}", flush=True)


if __name__ == "__main__":
    main()
