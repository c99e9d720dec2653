"""Command line: ``python -m hudlib {download,train,sample,evaluate,tables} ...``.

Examples::

    python -m hudlib download PaviaU --root data
    python -m hudlib train --scene IndianPines --model HUD --profile quick --out runs/
    python -m hudlib train --scene path/to/cube.hdr --classes 12 --profile smoke    # your own ENVI image
    python -m hudlib train --scene scene.mat:cube --gt labels.mat:gt --profile smoke  # or a .mat variable
    python -m hudlib sample --run runs/IndianPines/HUD/quick-xxxx --n 64 --sampler ddim --steps 50 --seed 0 \\
        --out samples.npz
    python -m hudlib evaluate --scene IndianPines --model HUD --profile quick --n 256
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import models
from .data import DataError, download, load_scene
from .evaluate import evaluate
from .utils import shutdown_distributed


def _cmd_download(a):
    cube, gt = download(a.scene, a.root, mirror=a.mirror, force=a.force)
    print(f"{cube}\n{gt}")


def _add_scene_args(p: argparse.ArgumentParser) -> None:
    """``--scene`` (a registered name or a user's ENVI/.mat path) and the options of a user scene."""
    p.add_argument("--scene", default="IndianPines",
                   help="registered scene name, or a path: ENVI cube.hdr (data file beside it) or cube.mat[:KEY]")
    p.add_argument("--data", default=None, help="data root of registered scenes (else $HUD_DATA, ./data, tensorly)")
    g = p.add_argument_group("user scene (--scene is a path)")
    g.add_argument("--classes", type=int, default=None,
                   help="number of classes = endmembers d (default: the class map's largest label)")
    g.add_argument("--gt", default=None, help="class map: ENVI .hdr, .mat[:KEY] or .npy, (rows, cols), 0 = unlabelled")
    g.add_argument("--key", default=None, help="variable of a .mat cube (same as cube.mat:KEY)")
    g.add_argument("--gt-key", dest="gt_key", default=None, help="variable of a .mat class map")
    g.add_argument("--rgb-bands", dest="rgb_bands", type=int, nargs=3, metavar=("R", "G", "B"), default=None,
                   help="zero-based pseudo-colour bands (default: nearest 650/550/450 nm from the ENVI header, else "
                        "evenly spread)")


def _load_scene_args(a):
    """The :class:`~hudlib.data.Scene` named by the arguments of :func:`_add_scene_args`."""
    return load_scene(a.scene, a.data, classes=a.classes, key=a.key, gt=a.gt, gt_key=a.gt_key,
                      rgb_bands=a.rgb_bands)


def _cmd_train(a):
    overrides = {}
    if a.steps is not None:
        overrides["train"] = {"steps": a.steps}
    scene = _load_scene_args(a)
    gen = models.create(a.model).fit(scene, a.profile, a.out, resume=a.resume, overrides=overrides,
                                     device=a.device, progress=not a.quiet)
    shutdown_distributed()  # under torchrun
    print(gen.run_dir_)


def _cmd_sample(a):
    gen = models.load(a.run)
    opts = dict(sampler=a.sampler, steps=a.steps, eta=a.eta, clip_z0=a.clip_z0) if gen.sampler_settings() else {}
    Y, X = gen.sample(a.n, random_state=a.seed, device=a.device, progress=not a.quiet, return_abundances=True,
                      **opts)
    meta = {"run": str(a.run), "model": gen.config_.model, "scene": gen.config_.scene,
            "profile": gen.config_.profile, "n": a.n, "seed": a.seed, "weights_hash": gen.weights_hash(), **opts}
    arrays = {"Y": Y, "meta": np.array(json.dumps(meta))}
    if X is not None:
        arrays["X"] = X
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(out)
    print(out)


def _cmd_evaluate(a):
    scene = _load_scene_args(a)
    path = evaluate(scene.name, a.model, a.profile, n=a.n, runs=a.runs, results=a.results, device=a.device,
                    progress=not a.quiet, data_root=a.data, scene_obj=scene, force=a.force)
    print(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m hudlib", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("download", help="download a scene's cube and ground truth")
    d.add_argument("scene")
    d.add_argument("--root", default="data")
    d.add_argument("--mirror", default=None, help="base URL replacing the official location")
    d.add_argument("--force", action="store_true")
    d.set_defaults(fn=_cmd_download)

    t = sub.add_parser("train", help="train (or reuse) a generator")
    _add_scene_args(t)
    t.add_argument("--model", default="HUD")
    t.add_argument("--profile", default="quick")
    t.add_argument("--out", default="runs")
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--resume", action="store_true")
    t.add_argument("--device", default="auto")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(fn=_cmd_train)

    s = sub.add_parser("sample", help="draw samples from a trained run")
    s.add_argument("--run", required=True)
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--sampler", choices=["ddpm", "ddim"], default=None)
    s.add_argument("--steps", type=int, default=None)
    s.add_argument("--eta", type=float, default=None)
    s.add_argument("--clip-z0", dest="clip_z0", action=argparse.BooleanOptionalAction, default=None,
                   help="clip the sampler's Z0 estimate to Z's support (default: the run's config)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="samples.npz")
    s.add_argument("--device", default="auto")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(fn=_cmd_sample)

    e = sub.add_parser("evaluate", help="metrics of a generator -> results/<scene>/<model>/<profile>.json")
    _add_scene_args(e)
    e.add_argument("--model", default="HUD")
    e.add_argument("--profile", default="quick")
    e.add_argument("--n", type=int, default=None)
    e.add_argument("--runs", default="runs")
    e.add_argument("--results", default="results")
    e.add_argument("--device", default="auto")
    e.add_argument("--quiet", action="store_true")
    e.add_argument("--force", action="store_true", help="recompute even if a result for these exact weights exists")
    e.set_defaults(fn=_cmd_evaluate)

    a = p.parse_args(argv)
    try:
        a.fn(a)
    except DataError as err:  # bad input: one line, no traceback
        print(f"{p.prog}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
