"""The shipped weights: export from runs/ and install into runs/ (hudlib.checkpoints), and the committed checkpoints
behind the committed results."""
import json
from pathlib import Path

import numpy as np
import pytest

from hudlib import checkpoints, models
from hudlib.config import RunConfig
from hudlib.data import SCENES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(scene, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return runs, {m: models.create(m).fit(scene, "smoke", runs, progress=False) for m in ("HUD", "VAE", "RealCopy")}


def test_export_holds_only_what_sampling_reads_and_loads(trained, scene, tmp_path):
    runs, gens = trained
    root = tmp_path / "checkpoints"
    checkpoints.export([g.run_dir_ for g in gens.values()], root, machine="test machine")
    man = json.loads((root / "MANIFEST.json").read_text())
    for m, g in gens.items():
        rel = f"IndianPines/{m}/{g.run_dir_.name}"
        entry = man["runs"][rel]
        assert entry["weights_hash"] == g.weights_hash() and entry["training_hash"] == g.config_.training_hash()
        names = set(entry["files"])
        assert {f.name for f in type(g).artefact_files(g.run_dir_)} <= names and "config.json" in names
        assert "checkpoint.pt" not in names and not any(n.startswith("samples_") for n in names)
        for n, meta in entry["files"].items():
            assert (root / rel / n).stat().st_size == meta["bytes"]
        back = models.load(root / rel, scene)  # a checkpoint loads like a run directory
        assert back.weights_hash() == g.weights_hash()
        np.testing.assert_array_equal(back.sample(2, random_state=4), g.sample(2, random_state=4))
    assert man["total_bytes"] == sum(e["bytes"] for r in man["runs"].values() for e in r["files"].values())


def test_install_copies_marks_and_never_replaces_a_local_run(trained, scene, tmp_path):
    runs, gens = trained
    root = tmp_path / "checkpoints"
    checkpoints.export([g.run_dir_ for g in gens.values()], root)
    fresh = tmp_path / "fresh_runs"
    cfgs = [g.config_ for g in gens.values()]
    done = checkpoints.install(cfgs, fresh, root)
    assert len(done) == 3 and all((d / checkpoints.SHIPPED).is_file() and (d / "DONE").is_file() for d in done)
    for g in gens.values():
        d = models.run_dir_for(g.config_, fresh)
        assert models.get(g.name).weights_hash_at(d) == g.weights_hash()
        again = models.create(g.name).fit(scene, "smoke", fresh, progress=False)  # reused, not trained
        assert not (d / "checkpoint.pt").exists() and again.weights_hash() == g.weights_hash()
    assert checkpoints.install(cfgs, fresh, root) == []  # finished runs stay
    assert checkpoints.install(cfgs, runs, root) == []  # the runs trained there are never replaced
    removed = checkpoints.remove_shipped(cfgs, fresh)
    assert len(removed) == 3 and not any(d.exists() for d in removed)
    assert checkpoints.remove_shipped(cfgs, runs) == []  # trained here: kept


def test_a_damaged_checkpoint_is_refused(trained, tmp_path):
    runs, gens = trained
    root = tmp_path / "checkpoints"
    checkpoints.export([gens["HUD"].run_dir_], root)
    ema = next(root.rglob("ema.safetensors"))
    ema.write_bytes(ema.read_bytes()[:-8] + b"00000000")
    with pytest.raises(ValueError, match="does not match MANIFEST.json"):
        checkpoints.install([gens["HUD"].config_], tmp_path / "r", root)
    assert not (tmp_path / "r" / "IndianPines" / "HUD").exists()


def test_every_committed_quick_result_names_shipped_weights():
    """The committed results come from the committed checkpoints: every record's weights hash (and both
    classifiers' hashes) is one the shipped checkpoints hold, and the shipped total stays within the budget."""
    man = checkpoints.manifest(ROOT / "checkpoints")
    shipped = {e["weights_hash"] for e in man["runs"].values()}
    records = sorted((ROOT / "results").glob("*/*/quick*.json"))
    assert records, "no committed quick results"
    classifiers = {e["weights_sha256"][:16] for e in man["classifiers"].values()}
    for f in records:
        rec = json.loads(f.read_text())
        assert rec["weights_hash"] in shipped, f"{f}: weights {rec['weights_hash']} are not shipped"
        assert {rec["classifier_hash"], rec["authors_classifier_hash"]} <= classifiers, f"{f}: classifier not shipped"
    assert man["total_bytes"] <= checkpoints.BUDGET_BYTES
    for rel, e in man["runs"].items():  # each checkpoint sits under the hash its config gives
        cfg = RunConfig.from_dict(json.loads((ROOT / "checkpoints" / rel / "config.json").read_text()))
        assert cfg.training_hash() == e["training_hash"] == rel.rsplit("-", 1)[1], rel


def test_fit_uses_the_shipped_weights_unless_retraining_is_asked(scene, tmp_path, monkeypatch):
    """fit() at quick in an empty runs folder installs the shipped checkpoint (nothing trained: the manifest's weights
    hash); $HUD_RETRAIN naming the generator, or fit(shipped=False), trains it instead."""
    from hudlib import runstore

    man = checkpoints.manifest()["runs"]
    monkeypatch.delenv(runstore.RETRAIN_ENV, raising=False)
    g = models.create("MeanSpectrum").fit(scene, "quick", tmp_path / "a", progress=False)
    rel = g.run_dir_.relative_to(tmp_path / "a").as_posix()
    assert (g.run_dir_ / checkpoints.SHIPPED).is_file() and g.weights_hash() == man[rel]["weights_hash"]
    monkeypatch.setenv(runstore.RETRAIN_ENV, "VAE, MeanSpectrum")
    h = models.create("MeanSpectrum").fit(scene, "quick", tmp_path / "b", progress=False)
    assert (h.run_dir_ / "DONE").is_file() and not (h.run_dir_ / checkpoints.SHIPPED).exists()
    monkeypatch.delenv(runstore.RETRAIN_ENV)
    k = models.create("MeanSpectrum").fit(scene, "quick", tmp_path / "c", progress=False, shipped=False)
    assert not (k.run_dir_ / checkpoints.SHIPPED).exists()
    assert runstore.retrain_requested("HUD") is False
    monkeypatch.setenv(runstore.RETRAIN_ENV, "all")
    assert runstore.retrain_requested("HUD") is True


def test_every_shipped_run_has_a_current_model_card_whose_example_runs(monkeypatch):
    """Each shipped run carries README.md: what, the scene's licence, profile, budget, the committed metrics of its
    weights (rewritten from the manifest and results/ it equals the committed card), and three lines that load it."""
    import re

    man = checkpoints.manifest()
    committed = checkpoints.committed_results("quick")
    for rel, entry in man["runs"].items():
        card = (checkpoints.checkpoints_dir() / rel / checkpoints.CARD).read_text()
        assert card == checkpoints.card_text(rel, entry, records=committed), \
            f"{rel}: stale card (python -m hudlib checkpoints cards)"
        licence = SCENES[rel.split("/")[0]].licence  # the scene's, or said to be unrecorded
        assert (f"licence {licence}" if licence else "licence: not recorded here") in card
        assert entry["weights_hash"] in card and f'"checkpoints/{rel}"' in card
    rel = next(r for r in man["runs"] if "/MeanSpectrum/" in r)
    card = (checkpoints.checkpoints_dir() / rel / checkpoints.CARD).read_text()
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    monkeypatch.chdir(ROOT)
    ns = {}
    exec(code, ns)  # the card's own example
    assert ns["Y"].shape == (16, 200, 32, 32) and ns["gen"].weights_hash() == man["runs"][rel]["weights_hash"]
    results = json.loads((ROOT / "results" / "IndianPines" / "MeanSpectrum" / "quick.json").read_text())
    assert f"{results['metrics']['FID']:.4g}" in card


def test_from_pretrained_refuses_a_damaged_checkpoint(tmp_path, monkeypatch):
    import shutil

    man = checkpoints.manifest()
    rel = next(r for r in man["runs"] if "/MeanSpectrum/" in r)
    root = tmp_path / "checkpoints"
    shutil.copytree(checkpoints.checkpoints_dir() / rel, root / rel)
    (root / checkpoints.MANIFEST).write_text(json.dumps({"runs": {rel: man["runs"][rel]}, "classifiers": {}}))
    monkeypatch.setenv("HUD_ROOT", str(tmp_path))
    assert models.from_pretrained(rel).sample(2).shape == (2, 200, 32, 32)  # relative to checkpoints/
    with open(root / rel / "state.safetensors", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match=r"state\.safetensors: does not match MANIFEST\.json"):
        models.from_pretrained(root / rel)
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        models.from_pretrained("nowhere/HUD/quick-0")
