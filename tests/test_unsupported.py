"""A generator that cannot be trained on a scene (HUD-cond where a fold's training ground holds no 32 x 32 crop) is
left out of the main job with its reason — in the plan, the trainings, the tables — instead of failing the run."""
import dataclasses
import io

import numpy as np
import pytest
from scipy import ndimage as ndi

from hudlib import downstream, runner, stages, tables
from hudlib import models as registry
from hudlib.config import make_config
from hudlib.models.hud_cond import HUDCond, cond_fold

ROOT = __import__("pathlib").Path(__file__).parents[1]


def _has_crop(mask: np.ndarray, size: int) -> bool:
    """Brute force: some size x size window lies wholly on ``mask``."""
    return bool((ndi.minimum_filter(mask.astype(np.uint8), size=size, mode="constant", cval=0) > 0).any())


@pytest.mark.parametrize("side", [145, 120, 95, 80])
def test_hud_cond_is_unsupported_exactly_when_its_fold_holds_no_crop(scene, side):
    small = dataclasses.replace(scene, cube=scene.cube[:, :side, :side], gt=np.asarray(scene.gt)[:side, :side])
    cfg = make_config(scene.name, "HUD-cond", "quick")
    fold = cond_fold(small, cfg)
    why = registry.unsupported("HUD-cond", small, "quick")
    assert (why is None) == _has_crop(fold.train, cfg.train.patch_size), (side, why)
    if why:
        assert "holds no 32 x 32 crop" in why and fold.name in why
    assert registry.unsupported("HUD", small, "quick") is None  # no fold: always trainable


def test_the_main_job_leaves_an_unsupported_generator_out_and_says_why(scene, tmp_path, monkeypatch):
    monkeypatch.setattr(HUDCond, "unsupported", classmethod(lambda cls, s, cfg: "planted reason"))
    monkeypatch.setattr(stages, "_scene", lambda name: scene)
    models = ["HUD", "HUD-cond", "RealCopy"]
    assert stages.unsupported_generators("IndianPines", models, "smoke") == {"HUD-cond": "planted reason"}
    assert [c.model for _, _, c in stages.generator_trainings("IndianPines", models, "smoke")] == ["HUD", "RealCopy"]
    assert stages.downstream_trainings("IndianPines", models, "smoke") == []
    assert downstream.unsupported(scene, "smoke").startswith("HUD-cond: planted reason")
    term = io.StringIO()
    monkeypatch.setenv("HUD_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    runner.run_notebooks("smoke", scenes=["IndianPines"], models=models, nb_dir=ROOT / "notebooks",
                         build=tmp_path / "build", dry_run=True, term=term)
    row = next(ln for ln in term.getvalue().splitlines() if ln.startswith("IndianPines ") and " HUD-cond " in ln)
    assert "left out: planted reason" in row
    md = tables.write_tables("smoke", tmp_path / "results", ["IndianPines"], models,
                             left_out={"IndianPines": {"HUD-cond": "planted reason"}}).read_text()
    assert "*HUD-cond not run on IndianPines: planted reason.*" in md
