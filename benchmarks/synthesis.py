"""Whole-scene synthesis: seconds and memory (docs/full_scenes.md).

Measures, in one run on this machine, with a trained run or the shipped checkpoint of ``--model`` (default the
quick HUD):

- the wall time of one scene of the real scene's size (Indian Pines: 145 x 145) with the run's sampler
  (quick: DDIM-50) at the default stride (half the window), and of the same scene with naive tiling;
- seconds per megapixel and the seam score (:func:`hudlib.metrics.seam_score`, seed 0) against the stride (8, 16,
  24, 32 px), at the naive grid's borders (where 08 measures it) and at the stride's own window borders, each beside
  the real scene's value at the same positions;
- the peak resident memory of a 1024 x 1024 scene (``--big-steps`` DDIM steps, default 2: the canvas, the window
  batches and the decoder are the same at every step, so memory does not grow with the step count), in a child
  process (``/proc/self/status`` VmHWM, reset first), against the memory of the process before it synthesized anything.

    python benchmarks/synthesis.py --profile quick            # ~ several minutes on a 2-core CPU
    python benchmarks/synthesis.py --big 0                    # skip the 1024 x 1024 scene
    python benchmarks/synthesis.py --model HUD-cond --layout procedural   # labelled scenes from procedural maps

``--layout procedural`` (layout-conditioned generators): every scene is conditioned on a procedural class map of its
size (:func:`hudlib.layouts.make_layout`, seed 0, fitted to the generator's own fold's training ground).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from hudlib.config import DEFAULT_MODEL, DEFAULT_SCENE
from hudlib.data import load_scene
from hudlib.synthesis import load_trained


def _vm_hwm_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_hwm() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _conditioning(gen, scene, layout, H: int, W: int) -> dict:
    """``{"layout": M}`` with a procedural class map of ``H x W`` for ``layout="procedural"``, else nothing."""
    if layout is None:
        return {}
    from hudlib.layouts import make_layout

    return {"layout": make_layout(layout, (H, W), scene=scene, random_state=0, fold=gen.fold_of(scene))}


def big(args) -> dict:
    """Child process: synthesize one ``--big`` x ``--big`` scene, report peak RSS above the loaded state."""
    scene = load_scene(args.scene)
    gen = load_trained(scene, args.model, args.profile)
    cond = _conditioning(gen, scene, args.layout, args.big, args.big)
    _reset_hwm()
    base = _vm_hwm_mib()
    t0 = time.perf_counter()
    Y, X = gen.synthesize(args.big, args.big, random_state=0, steps=args.big_steps or None, **cond)
    return {"size": args.big, "seconds": time.perf_counter() - t0, "base_mib": base, "peak_mib": _vm_hwm_mib(),
            "cube_mib": Y.nbytes / 2 ** 20, "steps": args.big_steps or "the run's own"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scene", default=DEFAULT_SCENE)
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--profile", default="quick")
    p.add_argument("--strides", type=int, nargs="*", default=[8, 16, 24, 32])
    p.add_argument("--big", type=int, default=1024, help="side of the memory test's scene (0: skip)")
    p.add_argument("--big-steps", type=int, default=2,
                   help="sampler steps of the memory test's scene (memory does not grow with them; 0: the run's own)")
    p.add_argument("--layout", choices=["procedural"], default=None,
                   help="condition every scene on a procedural class map (layout-conditioned generators)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(big(a)))
        return 0
    scene = load_scene(a.scene)
    gen = load_trained(scene, a.model, a.profile)
    H, W = scene.cube.shape[1:]
    cond = _conditioning(gen, scene, a.layout, H, W)
    print(f"{a.model} [{a.profile}] on {a.scene}, weights {gen.weights_hash()}, sampler "
          f"{gen.sampler_settings(**cond)}")
    t0 = time.perf_counter()
    gen.synthesize(H, W, random_state=0, **cond)
    t_scene = time.perf_counter() - t0
    t0 = time.perf_counter()
    gen.synthesize(H, W, random_state=0, tiling="naive", **cond)
    t_naive = time.perf_counter() - t0
    print(f"\n| {H} x {W} scene | seconds |\n|---|---|\n| overlapped, stride {gen.config_.train.patch_size // 2} | "
          f"{t_scene:.1f} |\n| naive | {t_naive:.1f} |\n")
    from hudlib.diffusion import tile_origins
    from hudlib.metrics import seam_score

    window = gen.config_.train.patch_size
    print("| stride | windows | seconds | s / megapixel | seam score at the naive grid (real scene there) | "
          "at the stride's own window borders (real scene there) |\n|---|---|---|---|---|---|")
    naive_real = seam_score(scene.cube, window)["score"]
    for s in a.strides:
        t0 = time.perf_counter()
        Y, _ = gen.synthesize(H, W, random_state=0, stride=s, **cond)
        dt = time.perf_counter() - t0
        n = len(tile_origins(H, W, window, s))
        own, own_real = (seam_score(c, window, stride=s)["score"] for c in (Y, scene.cube))
        print(f"| {s} | {n} | {dt:.1f} | {dt / (H * W / 1e6):.0f} | {seam_score(Y, window)['score']:.2f} "
              f"({naive_real:.2f}) | {own:.2f} ({own_real:.2f}) |", flush=True)
    if a.big:
        r = subprocess.run([sys.executable, __file__, "--child", "--scene", a.scene, "--model", a.model,
                            "--profile", a.profile, "--big", str(a.big), "--big-steps", str(a.big_steps)]
                           + (["--layout", a.layout] if a.layout else []),
                           capture_output=True, text=True, check=True)
        m = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"\n{m['size']} x {m['size']} scene ({m['steps']} sampler steps): {m['seconds']:.0f} s, "
              f"peak resident memory {m['peak_mib']:.0f} MiB "
              f"({m['peak_mib'] - m['base_mib']:+.0f} MiB above the loaded generator; the cube itself "
              f"{m['cube_mib']:.0f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
