"""Diffusion speed on this machine, one table: training steps/s and sampling patches/s, DDPM-1000 vs DDIM-50/100,
network evaluations per sample; and, when a finished HUD run of the profile exists, the parity of DDIM with the
ancestral sampler on the same network (sliced Wasserstein, spectral recall/precision, roughness gap against the
real scene, and the mean largest abundance, which shows over-pure, saturated samples).

    python benchmarks/diffusion.py [--profile quick] [--scene IndianPines] [--n 16] [--device auto]

Timings of DDPM-1000 are extrapolated from a measured run of --ddpm-steps evaluations (network cost per step is the
same at every step); the table says so.
"""
from __future__ import annotations

import argparse
import time

import torch

from hudlib import data, metrics, models, paths
from hudlib.config import make_config
from hudlib.evaluate import machine_description
from hudlib.train import build_diffusion, build_unet
from hudlib.utils import resolve_device


def _time(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--profile", default="quick")
    p.add_argument("--scene", default="IndianPines")
    p.add_argument("--n", type=int, default=16, help="patches per sampling batch")
    p.add_argument("--ddpm-steps", type=int, default=50, help="evaluations actually timed for DDPM-1000")
    p.add_argument("--device", default="auto")
    a = p.parse_args()
    dev = resolve_device(a.device)
    cfg = make_config(a.scene, "HUD", a.profile)
    d = data.SCENES[a.scene].n_classes
    net = build_unet(cfg, d).to(dev)
    diff = build_diffusion(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    B = cfg.train.batch_size
    z0 = torch.randn(B, d, 32, 32, device=dev) - 5

    def train_step():
        loss = diff.training_loss(net, z0)
        opt.zero_grad()
        loss.backward()
        opt.step()

    train_step()
    t_train = _time(lambda: [train_step() for _ in range(5)], 2) / 5
    net.eval()
    shape = (a.n, d, 32, 32)
    rows = [("train step (batch %d)" % B, 1, t_train, B / t_train, "patches/s seen in training")]
    with torch.no_grad():
        t_eval = _time(lambda: net(torch.randn(shape, device=dev), torch.full((a.n,), 500, device=dev)), 3)
    for name, steps in (("DDPM", cfg.diffusion.T), ("DDIM", 100), ("DDIM", 50)):
        evals = diff.network_evals(name.lower(), steps)
        if name == "DDPM":
            # per-step cost is constant: time a.ddpm_steps stochastic steps and extrapolate to T
            note = f"extrapolated from {a.ddpm_steps} timed evals"
            t_meas = _time(lambda: diff.ddim_sample(net, shape, steps=a.ddpm_steps, eta=1.0, device=dev), 1)
            t = t_meas / a.ddpm_steps * evals
        else:
            t = _time(lambda: diff.ddim_sample(net, shape, steps=steps, device=dev), 1)
            note = "measured"
        rows.append((f"{name}-{steps} sample (batch {a.n})", evals, t, a.n / t, note))
    print(f"\n## Diffusion speed: profile {a.profile}, {a.scene} (d = {d}), {machine_description(dev)}\n")
    print(f"U-Net parameters: {sum(p.numel() for p in net.parameters()):,}; one evaluation at batch {a.n}: "
          f"{t_eval * 1e3:.1f} ms\n")
    print("| what | network evals / sample | seconds | patches/s | speed-up vs DDPM | note |")
    print("|---|---|---|---|---|---|")
    ddpm_t = rows[1][2]
    for r in rows:
        sp = f"{ddpm_t / r[2]:.1f}x" if "sample" in r[0] else ""
        print(f"| {r[0]} | {r[1]} | {r[2]:.3f} | {r[3]:.2f} | {sp} | {r[4]} |")

    run = None
    for cand in sorted(paths.runs_dir().glob(f"{a.scene}/HUD/{a.profile}-{cfg.training_hash()}")):
        if (cand / "DONE").is_file():
            run = cand
    if run is None:
        print(f"\n(no finished {a.profile} run in runs/: sampler parity not measured; train one with "
              f"`python -m hudlib train --profile {a.profile}`)")
        return
    gen = models.load(run)
    scene = data.load_scene(a.scene)
    n = 64
    real = data.patches(scene, 32, n, random_state=1)
    X_real = gen.uae_.encode(scene.cube)
    print(f"\n## Sampler parity on the trained {a.profile} network ({run.name}), n = {n}, seed 0\n")
    print(f"Real scene: mean largest abundance {X_real.max(0).mean():.3f}; the profile's sampler is "
          f"{cfg.sampling_key()}; every row clips Ẑ_0 to Z's support: {cfg.diffusion.clip_z0}.\n")
    print("| sampler | seconds | SWD to real ↓ | recall (spectra) ↑ | precision (spectra) ↑ | roughness gap ↓ "
          "| mean largest abundance |")
    print("|---|---|---|---|---|---|---|")
    for sampler, steps, eta in (("ddpm", None, None), ("ddim", 100, 1.0), ("ddim", 50, 1.0), ("ddim", 50, 0.0)):
        t0 = time.perf_counter()
        Y, X = gen.sample(n, random_state=0, sampler=sampler, steps=steps, eta=eta, device=a.device,
                          clip_z0=cfg.diffusion.clip_z0, return_abundances=True)
        dt = time.perf_counter() - t0
        pr = metrics.precision_recall(Y, scene.cube, space="spectra")
        name = f"ddpm-{cfg.diffusion.T}" if sampler == "ddpm" else f"ddim-{steps}, η = {eta}"
        print(f"| {name} | {dt:.1f} | {metrics.sliced_wasserstein(Y, scene.cube):.4f} "
              f"| {pr['recall']:.3f} | {pr['precision']:.3f} | {metrics.roughness_gap(Y, real):.3f} "
              f"| {X.max(1).mean():.3f} |")

if __name__ == "__main__":
    main()
