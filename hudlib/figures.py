"""Fig. 3 (pseudo-colour patches) and Fig. 4 (spectral-curve density) for every registered generator and scene.

Inputs are plain arrays: ``samples[scene][model]`` ``(n, bands, h, w)`` in the scene's normalised units and
``scenes[scene]`` a :class:`hudlib.data.Scene`. Files are written as PNG (README) and PDF with stable names:
``fig3_pseudocolour``, ``fig3_controls``, ``fig4_spectral_density``, ``fig4_controls``, and ``training_losses``
(the loss curves of every trained generator, from :func:`make_figures`).
"""
from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from . import models, paths
from .config import make_config
from .data import load_scene, patches, pseudo_rgb, rgb_limits
from .evaluate import generate, git_commit, machine_description
from .utils import atomic_write_text, resolve_device

__all__ = ["mosaic", "fig3", "fig4", "loss_curves", "spectral_density", "save", "write_all", "write_manifest",
           "add_to_manifest", "make_figures"]


def mosaic(batch: np.ndarray, k: int = 2) -> np.ndarray:
    """Tile the first k*k patches ``(n, bands, h, w)`` into one ``(bands, k*h, k*w)`` image (gaps not drawn)."""
    n, b, h, w = batch.shape
    k = max(1, min(k, int(np.sqrt(n))))
    tiles = batch[: k * k].reshape(k, k, b, h, w)
    return tiles.transpose(2, 0, 3, 1, 4).reshape(b, k * h, k * w)


def _grid(n_rows: int, cols: list[str], col_in: float, row_in: float, title: str):
    """A figure of ``n_rows`` × ``len(cols)`` axes whose title is wrapped to the figure's width (long titles were
    cut at the left edge); the figure grows by the title's lines (``tight_layout`` keeps it clear of the axes)."""
    width = max(col_in * len(cols), 4.0)
    lines = textwrap.wrap(title, width=max(20, int(width * 11))) or [""]
    head = 0.22 * len(lines) + 0.35
    fig, axes = plt.subplots(n_rows, len(cols), figsize=(width, row_in * n_rows + head), squeeze=False)
    fig.suptitle("\n".join(lines), fontsize=10)
    return fig, axes


def fig3(samples: dict, scenes: dict, model_names: list[str], title: str = "", k: int = 2, seed: int = 0):
    """Rows = scenes; columns = a real-scene mosaic + one per model. One stretch per scene (the real scene's 2–98 %
    percentiles of the paper's bands), so colours are comparable across columns."""
    rows = list(scenes)
    cols = ["real"] + list(model_names)
    fig, axes = _grid(len(rows), cols, 1.9, 2.0, title)
    for i, sname in enumerate(rows):
        s = scenes[sname]
        lim = rgb_limits(s.cube, s.rgb_bands)
        size = next(iter(samples[sname].values())).shape[-1] if samples.get(sname) else 32
        real = patches(s, size, k * k, random_state=seed)
        for j, c in enumerate(cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            batch = real if c == "real" else samples.get(sname, {}).get(c)
            if batch is None:
                ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes, fontsize=8)
            else:
                ax.imshow(pseudo_rgb(mosaic(batch, k), s.rgb_bands, limits=lim), interpolation="nearest")
            if i == 0:
                ax.set_title(c, fontsize=9)
            if j == 0:
                ax.set_ylabel(sname, fontsize=9)
    fig.tight_layout()
    return fig


def loss_curves(runs: dict, title: str = ""):
    """One panel per run (``{label: run directory}``): every loss the run recorded (``losses.json``), as a moving
    mean over 2 % of the steps, on a symmetric-log axis (a GAN's losses change sign)."""
    from .train import load_losses

    fig, axes = _grid(1, list(runs), 4.2, 3.0, title)
    for ax, (label, run) in zip(axes[0], runs.items()):
        steps = []  # a two-stage model (UD, UBF) records each stage's losses over its own steps
        for key, curve in load_losses(run).items():
            w = max(1, len(curve) // 50)
            ax.plot(np.arange(len(curve) - w + 1) + w, np.convolve(curve, np.ones(w) / w, mode="valid"), label=key)
            steps += [len(curve)] if len(curve) not in steps else []
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_title(f"{label}: {' + '.join(map(str, steps))} steps", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def spectral_density(Y: np.ndarray, bins: int = 100, vmax: float = 1.0) -> np.ndarray:
    """2-D histogram ``(bins, bands)`` of reflectance per band over every pixel of ``Y`` ``(n, bands, h, w)`` or
    ``(bands, h, w)``; reflectance range [0, vmax]."""
    Y = np.asarray(Y)
    flat = (Y if Y.ndim == 3 else Y.transpose(1, 0, 2, 3)).reshape(Y.shape[-3], -1)
    edges = np.linspace(0.0, vmax, bins + 1)
    idx = np.clip(np.digitize(flat, edges) - 1, 0, bins - 1)
    H = np.zeros((bins, flat.shape[0]))
    for b in range(flat.shape[0]):
        H[:, b] = np.bincount(idx[b], minlength=bins)
    return H


def fig4(samples: dict, scenes: dict, model_names: list[str], title: str = "", bins: int = 100):
    """Rows = scenes; columns = the real scene + one per model: log-density of band × reflectance over all pixels,
    the real scene's 1–99 % envelope per band overlaid (white dashed)."""
    rows = list(scenes)
    cols = ["real"] + list(model_names)
    fig, axes = _grid(len(rows), cols, 2.2, 2.0, title)
    for i, sname in enumerate(rows):
        s = scenes[sname]
        flat = s.cube.reshape(s.bands, -1)
        lo, hi = np.percentile(flat, [1, 99], axis=1)
        vmax = float(max(flat.max(), 1e-6)) * 1.05
        for j, c in enumerate(cols):
            ax = axes[i, j]
            Y = s.cube if c == "real" else samples.get(sname, {}).get(c)
            if Y is None:
                ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes, fontsize=8)
            else:
                H = spectral_density(Y, bins, vmax)
                H = H / max(H.sum(0).max(), 1)
                ax.imshow(np.log10(H + 1e-6), origin="lower", aspect="auto", cmap="magma", vmin=-6, vmax=0,
                          extent=(0, s.bands, 0, vmax), interpolation="nearest")
                ax.plot(np.arange(s.bands) + 0.5, lo, "w--", lw=0.6)
                ax.plot(np.arange(s.bands) + 0.5, hi, "w--", lw=0.6)
            ax.set_ylim(0, vmax)
            ax.tick_params(labelsize=6)
            if i == 0:
                ax.set_title(c, fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{sname}\nreflectance", fontsize=8)
            if i == len(rows) - 1:
                ax.set_xlabel("band", fontsize=7)
            if s.wavelengths is not None and i == len(rows) - 1:  # band numbers with their centres (nm) below
                ticks = np.linspace(0, s.bands - 1, 4).round().astype(int)
                ax.set_xticks(ticks + 0.5, [f"{b}\n{s.wavelengths[b]:.0f} nm" for b in ticks])
                ax.set_xlabel("band (centre)", fontsize=7)
    fig.tight_layout()
    return fig


def save(fig, folder, stem: str) -> list[Path]:
    """Write ``stem.png`` (150 dpi) and ``stem.pdf`` atomically; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for ext, kw in (("png", {"dpi": 150}), ("pdf", {})):
        p = folder / f"{stem}.{ext}"
        tmp = folder / f".{stem}.tmp.{ext}"
        fig.savefig(tmp, format=ext, metadata={"CreationDate": None} if ext == "pdf" else None, **kw)
        tmp.replace(p)
        out.append(p)
    plt.close(fig)
    return out


def write_all(samples: dict, scenes: dict, model_names: list[str], control_names: list[str], folder,
              label: str) -> list[Path]:
    """Fig. 3 and Fig. 4 for the models and (separately) the controls; ``label`` names profile and machine."""
    out = []
    out += save(fig3(samples, scenes, model_names, f"Fig. 3: pseudo-colour, generated 2x2 mosaics of 32 px patches "
                                                    f"[{label}]"), folder, "fig3_pseudocolour")
    out += save(fig3(samples, scenes, control_names, f"Fig. 3 controls [{label}]"), folder, "fig3_controls")
    out += save(fig4(samples, scenes, model_names, f"Fig. 4: spectral-curve density (log) [{label}]"), folder,
                "fig4_spectral_density")
    out += save(fig4(samples, scenes, control_names, f"Fig. 4 controls [{label}]"), folder, "fig4_controls")
    return out


def write_manifest(folder, files: list[Path], profile: str, label: str, scenes: list[str], model_names: list[str],
                   weights_hashes: dict[str, str], git_commit: str | None = None) -> Path:
    """``figures/MANIFEST.json``: profile, machine label, git commit, the training hash and the weights hash of every
    (scene, model) run drawn, and the sha256 of every file, so a test can check that committed figures match the
    committed code and a reader can tell which trained weights a figure shows."""
    folder = Path(folder)
    man = {"profile": profile, "label": label, "git_commit": git_commit, "scenes": scenes, "models": model_names,
           "training_hashes": {f"{s}/{m}": make_config(s, m, profile).training_hash() for s in scenes
                               for m in model_names},
           "weights_hashes": weights_hashes,
           "files": {Path(f).name: hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in files}}
    out = folder / "MANIFEST.json"
    atomic_write_text(out, json.dumps(man, indent=2))
    return out


def add_to_manifest(folder, files: list[Path], weights_hashes: dict[str, str]) -> Path:
    """Add ``files`` (their sha256) and the weights hashes they show to ``figures/MANIFEST.json`` (a notebook after
    05 adding a figure, e.g. 08's ``fig_scene_<scene>``)."""
    folder = Path(folder)
    path = folder / "MANIFEST.json"
    man = json.loads(path.read_text()) if path.is_file() else {"files": {}, "weights_hashes": {}}
    man["files"].update({Path(f).name: hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in files})
    man.setdefault("weights_hashes", {}).update(weights_hashes)
    atomic_write_text(path, json.dumps(man, indent=2))
    return path


def make_figures(scenes, model_names, profile: str, fig_dir=None, runs=None, device: str = "auto", data_root=None,
                 progress: bool = True) -> list[Path]:
    """What ``05_figures`` does: fit (or reuse) every generator on every scene, draw its evaluation samples (cached
    by weights hash, shared with 06_tables), write Figs. 3–4 and the manifest. Returns the files written."""
    S = {s: load_scene(s, data_root) for s in scenes}
    samples: dict[str, dict] = {s: {} for s in scenes}
    hashes, trained = {}, {}
    for s in scenes:
        for m in model_names:
            why = models.unsupported(m, S[s], profile)
            if why:  # its panels say "not run"
                print(f"{s:12} {m:14} not run: {why}", flush=True)
                continue
            gen = models.create(m).fit(S[s], profile, paths.runs_dir(runs), device=device, progress=progress)
            if (gen.run_dir_ / "losses.json").is_file():  # trained generators (the controls have no losses)
                trained[f"{s}/{m}" if len(scenes) > 1 else m] = gen.run_dir_
            samples[s][m] = generate(gen, gen.config_.eval.n_samples, gen.config_.eval.seed, device, progress)
            hashes[f"{s}/{m}"] = gen.weights_hash()
            print(f"{s:12} {m:14} {samples[s][m].shape} weights {hashes[f'{s}/{m}']}", flush=True)
    label = f"profile {profile}, {machine_description(resolve_device(device))}"
    folder = paths.figures_dir(fig_dir)
    files = write_all(samples, S, [m for m in model_names if not models.is_control(m)],
                      [m for m in model_names if models.is_control(m)], folder, label)
    if trained:  # whether each generator's training settled at this profile's budget
        files += save(loss_curves(trained, f"Training losses (moving mean) [{label}]"), folder, "training_losses")
    write_manifest(folder, files, profile, label, list(scenes), list(model_names), hashes, git_commit())
    return files
