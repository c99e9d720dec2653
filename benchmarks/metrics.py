"""Benchmark of hudlib.metrics on the whole Indian Pines scene.

Times point fidelity F_p (eq. 16) and block diversity D_b (eq. 17) on ``--n`` generated patches (real 32 x 32
crops plus Gaussian noise), checks them against a naive numpy brute force (explicit matmul over all pairs, no conv
trick) on a subsample, and compares their achieved GFLOP/s with this machine's fp32 matmul throughput measured in
the same run. Also times the distribution metrics and shows that F_p does not tell the mean-spectrum generator from
real data while recall / sliced Wasserstein / copy rate do. Prints one table.

Paper-exact rows (hudlib.metrics.paper_exact, the authors' F_p and whole-patch D_b with 4 rotations, in their [-1, 1]
space against the centre square crop): time at ``--paper-n`` patches, the ratio to the direct computation (the
definition evaluated pair by pair / window by window in numpy, timed on a subset and extrapolated by FLOP count)
and the direct-FLOP-equivalent GFLOP/s as a share of the measured matmul throughput; plus peak resident memory of
each metric on a synthetic Pavia Centre-sized cube (1096 x 715 x 102), measured in a fresh subprocess.

With ``--evaluation``: one whole quick evaluation (every metric and the paper-exact block) of the RealCopy control.

Usage: ``python benchmarks/metrics.py [--n 64] [--device cpu] [--sigma 0.01] [--exact-copy] [--paper-only]
[--evaluation]``
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import multiprocessing as mp
from pathlib import Path

from hudlib import metrics as M
from hudlib.metrics import paper_exact as PE
from hudlib.data import load_scene, patches


def timed(fn, *a, **kw):
    t = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t


def matmul_gflops(device, size: int = 4096, reps: int = 3) -> float:
    """Measured fp32 ``size^3`` matmul throughput (best of ``reps``)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b
    best = np.inf
    for _ in range(reps):
        if a.is_cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if a.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * size ** 3 / best / 1e9


def unit(x, axis=-1):
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), M.EPS)


def naive_fp(G, R):
    """Per-pixel max cosine, float64 matmul of all (generated, real) pixel pairs -> (n, h, w)."""
    n, C, h, w = G.shape
    g = unit(G.transpose(0, 2, 3, 1).reshape(-1, C).astype(np.float64))
    r = unit(R.reshape(C, -1).T.astype(np.float64))
    return (g @ r.T).max(1).reshape(n, h, w)


def naive_db(G, R, b, rows_per_chunk: int = 16):
    """Per-block max cosine: explicit matrix of real b x b blocks (every position) times generated blocks."""
    n, C, h, w = G.shape
    nh, nw = h // b, w // b
    blocks = G[:, :, :nh * b, :nw * b].reshape(n, C, nh, b, nw, b).transpose(0, 2, 4, 1, 3, 5)
    g = unit(blocks.reshape(n * nh * nw, -1).astype(np.float64))
    Ho, Wo = R.shape[1] - b + 1, R.shape[2] - b + 1
    best = np.full(len(g), -np.inf)
    for r0 in range(0, Ho, rows_per_chunk):
        rows = range(r0, min(Ho, r0 + rows_per_chunk))
        real = np.stack([R[:, r:r + b, c:c + b].ravel() for r in rows for c in range(Wo)]).astype(np.float64)
        best = np.maximum(best, (unit(real) @ g.T).max(0))
    return best.reshape(n, nh, nw)


def direct_db_windows(P, O, rows):
    """The authors' D_b definition for one patch P (bands, h, w), window by window, on the first ``rows`` rows of
    window positions of O (all 4 rotations): per-pixel cosines averaged over the patch -> (max score, windows)."""
    Uo = unit(O.astype(np.float64), axis=0)
    best, count = -np.inf, 0
    for k in range(4):
        R = unit(np.rot90(P.astype(np.float64), k, axes=(1, 2)), axis=0)
        _, h, w = R.shape
        for r in range(rows):
            for c in range(O.shape[2] - w + 1):
                best = max(best, float(np.sum(R * Uo[:, r:r + h, c:c + w])) / (h * w))
                count += 1
    return best, count


def _rss_child(which, q):
    rng = np.random.default_rng(0)
    cube = np.empty((102, 1096, 715), dtype=np.float32)
    for b in range(cube.shape[0]):  # band by band: no whole-cube temporary raises the baseline's high-water mark
        rng.random(dtype=np.float32, out=cube[b])
        cube[b] *= 2.0
        cube[b] -= 1.0
    crop = None
    if which != "F_p":
        crop = np.ascontiguousarray(cube[:, 190:905])  # the authors' centre square crop, 715 x 715
        del cube
    G = rng.uniform(-1, 1, (4, 102, 32, 32)).astype(np.float32)
    base = _status_mib("VmRSS")
    try:  # reset this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    t = time.perf_counter()
    if which == "F_p":
        M.point_fidelity(G, cube)
    else:
        PE.block_diversity_paper(G, crop)
    q.put((time.perf_counter() - t, _status_mib("VmHWM") - base, base))


def _status_mib(field: str) -> float:
    """A ``/proc/self/status`` memory field in MiB (VmHWM: peak RSS since exec or the last reset). Not
    ``ru_maxrss``: Linux carries the parent's high-water mark across fork + exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss(which):
    """(seconds, peak RSS above the inputs in MiB, RSS of the inputs in MiB) of one metric on a synthetic
    Pavia Centre-sized cube (4 patches), in a fresh process. ``ru_maxrss`` is a high-water mark, so the inputs are
    built without temporaries larger than one band (the baseline is the process with its inputs)."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_rss_child, args=(which, q))
    p.start()
    out = q.get()
    p.join()
    return out


def paper_rows(args, dev, peak):
    """Rows for the paper-exact F_p and D_b on Indian Pines (authors' space, centre crop)."""
    scene = load_scene("IndianPines")
    O = PE.original_image(scene)
    C, H, W = O.shape
    Y = patches(scene.cube, size=32, n=args.paper_n, random_state=3)
    G = PE.to_authors_space(Y + 0.01 * np.random.default_rng(4).standard_normal(Y.shape), scene)
    n, _, h, w = G.shape
    rows = []
    (fp, per), t = timed(PE.point_fidelity_paper, G, O, device=dev, return_per_pixel=True)
    fl = 2.0 * n * h * w * H * W * C
    ref, t_ref = timed(naive_fp, G[:2], O)
    diff = float(np.abs(per[:2] - ref).max())
    t_direct = t_ref * n / 2
    rows.append(("F_p paper-exact", f"{n} crops+noise", fp, t, fl / t / 1e9,
                 f"direct (numpy, all pairs) {t_direct:.0f} s extrap. from 2 patches: x{t_direct / t:.1f}; "
                 f"max|diff| {diff:.1e}"))
    Y_ours = patches(scene.cube, size=32, n=args.paper_n, random_state=3)
    _, t_conv = timed(PE.to_authors_space, Y_ours, scene)
    rows.append(("to authors' space", f"{n} patches", float("nan"), t_conv, None, "float64 per 2^18 elements"))
    (db, per), t = timed(PE.block_diversity_paper, G, O, device=dev, return_per_patch=True)
    windows = 4 * (H - h + 1) * (W - w + 1)
    fl = 2.0 * n * windows * C * h * w
    (_, cnt), t_sub = timed(direct_db_windows, G[0], O, 2)
    t_direct = t_sub * n * windows / cnt
    small = np.ascontiguousarray(O[:, :48, :48])
    d_fast = PE.block_diversity_paper(G[:2], small, return_per_patch=True)[1]
    d_ref = np.array([direct_db_windows(g, small, 48 - h + 1)[0] for g in G[:2]])
    rows.append(("D_b paper-exact (4 rot.)", f"{n} crops+noise", db, t, fl / t / 1e9,
                 f"direct {fl:.1e} FLOP, {t_direct:.0f} s extrap. from {cnt} windows: x{t_direct / t:.0f}; "
                 f"max|diff| {np.abs(d_fast - d_ref).max():.1e} (48x48 sub-scene)"))
    if args.evaluation:
        import json
        import tempfile
        from hudlib.evaluate import evaluate
        with tempfile.TemporaryDirectory() as tmp:
            out, t = timed(evaluate, "IndianPines", "RealCopy", "quick", results=tmp, force=True, progress=False,
                           device=str(dev))
            rec = json.loads(out.read_text())
        slow = sorted(((v, k) for k, v in {**rec["times_s"]}.items() if k not in ("classifier",
                                                                             "authors_classifier")), reverse=True)
        rows.append(("whole evaluation, quick", "RealCopy n=256", float("nan"), t, None,
                     "every metric + paper-exact block (classifiers cached); slowest: "
                     + ", ".join(f"{k} {v:.1f} s" for v, k in slow[:4])))
    for which in ("F_p", "D_b"):
        t, rss, base = peak_rss(which)
        rows.append((f"{which} memory, 1096x715x102", "4 random", float("nan"), t, None,
                     f"peak RSS +{rss:.0f} MiB above the inputs ({base:.0f} MiB)"
                     + (" vs the whole scene" if which == "F_p" else " vs its 715x715 centre crop")))
    return rows


def print_rows(rows, peak):
    head = f"{'metric':26s} {'generator':15s} {'value':>8s} {'time s':>7s} {'GFLOP/s':>8s} {'% matmul':>8s}  check"
    print(head)
    print("-" * len(head))
    for metric, gen, val, t, gf, chk in rows:
        g_s = f"{gf:8.1f}" if gf is not None else f"{'':8s}"
        pct = f"{100 * gf / peak:7.0f}%" if gf is not None else f"{'':8s}"
        print(f"{metric:26s} {gen:15s} {val:8.4f} {t:7.2f} {g_s} {pct}  {chk}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="generated patches (32 x 32)")
    ap.add_argument("--sigma", type=float, default=0.01, help="std of the noise added to the real crops")
    ap.add_argument("--block", type=int, default=8)
    ap.add_argument("--device", default=None)
    ap.add_argument("--check-patches", type=int, default=4, help="patches in the brute-force subsample (F_p)")
    ap.add_argument("--exact-copy", action="store_true", help="also time copy_rate on all bands (slow)")
    ap.add_argument("--check-db-patches", type=int, default=2, help="patches in the brute-force subsample (D_b)")
    ap.add_argument("--paper-n", type=int, default=256, help="patches for the paper-exact rows")
    ap.add_argument("--paper-only", action="store_true", help="only the paper-exact rows")
    ap.add_argument("--evaluation", action="store_true",
                    help="also time one whole quick evaluation (RealCopy, n = 256; trains the classifiers if absent)")
    args = ap.parse_args(argv)
    if args.paper_only:
        dev = torch.device(args.device) if args.device else torch.device("cpu")
        peak = matmul_gflops(dev)
        rows = paper_rows(args, dev, peak)
        peak = max(peak, matmul_gflops(dev))
        print(f"Indian Pines, paper-exact metrics (authors' space, centre crop); device {dev}, torch threads "
              f"{torch.get_num_threads()}; fp32 matmul 4096^3 (best of start/end): {peak:.1f} GFLOP/s; "
              f"GFLOP/s = direct-computation FLOPs / time")
        print_rows(rows, peak)
        return

    scene = load_scene("IndianPines")
    R = scene.cube
    C, H, W = R.shape
    rng = np.random.default_rng(0)
    crops = patches(R, size=32, n=args.n, random_state=1)
    G = (crops + args.sigma * rng.standard_normal(crops.shape)).astype(np.float32)
    n, _, h, w = G.shape
    b = args.block
    dev = torch.device(args.device) if args.device else torch.device("cpu")
    peak = matmul_gflops(dev)

    rows = []  # metric, generator, value, seconds, gflops, check

    # the same BLAS call as one F_p block, alone (inner dimension = bands is small, so below the square peak)
    a = torch.randn(4096, C, device=dev)
    bmat = torch.randn(C, min(H * W, 16384), device=dev)
    a @ bmat
    t_bare = min(timed(torch.matmul, a, bmat)[1] for _ in range(3))
    bare = 2.0 * a.shape[0] * C * bmat.shape[1] / t_bare / 1e9

    (fp, per_fp), t_fp = timed(M.point_fidelity, G, R, device=dev, return_per_pixel=True)
    fl_fp = 2.0 * n * h * w * H * W * C
    k = args.check_patches
    ref, t_ref = timed(naive_fp, G[:k], R)
    diff = float(np.abs(per_fp[:k] - ref).max())
    assert diff < 1e-5, f"F_p differs from brute force by {diff}"
    rows.append(("F_p (eq. 16)", "crops+noise", fp, t_fp, fl_fp / t_fp / 1e9,
                 f"max|diff| {diff:.1e} on {k * h * w} px; numpy {t_ref * n / k:.1f} s/{n} (extrap.)"))

    (db, per_db), t_db = timed(M.block_diversity, G, R, block=b, device=dev, return_per_block=True)
    P = (H - b + 1) * (W - b + 1)
    K = n * (h // b) * (w // b)
    fl_db = 2.0 * K * P * C * b * b
    k = args.check_db_patches
    ref, t_ref = timed(naive_db, G[:k], R, b)
    diff = float(np.abs(per_db[:k] - ref).max())
    assert diff < 1e-5, f"D_b differs from brute force by {diff}"
    rows.append((f"D_b (eq. 17, b={b})", "crops+noise", db, t_db, fl_db / t_db / 1e9,
                 f"max|diff| {diff:.1e} on {k * (h // b) * (w // b)} blocks; numpy {t_ref * n / k:.1f} s/{n} (extrap.)"))

    mean = np.broadcast_to(R.mean((1, 2))[None, :, None, None], G.shape).astype(np.float32)
    for name, g in (("crops+noise", G), ("mean spectrum", mean)):
        if name != "crops+noise":
            v, t = timed(M.point_fidelity, g, R, device=dev)
            rows.append(("F_p (eq. 16)", name, v, t, fl_fp / t / 1e9, ""))
            v, t = timed(M.block_diversity, g, R, block=b, device=dev)
            rows.append((f"D_b (eq. 17, b={b})", name, v, t, fl_db / t / 1e9, ""))
        pr, t = timed(M.precision_recall, g, R, space="spectra", max_points=5000, device=dev)
        rows.append(("precision (spectra, k=3)", name, pr["precision"], t, None, "5000 vs 5000 points"))
        rows.append(("recall (spectra, k=3)", name, pr["recall"], t, None, "same run"))
        pr, t = timed(M.precision_recall, g, R, space="patches", device=dev)
        rows.append(("precision (patches, k=3)", name, pr["precision"], t, None, f"{n} vs {n} raw patches"))
        rows.append(("recall (patches, k=3)", name, pr["recall"], t, None, "same run"))
        v, t = timed(M.sliced_wasserstein, g, R, device=dev)
        rows.append(("sliced W_2 (256 dirs)", name, v, t, None, "all pixels"))
        v, t = timed(M.copy_rate, g, R, device=dev)
        rows.append(("copy rate (relative)", name, v, t, None, "32 PCA axes, stride 1, 128 held-out"))

    rows += paper_rows(args, dev, peak)
    G256 = patches(R, size=32, n=256, random_state=2)
    v, t = timed(M.copy_rate, G256, R, device=dev)
    rows.append(("copy rate (relative)", "256 real crops", v, t, None, "affordability check"))
    if args.exact_copy:
        v, t = timed(M.copy_rate, G256, R, device=dev, n_components=None)
        rows.append(("copy rate (relative)", "256 real crops", v, t, None, "all 200 bands (exact)"))
    peak = max(peak, matmul_gflops(dev))  # the machine may be shared: best of start and end

    print(f"Indian Pines {C}x{H}x{W}; generated {n} x {C} x {h} x {w} (real crops + N(0, {args.sigma}^2)); "
          f"device {dev}, torch threads {torch.get_num_threads()}; fp32 matmul 4096^3 (best of start/end of run): "
          f"{peak:.1f} GFLOP/s")
    rows.insert(0, ("bare matmul (F_p block)", "-", float("nan"), t_bare, bare,
                    f"(4096 x {C}) @ ({C} x {bmat.shape[1]}), best of 3"))
    print_rows(rows, peak)

if __name__ == "__main__":
    main()
