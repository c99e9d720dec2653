"""Writes notebooks/*.ipynb from the cell sources below (outputs stripped, one `parameters` cell each).

Run: python tools/make_notebooks.py. Notebooks hold no algorithm: they call hudlib, show and plot.
"""
import sys
from pathlib import Path

import nbformat as nbf

NB = {}

NB["00_data"] = [
    ("md", "# 00 · Data\nLoad a scene (paper IV-A), its pseudo-colour image with the paper's bands, the ground-truth "
           "map, the mean spectrum of every class, and a band slider over the cube. Files are found through "
           "`root`, `$HUD_DATA`, `./data`, and for Indian Pines the copy inside the tensorly wheel."),
    ("params", 'scene = "IndianPines"\nrandom_state = 0\ndata_root = None'),
    ("code", "import numpy as np\nimport matplotlib.pyplot as plt\nfrom hudlib import data\n\n"
             "s = data.load_scene(scene, data_root)\n"
             "print(f'{s.name}: cube {s.cube.shape} (bands, rows, cols), raw range {s.raw_range}, '\n"
             "      f'{s.n_classes} classes, pseudo-colour bands {s.rgb_bands}\\nsource: {s.source}')\n"
             "assert s.cube.dtype == np.float32 and 0 <= s.cube.min() and s.cube.max() <= 1"),
    ("code", "fig, ax = plt.subplots(1, 2, figsize=(10, 4.5))\n"
             "ax[0].imshow(data.pseudo_rgb(s.cube, s.rgb_bands)); ax[0].set_title(f'{s.name} pseudo-colour {s.rgb_bands}')\n"
             "im = ax[1].imshow(s.gt, cmap='tab20', interpolation='nearest'); ax[1].set_title('ground truth (0 = unlabelled)')\n"
             "plt.colorbar(im, ax=ax[1]); [a.axis('off') for a in ax]; plt.show()"),
    ("code", "means = data.class_mean_spectra(s)\n"
             "plt.figure(figsize=(8, 4))\n"
             "for k, m in enumerate(means, 1):\n    plt.plot(m, lw=1, label=f'class {k}')\n"
             "plt.xlabel('band'); plt.ylabel('normalised reflectance'); plt.title('class mean spectra')\n"
             "plt.legend(ncol=4, fontsize=7); plt.show()"),
    ("code", "crops = data.patches(s, size=32, n=8, random_state=random_state)  # (8, bands, 32, 32), paper IV-A\n"
             "lim = data.rgb_limits(s.cube, s.rgb_bands)\n"
             "fig, ax = plt.subplots(1, 8, figsize=(14, 2))\n"
             "for a, c in zip(ax, crops):\n    a.imshow(data.pseudo_rgb(c, s.rgb_bands, limits=lim)); a.axis('off')\n"
             "plt.suptitle('random 32×32 training crops'); plt.show()"),
    ("code", "from hudlib.widgets import band_slider\nband_slider(s.cube, s.name)"),
]

NB["01_vca"] = [
    ("md", "# 01 · VCA endmembers\nVertex Component Analysis (Nascimento & Dias 2005) with d = number of classes "
           "(paper III-B). On the Samson unmixing benchmark the estimated endmembers are matched to the reference "
           "ones (Hungarian assignment on spectral angle) and the SAD of each is reported."),
    ("params", 'scene = "IndianPines"\nrandom_state = 0\ndata_root = None\n'
               '# folder holding Samson.mat and _EndSamson.mat (relative to the project root); skipped if absent\n'
               'samson_dir = "../shared/data/Samson"'),
    ("code", "import time\nimport numpy as np\nimport matplotlib.pyplot as plt\nfrom hudlib import data, unmixing, paths\n\n"
             "s = data.load_scene(scene, data_root)\n"
             "t0 = time.perf_counter()\n"
             "E, idx = unmixing.vca(s.cube, s.n_classes, random_state=random_state)  # E: (bands, d)\n"
             "print(f'VCA on {s.name}: d = {E.shape[1]}, {time.perf_counter() - t0:.2f} s, pixels {idx}')\n"
             "assert E.shape == (s.bands, s.n_classes) and np.isfinite(E).all()"),
    ("code", "plt.figure(figsize=(8, 4))\nfor j in range(E.shape[1]):\n    plt.plot(E[:, j], lw=1, label=f'e{j + 1}')\n"
             "plt.xlabel('band'); plt.ylabel('normalised reflectance'); plt.title(f'{s.name}: VCA endmembers')\n"
             "plt.legend(ncol=4, fontsize=7); plt.show()"),
    ("code", "sam = paths.project_root() / samson_dir\n"
             "if (sam / 'Samson.mat').is_file() and (sam / '_EndSamson.mat').is_file():\n"
             "    b = data.load_unmixing_benchmark(sam / 'Samson.mat', sam / '_EndSamson.mat')\n"
             "    Es, _ = unmixing.vca(b.cube, b.endmembers.shape[1], random_state=random_state)\n"
             "    perm, ang = unmixing.match_endmembers(Es, b.endmembers)\n"
             "    for name, a in zip(b.names, ang):\n        print(f'Samson {name:>8}: SAD {a:.4f} rad')\n"
             "    print(f'mean SAD {ang.mean():.4f} rad')\n"
             "    fig, ax = plt.subplots(1, len(ang), figsize=(12, 3))\n"
             "    for j, a in enumerate(ax):\n"
             "        a.plot(b.endmembers[:, j], 'k', label='reference'); a.plot(Es[:, perm[j]], 'r--', label='VCA')\n"
             "        a.set_title(f'{b.names[j]} (SAD {ang[j]:.3f})'); a.legend(fontsize=7)\n"
             "    plt.show()\n"
             "else:\n    print(f'Samson benchmark not found under {sam}; set samson_dir to the folder with Samson.mat')"),
]

NB["02_uae_check"] = [
    ("md", "# 02 · Unmixing AutoEncoder check\nLinear (eq. 3, then Euclidean projection onto the simplex) vs FCLS "
           "(eq. 2) encoders with the frozen decoder A: reconstruction RMSE and mean spectral angle, abundance "
           "maps, constraint checks, and the eq. 6 round trip of the relaxation pair (eqs. 4–5)."),
    ("params", 'scene = "IndianPines"\nrandom_state = 0\ndata_root = None'),
    ("code", "import math, time\nimport numpy as np\nimport matplotlib.pyplot as plt\n"
             "from hudlib import data, unmixing, uae\n\n"
             "s = data.load_scene(scene, data_root)\n"
             "E, _ = unmixing.vca(s.cube, s.n_classes, random_state=random_state)\n"
             "rows = []\nX_by = {}\n"
             "for enc in ('linear', 'fcls'):\n"
             "    ae = uae.UnmixingAutoEncoder(E, encoder=enc)\n"
             "    t0 = time.perf_counter(); X = ae.encode(s.cube); dt = time.perf_counter() - t0\n"
             "    Yh = ae.decode(X)\n"
             "    rmse = float(np.sqrt(np.mean((Yh - s.cube) ** 2)))\n"
             "    sad = float(np.mean(unmixing.spectral_angle(Yh, s.cube)))\n"
             "    X_by[enc] = X\n"
             "    rows.append((enc, rmse, sad, float(X.min()), float(np.abs(X.sum(0) - 1).max()), dt))\n"
             "print(f\"{'encoder':8} {'RMSE':>9} {'mean SAD':>9} {'min X':>10} {'max|ΣX-1|':>10} {'time s':>7}\")\n"
             "for r in rows:\n    print(f'{r[0]:8} {r[1]:9.5f} {r[2]:9.5f} {r[3]:10.2e} {r[4]:10.2e} {r[5]:7.2f}')\n"
             "assert all(r[3] >= 0 and r[4] < 1e-6 for r in rows), 'abundances must lie on the simplex'"),
    ("code", "X = X_by['fcls']\nk = min(8, X.shape[0])\n"
             "fig, ax = plt.subplots(2, k, figsize=(2 * k, 4.2))\n"
             "for j in range(k):\n"
             "    ax[0, j].imshow(X_by['linear'][j], vmin=0, vmax=1); ax[0, j].set_title(f'linear e{j + 1}', fontsize=8)\n"
             "    ax[1, j].imshow(X[j], vmin=0, vmax=1); ax[1, j].set_title(f'FCLS e{j + 1}', fontsize=8)\n"
             "for a in ax.ravel():\n    a.axis('off')\nplt.suptitle('abundance maps'); plt.show()"),
    ("code", "# eq. 6: constrain(relax(X)) == (X + e^(−ln d − 8)) / (1 + e^(−8))\n"
             "d = X.shape[0]\nZ = uae.relax(X)\nXh = uae.constrain(Z)\n"
             "err = float(np.abs(Xh - (X + uae.relax_epsilon(d)) / (1 + math.exp(-8))).max())\n"
             "print(f'Z range [{Z.min():.3f}, {Z.max():.3f}] (expected ≈ [−8 − ln d, 0] = [{-8 - math.log(d):.3f}, 0])')\n"
             "print(f'eq. 6 round-trip max error {err:.2e}; max |X̂ − X| = {np.abs(Xh - X).max():.2e}')\n"
             "assert err < 1e-6"),
]

NB["03_train_diffusion"] = [
    ("md", "# 03 · Train the abundance diffusion model\nTrains HUD (Algorithm 1) on random 32×32 crops of the "
           "relaxed abundances Z, or reuses the finished run with the same configuration. `smoke` by default so "
           "the notebook checks in seconds; `./run_all.sh` passes the profile (quick on a CPU, paper on a GPU)."),
    ("params", 'scene = "IndianPines"\nprofile = "smoke"\ndevice = "auto"\nsteps = None\nruns = None\ndata_root = None'),
    ("code", "import json\nimport numpy as np\nimport matplotlib.pyplot as plt\n"
             "from hudlib import data, models, paths\n\n"
             "s = data.load_scene(scene, data_root)\n"
             "overrides = {'train': {'steps': steps}} if steps else None\n"
             "hud = models.create('HUD').fit(s, profile, paths.runs_dir(runs), overrides=overrides, device=device)\n"
             "print('run directory:', hud.run_dir_)\n"
             "info = json.loads((hud.run_dir_ / 'train_info.json').read_text())\ninfo"),
    ("code", "losses = np.array(json.loads((hud.run_dir_ / 'losses.json').read_text()))\n"
             "w = max(1, len(losses) // 50)\nsmooth = np.convolve(losses, np.ones(w) / w, mode='valid')\n"
             "plt.figure(figsize=(7, 3.5)); plt.plot(losses, alpha=0.3, label=f'loss (eq. 15, {hud.config_.diffusion.prediction}-prediction)'); "
             "plt.plot(np.arange(len(smooth)) + w - 1, smooth, label=f'moving mean ({w})')\n"
             "plt.yscale('log'); plt.xlabel('step'); plt.legend()\n"
             "plt.title(f\"HUD {scene} [{profile}] {info['steps']} steps, {info['wall_time_s']:.0f} s on {info['device']}\"); plt.show()\n"
             "assert np.isfinite(losses).all()"),
]

NB["04_sample"] = [
    ("md", "# 04 · Sample\nDraws patches with the ancestral DDPM sampler (Algorithm 2, T steps) and with DDIM "
           "(fewer steps, same network), checks non-negativity and sum-to-one of X̂ = softmax(Z) (eq. 5), shows a "
           "grid of pseudo-colour patches and a browser: patch and band sliders, a pseudo-colour / single-band "
           "toggle, and the spectrum of a selected pixel beside the real scene's class means."),
    ("params", 'scene = "IndianPines"\nprofile = "smoke"\ndevice = "auto"\nsteps = None\nn = 8\nseed = 0\n'
               'ddim_steps = None\nruns = None\ndata_root = None'),
    ("code", "import time\nimport numpy as np\nimport matplotlib.pyplot as plt\n"
             "from hudlib import data, models, paths\nfrom hudlib.widgets import patch_browser\n\n"
             "s = data.load_scene(scene, data_root)\n"
             "overrides = {'train': {'steps': steps}} if steps else None\n"
             "hud = models.create('HUD').fit(s, profile, paths.runs_dir(runs), overrides=overrides, device=device)\n"
             "out = {}\n"
             "for sampler in ('ddpm', 'ddim'):\n"
             "    t0 = time.perf_counter()\n"
             "    Y, X = hud.sample(n, random_state=seed, sampler=sampler, steps=ddim_steps if sampler == 'ddim' else None,\n"
             "                      device=device, return_abundances=True)\n"
             "    out[sampler] = (Y, X)\n"
             "    print(f'{sampler}: {n} patches in {time.perf_counter() - t0:.1f} s; min X̂ {X.min():.2e}, '\n"
             "          f'max |ΣX̂ − 1| {np.abs(X.sum(1) - 1).max():.2e}, Y range [{Y.min():.3f}, {Y.max():.3f}]')\n"
             "    assert X.min() >= 0 and np.abs(X.sum(1) - 1).max() < 1e-5"),
    ("md", "Two checks of what the samples look like, against real patches: the roughness gap (|ln| of the ratio of "
           "the mean spectral angle between neighbouring pixels; pixel noise and flat colour both raise it, 0 is "
           "the real texture) and the mean largest abundance (too high = over-pure, saturated colours)."),
    ("code", "from hudlib import metrics\n"
             "real_n = data.patches(s, 32, max(n, 16), random_state=seed + 1)\n"
             "X_real = hud.uae_.encode(s.cube)\n"
             "for sampler, (Y, X) in out.items():\n"
             "    print(f'{sampler}: roughness gap {metrics.roughness_gap(Y, real_n):.3f}, mean largest abundance '\n"
             "          f'{X.max(1).mean():.3f} (real scene {X_real.max(0).mean():.3f})')"),
    ("code", "lim = data.rgb_limits(s.cube, s.rgb_bands)  # one stretch: the real scene's\n"
             "k = min(n, 8)\nfig, ax = plt.subplots(3, k, figsize=(1.8 * k, 5.6))\n"
             "real = data.patches(s, 32, k, random_state=seed)\n"
             "for j in range(k):\n"
             "    ax[0, j].imshow(data.pseudo_rgb(real[j], s.rgb_bands, limits=lim))\n"
             "    ax[1, j].imshow(data.pseudo_rgb(out['ddpm'][0][j], s.rgb_bands, limits=lim))\n"
             "    ax[2, j].imshow(data.pseudo_rgb(out['ddim'][0][j], s.rgb_bands, limits=lim))\n"
             "for a in ax.ravel():\n    a.axis('off')\n"
             "ax[0, 0].set_title('real', loc='left'); ax[1, 0].set_title('HUD DDPM', loc='left'); ax[2, 0].set_title('HUD DDIM', loc='left')\n"
             "plt.suptitle(f'{scene} [{profile} profile]'); plt.show()"),
    ("code", "patch_browser(out['ddim'][0], s.rgb_bands, class_means=data.class_mean_spectra(s), limits=lim, title=f'HUD {scene}')"),
]

NB["05_figures"] = [
    ("md", "# 05 · Figures 3 and 4\nFor every scene and every registered generator (controls in separate panels): "
           "Fig. 3, pseudo-colour 2×2 mosaics of generated 32 px patches with the paper's bands and one stretch per "
           "scene; Fig. 4, the log-density of band × reflectance over all generated pixels with the real scene's "
           "1–99 % envelope. Samples are drawn once per run and cached (06_tables reuses them)."),
    ("params", 'scenes = ["IndianPines"]\nmodels = None\nprofile = "smoke"\ndevice = "auto"\n'
               'fig_dir = "build/figures"\nruns = None\ndata_root = None'),
    ("code", "from IPython.display import Image, display\n"
             "from hudlib import data, figures, paths\nfrom hudlib import models as registry\n"
             "from hudlib.config import make_config\nfrom hudlib.evaluate import generate, machine_description\n"
             "from hudlib.train import resolve_device\n\n"
             "names = models or registry.names()\n"
             "S = {s: data.load_scene(s, data_root) for s in scenes}\nsamples = {}\n"
             "for s in scenes:\n"
             "    samples[s] = {}\n"
             "    for m in names:\n"
             "        gen = registry.create(m).fit(S[s], profile, paths.runs_dir(runs), device=device)\n"
             "        cfg = make_config(s, m, profile)\n"
             "        samples[s][m] = generate(gen, cfg.eval.n_samples, cfg.eval.seed, device)\n"
             "        print(f'{s:12} {m:14} {samples[s][m].shape}')"),
    ("code", "label = f'profile {profile}, {machine_description(resolve_device(device))}'\n"
             "files = figures.write_all(samples, S, [m for m in names if not registry.is_control(m)],\n"
             "                          [m for m in names if registry.is_control(m)], paths.figures_dir(fig_dir), label)\n"
             "from hudlib.evaluate import git_commit\n"
             "figures.write_manifest(paths.figures_dir(fig_dir), files, profile, label, list(scenes), list(names), git_commit())\n"
             "for f in files:\n    print(f)\n"
             "for f in files:\n    if f.suffix == '.png':\n        display(Image(filename=str(f)))"),
]

NB["06_tables"] = [
    ("md", "# 06 · Tables I–IV\nEvaluates every registered generator on every scene (the paper's F_p, D_b, "
           "D_b/F_p, IS, FID; HyperLDM's SD; precision/recall in spectral and patch space, sliced Wasserstein "
           "distance, copy rate), then writes Tables I–III beside the paper's numbers with the controls, and Table IV "
           "(parameters, training memory, FLOPs) for the paper profile and the chosen one. Metrics that rank a "
           "trivial control level with HUD are flagged ⚠."),
    ("params", 'scenes = ["IndianPines"]\nmodels = None\nprofile = "smoke"\ndevice = "auto"\n'
               'results = "build/results"\nruns = None\ndata_root = None\nn = None'),
    ("code", "import json\nfrom IPython.display import Markdown, display\n"
             "from hudlib import complexity, data, evaluate, paths, tables\nfrom hudlib import models as registry\n\n"
             "names = models or registry.names()\n"
             "for s in scenes:\n"
             "    sc = data.load_scene(s, data_root)\n"
             "    for m in names:\n"
             "        p = evaluate.evaluate(s, m, profile, n=n, runs=paths.runs_dir(runs), results=results,\n"
             "                              device=device, scene_obj=sc)\n"
             "        rec = json.loads(p.read_text())\n"
             "        print(f\"{s:12} {m:14} F_p {rec['metrics']['F_p']:.4f}  D_b {rec['metrics']['D_b']:.4f}  \"\n"
             "              f\"recall(spectra) {rec['metrics']['recall_spectra']:.3f}  FID {rec['metrics']['FID']:.2f}\")"),
    ("code", "rows = []\nfor prof in sorted({'paper', profile}):\n"
             "    for r in complexity.complexity_table(scenes[0], prof):\n"
             "        if not r.get('control'):\n            rows.append({**r, 'model': f\"{r['model']} [{prof} U-Net]\"})\n"
             "cx_md = complexity.format_table(rows) + (f'\\n\\n*{scenes[0]}; FLOPs via torch.utils.flop_counter on meta '\n"
             "    f'tensors; memory: {rows[0][\"memory_method\"]}.*')\n"
             "out = tables.write_tables(profile, results, scenes, names, complexity_md=cx_md)\n"
             "print(out)\ndisplay(Markdown(out.read_text()))"),
]


def build(names=None, folder=Path(__file__).resolve().parents[1] / "notebooks"):
    folder.mkdir(exist_ok=True)
    for name, cells in NB.items():
        if names and name not in names:
            continue
        nb = nbf.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        for kind, src in cells:
            if kind == "md":
                nb.cells.append(nbf.v4.new_markdown_cell(src))
            else:
                c = nbf.v4.new_code_cell(src)
                if kind == "params":
                    c.metadata["tags"] = ["parameters"]
                nb.cells.append(c)
        for i, c in enumerate(nb.cells):
            c["id"] = f"{name[:2]}-{i:02d}"
        nbf.write(nb, folder / f"{name}.ipynb")
        print("wrote", folder / f"{name}.ipynb")


if __name__ == "__main__":
    build(sys.argv[1:] or None)
