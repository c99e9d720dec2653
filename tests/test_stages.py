"""The main job is a graph of named stages (hudlib.stages), the notebooks their views: every numbered notebook is a
stage's, the order follows each stage's ``after``, ``--only`` takes stage names, what a stage trains comes from the
stage, and a new stage is one registration."""
import io
from pathlib import Path

import nbformat
import pytest

from hudlib import runner, stages
from hudlib.errors import DataError

ROOT = Path(__file__).resolve().parents[1]


def test_every_notebook_is_a_stages_view_and_the_order_respects_after():
    views = {s.notebook for s in stages.STAGES.values() if s.notebook}
    assert views == {p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    order = [s.name for s, _ in stages.select(ROOT / "notebooks")]
    assert order[0] == "data" and order[-1] == "verify"
    for i, name in enumerate(order):
        assert all(order.index(a) < i for a in stages.STAGES[name].after), name
    assert [s.name for s, _ in stages.select(ROOT / "notebooks", only=["tables", "05"])] == ["figures", "tables"]
    with pytest.raises(DataError, match="follows unregistered stages"):
        stages.register_stage(stages.Stage(name="late", description="x", after=("nowhere",)))


def test_a_new_stage_is_one_registration(tmp_path):
    """A stage registered here (its view a notebook in the folder, its trainings HUD's) is planned with its
    trainings, ordered after what it follows although registered last, and run by the runner."""
    from hudlib.config import make_config

    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell("scenes = []\nprofile = 'smoke'")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell("print('report of', scenes, profile)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (tmp_path / "nb").mkdir()
    nbformat.write(nb, tmp_path / "nb" / "50_report.ipynb")
    nbformat.write(nb, tmp_path / "nb" / "06_tables.ipynb")  # a stand-in view of the tables stage
    stages.register_stage(stages.Stage(
        name="report", notebook="50_report.ipynb", after=("tables",), description="a report",
        trainings=lambda scene, models, profile: [("HUD", "generator", make_config(scene, "HUD", profile))]))
    try:
        order = [s.name for s, _ in stages.select(tmp_path / "nb")]
        assert set(order) == {"tables", "report", "verify"} and order.index("tables") < order.index("report")
        plan = runner.make_plan("smoke", ["IndianPines"], ["HUD"], stages.select(tmp_path / "nb", only=["report"]),
                                runs=tmp_path / "runs")
        assert [r["model"] for r in plan["rows"]] == ["HUD"] and plan["stages"] == ["report"]
        summary = runner.run_notebooks("smoke", scenes=["IndianPines"], models=["MeanSpectrum"], nb_dir=tmp_path / "nb",
                                       build=tmp_path / "build", only=["report"], term=io.StringIO(),
                                       verify_mode="off")
        assert summary["ok"] and [r["stage"] for r in summary["steps"]] == ["report"]
        out = nbformat.read(summary["steps"][0]["output"], as_version=4)
        assert "report of ['IndianPines'] smoke" in out.cells[-1].outputs[0]["text"]
    finally:
        stages.unregister_stage("report")
    assert "report" not in stages.stage_names()
