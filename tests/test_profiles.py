"""Every knob of a profile is defined once (hudlib.profiles): one value changed there reaches every consumer —
each generator's config, the ablation's seeds and its count of extra trainings, the scene study's seeds, the
downstream protocol and the runner's timeouts."""
import pytest

from hudlib import ablation, downstream, models, profiles, runner, synthesis
from hudlib.config import make_config
from hudlib.errors import DataError


def test_one_profile_value_reaches_every_consumer(monkeypatch, tmp_path):
    smoke = profiles.PROFILES["smoke"]
    before = ablation.extra_runs("smoke")
    changed = smoke.replace(eval={**smoke.eval, "n_samples": 7, "classifier_steps": 3},
                            train={**smoke.train, "ema_decay": 0.5}, seeds=(4, 5, 6), downstream="quick",
                            cell_timeout_s=123, idle_grace_s=9)
    monkeypatch.setitem(profiles.PROFILES, "smoke", changed)
    for m in models.names():
        cfg = make_config("IndianPines", m, "smoke")
        assert cfg.eval.n_samples == 7 and cfg.eval.classifier_steps == 3, m
        own = models.get(m).profiles.get("smoke", {}).get("train", {})
        assert cfg.train.ema_decay == own.get("ema_decay", 0.5), m  # a generator's own value still wins
    assert ablation.default_seeds("smoke") == [4, 5, 6]
    assert ablation.extra_runs("smoke") == before + len(ablation.MAIN_ROWS) * 2
    assert synthesis.study_seeds("smoke") == [4, 5, 6] and synthesis.study_seeds("smoke", [1]) == [1]
    assert downstream.protocol_for("smoke") is downstream.PROTOCOLS["quick"]
    (tmp_path / "nb").mkdir()
    summary = runner.run_notebooks("smoke", scenes=["IndianPines"], models=["MeanSpectrum"], nb_dir=tmp_path / "nb",
                                   build=tmp_path / "build", progress=False, term=open(tmp_path / "log", "w"),
                                   verify_mode="off")
    assert summary["cell_timeout_s"] == 123


def test_profiles_refuse_bad_values_and_names():
    with pytest.raises(DataError, match="profile: unknown profile 'fast'; expected one of smoke, quick, paper"):
        make_config("IndianPines", "HUD", "fast")
    with pytest.raises(DataError, match="seeds: expected a non-empty tuple"):
        profiles.PROFILES["quick"].replace(seeds=())
    with pytest.raises(TypeError):
        profiles.PROFILES["quick"].eval["n_samples"] = 3  # read-only: change a profile with replace()
