"""The downstream benchmark from the shipped fold weights: wall time per stage and peak memory (docs/downstream.md).

Installs the shipped HUD-cond fold checkpoints into ``--runs`` (a fresh folder by default, so nothing cached is
reused), then times, in one process on this machine: loading the fold generators, preparing their resources (the
HUD-cond pools at every guidance weight, in an empty pool cache; the training-side layout agreement), the runs
(validation choices and test rows of every fold and budget, ``--jobs`` worker processes) and the statistics and
report. Prints one line per stage, the total and the peak resident memory of this process and its workers
(``resource.getrusage``), and whether the headline goal was met. The result is written to ``--results`` (a
temporary folder by default), never over the committed one.

    python benchmarks/downstream.py                  # the quick protocol: ~20 min on a 2-core CPU
    python benchmarks/downstream.py --profile smoke  # the wiring, ~30 s
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from hudlib import checkpoints, downstream
from hudlib.data import load_scene
from hudlib.downstream import benchmark
from hudlib.downstream.report import write_result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--scene", default="IndianPines")
    ap.add_argument("--runs", default=None, help="runs folder (default: a new temporary one)")
    ap.add_argument("--results", default=None, help="where the result goes (default: a new temporary folder)")
    ap.add_argument("--jobs", type=int, default=None, help="worker processes (default: the protocol's)")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="hud-downstream-"))
    runs = Path(a.runs) if a.runs else tmp / "runs"
    results = Path(a.results) if a.results else tmp / "results"
    scene = load_scene(a.scene)
    protocol = downstream.protocol_for(a.profile)
    times = {}
    t_all = time.perf_counter()
    t = time.perf_counter()
    cfgs = list(downstream.fold_configs(scene.name, a.profile, protocol).values())
    installed = checkpoints.install(cfgs, runs) if a.profile != "smoke" else []
    gens = downstream.fold_generators(scene, a.profile, runs, a.device, False, protocol)
    times["fold generators (install + load)"] = time.perf_counter() - t
    t = time.perf_counter()
    resources, fidelity = downstream.prepare_resources(scene, gens, protocol, tmp / "pools", a.device, False)
    times["resources (pools at every w, layout agreement)"] = time.perf_counter() - t
    t = time.perf_counter()
    out = benchmark.run(scene, protocol, resources, progress=True, n_jobs=a.jobs)
    times["runs (validation + test, all folds and budgets)"] = time.perf_counter() - t
    t = time.perf_counter()
    result = downstream.assemble(scene, a.profile, protocol, gens, fidelity, out)
    result["wall_time_s"] = time.perf_counter() - t_all
    write_result(result, results, a.profile)
    times["statistics + report"] = time.perf_counter() - t
    total = time.perf_counter() - t_all
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    print(f"\n{scene.name}, profile {a.profile}: {len(protocol.fold_indices)} folds x {protocol.draws} draws x "
          f"budgets {protocol.budgets}, {len(protocol.rows)} rows + real + ceiling + levers, {len(out['records'])} "
          f"test records; {len(installed)} shipped runs installed; workers {a.jobs or protocol.n_jobs}")
    for k, v in times.items():
        print(f"  {k:52s} {v:8.1f} s")
    print(f"  {'total':52s} {total:8.1f} s ({total / 60:.1f} min)")
    print(f"  peak RSS (largest process) {peak / 1024:.0f} MiB; headline goal met: {result['headline']['goal_met']}; "
          f"result in {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
