"""The labelled-scene study: its trivial generator is what it says, it is reused only for the same weights and
protocol, its figure's scenes are made again exactly, and nothing it trains reads the held-out region."""
import json

import numpy as np
import pytest

from hudlib import labelled
from hudlib.downstream import Ground, protocol_for
from hudlib.layouts import FieldLayout


def test_class_statistics_scene_draws_each_class_from_its_gaussian():
    rng = np.random.default_rng(0)
    gt = np.zeros((40, 40), np.int64)
    gt[:20, :20], gt[20:, 20:] = 1, 2
    cube = rng.normal(0.3, 0.01, (5, 40, 40)).astype(np.float32)
    cube[:, gt == 2] += 0.4
    mask = np.ones(gt.shape, bool)
    mask[30:, :10] = False  # off the ground: never read
    cube[:, ~mask] = np.nan
    ground = Ground(name="g", cube=cube, gt=np.where(mask, gt, 0), mask=mask, n_classes=3)
    L = np.zeros((60, 60), np.int64)
    L[:, :30], L[:30, 30:] = 2, 1
    Y = labelled.class_statistics_scene(ground, L, random_state=1)
    assert Y.shape == (5, 60, 60) and np.isfinite(Y).all()
    np.testing.assert_allclose(Y[:, L == 2].mean(1), np.nanmean(cube[:, gt == 2], 1), atol=2e-3)
    np.testing.assert_allclose(Y[:, L == 1].std(1), np.nanstd(cube[:, gt == 1], 1), rtol=0.1)
    # unlabelled pixels are spectra of the ground's unlabelled pixels
    unl = cube[:, mask & (gt == 0)]
    assert all(any(np.array_equal(Y[:, r, c], u) for u in unl.T) for r, c in zip(*np.nonzero(L == 0)))
    np.testing.assert_array_equal(Y, labelled.class_statistics_scene(ground, L, random_state=1))


@pytest.mark.slow
def test_study_at_smoke_is_reused_redrawn_and_leak_free(scene, tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    study, reused = labelled.run_or_reuse(scene, "smoke", runs=runs, results=results)
    assert not reused
    again, reused = labelled.run_or_reuse(scene, "smoke", runs=runs, results=results)
    assert reused and again["records"] == json.loads(json.dumps(study["records"]))
    rows = {r["row"] for r in study["records"]}
    assert rows == {"real", "ceiling", "HUD-cond scenes only", "class-statistics scenes only",
                    "pretrain on HUD-cond scenes, fine-tune", "pretrain on class-statistics scenes, fine-tune"}
    assert len(study["tests"]) == 8 and all(0 <= t["p_holm"] <= 1 for t in study["tests"])
    assert (results / "labelled_smoke.md").read_text().startswith("# Labelled synthetic scenes")
    # the figure's scenes of a reused study are the study's own, made again
    from hudlib.downstream import fold_generators

    gen = fold_generators(scene, "smoke", runs)[0]
    remade = labelled.figure_scenes(again, scene, gen)
    for name in ("real map", "procedural"):
        np.testing.assert_array_equal(remade[name][0], study["_scenes"][name][0])
        np.testing.assert_array_equal(remade[name][1], study["_scenes"][name][1])
    # the procedural maps carry only classes of the fold's training ground, fitted there alone
    fold = protocol_for("smoke").splitter.split(scene.gt)[0]
    ground_classes = set(np.unique(scene.gt[fold.train]))
    assert set(np.unique(remade["procedural"][1])) <= ground_classes
    est = FieldLayout().fit(scene.gt, fold.train, n_classes=scene.n_classes)
    assert est.class_share_[[k - 1 for k in range(1, scene.n_classes + 1) if k not in ground_classes]].sum() == 0
    # another profile's protocol or other weights: not reused
    key = dict(again["key"], weights={"0": "0" * 16})
    (results / "IndianPines" / "HUD-cond" / "labelled_smoke.json").write_text(json.dumps(dict(again, key=key)))
    assert not labelled.run_or_reuse(scene, "smoke", runs=runs, results=results)[1]


def test_the_results_page_holds_every_scene_studied(tmp_path):
    """write_study of one scene renders the page from every stored study of that model and profile, so a second
    scene's study adds a section instead of replacing the first; a scene's class-map note is printed."""
    from pathlib import Path

    stored = json.loads((Path(__file__).parents[1] / "results" / "IndianPines" / "HUD-cond" /
                         "labelled_quick.json").read_text())
    labelled.write_study(stored, tmp_path)
    other = {**stored, "scene": "Samson", "labels_note": "pseudo-classes: planted note"}
    _, md = labelled.write_study(other, tmp_path)
    text = md.read_text()
    first, second = text.index("on IndianPines"), text.index("on Samson")
    assert first < second and text.count("# Labelled synthetic scenes") == 2
    assert "Class map: pseudo-classes: planted note." in text[second:] and "Class map: " not in text[:second]
    assert json.loads((tmp_path / "Samson" / "HUD-cond" / "labelled_quick.json").read_text())["scene"] == "Samson"
