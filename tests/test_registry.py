"""A new generator is one class plus one register line: a toy registered here alone (its own config section and
per-profile values) goes through fit -> sample -> evaluate -> tables -> figures at smoke, and every run hash of the
registered generators is what it was (tests/data/training_hashes.json, computed before generators owned their
configs)."""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from hudlib import evaluate, figures, models, tables
from hudlib.ablation import ROWS, SCHEDULE_OVERRIDES
from hudlib.config import make_config
from hudlib.data import load_scene
from hudlib.models.base import Generator
from hudlib.utils import atomic_torch_save

PINNED = json.loads((Path(__file__).parent / "data" / "training_hashes.json").read_text())


@dataclass
class ToyConfig:
    """The toy's own section: noise amplitude around the scene's mean spectrum."""

    amplitude: float = 0.1


class Toy(Generator):
    """Gaussian noise around the mean spectrum, its amplitude from the config."""

    name = "Toy"
    sections = {"toy": ToyConfig}
    profiles = {"smoke": {"toy": {"amplitude": 0.05}, "train": {"steps": 1}}}

    def _fit(self, scene, cfg, run_dir, resume, device, progress):
        atomic_torch_save({"mean": torch.from_numpy(scene.cube.reshape(scene.bands, -1).mean(1))},
                          run_dir / "state.pt")
        self._load_state(run_dir, scene)

    @classmethod
    def artefact_files(cls, run_dir):
        return [Path(run_dir) / "state.pt"]

    def _load_state(self, run_dir, scene=None):
        self.mean_ = torch.load(Path(run_dir) / "state.pt", weights_only=True)["mean"].numpy()

    def _sample(self, n, random_state, device, progress, **options):
        rng = np.random.default_rng(random_state)
        a = self.config_.toy.amplitude
        Y = self.mean_[None, :, None, None] * (1 + a * rng.standard_normal((n, 1, 32, 32)))
        return Y.astype(np.float32), None


@pytest.fixture
def toy():
    models.register("Toy", Toy, description="a toy generator registered by a test")
    try:
        yield "Toy"
    finally:
        models.unregister("Toy")


@pytest.mark.slow
def test_a_new_generator_is_one_class_and_one_register_line(toy, tmp_path):
    s = load_scene("IndianPines")
    cfg = make_config("IndianPines", toy, "smoke")
    assert cfg.toy.amplitude == 0.05 and set(cfg.sections) == {"train", "eval", "toy"}
    with pytest.raises(ValueError, match="unknown section 'vae' for generator 'Toy'"):
        make_config("IndianPines", toy, "smoke", {"vae": {"latent": 3}})
    g = models.create(toy).fit(s, "smoke", tmp_path / "runs", progress=False)
    assert models.load(g.run_dir_, s).sample(2, random_state=1).shape == (2, 200, 32, 32)
    with pytest.raises(ValueError, match="Toy: unknown sampler option"):
        g.sample(2, steps=3)
    for m in (toy, "RealCopy"):
        evaluate.evaluate("IndianPines", m, "smoke", n=8, runs=tmp_path / "runs", results=tmp_path / "results",
                          device="cpu", progress=False, scene_obj=s)
    md = tables.write_tables("smoke", tmp_path / "results", ["IndianPines"], [toy, "RealCopy"],
                             runs=tmp_path / "runs").read_text()
    assert "| **Toy** (ours) |" in md
    files = figures.make_figures(["IndianPines"], [toy, "RealCopy"], "smoke", tmp_path / "figures",
                                 tmp_path / "runs", "cpu", progress=False)
    assert {f.name for f in files} >= {"fig3_pseudocolour.png", "fig4_spectral_density.png"}
    man = json.loads((tmp_path / "figures" / "MANIFEST.json").read_text())
    assert man["weights_hashes"]["IndianPines/Toy"] == g.weights_hash()


def _overrides(model, tag):
    if not tag:
        return None
    if tag in models.get(model).variants:
        return models.get(model).variants[tag]
    if tag.startswith("abl-"):
        return next(r.overrides for r in ROWS if r.key == tag[4:])
    if tag.startswith("seed"):
        return {"train": {"seed": int(tag[4:])}}
    if tag == "sqrt":
        return SCHEDULE_OVERRIDES
    if tag == "linear-sqrt":
        return {"unmixing": {"encoder": "linear"}, **SCHEDULE_OVERRIDES}
    raise KeyError(tag)


def test_every_pinned_run_hash_is_unchanged():
    """420 configs (every scene x generator x profile, their variants and the ablation's rows) keep the training
    hash they had before the configs moved onto the generator classes: no trained weights were orphaned."""
    bad = {}
    for key, h in PINNED.items():
        scene, model, profile, *tag = key.split("/")
        got = make_config(scene, model, profile, _overrides(model, tag[0] if tag else "")).training_hash()
        if got != h:
            bad[key] = (h, got)
    assert not bad, bad
    assert PINNED["IndianPines/HUD/quick"] == "194cc941" and len(PINNED) == 420


def _write_fields_scene(folder, rows=96, cols=96, bands=24, classes=3, seed=0):
    """A scene with a planted linear mixture: each class a block of columns, mixed from three smooth spectra."""
    import scipy.io

    rng = np.random.default_rng(seed)
    E = np.stack([np.linspace(0.2, 0.9, bands) ** (k + 1) for k in range(classes)], 1)  # (bands, classes)
    gt = np.repeat(np.arange(classes)[None, :], rows, 0).repeat(-(-cols // classes), 1)[:, :cols] + 1
    X = np.full((rows, cols, classes), 0.05)
    X[np.arange(rows)[:, None], np.arange(cols)[None, :], gt - 1] += 1.0
    X /= X.sum(-1, keepdims=True)
    cube = (X @ E.T) * 1000 + rng.normal(0, 5, (rows, cols, bands))
    folder.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(folder / "Fields.mat", {"fields": cube.clip(0, None)})
    scipy.io.savemat(folder / "Fields_gt.mat", {"fields_gt": gt.astype(np.uint8)})
    return cube, gt


@pytest.fixture
def fields_scene(tmp_path):
    from hudlib import data

    info = data.register_scene(data.SceneInfo(
        name="Fields", cube_file="Fields.mat", cube_key="fields", gt_file="Fields_gt.mat", gt_key="fields_gt",
        shape=(96, 96, 24), n_classes=3, rgb_bands=(20, 12, 4), cube_url="http://127.0.0.1:9/Fields.mat",
        gt_url="http://127.0.0.1:9/Fields_gt.mat"))
    try:
        yield info
    finally:
        data.unregister_scene("Fields")


def test_a_new_scene_is_one_registration(fields_scene, tmp_path):
    """A scene registered here alone is listed, found, loaded and checked against its facts, trained on and
    evaluated by name, then gone once unregistered; a second registration of a name is refused."""
    from hudlib import data

    cube, gt = _write_fields_scene(tmp_path / "d")
    assert "Fields" in data.scene_names() and data.scene_available("Fields") is not None  # not under ./data
    assert data.scene_available("Fields", tmp_path / "d") is None
    s = data.load_scene("Fields", tmp_path / "d")
    assert s.shape == (24, 96, 96) and s.n_classes == 3 and s.rgb_bands == (20, 12, 4)
    np.testing.assert_allclose(s.cube, (cube.clip(0, None) / cube.max()).transpose(2, 0, 1), rtol=1e-6)
    np.testing.assert_array_equal(s.gt, gt)
    with pytest.raises(data.DataError, match="'Fields' is registered already"):
        data.register_scene(fields_scene)
    with pytest.raises(data.DataError, match="rgb_bands: expected three band indices in 0..23"):
        data.SceneInfo(name="Bad", cube_file="b.mat", cube_key="b", gt_file="b_gt.mat", gt_key="b_gt",
                       shape=(64, 64, 24), n_classes=3, rgb_bands=(1, 2, 40), cube_url="", gt_url="")
    out = evaluate.evaluate("Fields", "RandomMixture", "smoke", n=8, runs=tmp_path / "runs",
                            results=tmp_path / "results", device="cpu", progress=False, data_root=tmp_path / "d")
    rec = json.loads(out.read_text())
    assert rec["scene"] == "Fields" and out.parent.parent.name == "Fields"
    assert rec["physical"]["endmembers"].startswith("VCA of the scene, d = 3")
    assert np.isfinite(rec["metrics"]["SWD"])


@pytest.mark.slow
def test_a_new_metric_is_one_registration(fields_scene, tmp_path, monkeypatch):
    """A metric registered here alone is computed into the record, tabulated with its direction, verified with its
    tolerance; bumping its version recomputes it alone (the others' functions are made to fail meanwhile)."""
    from hudlib import data, verify
    from hudlib.metrics import distribution, registry

    _write_fields_scene(tmp_path / "d")
    s = data.load_scene("Fields", tmp_path / "d")
    seen = []

    def mean_gap(scale):
        def run(c):
            v = scale * abs(float(c.Y.astype(np.float64).mean()) - float(c.real.astype(np.float64).mean()))
            seen.append(v)
            return {"mean_gap": v, "mean_real": float(c.real.mean())}
        return run

    def metric(version, scale):
        return registry.Metric(name="mean_gap", direction=-1, family="ours", version=version, tolerance=(0.5, 0.0),
                               description="|mean generated - mean real|", compute=mean_gap(scale))

    registry.register_metric(metric(1, 1.0))
    try:
        kw = dict(n=8, runs=tmp_path / "runs", results=tmp_path / "results", device="cpu", progress=False,
                  scene_obj=s)
        out = evaluate.evaluate("Fields", "RandomMixture", "smoke", **kw)
        rec = json.loads(out.read_text())
        assert rec["metrics"]["mean_gap"] == seen[-1] and rec["metric_versions"]["mean_gap"] == 1
        assert rec["metrics"]["mean_real"] == pytest.approx(float(data.patches(s, 32, 8, random_state=1).mean()))
        table = tables.metric_table("Fields", {"RandomMixture": rec}, "smoke")
        assert "mean_gap ↓" in table.splitlines()[0]
        with pytest.raises(ValueError, match="'mean_gap' is registered already"):
            registry.register_metric(metric(1, 1.0))
        near, far = json.loads(json.dumps(rec)), json.loads(json.dumps(rec))
        near["metrics"]["mean_gap"] += 0.4
        far["metrics"]["mean_gap"] += 0.6
        agree = {r["value"]: r["agree"] for r in verify.compare({"r": rec}, {"r": near})}
        assert agree["metrics.mean_gap"] == "within tolerance" and agree["metrics.SWD"] == "exact"
        assert {r["value"]: r["agree"] for r in verify.compare({"r": rec}, {"r": far})}["metrics.mean_gap"] == "no"

        registry.unregister_metric("mean_gap")
        registry.register_metric(metric(2, 3.0))

        def boom(*a, **k):
            raise AssertionError("SWD recomputed although its version did not change")
        monkeypatch.setattr(distribution, "sliced_wasserstein", boom)
        evaluate.evaluate("Fields", "RandomMixture", "smoke", **kw)
        new = json.loads(out.read_text())
        assert new["metrics"]["mean_gap"] == pytest.approx(3 * rec["metrics"]["mean_gap"], rel=1e-12)
        assert new["metric_versions"]["mean_gap"] == 2
        assert {k: v for k, v in new["metrics"].items() if k != "mean_gap"} == \
            {k: v for k, v in rec["metrics"].items() if k != "mean_gap"}
        assert new["paper_exact"] == rec["paper_exact"] and new["physical"] == rec["physical"]
        n_calls, mtime = len(seen), out.stat().st_mtime_ns
        evaluate.evaluate("Fields", "RandomMixture", "smoke", **kw)  # nothing left to compute
        assert len(seen) == n_calls and out.stat().st_mtime_ns == mtime
    finally:
        registry.unregister_metric("mean_gap")


def test_a_generator_takes_its_config_at_construction_and_saves_itself(scene, tmp_path):
    """create(name, config) -> fit(scene) uses that config (another profile or overrides are refused); save(dir)
    writes a run that from_pretrained loads to the same weights and the same samples."""
    from hudlib.errors import DataError

    cfg = make_config("IndianPines", "HUD", "smoke", {"train": {"steps": 2}})
    g = models.create("HUD", cfg).fit(scene, out_dir=tmp_path / "runs", progress=False)
    assert g.config_ == cfg and g.run_dir_.name == f"smoke-{cfg.training_hash()}"
    with pytest.raises(DataError, match="constructed with its config"):
        models.create("HUD", cfg).fit(scene, "quick", out_dir=tmp_path / "runs")
    with pytest.raises(DataError, match="expected a RunConfig of VAE"):
        models.create("VAE", cfg)
    saved = g.save(tmp_path / "saved")
    h = models.from_pretrained(saved)
    assert h.weights_hash() == g.weights_hash() and h.config == cfg
    np.testing.assert_array_equal(h.sample(2, random_state=3), g.sample(2, random_state=3))
    with pytest.raises(DataError, match="exists already"):
        g.save(saved)
