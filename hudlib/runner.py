"""The main job behind ``./run_all.sh``: the stages of :mod:`hudlib.stages` in their order, each through its
notebook, run headless by papermill.

A per-scene stage (data, vca, uae, train, sample) runs its notebook once per scene into
``build/notebooks/<scene>/``; the others once with the list of scenes and models; ``verify`` is done by the runner
after the stages it follows. What each stage trains or reuses comes from the stage (its ``trainings``); a numbered
notebook that no stage claims runs as a stage of its own. Every notebook's stdout/stderr goes to ``build/logs/``.
Success is recorded per notebook in ``build/run_summary.json``; the summary with wall times is printed; the exit
status is non-zero on any failure, and the failure names the notebook and the cell.

It never hangs and it talks:

- before starting it prints its plan (scenes, generators, what is trained / cached, an estimated time from the
  measured step times in ``hudlib/timings.json``); ``--dry-run`` stops there;
- notebooks draw static figures (``$HUD_STATIC``, :func:`hudlib.widgets.is_interactive`), and one that declares an
  ``interactive`` parameter gets ``interactive=False`` (static figures instead of live
  ipywidgets, which can hang nbclient: jupyter/nbclient#312), and the kernel's ``tqdm.auto`` is the text bar;
- every cell runs under the profile's ``cell_timeout_s``; a dead kernel, and a kernel that went idle without
  replying for ``idle_grace_s``, fail the run naming notebook and cell;
- while a notebook runs, one live line shows notebook, cell and the tqdm bar (step, loss, time left) mirrored from
  the notebook's output (rewritten in place on a terminal; a plain line every few seconds otherwise).

Trained weights come from the repository: every run whose config hash has a shipped checkpoint (``checkpoints/``,
:mod:`hudlib.checkpoints`) is copied into ``runs/`` instead of being trained, so a fresh clone samples, evaluates and
regenerates every figure and table; ``--retrain [MODEL ...]`` ignores the shipped weights and trains from scratch
(resuming an interrupted training), and the ablation's extra trainings run only with ``--ablation`` or
``--retrain``. After the run, ``results/verify_<profile>.md`` compares the committed results with this run's
(:mod:`hudlib.verify`). Ctrl-C stops the run within seconds: the kernel is interrupted (then killed), the summary names
the notebook and cell, and the exit status is 130.

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

from . import checkpoints, paths, stages, verify
from .runstore import RETRAIN_ENV
from .widgets import STATIC_ENV
from . import models as registry
from .config import PROFILES
from .profiles import get_profile
from .data import SCENES, USER_SCENES_ENV, register_user_scene, scene_available, user_scenes
from .errors import DataError
from .evaluate import result_status
from .utils import atomic_write_text

__all__ = ["run_notebooks", "available_scenes", "make_plan", "format_plan", "parse_tqdm", "main"]

ENGINE = "hud-watched"
# The stages a user's cube runs (./run_all.sh --scene PATH): its data, unmixing, generators, samples, figures and
# tables; the ablation, the scene studies and the downstream benchmark are the paper scene's.
USER_STAGES = ("data", "vca", "uae", "train", "sample", "figures", "tables")
INTERRUPTED = 130  # exit status after Ctrl-C (128 + SIGINT), as a shell reports it
KILL_GRACE_S = 5.0  # after Ctrl-C, seconds the kernel gets to stop the cell before it is killed

# Run in every kernel the runner starts, before any cell: tqdm.auto would pick the ipywidgets bar inside a kernel
# (its updates travel as comm messages that never reach the log); the text bar writes to stderr, which papermill
# forwards to the log and to the live line.
KERNEL_EXEC_LINES = ["import tqdm.auto, tqdm.std; tqdm.auto.tqdm, tqdm.auto.trange = tqdm.std.tqdm, tqdm.std.trange"]


def available_scenes(names=None, root=None) -> tuple[list[str], dict[str, str]]:
    """``(present, {missing: download command})`` among ``names`` (default: every registered scene); an unknown
    name is an error, not a skip."""
    present, missing = [], {}
    named = user_scenes()
    for n in names or list(SCENES):
        if n in named:  # a user's cube named for this run (register_user_scene): its files were checked then
            present.append(n)
            continue
        why = scene_available(n, root)
        if why is None:
            present.append(n)
        else:
            missing[n] = why
    return present, missing


def _steps(selected: list, build: Path, present: list[str], models: list[str], profile: str,
           train_extra: bool = False, recompute: bool = False, results: str = "results",
           fig_dir: str = "figures") -> list[tuple]:
    """``[(stage, notebook, executed notebook path, parameters)]`` of the selected stages that have a view, in run
    order (parameters before filtering: a notebook gets those its parameters cell declares)."""
    steps = []
    for stage, nb in selected:
        if nb is None:
            continue
        if stage.per_scene:
            for s in present:
                steps.append((stage, nb, build / "notebooks" / s / nb.name,
                              dict(scene=s, profile=profile, models=models, interactive=False)))
        else:
            steps.append((stage, nb, build / "notebooks" / nb.name,
                          dict(scenes=present, models=models, profile=profile, fig_dir=fig_dir, results=results,
                               interactive=False, train_extra=train_extra, recompute=recompute)))
    return steps


# ---------------------------------------------------------------------------------------------------------- plan
def timings(profile: str) -> dict:
    """The measured seconds of ``profile`` behind the plan's estimate (``hudlib/timings.json``)."""
    from importlib import resources

    return json.loads(resources.files("hudlib").joinpath("timings.json").read_text())[profile]


def run_configs(scene: str, model_names: list[str], profile: str, selected) -> list[tuple[str, str, object]]:
    """``[(label, kind, config)]`` of every training the ``selected`` stages (``[(stage, notebook)]``) need on
    ``scene``, each config once (:attr:`hudlib.stages.Stage.trainings`)."""
    out, seen = [], set()
    for stage, _ in selected:
        for label, kind, cfg in stage.configs(scene, model_names, profile):
            key = (cfg.model, cfg.training_hash())
            if key not in seen:
                seen.add(key)
                out.append((label, kind, cfg))
    return out


def _training_status(cfg, kind: str, runs, retrain: set[str], train_extra: bool) -> tuple[str, int]:
    """(what the run will do about this config's weights, training iterations it costs)."""
    if registry.is_control(cfg.model):
        return "control: no training", 0
    run = registry.run_dir_for(cfg, runs)
    steps = sum(registry.get(cfg.model).training_iterations(cfg).values())
    finished = (run / "DONE").is_file()
    shipped_copy = (run / checkpoints.SHIPPED).is_file()
    if finished and not shipped_copy:
        return f"trained here ({run.name})", 0
    if kind == "ablation" and not train_extra and not (finished or checkpoints.shipped_run(cfg)):
        return "not trained (--ablation trains it)", 0
    if cfg.model in retrain:
        if kind == "ablation" and not train_extra:
            return "not trained (--ablation trains it)", 0
        resumed = ", resumed" if (run / "checkpoint.pt").is_file() and not shipped_copy else ""
        return f"to train ({steps} steps{resumed})", steps
    if finished or checkpoints.shipped_run(cfg) is not None:
        return f"shipped checkpoint ({run.name})", 0
    return f"to train ({steps} steps)", steps


def make_plan(profile: str, scenes: list[str], models: list[str], selected: list, skipped=None,
              runs=None, results="results", retrain=(), train_extra: bool = False) -> dict:
    """What a run will do: per (scene, training) whether shipped weights are used, the run trains, or it is
    trained already, whether each generator's result is to be evaluated, and the time estimate. ``retrain``: the
    generators whose shipped weights are ignored; ``selected``: ``[(stage, notebook)]`` of :func:`hudlib.stages.select`.
    Nothing is changed on disk.

    ``runs`` / ``results`` resolve as the notebooks resolve them (:mod:`hudlib.paths`).
    """
    runs, results = paths.runs_dir(runs), paths.results_dir(results)
    evals = any(stage.evaluates for stage, _ in selected)
    retrain = set(retrain)
    r = timings(profile)
    rows, train_steps, n_eval, train_s = [], 0, 0, 0.0
    for s in scenes:
        for label, kind, cfg in run_configs(s, models, profile, selected):
            status, steps = _training_status(cfg, kind, runs, retrain, train_extra)
            per = r["step_s"].get(cfg.model)
            train_steps += steps
            train_s = None if train_s is None or (steps and per is None) else train_s + steps * (per or 0.0)
            cached = None
            if kind == "generator" and evals:
                tag = label.partition(" [")[2][:-1]
                ov = registry.get(cfg.model).variants.get(tag) if tag else None
                st = result_status(s, cfg.model, profile, runs=runs, results=results, overrides=ov, tag=tag)
                cached = bool(st["evaluated"] and not steps)
                n_eval += 0 if cached else 1
            rows.append({"scene": s, "model": label, "kind": kind, "control": registry.is_control(cfg.model),
                         "training": status, "train_steps": steps, "cached": cached})
        if any(stage.trainings for stage, _ in selected):
            for label, why in stages.unsupported_generators(s, models, profile).items():
                rows.append({"scene": s, "model": label, "kind": "unsupported", "control": False,
                             "training": f"left out: {why}", "train_steps": 0, "cached": None})
    n_runs = sum(len(scenes) if stage.per_scene else 1 for stage, nb in selected if nb is not None)
    parts = {"evaluation": (n_eval, r["eval_s"]), "notebooks": (n_runs, r["notebook_s"])}
    est = {"training": train_s,
           **{k: None if (n and per is None) else n * (per or 0) for k, (n, per) in parts.items()}}
    return {"profile": profile, "scenes": scenes, "skipped": dict(skipped or {}), "models": models,
            "stages": [stage.name for stage, _ in selected],
            "notebooks": [nb.name for _, nb in selected if nb is not None], "notebook_runs": n_runs, "rows": rows,
            "runs": str(runs), "results": str(results), "train_steps": train_steps, "to_evaluate": n_eval,
            "estimate_s": est, "evaluates": evals, "retrain": sorted(retrain), "train_extra": train_extra}


def _fmt_s(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600} h {s % 3600 // 60:02d} min" if s >= 3600 else f"{s // 60} min {s % 60:02d} s"


def format_plan(plan: dict) -> str:
    """The plan as the terminal shows it."""
    lines = [f"== plan: profile {plan['profile']}, {len(plan['scenes'])} scene(s), {len(plan['models'])} "
             f"generator(s), {plan['notebook_runs']} notebook run(s) ==",
             f"scenes:     {', '.join(plan['scenes']) or '(none)'}"]
    lines += [f"skipped:    {name} (missing: {why})" for name, why in plan["skipped"].items()]
    lines += [f"generators: {', '.join(plan['models'])}", f"stages:     {', '.join(plan['stages']) or '(none)'}",
              f"notebooks:  {', '.join(plan['notebooks']) or '(none)'}",
              f"runs:       {plan['runs']}", f"results:    {plan['results']}"]
    if plan["retrain"]:
        lines.append(f"retrain:    {', '.join(plan['retrain'])} (shipped checkpoints ignored: trained from scratch)")
    w = max([len("generator")] + [len(r["model"]) for r in plan["rows"]]) + 2
    lines += ["", f"{'scene':14}{'generator':{w}}{'training':48}result"]
    for r in plan["rows"]:
        result = "" if r["cached"] is None else ("cached" if r["cached"] else "to evaluate")
        lines.append(f"{r['scene']:14}{r['model']:{w}}{r['training']:48}{result}".rstrip())
    est = plan["estimate_s"]
    if any(v is None for v in est.values()):
        unknown = ", ".join(k for k, v in est.items() if v is None)
        lines.append(f"\nestimate: unknown ({unknown} not measured for profile {plan['profile']}; see "
                     f"hudlib/timings.json)")
    else:
        lines.append(f"\nestimate: ~{_fmt_s(sum(est.values()))} on a 2-core CPU like the reference machine "
                     f"(training {_fmt_s(est['training'])} for {plan['train_steps']} steps, evaluation "
                     f"{_fmt_s(est['evaluation'])} for {plan['to_evaluate']} generator(s), notebooks "
                     f"{_fmt_s(est['notebooks'])}); a GPU is faster")
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
    """papermill's client, telling a :class:`_Watch` when the kernel reports idle (nbclient has no hook for iopub
    status messages; the cell hooks are nbclient's own, set by :class:`_WatchedEngine`)."""

    watch = AnyTrait(None)

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
        if watch is not None:  # nbclient's cell hooks
            client.on_cell_start = lambda cell, cell_index: cell.cell_type == "code" and watch.cell_started(
                client, cell, cell_index)
            client.on_cell_complete = lambda cell, cell_index: watch.cell_finished()
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


class _Interrupt:
    """Ctrl-C while the runner runs: the first SIGINT interrupts the running kernel (its cell raises
    KeyboardInterrupt, the notebook fails, the kernel is shut down) and, if the notebook has not ended after
    :data:`KILL_GRACE_S`, kills the kernel; a second SIGINT kills it at once. The runner then stops, writes its
    summary naming the notebook and cell, and exits with :data:`INTERRUPTED`."""

    def __init__(self, live: _Live):
        self.live, self.flag, self.watch, self.timer, self.old = live, False, None, None, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.timer is not None:
            self.timer.cancel()
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)

    def _kernel(self):
        w = self.watch
        return None if w is None or w.proc is None or w.proc.poll() is not None else w.proc

    def _handler(self, signum, frame):
        # The handler runs in the main thread between two bytecodes, possibly while that thread holds the live
        # line's lock: it only records the signal and hands the work to a thread (no I/O or lock here).
        first, self.flag = not self.flag, True
        threading.Thread(target=self._act, args=(first,), daemon=True).start()

    def _act(self, first: bool):
        if not first:
            self._kill()
            return
        proc = self._kernel()
        if proc is not None and os.getpgid(proc.pid) != os.getpgrp():
            os.kill(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reached our process group, not the kernel's
        self.timer = threading.Timer(KILL_GRACE_S, self._kill)
        self.timer.daemon = True
        self.timer.start()
        self.live.print("\n[stop] Ctrl-C: interrupting the running cell (a second Ctrl-C kills the kernel)")

    def _kill(self):
        proc = self._kernel()
        if proc is not None:
            proc.kill()


def _run_one(nb: Path, out: Path, params: dict, log: Path, tag: str, live: _Live, timeout: float,
             idle_grace_s: float, interrupt: _Interrupt | None = None) -> dict:
    """Execute one notebook under the watch; the record for the summary (``ok``, ``error``, ``wall_s``,
    ``interrupted``)."""
    name = nb.name + (f" [{params['scene']}]" if "scene" in params else "")
    rec = {"notebook": str(nb), "output": str(out), "params": params, "log": str(log)}
    watch = _Watch(tag, live, idle_grace_s)
    if interrupt is not None:
        interrupt.watch = watch
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
    if interrupt is not None and interrupt.flag:
        where = watch.where() if watch.cell_no else "before its first cell"
        rec.update(ok=False, interrupted=True, timeout=False, error=f"{name} interrupted (Ctrl-C) in {where}")
    rec["wall_s"] = round(time.perf_counter() - t0, 1)
    return rec


def _prepare_runs(plan: dict, profile: str, models: list[str], selected: list, retrain: set[str],
                  live: _Live) -> None:
    """Before the notebooks: remove the shipped copies of the generators to retrain, install the shipped
    checkpoints of every other training the notebooks use (and the evaluation's classifiers)."""
    keep, drop = [], []
    for s in plan["scenes"]:
        for _, _, cfg in run_configs(s, models, profile, selected):
            (drop if cfg.model in retrain else keep).append(cfg)
    removed = checkpoints.remove_shipped(drop)
    installed = checkpoints.install(keep)
    if removed or installed:
        live.print(f"[runs] {len(installed)} shipped checkpoint(s) copied into {paths.runs_dir()}"
                   + (f"; {len(removed)} shipped copy(ies) removed for --retrain" if removed else ""))


def _verify(profile: str, build: Path, live: _Live) -> tuple[Path | None, int]:
    """Write ``results/verify_<profile>.md`` (committed results against this run's); ``(path, disagreements)``."""
    committed = verify.committed_records(profile)
    source = "git HEAD"
    if committed is None:
        snap = build / "verify" / f"before_{profile}.json"
        committed, source = (json.loads(snap.read_text()), "the results before this run") if snap.is_file() else \
            ({}, "none")
    if not committed:
        live.print(f"[verify] no committed results of profile {profile}: nothing to compare")
        return None, 0
    rows = verify.compare(committed, verify.collect(profile))
    out = verify.write_report(profile, rows, source)
    bad = [r for r in rows if r["agree"] in ("no", "missing")]
    n_exact = sum(r["agree"] == "exact" for r in rows)
    live.print(f"[verify] {len(rows)} values of {len({r['record'] for r in rows})} records: {n_exact} exactly equal, "
               f"{len(rows) - n_exact - len(bad)} within tolerance, {len(bad)} disagreeing or missing -> {out}")
    for r in bad[:10]:
        live.print(f"[verify]   {r['record']} {r['value']}: committed {r['committed']}, now {r['now']}"
                   + (f" ({r['why']})" if r.get("why") else ""))
    return out, len(bad)


def run_notebooks(profile: str = "quick", scenes=None, models=None, nb_dir="notebooks", build="build",
                  only=None, progress: bool = True, extra_params: dict | None = None,
                  cell_timeout_s: float | None = None, idle_grace_s: float | None = None, dry_run: bool = False,
                  term=None, live_interval_s: float = 10.0, retrain=None, ablation: bool = False,
                  downstream: bool = False, verify_mode: str = "report", user_scene: dict | None = None) -> dict:
    """Print the plan, then run every numbered notebook; returns the summary dict (also written to
    ``build/run_summary.json``).

    Args:
        profile: smoke | quick | paper.
        scenes: scene names (default: all found locally).
        models: generator names (default: all registered); every notebook gets them.
        only: optional list of stage names or notebook number prefixes (``["data", "05"]``) to run.
        progress: show the live line.
        cell_timeout_s / idle_grace_s: override the profile's (:class:`hudlib.profiles.Profile`).
        dry_run: print the plan and return without running or changing anything.
        term: where the plan, the live line and the summary go (default sys.stdout).
        live_interval_s: least seconds between two plain live lines when ``term`` is not a terminal.
        retrain: None (use the shipped checkpoints), True (train every generator from scratch) or generator names.
        ablation: train the ablation's extra runs (implied by ``retrain=True``).
        downstream: recompute the stored studies of the per-fold HUD-cond — the downstream benchmark (09) and the
            labelled-scene study (08) — instead of reusing those of the same weights (implied by ``retrain``).
        verify_mode: ``"report"`` (write results/verify_<profile>.md), ``"strict"`` (and fail on a disagreement)
            or ``"off"``.
        user_scene: a user's cube instead of registered scenes: ``{"path", "classes", "gt", "key", "gt_key"}``
            (:func:`hudlib.data.register_user_scene`). It runs the stages of :data:`USER_STAGES` (unless ``only``
            names others) and writes its tables and figures under ``results/user/<name>/`` and
            ``figures/user/<name>/``; there is nothing committed to verify it against.
    """
    if profile not in PROFILES:
        raise ValueError(f"--profile: unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    if verify_mode not in ("report", "strict", "off"):
        raise ValueError(f"--verify: expected report, strict or off, got {verify_mode!r}")
    term = term or sys.stdout
    live = _Live(term, progress, live_interval_s)
    nb_dir, build = Path(nb_dir), Path(build)
    saved_user = os.environ.get(USER_SCENES_ENV)
    results_root, fig_root = "results", "figures"
    if user_scene is not None:
        if scenes:
            raise ValueError("--scene: a user's cube runs alone; leave out --scenes")
        name = register_user_scene(**user_scene)  # every check of the files, one line each; sets $HUD_USER_SCENES
        scenes = [name]
        results_root, fig_root = f"results/user/{name}", f"figures/user/{name}"
        only = list(only or USER_STAGES)
        if verify_mode != "off":
            live.print(f"[verify] {name} is a user's cube: no committed results to verify against")
            verify_mode = "off"
    try:
        return _run_notebooks(profile, scenes, models, nb_dir, build, only, extra_params, cell_timeout_s,
                              idle_grace_s, dry_run, live, retrain, ablation, downstream, verify_mode, results_root,
                              fig_root)
    finally:
        if saved_user is None:
            os.environ.pop(USER_SCENES_ENV, None)
        else:
            os.environ[USER_SCENES_ENV] = saved_user


def _run_notebooks(profile, scenes, models, nb_dir, build, only, extra_params, cell_timeout_s, idle_grace_s,
                   dry_run, live, retrain, ablation, downstream, verify_mode, results_root, fig_root) -> dict:
    present, missing = available_scenes(scenes)
    models = list(models or registry.names())
    for m in models:
        registry.get(m)  # fail fast on an unknown name
    retrain_set = set(models if retrain is True else retrain or ())
    for m in retrain_set:
        registry.get(m)
    train_extra = bool(ablation or retrain is True)
    selected = stages.select(nb_dir, only)
    plan = make_plan(profile, present, models, selected, missing, results=results_root, retrain=retrain_set,
                     train_extra=train_extra)
    live.print(format_plan(plan))
    if dry_run:
        return {"profile": profile, "scenes": present, "models": models, "plan": plan, "steps": [], "ok": True,
                "dry_run": True}
    timeout = cell_timeout_s if cell_timeout_s is not None else get_profile(profile).cell_timeout_s
    grace = idle_grace_s if idle_grace_s is not None else get_profile(profile).idle_grace_s
    (build / "logs").mkdir(parents=True, exist_ok=True)
    summary = {"profile": profile, "scenes": present, "skipped": missing, "models": models, "plan": plan,
               "cell_timeout_s": timeout, "steps": [], "interrupted": False}
    failed = None
    t_all = time.perf_counter()
    # the notebooks' kernels inherit these: fit() trains the generators to retrain rather than install shipped
    # weights, and widgets are drawn static
    saved_env = {k: os.environ.get(k) for k in (RETRAIN_ENV, STATIC_ENV)}
    os.environ[RETRAIN_ENV] = ",".join(sorted(retrain_set))
    os.environ[STATIC_ENV] = "1"  # static figures, quiet bars (hudlib.widgets.is_interactive)
    try:
        with _Interrupt(live) as interrupt:
            _prepare_runs(plan, profile, models, selected, retrain_set, live)
            verify.snapshot(profile, build=build)
            for stage, nb, out, params in _steps(selected, build, present, models, profile, train_extra,
                                                 bool(downstream or retrain), results_root, fig_root):
                if interrupt.flag:
                    break
                params = {**params, **(extra_params or {})}
                declared = pm.inspect_notebook(str(nb))  # pass only what the parameters cell declares
                params = {k: v for k, v in params.items() if k in declared}
                out.parent.mkdir(parents=True, exist_ok=True)
                tag = nb.stem + (f"[{params['scene']}]" if "scene" in params else "")
                log = build / "logs" / (tag.replace("[", "_").replace("]", "") + ".log")
                live.print(f"[run ] {tag} -> {out}")
                rec = _run_one(nb, out, params, log, tag, live, timeout, grace, interrupt)
                rec["stage"] = stage.name
                summary["steps"].append(rec)
                live.print(f"[{'ok' if rec['ok'] else 'STOP' if rec.get('interrupted') else 'FAIL'}  ] {tag} "
                           f"{rec['wall_s']:.1f} s")
                if not rec["ok"]:
                    failed = rec
                    break
            summary["interrupted"] = interrupt.flag
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    summary["total_wall_s"] = round(time.perf_counter() - t_all, 1)
    summary["ok"] = failed is None and not summary["interrupted"]
    ran = {r["stage"] for r in summary["steps"]}
    verify_stage = next((s for s, _ in selected if s.name == "verify"), None)
    if summary["ok"] and verify_mode != "off" and verify_stage and ran & set(verify_stage.after):
        path, n_bad = _verify(profile, build, live)
        summary["verify"] = {"report": str(path) if path else None, "disagreements": n_bad}
        if verify_mode == "strict" and n_bad:
            summary["ok"] = False
            failed = {"error": f"{n_bad} value(s) disagree with the committed results beyond tolerance (see "
                               f"{path})", "output": str(path), "log": str(path)}
    atomic_write_text(build / "run_summary.json", json.dumps(summary, indent=2))
    _print_summary(live, summary, failed)
    return summary


def _print_summary(live: _Live, summary: dict, failed: dict | None) -> None:
    live.print("\n== summary ==")
    for r in summary["steps"]:
        state = "ok  " if r["ok"] else ("STOP" if r.get("interrupted") else "FAIL")
        live.print(f"{state} {r['wall_s']:8.1f} s  {r['output']}")
    live.print(f"total {summary['total_wall_s']:.1f} s, profile {summary['profile']}, "
               f"scenes {', '.join(summary['scenes'])}")
    if summary.get("interrupted"):
        where = failed["error"] if failed else "between notebooks"
        print(f"\nINTERRUPTED: {where}\n  re-run to continue: finished trainings, samples and results are kept, "
              f"an interrupted training resumes from its last checkpoint", file=sys.stderr, flush=True)
    elif failed:
        print(f"\nFAILED: {failed['error']}\n  executed notebook: {failed['output']}\n  log: {failed['log']}",
              file=sys.stderr, flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="run_all.sh", description="Regenerate every figure and table of the paper.")
    p.add_argument("--profile", default=os.environ.get("HUD_PROFILE", "quick"))
    p.add_argument("--scenes", nargs="*", default=None)
    g = p.add_argument_group("your own cube (instead of --scenes)")
    g.add_argument("--scene", default=None, metavar="PATH",
                   help="an ENVI cube.hdr or cube.mat[:KEY]: train what it needs, write its tables and figures under "
                        "results/user/<name>/ and figures/user/<name>/")
    g.add_argument("--classes", type=int, default=None, help="number of classes = endmembers d (default: the "
                                                             "class map's largest label)")
    g.add_argument("--gt", default=None, help="class map: ENVI .hdr, .mat[:KEY] or .npy (0 = unlabelled)")
    g.add_argument("--key", default=None, help="variable of a .mat cube")
    g.add_argument("--gt-key", dest="gt_key", default=None, help="variable of a .mat class map")
    p.add_argument("--models", nargs="*", default=None, help="generators to run (default: every registered one)")
    p.add_argument("--retrain", nargs="*", default=None, metavar="MODEL",
                   help="ignore the shipped checkpoints and train from scratch: every generator (no names) or the "
                        "named ones; an interrupted training resumes")
    p.add_argument("--ablation", action="store_true", help="also train the ablation's extra runs (07)")
    p.add_argument("--downstream", action="store_true",
                   help="recompute the downstream benchmark (09) and the labelled-scene study (08) instead of reusing "
                        "the stored ones of the same weights")
    p.add_argument("--verify", choices=("report", "strict", "off"), default="report",
                   help="compare with the committed results: write results/verify_<profile>.md (report), also "
                        "fail on a disagreement (strict), or not at all")
    p.add_argument("--only", nargs="*", default=None,
                   help="stages (" + ", ".join(stages.stage_names()) + ") or notebook number prefixes to run, "
                        "e.g. tables 05")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument("--cell-timeout", type=float, default=None,
                   help="seconds one cell may run (default: the profile's, hudlib.profiles)")
    p.add_argument("--notebooks", default="notebooks", help="folder of the numbered notebooks")
    p.add_argument("--build", default="build", help="folder for executed notebooks, logs and run_summary.json")
    a = p.parse_args(argv)
    retrain = None if a.retrain is None else (True if not a.retrain else a.retrain)
    user = None
    if a.scene is not None:
        user = dict(path=a.scene, classes=a.classes, gt=a.gt, key=a.key, gt_key=a.gt_key)
    elif any(v is not None for v in (a.classes, a.gt, a.key, a.gt_key)):
        p.error("--classes/--gt/--key/--gt-key: only with --scene PATH")
    try:
        summary = run_notebooks(a.profile, a.scenes, a.models, nb_dir=a.notebooks, build=a.build, only=a.only,
                                cell_timeout_s=a.cell_timeout, dry_run=a.dry_run, retrain=retrain,
                                ablation=a.ablation, downstream=a.downstream, verify_mode=a.verify, user_scene=user)
    except DataError as e:
        print(f"run_all.sh: error: {e}", file=sys.stderr)
        return 2
    if summary.get("interrupted"):
        return INTERRUPTED
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
