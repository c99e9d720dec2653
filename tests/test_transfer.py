"""The cross-sensor prior study (hudlib.transfer): canonical endmember order, budgets reached by resuming (= the
uninterrupted run), fine-tuning starting from the prior, the goal's rule, resumable results."""
import json

import numpy as np
import pytest
import torch

from hudlib import transfer
from hudlib.data import USER_SCENES_ENV, register_user_scene
from hudlib.errors import DataError
from hudlib.weights import load_weights


def test_canonical_order_sorts_by_mean_abundance():
    X = np.stack([np.full((4, 5), v) for v in (0.2, 0.5, 0.3)])
    assert transfer.canonical_order(X).tolist() == [1, 2, 0]
    tie = np.stack([np.full((2, 2), v) for v in (0.25, 0.5, 0.25)])
    assert transfer.canonical_order(tie).tolist() == [1, 0, 2]  # ties keep the lower index first
    with pytest.raises(DataError, match=r"X: expected abundances \(d, rows, cols\)"):
        transfer.canonical_order(np.zeros((3, 4)))


def test_study_budgets_are_checked():
    s = transfer.TransferStudy(finetune_steps=(0, 8, 16), scratch_steps=(16, 30))
    s._check(30)  # 0.25 x 30 = 8 is a fine-tuning budget, 30 a scratch one
    for bad, msg in ((dict(scratch_steps=(16,)), "the goal compares"), (dict(finetune_steps=(8, 0)), "ascending"),
                     (dict(scratch_steps=(0, 30)), "scratch_steps: 0 steps"), (dict(goal_fraction=0), "goal_fraction"),
                     (dict(n=2), "n: expected")):
        with pytest.raises(DataError, match=msg):
            transfer.TransferStudy(**{**dict(finetune_steps=(0, 8, 16), scratch_steps=(16, 30)), **bad})._check(30)


@pytest.mark.slow
def test_smoke_study_end_to_end(tmp_path, monkeypatch, envi_cube):
    """Indian Pines' prior at d = 3 carried to a 3-endmember cube written here (another sensor: 12 bands): every
    arm and budget measured, the goal judged; the scratch arm's snapshot at 16 steps is the 16-step run; the
    fine-tuning arm started from the prior; a rerun measures nothing; another study is refused on the same file."""
    monkeypatch.delenv(USER_SCENES_ENV, raising=False)
    name = register_user_scene(envi_cube(tmp_path / "field.hdr", 48, 48, seed=5), classes=3)
    runs, out = tmp_path / "runs", tmp_path / "study.json"
    study = transfer.TransferStudy(target=name, profile="smoke", finetune_steps=(0, 3, 6), scratch_steps=(4, 12),
                                   n=8, goal_seeds=(0, 1), full_steps=12)
    res = study.run(runs, out=out, progress=False)
    assert set(res["arms"]) == {"as_is", "finetune", "scratch"}
    assert sorted(res["arms"]["finetune"], key=int) == ["3", "6"] and sorted(res["arms"]["scratch"]) == ["12", "4"]
    assert sorted(res["arms"]["finetune"]["3"]) == ["0", "1"] and sorted(res["arms"]["scratch"]["12"]) == ["0", "1"]
    assert sorted(res["arms"]["scratch"]["4"]) == ["0"]
    g = res["goal"]
    assert g["budgets"] == [3, 12] and set(g["metrics"]) == set(transfer.RULE) and isinstance(g["passes"], bool)
    assert res["meta"]["study"]["d"] == 3 and json.loads(out.read_text())["goal"]["passes"] == g["passes"]
    rec = res["arms"]["as_is"]["0"]["0"]
    assert all(np.isfinite(v) for v in rec["metrics"].values()) and rec["sampling_key"].startswith("ddim")
    assert rec["metrics"] != res["arms"]["finetune"]["3"]["0"]["metrics"]  # fine-tuning changed the samples

    root = runs / "transfer" / f"IndianPines-to-{name}-d3-smoke"
    # the scratch budget of 4 reached on the way to 12 is the uninterrupted 4-step run
    from hudlib import models
    from hudlib.config import make_config
    from hudlib.data import load_scene
    from hudlib.train import train_diffusion

    tgt = models.create("HUD")
    cfg = make_config(name, "HUD", "smoke")
    Z = tgt.unmix(load_scene(name), cfg, runs)
    order = transfer.canonical_order(tgt.decode_latent(Z.numpy()[None])[1][0])
    train_diffusion(cfg.replace(train=__import__("dataclasses").replace(cfg.train, steps=4)), Z[order],
                    tmp_path / "direct", device="cpu", progress=False)
    direct = load_weights(tmp_path / "direct" / "ema.safetensors")["ema"]
    snap = load_weights(root / "scratch" / "ema-4.safetensors")["ema"]
    assert all(torch.equal(direct[k], snap[k]) for k in direct)
    # the fine-tuning arm started from the source prior: its 3-step EMA is the prior moved by 3 EMA updates,
    # far closer to the prior than the scratch arm's weights are
    prior = load_weights(root / "source" / "ema-12.safetensors")["ema"]
    fine = load_weights(root / "finetune" / "ema-3.safetensors")["ema"]

    def dist(a, b):
        return float(sum((a[k].float() - b[k].float()).pow(2).sum() for k in a))
    assert dist(fine, prior) < 0.1 * dist(snap, prior)

    # a rerun reuses everything: nothing is sampled or trained
    monkeypatch.setattr(transfer, "_measure", lambda *a, **k: pytest.fail("re-measured"))
    monkeypatch.setattr(transfer, "train_diffusion", lambda *a, **k: pytest.fail("re-trained"))
    assert study.run(runs, out=out, progress=False)["arms"] == res["arms"]
    md = transfer.markdown(res)
    assert "| finetune | 3 | 2 |" in md and "Verdict: **" in md and "pseudo-classes" in md
    fig = transfer.plot(res)
    assert len(fig.axes) == len(transfer.RULE) and len(fig.axes[0].lines) >= 2
    other = transfer.TransferStudy(target=name, profile="smoke", finetune_steps=(0, 3), scratch_steps=(12,), n=8,
                                   full_steps=12)
    with pytest.raises(DataError, match="holds another study's results"):
        other.run(runs, out=out, progress=False)
