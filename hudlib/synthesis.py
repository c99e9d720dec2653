"""Whole synthetic scenes as files a remote-sensing user can open: the cube and the abundances as ENVI images and a
pseudo-colour PNG (``python -m hudlib synthesize``).

The scene comes from :meth:`hudlib.models.Generator.synthesize` (overlapped MultiDiffusion tiling in the latent for
the diffusion generators, naive tiling for the others) with a trained run or a shipped checkpoint; nothing is
trained here. Every input is checked before anything is computed, and files are written under temporary names and
renamed (:mod:`hudlib.envi_io`), so a bad request writes nothing.

Sources of the facts used here: docs/methods.md (MultiDiffusion).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import models, paths
from .config import make_config
from .data import pseudo_rgb, rgb_limits
from .envi_io import check_writable, write_envi
from .profiles import get_profile
from .runstore import reuse_or_install
from .utils import _atomic

__all__ = ["load_trained", "write_scene", "abundances_path", "classes_path", "png_path", "scene_study",
           "study_seeds"]


def abundances_path(out) -> Path:
    """``PATH_abundances.hdr`` beside the cube's ``PATH.hdr``."""
    out = Path(out)
    return out.with_name(f"{out.stem}_abundances.hdr")


def classes_path(out) -> Path:
    """``PATH_classes.hdr`` (an ENVI classification image) beside the cube's ``PATH.hdr``."""
    out = Path(out)
    return out.with_name(f"{out.stem}_classes.hdr")


def png_path(out) -> Path:
    """``PATH.png`` beside the cube's ``PATH.hdr``."""
    return Path(out).with_suffix(".png")


def load_trained(scene, model: str, profile: str, runs=None, overrides=None):
    """The fitted generator of ``model`` on ``scene`` at ``profile`` from its finished run (or shipped checkpoint
    installed in ``runs/``); a one-line error when there is none (nothing is trained here)."""
    cfg = make_config(scene.name, model, profile, overrides)
    run = models.run_dir_for(cfg, paths.runs_dir(runs))
    if not reuse_or_install(cfg, paths.runs_dir(runs)):
        raise FileNotFoundError(f"{run}: no finished run of {model} on {scene.name} at profile {profile} (and no "
                                f"shipped checkpoint); train it with: python -m hudlib train --scene "
                                f"{scene.name} --model {model} --profile {profile}")
    return models.get(model).load(run, scene)


def write_scene(scene, model: str, profile: str, size: tuple[int, int], out, seed: int = 0,
                stride: int | None = None, tiling: str = "multidiffusion", runs=None, device: str = "auto",
                progress: bool = True, **options) -> list[Path]:
    """Synthesize a ``size = (H, W)`` scene with ``model`` and write ``out`` (``PATH.hdr`` + ``PATH.img``, float32,
    band-sequential, the source scene's wavelengths where it has them, the model, weights hash, seed, sampler and
    tiling in the header's description), ``PATH_abundances.hdr`` (for generators with abundances) and ``PATH.png``
    (pseudo-colour with the real scene's stretch). With a class map ``layout=M`` ``(H, W)`` (layout-conditioned
    generators only; ids 0..K of the generator's classes, 0 = unlabelled) every window is conditioned on its crop of
    ``M`` and ``PATH_classes.hdr`` holds ``M`` as an ENVI classification image (the scene's class names, lookup
    colours). Every input is checked before anything is computed; same seed: identical files. Returns the paths
    written."""
    from .envi_io import _hdr_path

    out = _hdr_path(out, "out")
    check_writable(out)
    gen = load_trained(scene, model, profile, runs)
    H, W = (int(v) for v in size)
    gen.check_canvas(H, W, stride, tiling)
    settings = gen.sampler_settings(**options)  # refuses options the generator has not (layout included)
    layout = options.get("layout")
    if layout is not None:
        layout = np.asarray(layout)
        if layout.shape != (H, W):
            raise ValueError(f"layout: expected a class map of the canvas's size {H} x {W}, got "
                             f"{' x '.join(str(v) for v in layout.shape)}")
        from .layouts import class_table

        names = class_table(int(gen.n_classes_), [scene.class_name(k) for k in range(1, gen.n_classes_ + 1)])[0]
    Y, X = gen.synthesize(H, W, random_state=seed, stride=stride, tiling=tiling, device=device, progress=progress,
                          **options)
    size_px = gen.config_.train.patch_size
    meta = {"model": model, "profile": profile, "weights_hash": gen.weights_hash(), "seed": int(seed),
            "sampler": settings, "tiling": tiling,
            "stride": None if tiling == "naive" else int(stride or size_px // 2), "window": size_px,
            "source_scene": scene.name, "units": "reflectance / the source scene's maximum raw value"}
    desc = "hud synthetic scene " + json.dumps(meta, sort_keys=True).replace(",", ";").replace("{", "(").replace(
        "}", ")")
    wl = getattr(scene, "wavelengths", None)
    written = list(write_envi(out, Y, wavelengths=wl, description=desc))
    if X is not None:
        written += list(write_envi(abundances_path(out), X, band_names=[f"abundance {i + 1}" for i in range(len(X))],
                                   description=desc.replace("hud synthetic scene", "hud synthetic abundances")))
    if layout is not None:
        from .layouts import write_class_map

        written += list(write_class_map(classes_path(out), layout, names[1:],
                                        description=desc.replace("hud synthetic scene", "hud class map")))
    rgb = pseudo_rgb(Y, scene.rgb_bands, limits=rgb_limits(scene.cube, scene.rgb_bands))
    png = png_path(out)

    def save(tmp):
        import matplotlib.pyplot as plt

        plt.imsave(tmp, np.clip(rgb, 0, 1), format="png")
    _atomic(png, save)
    return written + [png]


# --------------------------------------------------------------------------------------------- the scene study
def neighbour_angle_map(cube: np.ndarray) -> np.ndarray:
    """Per-pixel mean spectral angle (radians) to its right and lower neighbours ``(H, W)``: where seams show."""
    x = np.asarray(cube, np.float64)
    u = x / np.maximum(np.linalg.norm(x, axis=0, keepdims=True), 1e-12)
    out = np.zeros(x.shape[1:])
    cnt = np.zeros(x.shape[1:])
    for a, b, sl in ((u[:, :, 1:], u[:, :, :-1], (slice(None), slice(None, -1))),
                     (u[:, 1:], u[:, :-1], (slice(None, -1), slice(None)))):
        ang = np.arccos(np.clip((a * b).sum(0), -1.0, 1.0))
        out[sl] += ang
        cnt[sl] += 1
    return out / np.maximum(cnt, 1)


def _grid(H: int, W: int, window: int, dy: int, dx: int) -> list[tuple[int, int]]:
    """Corners of the naive window grid shifted by ``(dy, dx)``: its borders sit at dy + k·window (rows) and
    dx + k·window (columns); windows may stick out of the canvas (their outer edges cut nothing)."""
    return [(r, c) for r in range(dy, H, window) for c in range(dx, W, window)]


def _crops(cubes: list[np.ndarray], size: int, n: int, rng) -> np.ndarray:
    """``n`` random ``size`` x ``size`` crops ``(n, bands, size, size)`` spread evenly over ``cubes``."""
    from .data import crop, patch_corners

    per = [n // len(cubes) + (i < n % len(cubes)) for i in range(len(cubes))]
    return np.concatenate([crop(c, patch_corners(c.shape, size, k, rng), size) for c, k in zip(cubes, per)])


def study_seeds(profile: str, seeds=None) -> list[int]:
    """The scene study's sampling seeds: ``seeds``, or the profile's (:attr:`hudlib.profiles.Profile.seeds`)."""
    return list(get_profile(profile).seeds) if seeds is None else [int(s) for s in seeds]


def scene_study(gen, scene, seeds=None, size=None, stride: int | None = None, n_crops: int = 256,
                device: str = "auto", progress: bool = False, runs=None) -> dict:
    """What tiling gives and costs, on ``gen`` (fitted) and its ``scene``, at the real scene's size by default.

    - seams: :func:`hudlib.metrics.seam_score` at the borders of the naive 32-px grid for overlapped
      (MultiDiffusion, ``stride``) and naive synthesis, one scene per seed; the real scene at the same positions
      and, for its spread, at the 16 grids shifted by multiples of a quarter window (``seeds`` None: the
      profile's, :attr:`hudlib.profiles.Profile.seeds`);
    - quality: the sound metrics (FID, SWD, patch recall, coherence gap) of ``n_crops`` random crops of the
      overlapped scenes against the evaluation's ``n_crops`` independent patches of the same generator, and two
      independent patch sets (sampling seeds 0 and 1) for the sampling noise at this n;
    - field scale: :func:`hudlib.metrics.field_scale_statistics` of the FCLS abundances (the scene's VCA
      endmembers, as the physical block) of the real scene and of each synthesized one.
    Returns a JSON-able dict.
    """
    import time

    from . import evaluate as ev
    from . import metrics
    from .data import patches

    seeds = study_seeds(gen.config_.profile, seeds)
    from .unmixing import fcls

    cfg = gen.config_
    window = cfg.train.patch_size
    H, W = (int(v) for v in (size or scene.cube.shape[1:]))
    stride = stride or window // 2
    t0 = time.perf_counter()
    over, naive, times = [], [], []
    for seed in seeds:
        t = time.perf_counter()
        over.append(gen.synthesize(H, W, random_state=seed, stride=stride, device=device, progress=progress))
        times.append(time.perf_counter() - t)
        naive.append(gen.synthesize(H, W, random_state=seed, tiling="naive", device=device, progress=progress))
    quarter = max(1, window // 4)
    real_spread = [metrics.seam_score(scene.cube[:, :H, :W], window, origins=_grid(H, W, window, dy, dx))["score"]
                   for dy in range(0, window, quarter) for dx in range(0, window, quarter)]
    seams = {"overlapped": [metrics.seam_score(Y, window)["score"] for Y, _ in over],
             "naive": [metrics.seam_score(Y, window)["score"] for Y, _ in naive],
             "real": metrics.seam_score(scene.cube[:, :H, :W], window)["score"],
             "real_shifted_grids": real_spread}
    # quality of crops against independent patches, with the evaluation's classifier and real patches
    dev = ev.resolve_device(device)
    net, _ = ev.sound_classifier(scene, cfg, dev, ev.paths.runs_dir(runs) / "classifiers")
    real = patches(scene, window, n_crops, random_state=cfg.eval.seed + 1)
    crops = _crops([Y for Y, _ in over], window, n_crops, np.random.default_rng(0))
    sets = {"crops": crops, "patches": ev.generate(gen, n_crops, cfg.eval.seed, device),
            "patches_seed1": ev.generate(gen, n_crops, cfg.eval.seed + 1, device)}
    which = ("FID", "SWD", "recall_patches", "precision_patches", "coherence_gap")
    quality = {k: {m: v for m, v in ev.compute_metrics(Y, real, scene, cfg, net, dev, which).items() if m in which}
               for k, Y in sets.items()}
    # field-scale structure of the argmax abundance maps
    E = ev.scene_endmembers(scene, cfg)
    field = {"real": metrics.field_scale_statistics(fcls(scene.cube[:, :H, :W], E, progress=False)),
             "overlapped": [metrics.field_scale_statistics(fcls(Y, E, progress=False)) for Y, _ in over],
             "naive": [metrics.field_scale_statistics(fcls(Y, E, progress=False)) for Y, _ in naive]}
    return {"scene": scene.name, "model": cfg.model, "profile": cfg.profile, "weights_hash": gen.weights_hash(),
            "size": [H, W], "window": window, "stride": stride, "seeds": list(seeds),
            "sampler": gen.sampler_settings(), "n_crops": n_crops, "seams": seams, "quality": quality,
            "field_scale": field, "synthesis_s": times, "machine": ev.machine_description(dev),
            "git_commit": ev.git_commit(), "wall_time_s": round(time.perf_counter() - t0, 1),
            "_scenes": {"overlapped": over[0], "naive": naive[0]}}


def write_study(study: dict, results=None) -> Path:
    """``results/<scene>/<model>/scene_<profile>.json`` (the study without its arrays)."""
    from .utils import atomic_write_text

    out = paths.results_dir(results) / study["scene"] / study["model"] / f"scene_{study['profile']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps({k: v for k, v in study.items() if not k.startswith("_")}, indent=2))
    return out


def scene_figure(study: dict, scene):
    """The real scene beside a synthesized one of its size (overlapped and naive tiling, same stretch), their
    neighbour-angle maps (seams show as a grid) and the argmax maps of their FCLS abundances (field structure)."""
    import matplotlib.pyplot as plt

    from . import evaluate as ev
    from .unmixing import fcls

    H, W = study["size"]
    lim = rgb_limits(scene.cube, scene.rgb_bands)
    cubes = {"real": scene.cube[:, :H, :W], "overlapped (MultiDiffusion)": study["_scenes"]["overlapped"][0],
             "naive tiling": study["_scenes"]["naive"][0]}
    E = ev.scene_endmembers(scene, make_config(scene.name, study["model"], study["profile"]))
    vmax = float(np.quantile(neighbour_angle_map(cubes["real"]), 0.99))
    fig, ax = plt.subplots(3, 3, figsize=(11, 11.5))
    for j, (name, Y) in enumerate(cubes.items()):
        ax[0, j].imshow(pseudo_rgb(Y, scene.rgb_bands, limits=lim), interpolation="nearest")
        ax[0, j].set_title(name, fontsize=10)
        ax[1, j].imshow(neighbour_angle_map(Y), cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
        ax[1, j].set_title("angle to the right/lower neighbour (rad)", fontsize=8)
        ax[2, j].imshow(fcls(Y, E, progress=False).argmax(0), cmap="tab20", vmin=0, vmax=19,
                        interpolation="nearest")
        ax[2, j].set_title("argmax FCLS abundance (VCA endmembers)", fontsize=8)
    for a in ax.ravel():
        a.set_xticks([])
        a.set_yticks([])
    s = study["seams"]
    fig.suptitle(f"{scene.name}: a synthesized scene of the real one's size, {study['model']} [{study['profile']}], "
                 f"seed {study['seeds'][0]}, stride {study['stride']}; seam score overlapped "
                 f"{s['overlapped'][0]:.3f}, naive {s['naive'][0]:.3f}, real {s['real']:.3f}", fontsize=10)
    fig.tight_layout()
    return fig
