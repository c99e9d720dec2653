"""The main job: ./run_all.sh's runner end to end at the smoke profile, and its failure reporting."""
import io
import json
import os
import re
import shutil
import time
from pathlib import Path

import nbformat
import pytest
from tqdm.std import tqdm

from hudlib import evaluate, runner
from hudlib.config import make_config
from hudlib.metrics import registry
from hudlib.models import get, run_dir_for

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ["fig3_pseudocolour", "fig3_controls", "fig4_spectral_density", "fig4_controls", "training_losses"]


SMOKE_MODELS = ["HUD", "RealCopy", "MeanSpectrum"]  # the reference, a copy control, a trivial control


@pytest.mark.slow
def test_smoke_run_with_models_produces_every_figure_and_table_and_nothing_else(tmp_path, monkeypatch):
    """The runner over a copy of the notebooks in a temporary project (its own runs/ and results/), with
    --models: every figure and table is written from those generators, and nothing else is trained or evaluated
    (the ablation's extra rows are not trained without --ablation)."""
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    monkeypatch.setenv("HUD_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert runner.main(["--profile", "smoke", "--scenes", "IndianPines", "--models", *SMOKE_MODELS,
                        "--notebooks", str(tmp_path / "notebooks"), "--build", str(tmp_path / "build")]) == 0
    summary = json.loads((tmp_path / "build" / "run_summary.json").read_text())
    assert summary["ok"], [s.get("error") for s in summary["steps"]]
    assert [Path(s["notebook"]).name[:2] for s in summary["steps"]] == ["00", "01", "02", "03", "04", "05", "06",
                                                                         "07", "08", "09"]
    for stem in FIGURES:
        for ext in ("png", "pdf"):
            assert (tmp_path / "figures" / f"{stem}.{ext}").stat().st_size > 1000
    tables = (tmp_path / "results" / "tables_smoke.md").read_text()
    assert "## IndianPines" in tables and "Table IV" in tables and "physical consistency" in tables
    assert "HUD as written" in (tmp_path / "results" / "ablation_smoke.md").read_text()
    trained = {p.name for p in (tmp_path / "runs" / "IndianPines").iterdir()}
    assert trained == set(SMOKE_MODELS), trained
    assert [p.name for p in (tmp_path / "runs" / "IndianPines" / "HUD").iterdir()] == [
        run_dir_for(make_config("IndianPines", "HUD", "smoke"), tmp_path / "runs").name]  # no ablation run
    evaluated = {p.name for p in (tmp_path / "results" / "IndianPines").iterdir()}
    assert evaluated == set(SMOKE_MODELS), evaluated
    for m in SMOKE_MODELS:
        rec = json.loads((tmp_path / "results" / "IndianPines" / m / "smoke.json").read_text())
        assert rec["profile"] == "smoke"
    assert all(s["wall_s"] >= 0 for s in summary["steps"])


class _Terminal(io.StringIO):
    """A captured terminal: the runner sees a TTY and rewrites its live line in place."""

    def isatty(self):
        return True


def _notebook(folder: Path, name: str, *cells: str, params: str = "scenes = []") -> Path:
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p] + [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder.mkdir(exist_ok=True)
    nbformat.write(nb, folder / f"{name}.ipynb")
    return folder / f"{name}.ipynb"


def test_failure_names_notebook_and_cell(tmp_path, capsys):
    _notebook(tmp_path / "nb", "99_broken", "x = 1", "raise RuntimeError('boom')")
    summary = runner.run_notebooks("smoke", scenes=["IndianPines"], nb_dir=tmp_path / "nb", build=tmp_path / "b")
    assert not summary["ok"]
    err = summary["steps"][-1]["error"]
    assert "99_broken.ipynb" in err and "RuntimeError" in err and "boom" in err and "cell 4/4" in err
    assert "raise RuntimeError('boom')" in err and not summary["steps"][-1]["timeout"]
    assert runner.main(["--profile", "smoke", "--only", "none"]) == 0  # nothing selected: nothing fails
    with pytest.raises(ValueError, match="--profile: unknown profile"):
        runner.run_notebooks("fast")


def test_committed_figures_match_committed_code():
    """figures/MANIFEST.json (written by 05_figures) must name the current config hashes of its profile and the
    sha256 of the committed files: changing a profile without regenerating the figures fails here."""
    import hashlib

    man = json.loads((ROOT / "figures" / "MANIFEST.json").read_text())
    assert man["profile"] in ("quick", "paper"), "committed figures come from a real run, not smoke"
    for key, h in man["training_hashes"].items():
        scene, model = key.split("/")
        assert make_config(scene, model, man["profile"]).training_hash() == h, f"{key}: figures are stale"
    for name, sha in man["files"].items():
        assert hashlib.sha256((ROOT / "figures" / name).read_bytes()).hexdigest() == sha, name


def test_hanging_cell_fails_within_its_timeout(tmp_path):
    """A cell that never returns fails after cell_timeout_s, naming notebook, cell number and its first line."""
    _notebook(tmp_path / "nb", "99_hang", "x = 1", "import time; time.sleep(10_000)  # hangs on purpose")
    t0 = time.perf_counter()
    summary = runner.run_notebooks("smoke", scenes=["IndianPines"], nb_dir=tmp_path / "nb", build=tmp_path / "b",
                                   cell_timeout_s=3, term=io.StringIO())
    wall = time.perf_counter() - t0
    rec = summary["steps"][-1]
    assert not summary["ok"] and rec["timeout"]
    assert re.search(r"99_hang\.ipynb failed in cell 4/4 \('import time; time\.sleep\(10_000\).*'\): timed out after "
                     r"3 s", rec["error"]), rec["error"]
    assert 3 <= rec["wall_s"] < 60 and wall < 90  # the timeout, a kernel start and a shutdown; not 10 000 s
    saved = json.loads((tmp_path / "b" / "run_summary.json").read_text())
    assert not saved["ok"] and saved["cell_timeout_s"] == 3


def test_dead_kernel_fails_clearly_and_exits_non_zero(tmp_path, capsys):
    _notebook(tmp_path / "nb", "98_dies", "import os\nos._exit(1)")
    rc = runner.main(["--profile", "smoke", "--scenes", "IndianPines", "--notebooks", str(tmp_path / "nb"),
                      "--build", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert rc == 1
    assert "98_dies.ipynb failed in cell 3/3 ('import os'): the kernel died (exit code 1)" in err, err


def test_kernel_idle_without_reply_is_detected(tmp_path):
    """The nbclient#312 symptom, planted: the kernel publishes 'idle' for the running cell and never replies."""
    _notebook(tmp_path / "nb", "97_silent",
              "k = get_ipython().kernel\n"
              "k.session.send(k.iopub_socket, 'status', {'execution_state': 'idle'}, parent=k.get_parent(),\n"
              "               ident=k._topic('status'))\n"
              "import time; time.sleep(10_000)")
    summary = runner.run_notebooks("smoke", scenes=["IndianPines"], nb_dir=tmp_path / "nb", build=tmp_path / "b",
                                   cell_timeout_s=300, idle_grace_s=2, term=io.StringIO())
    rec = summary["steps"][-1]
    assert not summary["ok"] and rec["timeout"] and rec["wall_s"] < 60
    assert "97_silent.ipynb failed in cell 3/3" in rec["error"]
    assert "reported idle but sent no reply for 2 s" in rec["error"], rec["error"]


def test_runner_renders_widgets_static(tmp_path):
    """A notebook declaring ``interactive`` gets False: figures, no ipywidgets, no widget state in the output."""
    _notebook(tmp_path / "nb", "96_widgets",
              "import numpy as np\nimport matplotlib.pyplot as plt  # pyplot's inline backend active, as in 00 and 04\n"
              "from hudlib.widgets import band_slider, patch_browser\n"
              "cube = np.random.default_rng(0).random((6, 10, 10)).astype(np.float32)",
              "band_slider(cube, 'toy', interactive=interactive)",
              "patch_browser(cube[None].repeat(2, 0), (0, 2, 4), interactive=interactive)",
              "from ipywidgets.widgets.widget import _instances\nassert not _instances, 'a widget was created'",
              params="scenes = []\ninteractive = True")
    summary = runner.run_notebooks("smoke", scenes=["IndianPines"], nb_dir=tmp_path / "nb", build=tmp_path / "b",
                                   term=io.StringIO())
    assert summary["ok"], summary["steps"][-1].get("error")
    assert summary["steps"][-1]["params"]["interactive"] is False
    out = nbformat.read(summary["steps"][-1]["output"], as_version=4)
    figs = [o for c in out.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(figs) == 2  # each widget cell shows its figure exactly once
    assert "widget-view" not in json.dumps(nbformat.writes(out)) and "widgets" not in out.metadata


def test_plan_and_dry_run_at_smoke(tmp_path, monkeypatch, capsys):
    """Planted state: HUD trained, RealCopy's result stored; the plan says so, and what is left to do."""
    monkeypatch.setenv("HUD_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    run = run_dir_for(make_config("IndianPines", "HUD", "smoke"), tmp_path / "runs")
    run.mkdir(parents=True)
    for f in ("uae.pt", "ema.pt", "DONE"):
        (run / f).write_text(f"planted {f}\n")
    ctrl = run_dir_for(make_config("IndianPines", "RealCopy", "smoke"), tmp_path / "runs")
    ctrl.mkdir(parents=True)
    for f in ("state.pt", "DONE"):
        (ctrl / f).write_text(f"planted {f}\n")
    cfg = make_config("IndianPines", "RealCopy", "smoke")
    key = evaluate.cache_key(get("RealCopy").weights_hash_at(ctrl), "direct", "c", cfg.eval.n_samples,
                             cfg.eval.seed)
    names = registry.metric_names()  # a record holds every registered metric at its registered version
    computed = {"metrics": dict.fromkeys(names, 0.0),
                "metric_versions": {n: registry.get_metric(n).version for n in names}}
    for m, k in (("RealCopy", key), ("Noise", {**key, "weights_hash": "0" * 16})):  # Noise: other weights
        (tmp_path / "results" / "IndianPines" / m).mkdir(parents=True)
        (tmp_path / "results" / "IndianPines" / m / "smoke.json").write_text(json.dumps({**k, **computed}))
    # RealCopy's result was computed here: the evaluation's marker is in its run directory
    mark = evaluate.evaluation_marker(ctrl, tmp_path / "results" / "IndianPines" / "RealCopy" / "smoke.json")
    mark.parent.mkdir()
    mark.write_text(json.dumps(key))
    term = io.StringIO()
    s = runner.run_notebooks("smoke", scenes=["IndianPines"], models=["HUD", "RealCopy", "Noise"],
                             nb_dir=ROOT / "notebooks", build=tmp_path / "build", dry_run=True, term=term)
    text = term.getvalue()
    assert s["ok"] and s["dry_run"] and not (tmp_path / "build").exists()
    assert "profile smoke" in text and "IndianPines" in text and "06_tables.ipynb" in text
    rows = {ln.split()[1]: ln for ln in text.splitlines() if ln.startswith("IndianPines ") and "(ablation " not in ln}
    assert f"trained here ({run.name})" in rows["HUD"] and rows["HUD"].rstrip().endswith("to evaluate")
    assert "control: no training" in rows["RealCopy"] and rows["RealCopy"].rstrip().endswith("cached")
    assert rows["Noise"].rstrip().endswith("to evaluate")
    assert re.search(r"estimate: ~\d+ min \d+ s", text)
    shutil.rmtree(tmp_path / "runs")
    assert runner.main(["--profile", "smoke", "--scenes", "IndianPines", "--models", "HUD", "--dry-run",
                        "--notebooks", str(ROOT / "notebooks")]) == 0
    text = capsys.readouterr().out
    steps = make_config("IndianPines", "HUD", "smoke").train.steps
    assert f"to train ({steps} steps)" in text and f"for {steps} steps" in text


def test_parse_tqdm_reads_real_bars_and_plain_lines_are_throttled():
    buf = io.StringIO()
    bar = tqdm(total=30, desc="train HUD/IndianPines/smoke", file=buf, mininterval=0)
    for i in range(20):
        bar.update(1)
        if i % 10 == 9:
            bar.set_postfix(loss=f"{0.5 / (i + 1):.4f}")
    got = runner.parse_tqdm(buf.getvalue())
    assert got["desc"] == "train HUD/IndianPines/smoke" and (got["n"], got["total"]) == ("20", "30")
    assert got["post"] == "loss=0.0250" and re.fullmatch(r"\d\d:\d\d|\?", got["left"])
    assert runner.parse_tqdm("run directory: runs/x\n") is None
    plain = io.StringIO()
    live = runner._Live(plain, interval_s=3600)
    for i in range(100):
        live.set(f"step {i}")
    assert plain.getvalue() == "step 0\n"  # not a terminal: at most one line per interval


@pytest.mark.slow
def test_live_line_mirrors_training_progress(tmp_path, monkeypatch):
    """A fresh smoke training of HUD in 03: the terminal's live line carries the tqdm bar's step and loss."""
    monkeypatch.setenv("HUD_ROOT", str(tmp_path))  # empty runs/: 03 must train
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    term = _Terminal()
    summary = runner.run_notebooks("smoke", scenes=["IndianPines"], nb_dir=tmp_path / "notebooks",
                                   build=tmp_path / "build", only=["03"], term=term)
    assert summary["ok"], summary["steps"][-1].get("error")
    out = term.getvalue()
    assert "to train (30 steps)" in out
    lines = re.findall(r"\r(\[03_train\[IndianPines\]\] cell \d+/\d+ [^\r\n]*)", out)
    bars = [ln for ln in lines if re.search(r"\| train HUD/IndianPines/smoke \d+/30 loss=\d+\.\d+ left ", ln)]
    assert bars, out[-3000:]
    assert any("30/30" in ln for ln in bars)
    log = (tmp_path / "build" / "logs" / "03_train_IndianPines.log").read_text()
    assert "30/30" in log and "loss=" in log  # the text bar also reaches the notebook's log


@pytest.mark.slow
def test_a_users_cube_goes_through_the_main_job(tmp_path, monkeypatch, capsys, envi_cube):
    """./run_all.sh --scene cube.hdr --classes d: the cube written here (no class map) is trained on, sampled,
    drawn and tabulated under its own name, in results/user/<name>/ and figures/user/<name>/; nothing is written
    under the registered scenes' folders; the notebooks' kernels load it by name; the variable naming it is gone
    afterwards; a bad cube gives one line."""
    from hudlib.data import USER_SCENES_ENV

    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    monkeypatch.setenv("HUD_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(USER_SCENES_ENV, raising=False)
    envi_cube(tmp_path / "my field.hdr", 70, 70, seed=3)
    assert runner.main(["--profile", "smoke", "--scene", str(tmp_path / "my field.hdr"), "--classes", "3",
                        "--models", "HUD", "--notebooks", str(tmp_path / "notebooks"),
                        "--build", str(tmp_path / "build")]) == 0
    summary = json.loads((tmp_path / "build" / "run_summary.json").read_text())
    assert summary["scenes"] == ["my_field"]
    assert [Path(s["notebook"]).name[:2] for s in summary["steps"]] == ["00", "01", "02", "03", "04", "05", "06"]
    tables = (tmp_path / "results" / "user" / "my_field" / "tables_smoke.md").read_text()
    assert "## my_field" in tables and "pseudo-classes" in tables and "Table IV" in tables
    assert (tmp_path / "results" / "user" / "my_field" / "my_field" / "HUD" / "smoke.json").is_file()
    assert (tmp_path / "figures" / "user" / "my_field" / "fig3_pseudocolour.png").stat().st_size > 1000
    assert not (tmp_path / "results" / "tables_smoke.md").exists()
    assert not (tmp_path / "figures" / "fig3_pseudocolour.png").exists()
    assert USER_SCENES_ENV not in os.environ
    (tmp_path / "bad.hdr").write_text("ENVI\nsamples = 3\n")
    assert runner.main(["--scene", str(tmp_path / "bad.hdr"), "--classes", "3", "--dry-run"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
