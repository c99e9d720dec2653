"""The main job: ./run_all.sh's runner end to end at the smoke profile, and its failure reporting."""
import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest

from hudlib import runner
from hudlib.config import make_config

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ["fig3_pseudocolour", "fig3_controls", "fig4_spectral_density", "fig4_controls"]


def test_smoke_run_produces_every_figure_and_table(tmp_path, monkeypatch):
    """Drives the runner over a copy of the notebooks; runs/ is shared with the repo so nbval's smoke runs are
    reused (same config hash ⇒ no retraining)."""
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    (ROOT / "runs").mkdir(exist_ok=True)
    os.symlink(ROOT / "runs", tmp_path / "runs")
    monkeypatch.setenv("HUD_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    summary = runner.run_notebooks("smoke", scenes=["IndianPines"], nb_dir=tmp_path / "notebooks",
                                   build=tmp_path / "build")
    assert summary["ok"], [s.get("error") for s in summary["steps"]]
    assert [Path(s["notebook"]).name[:2] for s in summary["steps"]] == ["00", "01", "02", "03", "04", "05", "06"]
    for stem in FIGURES:
        for ext in ("png", "pdf"):
            assert (tmp_path / "figures" / f"{stem}.{ext}").stat().st_size > 1000
    tables = (tmp_path / "results" / "tables_smoke.md").read_text()
    assert "## IndianPines" in tables and "Table IV" in tables
    for m in ("HUD", "RealCopy", "MeanSpectrum", "RandomMixture", "PixelShuffle", "Noise"):
        rec = json.loads((tmp_path / "results" / "IndianPines" / m / "smoke.json").read_text())
        assert rec["profile"] == "smoke"
    saved = json.loads((tmp_path / "build" / "run_summary.json").read_text())
    assert saved["ok"] and all(s["wall_s"] >= 0 for s in saved["steps"])


def test_failure_names_notebook_and_cell(tmp_path, capsys):
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell("scenes = []")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("raise RuntimeError('boom')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (tmp_path / "nb").mkdir()
    nbformat.write(nb, tmp_path / "nb" / "99_broken.ipynb")
    summary = runner.run_notebooks("smoke", scenes=["IndianPines"], nb_dir=tmp_path / "nb", build=tmp_path / "b")
    assert not summary["ok"]
    err = summary["steps"][-1]["error"]
    assert "99_broken.ipynb" in err and "RuntimeError" in err and "boom" in err and "cell" in err
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
