"""The main job behind ``./run_all.sh``: run the numbered notebooks headless through papermill, in order.

Per-scene notebooks (``00`` … ``04``) run once per scene into ``build/notebooks/<scene>/``; the cross-scene
notebooks (``05_figures``, ``06_tables`` …, marked by ``SCENE_NOTEBOOK_MAX``) run once with the list of scenes and
models. Every notebook's stdout/stderr goes to ``build/logs/``. Success is recorded per notebook in
``build/run_summary.json``; the summary with wall times is printed; the exit status is non-zero on any failure, and
the failure names the notebook and the cell.

It never hangs and it talks:

- before starting it prints its plan (scenes, generators, what is trained / cached, an estimated time from the
  profile's measured step times in ``hudlib.config.RUNNER``); ``--dry-run`` stops there;
- notebooks that declare an ``interactive`` parameter get ``interactive=False`` (static figures instead of live
  ipywidgets, which can hang nbclient: jupyter/nbclient#312), and the kernel's ``tqdm.auto`` is the text bar;
- every cell runs under the profile's ``cell_timeout_s``; a dead kernel, and a kernel that went idle without
  replying for ``idle_grace_s``, fail the run naming notebook and cell;
- while a notebook runs, one live line shows notebook, cell and the tqdm bar (step, loss, time left) mirrored from
  the notebook's output (rewritten in place on a terminal; a plain line every few seconds otherwise).

Scenes missing locally are skipped with the exact download command (Indian Pines is always there via tensorly).
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import papermill as pm
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.exceptions import PapermillExecutionError
from traitlets import Any as AnyTrait

from . import models as registry
from . import paths
from .config import PROFILES, RUNNER, make_config
from .data import SCENES, DataError, _info, _locate
from .evaluate import result_status
from .utils import atomic_write_text

__all__ = ["run_notebooks", "available_scenes", "make_plan", "format_plan", "parse_tqdm", "main"]

SCENE_NOTEBOOK_MAX = 4  # notebooks 00..04 are per scene; 05 and later take all scenes at once
TRAINING_NOTEBOOKS = ("03", "04", "05", "06", "07")  # notebooks that fit generators (train when no finished run exists)
EVALUATION_NOTEBOOKS = ("06",)  # notebooks that evaluate every generator
ABLATION_NOTEBOOKS = ("07",)  # trains and evaluates hudlib.ablation's extra HUD-size runs on the first scene
ENGINE = "hud-watched"

# Run in every kernel the runner starts, before any cell: tqdm.auto would pick the ipywidgets bar inside a kernel
# (its updates travel as comm messages that never reach the log); the text bar writes to stderr, which papermill
# forwards to the log and to the live line.
KERNEL_EXEC_LINES = ["import tqdm.auto, tqdm.std; tqdm.auto.tqdm, tqdm.auto.trange = tqdm.std.tqdm, tqdm.std.trange"]


def available_scenes(names=None, root=None) -> tuple[list[str], dict[str, str]]:
    """``(present, {missing: download command})`` among ``names`` (default: every registered scene)."""
    present, missing = [], {}
    for n in names or list(SCENES):
        info = _info(n)  # an unknown name is an error, not a skip
        try:
            _locate(info, root)
            present.append(n)
        except DataError as e:
            missing[n] = str(e)
    return present, missing


def _notebooks(nb_dir: Path, only=None) -> list[Path]:
    nbs = sorted(p for p in Path(nb_dir).glob("[0-9][0-9]_*.ipynb"))
    return [nb for nb in nbs if not only or any(nb.name.startswith(o) for o in only)]


def _steps(nbs: list[Path], build: Path, present: list[str], models: list[str], profile: str) -> list[tuple]:
    """``[(notebook, executed notebook path, parameters)]`` in run order (parameters before filtering)."""
    steps = []
    for nb in nbs:
        if int(nb.name[:2]) <= SCENE_NOTEBOOK_MAX:
            for s in present:
                steps.append((nb, build / "notebooks" / s / nb.name, dict(scene=s, profile=profile,
                                                                          interactive=False)))
        else:
            steps.append((nb, build / "notebooks" / nb.name, dict(scenes=present, models=models, profile=profile,
                                                                  fig_dir="figures", results="results",
                                                                  interactive=False)))
    return steps


# ---------------------------------------------------------------------------------------------------------- plan
def timings(profile: str) -> dict:
    """The measured seconds of ``profile`` behind the plan's estimate (``hudlib/timings.json``)."""
    from importlib import resources

    return json.loads(resources.files("hudlib").joinpath("timings.json").read_text())[profile]


def _status(scene: str, model: str, profile: str, runs, results) -> dict:
    """``{"trained", "evaluated"}`` (hudlib.evaluate.result_status: a result counts as cached only for the exact
    weights on disk), the one place the plan asks."""
    return result_status(scene, model, profile, runs=runs, results=results)


def make_plan(profile: str, scenes: list[str], models: list[str], nbs: list[Path], skipped=None,
              runs=None, results="results") -> dict:
    """What a run will do: per (scene, model) whether training and evaluation are needed, and the time estimate.

    ``runs`` / ``results`` resolve as the notebooks resolve them (:mod:`hudlib.paths`).
    """
    runs, results = paths.runs_dir(runs), paths.results_dir(results)
    prefixes = {nb.name[:2] for nb in nbs}
    trains, evals = bool(prefixes & set(TRAINING_NOTEBOOKS)), bool(prefixes & set(EVALUATION_NOTEBOOKS))
    r = timings(profile)
    rows, train_steps, n_eval, train_s = [], 0, 0, 0.0
    for s in scenes:
        for m in models:
            control = registry.is_control(m)
            st = _status(s, m, profile, runs, results)
            run = registry.run_dir_for(make_config(s, m, profile), runs) if st["trained"] else None
            cached = st["evaluated"]
            steps = 0 if control or run else make_config(s, m, profile).train.steps
            train_steps += steps if trains else 0
            per = r["step_s"].get(m)
            train_s = None if train_s is None or (steps and trains and per is None) else \
                train_s + (steps * per if trains and steps else 0.0)
            n_eval += 0 if cached or not evals else 1
            rows.append({"scene": s, "model": m, "control": control, "run": str(run) if run else None,
                         "train_steps": steps, "cached": cached})
    n_runs = sum(len(scenes) if int(nb.name[:2]) <= SCENE_NOTEBOOK_MAX else 1 for nb in nbs)
    parts = {"evaluation": (n_eval, r["eval_s"]), "notebooks": (n_runs, r["notebook_s"])}
    est = {"training": train_s,
           **{k: None if (n and per is None) else n * (per or 0) for k, (n, per) in parts.items()}}
    n_abl = 0
    if prefixes & set(ABLATION_NOTEBOOKS) and scenes:
        from . import ablation
        n_abl = ablation.extra_runs(profile)
        ref = registry.reference_name()
        per, ev_s = r["step_s"].get(ref), r["eval_s"]
        steps = make_config(scenes[0], ref, profile).train.steps
        est["ablation"] = None if per is None or ev_s is None else n_abl * (steps * per + ev_s)
    return {"profile": profile, "scenes": scenes, "skipped": dict(skipped or {}), "models": models,
            "notebooks": [nb.name for nb in nbs], "notebook_runs": n_runs, "rows": rows, "runs": str(runs),
            "results": str(results), "train_steps": train_steps, "to_evaluate": n_eval, "estimate_s": est,
            "trains": trains, "evaluates": evals, "ablation_runs": n_abl}


def _fmt_s(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600} h {s % 3600 // 60:02d} min" if s >= 3600 else f"{s // 60} min {s % 60:02d} s"


def format_plan(plan: dict) -> str:
    """The plan as the terminal shows it."""
    lines = [f"== plan: profile {plan['profile']}, {len(plan['scenes'])} scene(s), {len(plan['models'])} "
             f"generator(s), {plan['notebook_runs']} notebook run(s) ==",
             f"scenes:     {', '.join(plan['scenes']) or '(none)'}"]
    lines += [f"skipped:    {name} (missing: {why})" for name, why in plan["skipped"].items()]
    lines += [f"generators: {', '.join(plan['models'])}", f"notebooks:  {', '.join(plan['notebooks']) or '(none)'}",
              f"runs:       {plan['runs']}", f"results:    {plan['results']}", "",
              f"{'scene':14}{'generator':16}{'training':44}result"]
    for r in plan["rows"]:
        if r["control"]:
            train = "control: no training"
        elif r["run"]:
            train = f"trained ({Path(r['run']).name})"
        else:
            train = f"to train ({r['train_steps']} steps)" if plan["trains"] else "not trained (not run now)"
        result = "cached" if r["cached"] else ("to evaluate" if plan["evaluates"] else "not cached (not run now)")
        lines.append(f"{r['scene']:14}{r['model']:16}{train:44}{result}")
    est = plan["estimate_s"]
    if any(v is None for v in est.values()):
        unknown = ", ".join(k for k, v in est.items() if v is None)
        lines.append(f"\nestimate: unknown ({unknown} not measured for profile {plan['profile']} on the reference "
                     f"machine; see RUNNER in hudlib/config.py)")
    else:
        lines.append(f"\nestimate: ~{_fmt_s(sum(est.values()))} on a 2-core CPU like the reference machine "
                     f"(training {_fmt_s(est['training'])} for {plan['train_steps']} steps, evaluation "
                     f"{_fmt_s(est['evaluation'])} for {plan['to_evaluate']} generator(s), notebooks "
                     f"{_fmt_s(est['notebooks'])}"
                     + (f", ablation {_fmt_s(est['ablation'])} for at most {plan['ablation_runs']} extra runs"
                        if "ablation" in est else "") + "); a GPU is faster")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------- live line
_BAR = re.compile(r"(?:(?P<desc>[^\r\n|]*?):\s*)?(?P<pct>\d+)%\|[^|]*\|\s*(?P<n>[\d.]+[kMG]?)/(?P<total>[\d.]+[kMG]?)"
                  r"\s*\[(?P<elapsed>[\d:]+)<(?P<left>[\d:?]+)(?:,\s*(?P<rate>[^,\]]*))?(?:,\s*(?P<post>[^\]]*))?\]")


def parse_tqdm(text: str) -> dict | None:
    """The last tqdm text bar in ``text`` (a chunk of a stream, ``\\r``-separated updates) as a dict with desc, n,
    total, elapsed, left, rate and postfix; None when the chunk holds no bar."""
    last = None
    for seg in re.split(r"[\r\n]", text):
        m = _BAR.search(seg)
        if m:
            last = {k: (v or "").strip() for k, v in m.groupdict().items()}
    return last


class _Live:
    """One status line: rewritten in place (carriage return) on a terminal, else a plain line at most every
    ``interval_s`` seconds. Thread-safe (the watchdog refreshes it while the main thread feeds it)."""

    def __init__(self, term, enabled: bool = True, interval_s: float = 10.0):
        self.term, self.enabled, self.interval_s = term, enabled, interval_s
        self.tty = bool(getattr(term, "isatty", lambda: False)())
        self.lock = threading.Lock()
        self.text, self.shown, self.width, self.t_last = "", "", 0, -1e9

    def set(self, text: str, force: bool = False) -> None:
        with self.lock:
            self.text = text
        self.refresh(force)

    def refresh(self, force: bool = False) -> None:
        if not self.enabled:
            return
        with self.lock:
            now = time.monotonic()
            if self.text == self.shown or (not force and now - self.t_last < (0.2 if self.tty else self.interval_s)):
                return
            if self.tty:
                cols = shutil.get_terminal_size((120, 24)).columns - 1
                line = self.text[:cols]
                self.term.write("\r" + line.ljust(self.width))
                self.width = len(line)
            else:
                self.term.write(self.text + "\n")
            self.term.flush()
            self.shown, self.t_last = self.text, now

    def print(self, line: str) -> None:
        """A permanent line: clears the live line first (it reappears at the next update)."""
        with self.lock:
            if self.tty and self.width:
                self.term.write("\r" + " " * self.width + "\r")
            self.width, self.shown = 0, ""
            self.term.write(line + "\n")
            self.term.flush()


class _Watch:
    """What the runner knows about the notebook in progress: the cell running, when the kernel last reported idle
    without a reply, the last tqdm bar; a watchdog thread kills a kernel that stays idle without replying."""

    def __init__(self, tag: str, live: _Live, idle_grace_s: float):
        self.tag, self.live, self.idle_grace_s = tag, live, idle_grace_s
        self.cell_no = self.n_cells = 0
        self.first_line = self.gist = ""
        self.cell_t0, self.idle_since, self.bar = None, None, None
        self.proc, self.fired = None, None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name=f"watch {tag}")

    # called by the client ---------------------------------------------------------------------------------
    def cell_started(self, client, cell, index: int) -> None:
        code = [i for i, c in enumerate(client.nb.cells) if c.cell_type == "code"]
        self.cell_no, self.n_cells = code.index(index) + 1, len(code)
        lines = [ln.strip() for ln in cell.source.splitlines() if ln.strip()]
        self.first_line = lines[0] if lines else ""
        # the live line shows the cell's first statement that is not an import or a comment
        self.gist = next((ln for ln in lines if not ln.startswith(("import ", "from ", "#"))), self.first_line)
        self.cell_t0, self.idle_since, self.bar = time.monotonic(), None, None
        prov = getattr(client.km, "provisioner", None)
        self.proc = getattr(prov, "process", None) or self.proc
        self._show()

    def cell_finished(self) -> None:
        self.idle_since = None

    def kernel_idle(self) -> None:
        self.idle_since = time.monotonic()

    def output(self, text: str) -> None:
        bar = parse_tqdm(text)
        if bar:
            self.bar = bar
            self._show(force=bar["n"] == bar["total"])  # a bar's final state is always shown

    # ------------------------------------------------------------------------------------------------------
    def where(self) -> str:
        return f"cell {self.cell_no}/{self.n_cells} ({self.first_line[:70]!r})"

    def exit_code(self):
        return None if self.proc is None else self.proc.poll()

    def _show(self, force: bool = False) -> None:
        el = time.monotonic() - self.cell_t0 if self.cell_t0 else 0.0
        text = f"[{self.tag}] cell {self.cell_no}/{self.n_cells} {int(el) // 60:02d}:{int(el) % 60:02d}"
        b = self.bar
        if b:
            text += f" | {b['desc']} {b['n']}/{b['total']}" + (f" {b['post']}" if b["post"] else "")
            text += f" left {b['left']}"
        else:
            text += f" | {self.gist[:60]}"
        self.live.set(text, force)

    def _loop(self) -> None:
        while not self.stop.wait(0.5):
            if self.cell_t0:
                self._show()
            idle = self.idle_since
            if idle is not None and time.monotonic() - idle > self.idle_grace_s and not self.fired:
                self.fired = (f"the kernel reported idle but sent no reply for {self.idle_grace_s:g} s "
                              f"(jupyter/nbclient#312); its kernel was killed")
                if self.proc is not None and self.proc.poll() is None:
                    os.kill(self.proc.pid, signal.SIGKILL)


class _LogTee(io.TextIOBase):
    """The notebook's stdout/stderr as papermill forwards it: into the log file, and its tqdm bars to the watch."""

    def __init__(self, log, watch: _Watch):
        self.log, self.watch = log, watch

    def write(self, s: str) -> int:
        self.log.write(s)
        self.watch.output(s)
        return len(s)

    def flush(self) -> None:
        self.log.flush()


class _WatchedClient(PapermillNotebookClient):
    """papermill's client, telling a :class:`_Watch` which cell runs and when the kernel reports idle."""

    watch = AnyTrait(None)

    def execute_cell(self, cell, cell_index, *args, **kwargs):
        if cell.cell_type == "code" and self.watch is not None:
            self.watch.cell_started(self, cell, cell_index)
        try:
            return super().execute_cell(cell, cell_index, *args, **kwargs)
        finally:
            if self.watch is not None:
                self.watch.cell_finished()

    def process_message(self, msg, cell, cell_index):
        if (self.watch is not None and msg.get("msg_type") == "status"
                and msg.get("content", {}).get("execution_state") == "idle"):
            self.watch.kernel_idle()
        return super().process_message(msg, cell, cell_index)


class _WatchedEngine(NBClientEngine):
    """papermill's nbclient engine with :class:`_WatchedClient` and the runner's kernel start-up lines."""

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None, stderr_file=None,
                                 start_timeout=60, execution_timeout=None, watch=None, kernel_log=None, **kwargs):
        """As papermill's, plus ``watch`` (a :class:`_Watch`) and ``kernel_log`` (an open file: the kernel process's
        own stdout/stderr and the client's log messages go there instead of the user's terminal)."""
        for k in ("input_path", "timeout", "startup_timeout"):
            kwargs.pop(k, None)
        log = logging.getLogger(f"{__name__}.nbclient")
        log.propagate, log.handlers = False, [logging.StreamHandler(kernel_log)] if kernel_log else []
        extra = [f"--IPKernelApp.exec_lines={line}" for line in KERNEL_EXEC_LINES]
        client = _WatchedClient(nb_man, watch=watch, timeout=execution_timeout, startup_timeout=start_timeout,
                                kernel_name=kernel_name, log=log, log_output=log_output,
                                stdout_file=stdout_file, stderr_file=stderr_file, extra_arguments=extra, **kwargs)
        return client.execute(**(dict(stdout=kernel_log, stderr=kernel_log) if kernel_log else {}))


papermill_engines.register(ENGINE, _WatchedEngine)


# ----------------------------------------------------------------------------------------------------------- run
def _failure(exc: BaseException, name: str, watch: _Watch, timeout: float) -> str:
    """One line naming notebook, cell and what went wrong."""
    if isinstance(exc, PapermillExecutionError):
        what = f"{exc.ename}: {exc.evalue}"
    elif isinstance(exc, CellTimeoutError):
        what = f"timed out after {timeout:g} s (the profile's cell_timeout_s; the kernel was shut down)"
    elif isinstance(exc, DeadKernelError):
        code = watch.exit_code()
        what = watch.fired or ("the kernel died" + (f" (exit code {code})" if code is not None else ""))
    else:
        what = f"{type(exc).__name__}: {exc}"
    where = watch.where() if watch.cell_no else "before its first cell"
    return f"{name} failed in {where}: {what}".strip()


def _run_one(nb: Path, out: Path, params: dict, log: Path, tag: str, live: _Live, timeout: float,
             idle_grace_s: float) -> dict:
    """Execute one notebook under the watch; the record for the summary (``ok``, ``error``, ``wall_s``)."""
    name = nb.name + (f" [{params['scene']}]" if "scene" in params else "")
    rec = {"notebook": str(nb), "output": str(out), "params": params, "log": str(log)}
    watch = _Watch(tag, live, idle_grace_s)
    t0 = time.perf_counter()
    watch.thread.start()
    try:
        log.write_text("")
        with open(log, "a") as lf:  # appended to by this process and by the kernel process (O_APPEND)
            tee = _LogTee(lf, watch)
            pm.execute_notebook(str(nb), str(out), parameters=params, cwd=str(Path.cwd()), stdout_file=tee,
                                stderr_file=tee, progress_bar=False, kernel_name="python3", engine_name=ENGINE,
                                execution_timeout=timeout, watch=watch, kernel_log=lf)
        rec["ok"] = True
    except Exception as e:  # recorded, reported, and turned into a non-zero exit by main()
        rec["ok"] = False
        rec["error"] = _failure(e, name, watch, timeout)
        rec["timeout"] = isinstance(e, CellTimeoutError) or watch.fired is not None
    finally:
        watch.stop.set()
        watch.thread.join()
    rec["wall_s"] = round(time.perf_counter() - t0, 1)
    return rec


def run_notebooks(profile: str = "quick", scenes=None, models=None, nb_dir="notebooks", build="build",
                  only=None, progress: bool = True, extra_params: dict | None = None,
                  cell_timeout_s: float | None = None, idle_grace_s: float | None = None, dry_run: bool = False,
                  term=None, live_interval_s: float = 10.0) -> dict:
    """Print the plan, then run every numbered notebook; returns the summary dict (also written to
    ``build/run_summary.json``).

    Args:
        profile: smoke | quick | paper.
        scenes: scene names (default: all found locally).
        models: generator names (default: all registered).
        only: optional list of notebook name prefixes (``["00", "05"]``) to run.
        progress: show the live line.
        cell_timeout_s / idle_grace_s: override the profile's ``RUNNER`` values.
        dry_run: print the plan and return without running anything.
        term: where the plan, the live line and the summary go (default sys.stdout).
        live_interval_s: least seconds between two plain live lines when ``term`` is not a terminal.
    """
    if profile not in PROFILES:
        raise ValueError(f"--profile: unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    term = term or sys.stdout
    live = _Live(term, progress, live_interval_s)
    nb_dir, build = Path(nb_dir), Path(build)
    present, missing = available_scenes(scenes)
    models = list(models or registry.names())
    for m in models:
        registry.get(m)  # fail fast on an unknown name
    nbs = _notebooks(nb_dir, only)
    plan = make_plan(profile, present, models, nbs, missing)
    live.print(format_plan(plan))
    if dry_run:
        return {"profile": profile, "scenes": present, "models": models, "plan": plan, "steps": [], "ok": True,
                "dry_run": True}
    timeout = cell_timeout_s if cell_timeout_s is not None else RUNNER[profile]["cell_timeout_s"]
    grace = idle_grace_s if idle_grace_s is not None else RUNNER[profile]["idle_grace_s"]
    (build / "logs").mkdir(parents=True, exist_ok=True)
    summary = {"profile": profile, "scenes": present, "skipped": missing, "models": models, "plan": plan,
               "cell_timeout_s": timeout, "steps": []}
    failed = None
    t_all = time.perf_counter()
    for nb, out, params in _steps(nbs, build, present, models, profile):
        params = {**params, **(extra_params or {})}
        declared = pm.inspect_notebook(str(nb))  # pass only what the parameters cell declares
        params = {k: v for k, v in params.items() if k in declared}
        out.parent.mkdir(parents=True, exist_ok=True)
        tag = nb.stem + (f"[{params['scene']}]" if "scene" in params else "")
        log = build / "logs" / (tag.replace("[", "_").replace("]", "") + ".log")
        live.print(f"[run ] {tag} -> {out}")
        rec = _run_one(nb, out, params, log, tag, live, timeout, grace)
        summary["steps"].append(rec)
        live.print(f"[{'ok' if rec['ok'] else 'FAIL'}  ] {tag} {rec['wall_s']:.1f} s")
        if not rec["ok"]:
            failed = rec
            break
    summary["total_wall_s"] = round(time.perf_counter() - t_all, 1)
    summary["ok"] = failed is None
    atomic_write_text(build / "run_summary.json", json.dumps(summary, indent=2))
    _print_summary(live, summary, failed)
    return summary


def _print_summary(live: _Live, summary: dict, failed: dict | None) -> None:
    live.print("\n== summary ==")
    for r in summary["steps"]:
        live.print(f"{'ok  ' if r['ok'] else 'FAIL'} {r['wall_s']:8.1f} s  {r['output']}")
    live.print(f"total {summary['total_wall_s']:.1f} s, profile {summary['profile']}, "
               f"scenes {', '.join(summary['scenes'])}")
    if failed:
        print(f"\nFAILED: {failed['error']}\n  executed notebook: {failed['output']}\n  log: {failed['log']}",
              file=sys.stderr, flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="run_all.sh", description="Regenerate every figure and table of the paper.")
    p.add_argument("--profile", default=os.environ.get("HUD_PROFILE", "quick"))
    p.add_argument("--scenes", nargs="*", default=None)
    p.add_argument("--models", nargs="*", default=None)
    p.add_argument("--only", nargs="*", default=None, help="notebook number prefixes to run, e.g. 00 05")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument("--cell-timeout", type=float, default=None,
                   help="seconds one cell may run (default: the profile's, hudlib.config.RUNNER)")
    p.add_argument("--notebooks", default="notebooks", help="folder of the numbered notebooks")
    p.add_argument("--build", default="build", help="folder for executed notebooks, logs and run_summary.json")
    a = p.parse_args(argv)
    summary = run_notebooks(a.profile, a.scenes, a.models, nb_dir=a.notebooks, build=a.build, only=a.only,
                            cell_timeout_s=a.cell_timeout, dry_run=a.dry_run)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
