"""Training and sampling speed of every trainable generator at one profile, in one table with HUD.

For each registered non-control generator: seconds per training iteration (the loop's own wall time over
``--steps`` iterations of the profile's networks and batch, setup excluded), the profile's iteration count and the
training time it implies, and the time to draw ``--n`` patches with the profile's sampler. Ratios are to HUD,
measured in the same run.

    python benchmarks/training.py [--profile quick] [--scene IndianPines] [--steps 20] [--n 64] [--device auto]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from hudlib import data, models
from hudlib.config import make_config
from hudlib.evaluate import machine_description
from hudlib.utils import resolve_device


def measure(name: str, scene, profile: str, steps: int, n: int, device: str, root: Path) -> dict:
    """One row: per-iteration training time over ``steps`` iterations and the sampling time of ``n`` patches."""
    cls = models.get(name)
    overrides = {"train": {"steps": steps}, "unmixdiff": {"uae_steps": steps}}  # each stage: `steps` iterations
    g = models.create(name).fit(scene, profile, root, overrides=overrides, device=device, progress=False)
    info = json.loads((g.run_dir_ / "train_info.json").read_text())
    stages = info.get("stages", {"": info})  # a two-stage model (UD, UBF) times each stage
    full = cls.training_iterations(make_config(scene.name, name, profile))
    per = {k: st["wall_time_s"] / st["steps"] for k, st in stages.items()}
    train_s = sum(per[k] * full[k] for k in full)
    t0 = time.perf_counter()
    g.sample(n, random_state=0, device=device)
    return {"model": name, "step_s": "+".join(f"{v:.3f}" for v in per.values()), "batch": g.config_.train.batch_size,
            "steps": "+".join(str(v) for v in full.values()), "train_s": train_s,
            "sample_s": time.perf_counter() - t0, "sampler": g.sampling_key()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="quick")
    p.add_argument("--scene", default="IndianPines")
    p.add_argument("--steps", type=int, default=20, help="training iterations timed per model")
    p.add_argument("--n", type=int, default=64, help="patches drawn for the sampling time")
    p.add_argument("--device", default="auto")
    p.add_argument("--models", nargs="*", default=None)
    a = p.parse_args(argv)
    dev = resolve_device(a.device)
    scene = data.load_scene(a.scene)
    names = a.models or models.names(controls=False)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(m, scene, a.profile, a.steps, a.n, str(dev), Path(tmp)) for m in names]
    ref = next((r for r in rows if r["model"] == "HUD"), rows[0])
    print(f"# Training and sampling per generator: {a.scene}, profile {a.profile}, {machine_description(dev)}\n")
    print(f"| generator | batch | s / iteration | iterations ({a.profile}) | training time | × HUD | "
          f"sampling {a.n} patches | sampler | × HUD |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['batch']} | {r['step_s']} | {r['steps']} | {r['train_s'] / 60:.1f} min | "
              f"{r['train_s'] / ref['train_s']:.2f} | {r['sample_s']:.2f} s | {r['sampler']} | "
              f"{r['sample_s'] / ref['sample_s']:.3f} |")
    print(f"\n*s / iteration: the training loop's wall time over {a.steps} iterations (setup excluded); a WGAN-GP "
          "iteration is its critic steps plus one generator step; UD/UBF: autoencoder + diffusion stage. Training time "
          "= s / iteration × the profile's iterations, per stage.*")


if __name__ == "__main__":
    main()
