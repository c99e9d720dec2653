"""Command line: ``python -m hudlib {download,train,sample,synthesize,layout,evaluate,tables,figures,checkpoints} ...``.

Examples::

    python -m hudlib download PaviaU --root data
    python -m hudlib train --scene IndianPines --model HUD --profile quick --out runs/
    python -m hudlib train --scene path/to/cube.hdr --classes 12 --profile smoke    # your own ENVI image
    python -m hudlib train --scene scene.mat:cube --gt labels.mat:gt --profile smoke  # or a .mat variable
    python -m hudlib sample --run runs/IndianPines/HUD/quick-xxxx --n 64 --sampler ddim --steps 50 --seed 0 \\
        --out samples.npz
    python -m hudlib synthesize --scene IndianPines --model HUD --profile quick --size 145 145 --out scene.hdr
    python -m hudlib layout --scene IndianPines --source procedural --size 256 256 --seed 0 --out map.hdr
    python -m hudlib synthesize --scene IndianPines --model HUD-cond --profile quick --layout map.hdr --out s.hdr
    python -m hudlib evaluate --scene IndianPines --model HUD --profile quick --n 256
    python -m hudlib tables --profile quick          # results/tables_quick.md from the results of runs/
    python -m hudlib figures --profile quick         # figures/ (Figs. 3, 4, loss curves)
    python -m hudlib checkpoints install             # copy the shipped weights into runs/
    python -m hudlib checkpoints cards               # (re)write each shipped run's model card (README.md)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import models
from .config import DEFAULT_MODEL, DEFAULT_PROFILE, DEFAULT_SCENE
from .data import download, load_scene
from .diffusion import SAMPLERS
from .errors import DataError
from .evaluate import evaluate
from .utils import shutdown_distributed


def _cmd_download(a):
    cube, gt = download(a.scene, a.root, mirror=a.mirror, force=a.force)
    print(f"{cube}\n{gt}")


def _add_scene_args(p: argparse.ArgumentParser) -> None:
    """``--scene`` (a registered name or a user's ENVI/.mat path) and the options of a user scene."""
    p.add_argument("--scene", default=DEFAULT_SCENE,
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


def _add_model_args(p: argparse.ArgumentParser, runs_flag: str = "--runs") -> None:
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"registered generator (default {DEFAULT_MODEL})")
    p.add_argument("--profile", default=DEFAULT_PROFILE, help=f"smoke, quick or paper (default {DEFAULT_PROFILE})")
    p.add_argument(runs_flag, dest="runs", default="runs", help="folder of the run directories")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")


def _add_selection_args(p: argparse.ArgumentParser) -> None:
    """Which profile, scenes and generators a table or figure command reads, and where their runs are."""
    p.add_argument("--profile", default=DEFAULT_PROFILE)
    p.add_argument("--scenes", nargs="*", default=None, help=f"registered scenes (default {DEFAULT_SCENE})")
    p.add_argument("--models", nargs="*", default=None, help="generators (default: every registered one)")
    p.add_argument("--runs", default="runs")


def _add_sampler_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampler (generators with an iterative sampler; refused by the others)")
    g.add_argument("--sampler", choices=list(SAMPLERS), default=None,
                   help="ddpm (ancestral, T steps), ddim, ddim-lambda (DDIM on the λ-uniform step grid), dpmpp2m "
                        "(DPM-Solver++(2M)) or dpmpp2m-sde (its SDE form); default: the run's config")
    g.add_argument("--steps", type=int, default=None, help="network evaluations of every sampler but ddpm")
    g.add_argument("--eta", type=float, default=None, help="DDIM's η (ddim and ddim-lambda only)")
    g.add_argument("--clip-z0", dest="clip_z0", action=argparse.BooleanOptionalAction, default=None,
                   help="clip the sampler's Z0 estimate to the latent's support (default: the run's config)")


def _sampler_options(a) -> dict:
    return {k: getattr(a, k) for k in ("sampler", "steps", "eta", "clip_z0") if getattr(a, k) is not None}


def _load_scene_args(a):
    """The :class:`~hudlib.data.Scene` named by the arguments of :func:`_add_scene_args`."""
    return load_scene(a.scene, a.data, classes=a.classes, key=a.key, gt=a.gt, gt_key=a.gt_key,
                      rgb_bands=a.rgb_bands)


def _cmd_train(a):
    overrides = {"train": {"steps": a.steps}} if a.steps is not None else {}
    scene = _load_scene_args(a)
    gen = models.create(a.model).fit(scene, a.profile, a.runs, resume=not a.restart, overrides=overrides,
                                     device=a.device, progress=not a.quiet, shipped=False)  # train trains
    shutdown_distributed()  # under torchrun
    print(gen.run_dir_)


def _save_npz(out: Path, **arrays) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(out)


def _cmd_sample(a):
    gen = models.load(a.run)
    opts = _sampler_options(a)
    settings = gen.sampler_settings(**opts)  # what is run (the run's own where not given); refuses unknown options
    Y, X = gen.sample(a.n, random_state=a.seed, device=a.device, progress=not a.quiet, return_abundances=True,
                      **opts)
    meta = {"run": str(a.run), "model": gen.config_.model, "scene": gen.config_.scene,
            "profile": gen.config_.profile, "n": a.n, "seed": a.seed, "weights_hash": gen.weights_hash(),
            "sampler": settings, "sampling_key": gen.sampling_key(**opts)}
    arrays = {"Y": Y, "meta": np.array(json.dumps(meta))}
    if X is not None:
        arrays["X"] = X
    _save_npz(Path(a.out), **arrays)
    print(a.out)


def _cmd_synthesize(a):
    from .synthesis import write_scene

    scene = _load_scene_args(a)
    opts = _sampler_options(a)
    size = tuple(a.size) if a.size else None
    if a.layout is not None:
        from .layouts import read_class_map

        L = read_class_map(a.layout, a.layout_key).labels
        if size is not None and L.shape != size:
            raise ValueError(f"{a.layout}: expected a class map of --size {size[0]} x {size[1]}, got "
                             f"{L.shape[0]} x {L.shape[1]}")
        size, opts["layout"] = L.shape, L
    elif a.layout_key is not None:
        raise ValueError("--layout-key: needs --layout")
    if a.guidance is not None:
        opts["guidance"] = a.guidance
    if size is None:
        raise ValueError("--size: expected H W (or a --layout map, whose size it takes)")
    paths = write_scene(scene, a.model, a.profile, size=size, out=a.out, seed=a.seed, stride=a.stride,
                        tiling=a.tiling, runs=a.runs, device=a.device, progress=not a.quiet, **opts)
    print("\n".join(str(p) for p in paths))


def _cmd_layout(a):
    from .layouts import make_layout, write_class_map
    from .splits import KFOLD

    scene = _load_scene_args(a)
    fold = None
    if a.fold is not None:
        folds = KFOLD.split(scene.gt)
        if not 0 <= a.fold < len(folds):
            raise ValueError(f"--fold: expected a fold index in 0..{len(folds) - 1} of {KFOLD.spec}, got {a.fold}")
        fold = folds[a.fold]
    params = {}
    if a.source == "procedural":
        params = {k: v for k, v in (("field_scale", a.field_scale), ("road_density", a.road_density),
                                    ("class_mix", a.class_mix), ("class_weights", a.class_weights)) if v is not None}
    elif any(v is not None for v in (a.field_scale, a.road_density, a.class_mix, a.class_weights)):
        raise ValueError("--field-scale/--road-density/--class-mix/--class-weights: only with --source procedural")
    size = tuple(a.size) if a.size else scene.gt.shape
    L = make_layout(a.source, size, scene=scene, random_state=a.seed, fold=fold, **params)
    desc = (f"hud class map (source={a.source}; scene={scene.name}; seed={a.seed}; "
            f"fold={'all' if fold is None else fold.name})")
    out = Path(a.out)
    if out.suffix.lower() == ".npy":
        from .utils import atomic_save_npy

        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_save_npy(out, L)
        print(out)
        return
    names = [scene.class_name(k) for k in range(1, scene.n_classes + 1)]
    for p in write_class_map(out, L, names, description=desc):
        print(p)


def _cmd_evaluate(a):
    scene = _load_scene_args(a)
    path = evaluate(scene.name, a.model, a.profile, n=a.n, runs=a.runs, results=a.results, device=a.device,
                    progress=not a.quiet, data_root=a.data, scene_obj=scene, force=a.force)
    print(path)


def _cmd_tables(a):
    from .tables import complexity_markdown, write_tables

    scenes = a.scenes or [DEFAULT_SCENE]
    print(write_tables(a.profile, a.results, scenes, a.models, complexity_markdown(scenes[0], a.profile),
                       runs=a.runs))


def _cmd_figures(a):
    from .figures import make_figures

    for f in make_figures(a.scenes or [DEFAULT_SCENE], a.models or models.names(), a.profile, a.out, a.runs,
                          a.device, a.data, progress=not a.quiet):
        print(f)


def _cmd_checkpoints(a):
    from . import checkpoints
    from .config import RunConfig

    if a.action == "install":
        root = checkpoints.checkpoints_dir(a.root)
        cfgs = [RunConfig.from_dict(json.loads((root / rel / "config.json").read_text()))
                for rel in checkpoints.manifest(a.root)["runs"]]
        for d in checkpoints.install(cfgs, a.runs, a.root):
            print(d)
    elif a.action == "cards":
        for f in checkpoints.write_cards(a.root):
            print(f)
    else:
        print(checkpoints.export(a.run_dirs, a.root, a.classifiers))


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

    t = sub.add_parser("train", help="train (or reuse) a generator; an interrupted training resumes")
    _add_scene_args(t)
    _add_model_args(t, "--out")
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--restart", action="store_true",
                   help="discard an interrupted training's checkpoint and start from step 0")
    t.set_defaults(fn=_cmd_train)

    s = sub.add_parser("sample", help="draw samples from a trained run (or a shipped checkpoint)")
    s.add_argument("--run", required=True)
    s.add_argument("--n", type=int, default=64)
    _add_sampler_args(s)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="samples.npz")
    s.add_argument("--device", default="auto")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(fn=_cmd_sample)

    y = sub.add_parser("synthesize", help="a whole scene of any size as ENVI files (+ abundances, pseudo-colour PNG)")
    _add_scene_args(y)
    _add_model_args(y)
    y.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="canvas size (default: the --layout map's)")
    y.add_argument("--seed", type=int, default=0)
    y.add_argument("--layout", default=None, metavar="MAP",
                   help="class map (.npy, .mat[:KEY], ENVI .hdr, indexed .png; ids 0..K, 0 = unlabelled) for a "
                        "layout-conditioned generator (HUD-cond); written beside the cube as PATH_classes.hdr")
    y.add_argument("--layout-key", dest="layout_key", default=None, help="variable of a .mat class map")
    y.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance weight w >= 0 with --layout (default: the run's)")
    y.add_argument("--out", required=True, help="the cube's ENVI header, PATH.hdr (PATH.img beside it)")
    y.add_argument("--stride", type=int, default=None, help="window stride (default: half the window)")
    y.add_argument("--tiling", default="multidiffusion", help="multidiffusion (overlapped) or naive")
    _add_sampler_args(y)
    y.set_defaults(fn=_cmd_synthesize)

    lo = sub.add_parser("layout", help="a class map: the scene's real one (crop, flip, rotation, mosaic) or a "
                                       "procedural one fitted to it -> ENVI classification (.hdr) or .npy")
    _add_scene_args(lo)
    lo.add_argument("--source", choices=["real", "procedural"], default="procedural")
    lo.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None,
                    help="map size (default: the scene's)")
    lo.add_argument("--seed", type=int, default=0)
    lo.add_argument("--fold", type=int, default=None,
                    help="use only this fold's training ground of the project's spatial k-fold (hudlib.splits.KFOLD)")
    lo.add_argument("--field-scale", dest="field_scale", type=float, default=None,
                    help="procedural: multiply the fitted field sizes (default 1)")
    lo.add_argument("--road-density", dest="road_density", type=float, default=None,
                    help="procedural: multiply the fitted road share (default 1)")
    lo.add_argument("--class-mix", dest="class_mix", type=float, default=None,
                    help="procedural: class shares to this power (1: the fitted mix, default; 0: classes alike)")
    lo.add_argument("--class-weights", dest="class_weights", type=float, nargs="+", default=None,
                    help="procedural: one weight per class 1..K multiplying the fitted class mix")
    lo.add_argument("--out", required=True, help="PATH.hdr (ENVI classification) or PATH.npy")
    lo.set_defaults(fn=_cmd_layout)

    e = sub.add_parser("evaluate", help="metrics of a generator -> results/<scene>/<model>/<profile>.json")
    _add_scene_args(e)
    _add_model_args(e)
    e.add_argument("--n", type=int, default=None)
    e.add_argument("--results", default="results")
    e.add_argument("--force", action="store_true", help="recompute even if a result for these exact weights exists")
    e.set_defaults(fn=_cmd_evaluate)

    tb = sub.add_parser("tables", help="results/tables_<profile>.md from the results whose weights are in runs/")
    _add_selection_args(tb)
    tb.add_argument("--results", default="results")
    tb.set_defaults(fn=_cmd_tables)

    f = sub.add_parser("figures", help="Figs. 3 and 4 and the loss curves -> figures/")
    _add_selection_args(f)
    f.add_argument("--out", default="figures")
    f.add_argument("--data", default=None)
    f.add_argument("--device", default="auto")
    f.add_argument("--quiet", action="store_true")
    f.set_defaults(fn=_cmd_figures)

    c = sub.add_parser("checkpoints", help="the shipped weights: install into runs/, export finished runs, or "
                                           "write their model cards")
    c.add_argument("action", choices=["install", "export", "cards"])
    c.add_argument("run_dirs", nargs="*", help="export: finished run directories")
    c.add_argument("--classifiers", nargs="*", default=(), help="export: classifier weights (.pt beside .json)")
    c.add_argument("--root", default=None, help="the checkpoints folder (default checkpoints/)")
    c.add_argument("--runs", default="runs")
    c.set_defaults(fn=_cmd_checkpoints)

    a = p.parse_args(argv)
    try:
        a.fn(a)
    except (DataError, ValueError, FileNotFoundError) as err:  # bad input: one line, no traceback
        print(f"{p.prog}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
