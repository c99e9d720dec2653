"""The notebooks are the source: each is a chapter of the paper with one parameters cell, no committed outputs,
short cells, and no algorithm of its own."""
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MAX_LINES = 25


def test_every_numbered_notebook_is_found():
    assert [p.name[:2] for p in NOTEBOOKS] == ["00", "01", "02", "03", "04", "05", "06", "07", "08", "09"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_shape(path):
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and tagged[0]["cell_type"] == "code", "exactly one code cell tagged 'parameters'"
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# "), \
        "the first cell is a markdown title saying what the notebook shows"
    intro = "".join(cells[0]["source"])
    assert any(w in intro for w in ("section", "eq.", "Algorithm", "Table", "Fig.")), \
        "the introduction names the paper's section or equations it reproduces"
    code = [c for c in cells if c["cell_type"] == "code"]
    for c in code:
        assert not c.get("outputs") and c.get("execution_count") is None, "outputs must not be committed"
        n = len("".join(c["source"]).splitlines())
        assert n <= MAX_LINES, f"a cell of {n} lines (max {MAX_LINES}): move the logic into hudlib"
    for i, c in enumerate(cells[1:], 1):  # every step after the parameters is introduced by a markdown line
        if c["cell_type"] == "code" and c is not tagged[0]:
            assert cells[i - 1]["cell_type"] == "markdown", f"cell {i} has no markdown line before it"
    lines = [ln.lstrip() for c in code for ln in "".join(c["source"]).splitlines()]
    assert not any(ln.startswith(("def ", "class ")) for ln in lines), "notebooks hold no algorithm of their own"


@pytest.mark.slow
def test_run_all_opens_on_the_shipped_quick_weights(tmp_path, monkeypatch):
    """A reader's "Run All" of the training chapter, with nothing injected but an empty runs folder: the quick
    profile, every trained generator from its shipped checkpoint (each run marked SHIPPED, its training record the
    shipped one), nothing trained."""
    import papermill as pm

    from hudlib import checkpoints, models

    monkeypatch.delenv("HUD_NOTEBOOK_PROFILE", raising=False)
    monkeypatch.delenv("HUD_RETRAIN", raising=False)
    runs = tmp_path / "runs"
    nb = next(p for p in NOTEBOOKS if p.name.startswith("03"))
    pm.execute_notebook(str(nb), str(tmp_path / "out.ipynb"), parameters={"runs": str(runs)}, progress_bar=False,
                        cwd=str(nb.parent.parent), kernel_name="python3")
    dirs = sorted(runs.glob("IndianPines/*/*-*"))
    assert {d.parent.name for d in dirs} == {m for m in models.names() if not models.is_control(m)}
    for d in dirs:
        assert d.name.startswith("quick-") and (d / checkpoints.SHIPPED).is_file(), d
        shipped = checkpoints.checkpoints_dir() / d.relative_to(runs)
        assert (d / "train_info.json").read_text() == (shipped / "train_info.json").read_text()
