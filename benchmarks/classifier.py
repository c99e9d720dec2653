"""Benchmark of the per-scene classifiers behind IS / FID / SD (hudlib.classifier) on Indian Pines.

Trains the sound classifier (per-pixel 3 x 3-neighbourhood net) and the authors' per-pixel 1x1-conv classifier
(under a CPU step budget), prints their accuracies on the authors' overlapping 80/20 window split and on the
spatially disjoint held-out region, the majority-class share, training times, and the sound IS / FID of trivial
controls against real patches: a second disjoint set of real patches must score best.

Usage: ``python benchmarks/classifier.py [--n 128] [--seeds 0 1 2] [--authors-epochs 2] [--authors-steps 8]
[--authors-pixels 4096] [--skip-authors]``
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from hudlib import classifier as C
from hudlib import metrics as M
from hudlib.data import load_scene, patches


def controls(scene, n: int, rng: np.random.Generator) -> dict:
    """Real patches and trivial controls, each ``(n, bands, 32, 32)`` in our units."""
    cube = scene.cube
    flat = cube.reshape(cube.shape[0], -1)
    mu, sd = flat.mean(1), flat.std(1)
    shape = (n, cube.shape[0], 32, 32)
    idx = rng.integers(flat.shape[1], size=(n * 1024, 3))
    w = rng.dirichlet(np.ones(3), size=n * 1024)
    mix = np.einsum("pk,bpk->bp", w, flat[:, idx])
    return {
        "real (disjoint set)": patches(scene, 32, n, random_state=int(rng.integers(2 ** 31))),
        "mean spectrum": np.broadcast_to(mu[None, :, None, None], shape).astype(np.float32),
        "Gaussian noise": (mu[None, :, None, None] + sd[None, :, None, None] * rng.normal(size=shape)
                           ).astype(np.float32),
        "shuffled pixels": flat[:, rng.integers(flat.shape[1], size=n * 1024)].reshape(-1, n, 32, 32)
        .transpose(1, 0, 2, 3).astype(np.float32),
        "Dirichlet mixtures": mix.reshape(-1, n, 32, 32).transpose(1, 0, 2, 3).astype(np.float32),
    }


def sound(scene, args) -> None:
    print("== sound classifier (PixelNeighbourhoodNet, 3x3), quick-profile settings (600 steps)")
    for seed in args.seeds:
        t = time.perf_counter()
        net, info = C.train_classifier(scene, random_state=seed, progress=False, device="cpu")
        print(f"seed {seed}: held-out acc {info['holdout_accuracy']:.3f} balanced {info['holdout_balanced_accuracy']:.3f}"
              f" majority share {info['holdout_majority_share']:.3f} train acc {info['train_accuracy']:.3f}"
              f" n_train {info['n_train']} n_holdout {info['n_holdout']} train time {time.perf_counter() - t:.1f} s")
        real = patches(scene, 32, args.n, random_state=1000 + seed)
        rng = np.random.default_rng(seed)
        rows = []
        for name, x in controls(scene, args.n, rng).items():
            r = M.classifier_scores(net, x, real)
            rows.append((name, r["IS"], r["FID"], r["SD"]))
        print(f"  {'generator':22s} {'IS':>7s} {'FID':>9s} {'SD':>6s}   (IS of the reference set {r['IS_real']:.3f})")
        for name, i, f, s in rows:
            print(f"  {name:22s} {i:7.3f} {f:9.4f} {s:6.3f}")
        best_fid = min(rows, key=lambda q: q[2])[0]
        best_is = max(rows, key=lambda q: q[1])[0]
        ratio = min(q[2] for q in rows[1:]) / rows[0][2]
        print(f"  best FID: {best_fid}; best IS: {best_is}; smallest control FID / real FID = {ratio:.1f}")


def authors(scene, args) -> None:
    print(f"== authors' classifier (1x1 convs, 16 x 256), budget: {args.authors_epochs} epochs x "
          f"{args.authors_steps} steps x batch 32 windows, {args.authors_pixels or 'all'} pixels per step")
    for split in ("authors", "spatial"):
        net, info = C.train_authors_classifier(
            scene, split=split, max_epochs=args.authors_epochs, steps_per_epoch=args.authors_steps,
            pixels_per_step=args.authors_pixels, progress=False, device="cpu")
        what = "overlapping 80/20 windows, background incl." if split == "authors" else \
            "disjoint held-out region, labelled pixels"
        print(f"{split:8s} ({what}): val acc {info['val_accuracy']:.3f} balanced {info['val_balanced_accuracy']:.3f}"
              f" majority share {info['val_majority_share']:.3f}; {info['steps']} steps in {info['wall_time_s']:.0f} s"
              f" ({info['seconds_per_step']:.2f} s/step; a full epoch is {-(-info['n_train_windows'] // 32)} steps)")
    X = scene.to_authors_space(patches(scene, 32, 8, random_state=0))
    p, f = M.authors_pixel_outputs(net, X)
    print(f"authors_pixel_outputs on 8 patches: probs {p.shape} (rows sum to 1: {np.allclose(p.sum(1), 1)}), "
          f"features {f.shape}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--authors-epochs", type=int, default=2)
    ap.add_argument("--authors-steps", type=int, default=8)
    ap.add_argument("--authors-pixels", type=int, default=4096)
    ap.add_argument("--skip-authors", action="store_true")
    args = ap.parse_args()
    scene = load_scene("IndianPines")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    sound(scene, args)
    if not args.skip_authors:
        authors(scene, args)


if __name__ == "__main__":
    main()
