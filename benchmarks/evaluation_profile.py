"""Where one quick evaluation record spends its time, block by block, from the shipped checkpoints.

For each ``--models`` generator (quick profile, Indian Pines, the weights in checkpoints/ installed into runs/ as
``./run_all.sh`` does): sampling of ``--n`` patches (read from the run's sample cache when an earlier call made them), our F_p (eq. 16) and D_b (eq. 17, 8 x 8 blocks), the
authors' F_p and whole-patch D_b (hudlib.metrics.paper_exact, their [-1, 1] space), the authors' classifier's
per-pixel outputs, and the whole paper-exact block as evaluate() runs it. This is the profile behind docs/running.md's
"where the time goes" and the #20 analysis of the default run's cost (full-rank generators pay the dense
max-cosine searches; generators decoding abundances through endmembers get the low-rank path).

Usage: ``python benchmarks/evaluation_profile.py [--models VAE HUD] [--n 256]`` (run it alone on the machine:
timings taken beside other jobs mean nothing).
"""
from __future__ import annotations

import argparse

import torch

from hudlib import checkpoints, evaluate as E, metrics, models as registry, paths
from hudlib.config import make_config
from hudlib.data import load_scene
from hudlib.metrics import paper_exact as PE
from hudlib.synthesis import load_trained


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["VAE", "HUD"])
    ap.add_argument("--n", type=int, default=256, help="generated patches (quick profile: 256)")
    a = ap.parse_args(argv)
    unknown = sorted(set(a.models) - set(registry.names()))
    if unknown:
        ap.error(f"--models: unknown {', '.join(unknown)}; expected some of {', '.join(registry.names())}")
    controls = [m for m in a.models if registry.is_control(m)]
    if controls:
        ap.error(f"--models: {', '.join(controls)} are controls (no weights); expected trained generators")
    if a.n < 8:
        ap.error(f"--n: expected at least 8 patches, got {a.n}")
    runs = paths.runs_dir()
    checkpoints.install([make_config("IndianPines", m, "quick") for m in a.models], runs)  # + the classifiers
    s, dev = load_scene("IndianPines"), torch.device("cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, n = {a.n}, quick profile, shipped weights")
    print(f"{'model':10s} {'block':28s} {'s':>7s}")
    for model in a.models:
        cfg = make_config("IndianPines", model, "quick")
        gen = load_trained(s, model, "quick", runs)  # shipped or trained here; never trains
        times: dict[str, float] = {}
        Y, _ = E._timed(times, "sample (run cache if any)",
                        lambda: E.generate_with_abundances(gen, a.n, cfg.eval.seed, "cpu", False))
        G, O = PE.to_authors_space(Y, s), PE.original_image(s)
        net_a, _ = E.authors_classifiers(s, cfg, dev, runs / "classifiers")
        for name, fn in [
            ("F_p ours (eq. 16)", lambda: metrics.point_fidelity(Y, s.cube)),
            ("D_b ours (eq. 17, 8x8)", lambda: metrics.block_diversity(Y, s.cube, block=cfg.eval.block)),
            ("F_p authors", lambda: PE.point_fidelity_paper(G, O, return_per_pixel=True)),
            ("D_b authors (whole, 4 rot)", lambda: PE.block_diversity_paper(G, O, return_per_patch=True)),
            ("authors' classifier outputs", lambda: metrics.authors_pixel_outputs(net_a, G, device=dev)),
            # the whole block as evaluate() runs it: the three above again plus the 32 draws
            ("paper-exact block (all)", lambda: E._paper_exact(Y, s, cfg, net_a, dev, {})),
        ]:
            E._timed(times, name, fn)
        for name, sec in times.items():
            print(f"{model:10s} {name:28s} {sec:7.2f}", flush=True)


if __name__ == "__main__":
    main()
