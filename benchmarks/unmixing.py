"""Benchmark of hudlib.unmixing on Indian Pines: batched FCLS vs the per-pixel scipy reference, VCA, memory.

Run: ``.venv/bin/python benchmarks/unmixing.py [--repeats 5] [--skip-memory]``

* Times are wall-clock (``time.perf_counter``), best of ``--repeats`` runs with fcls and the references
  interleaved (so load from other processes hits all of them alike); the median and the CPU time
  (``time.process_time``, all threads of the process) of the best run are printed too.
* BLAS is pinned to one thread (``OPENBLAS_NUM_THREADS=1``, set here unless the variable is already set):
  fcls and the scipy reference are single-threaded algorithms, and on a shared 2-core machine idle OpenBLAS
  worker threads spin and were seen to make small products 10x slower. Run
  ``OPENBLAS_NUM_THREADS=2 .venv/bin/python benchmarks/unmixing.py`` to measure with threads.
* ``fcls_reference`` is the exact per-pixel ``scipy.optimize.nnls`` solution (homogeneous system, see its
  docstring); the classical penalised system (``delta=1e3``) is timed as well, since it is the usual
  "per-pixel scipy" baseline.
* Peak memory of ``fcls`` on a synthetic 780,000-pixel x 102-band float32 input (Pavia Centre's size,
  d = 9) is measured in a fresh subprocess with ``tracemalloc`` (numpy allocations; the CPU path of fcls is
  numpy only) and, as a cross-check, as the peak resident set during the call (Linux ``VmHWM``, reset
  through ``/proc/self/clear_refs`` just before it) minus the resident set before it.
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy is imported (see the docstring)

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from hudlib import data, unmixing as um

MEMORY_SCRIPT = r"""
import sys, time, tracemalloc
import numpy as np
from hudlib import unmixing as um
N, L, p, chunk = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(0)
t = np.linspace(0, 1, L)[:, None]
c, w, h = rng.uniform(0, 1, (3, p)), rng.uniform(0.05, 0.3, (3, p)), rng.uniform(0.2, 1, (3, p))
E = 0.1 + sum(h[i] * np.exp(-0.5 * ((t - c[i]) / w[i]) ** 2) for i in range(3))
Y = np.empty((L, N), dtype=np.float32)
for s in range(0, N, 100000):  # build the input without a float64 copy of it
    X = rng.dirichlet(np.full(p, 0.3), min(100000, N - s)).T
    Y[:, s:s + X.shape[1]] = E @ X + 0.01 * rng.standard_normal((L, X.shape[1]))
del X
um.fcls(Y[:, :1000], E, progress=False)  # warm-up (imports, thread pools)
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident set (VmHWM)
    rss0 = status("VmRSS")
except OSError:
    rss0 = None
tracemalloc.start()
t0 = time.perf_counter()
out = um.fcls(Y, E, chunk_size=chunk, progress=False)
dt = time.perf_counter() - t0
cur, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
rss = -1 if rss0 is None else status("VmHWM") - rss0
ok = bool(out.min() >= 0 and abs(out.sum(0) - 1).max() <= 1e-6)
print(dt, peak, rss, Y.nbytes, out.nbytes, ok)
"""


def _timed(fn):
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scene", default="IndianPines")
    ap.add_argument("--d", type=int, default=16, help="number of VCA endmembers")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--memory-pixels", type=int, default=780_000)
    ap.add_argument("--memory-bands", type=int, default=102)
    ap.add_argument("--memory-d", type=int, default=9)
    ap.add_argument("--chunk-size", type=int, default=65536)
    a = ap.parse_args(argv)

    print(f"machine: {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    scene = data.load_scene(a.scene)
    Y = scene.cube
    n_pix = Y.shape[1] * Y.shape[2]

    vca_runs = [_timed(lambda: um.vca(Y, a.d, random_state=0)) for _ in range(a.repeats)]
    E, idx = vca_runs[0][0]
    t_vca = min(r[1] for r in vca_runs)

    runs = {"fcls": [], "fcls_reference (exact)": [], "fcls_reference (delta=1e3)": []}
    X = X_ref = X_pen = None
    for _ in range(a.repeats):
        X, *tt = _timed(lambda: um.fcls(Y, E, progress=False))
        runs["fcls"].append(tt)
        X_ref, *tt = _timed(lambda: um.fcls_reference(Y, E, progress=False))
        runs["fcls_reference (exact)"].append(tt)
        X_pen, *tt = _timed(lambda: um.fcls_reference(Y, E, delta=1e3, progress=False))
        runs["fcls_reference (delta=1e3)"].append(tt)

    def best(name):
        return min(runs[name], key=lambda r: r[0])

    def med(name):
        return float(np.median([r[0] for r in runs[name]]))

    t_f, t_r, t_p = best("fcls")[0], best("fcls_reference (exact)")[0], best("fcls_reference (delta=1e3)")[0]
    print(f"\n{a.scene}: {n_pix} pixels x {scene.bands} bands, d = {a.d} VCA endmembers (random_state=0), "
          f"best of {a.repeats}")
    print(f"{'':34s} {'best wall s':>11s} {'median s':>9s} {'CPU s':>7s}")
    for name in runs:
        b = best(name)
        print(f"{name:34s} {b[0]:11.4f} {med(name):9.4f} {b[1]:7.3f}")
    print(f"{'vca':34s} {t_vca:11.4f} {float(np.median([r[1] for r in vca_runs])):9.4f} "
          f"{min(vca_runs, key=lambda r: r[1])[2]:7.3f}")
    print()
    rows = [
        ("speed-up fcls vs exact reference", f"{t_r / t_f:.1f}x"),
        ("speed-up fcls vs delta=1e3 reference", f"{t_p / t_f:.1f}x"),
        ("max |fcls - exact reference|", f"{np.abs(X - X_ref).max():.2e}"),
        ("max |delta=1e3 ref - exact reference|", f"{np.abs(X_pen - X_ref).max():.2e}"),
        ("fcls: min X, max |sum - 1|", f"{X.min():.1e}, {np.abs(X.sum(0) - 1).max():.1e}"),
        ("delta=1e3 ref: max |sum - 1|", f"{np.abs(X_pen.sum(0) - 1).max():.1e}"),
        ("mean non-zero abundances per pixel", f"{(X > 0).sum(0).mean():.2f}"),
    ]
    if not a.skip_memory:
        cmd = [sys.executable, "-c", MEMORY_SCRIPT, str(a.memory_pixels), str(a.memory_bands), str(a.memory_d),
               str(a.chunk_size)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        dt, peak, rss, in_bytes, out_bytes, ok = res.stdout.split()
        mib = 2.0 ** 20
        rows += [
            (f"synthetic {a.memory_pixels} x {a.memory_bands} (d={a.memory_d}) fcls time",
             f"{float(dt):.2f} s (chunk_size {a.chunk_size})"),
            ("  input float32 / output float64", f"{int(in_bytes) / mib:.0f} MiB / {int(out_bytes) / mib:.0f} MiB"),
            ("  peak allocations (tracemalloc)", f"{int(peak) / mib:.0f} MiB, incl. the output"),
            ("  peak RSS growth during the call", f"{int(rss) / mib:.0f} MiB" if int(rss) >= 0 else "n/a"),
            ("  constraints hold", ok),
        ]
    w = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"{k:{w}s}  {v}")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
