"""Training loop, registry round trip, exact resume, 2-process DDP, CLI smoke."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hudlib import models, uae
from hudlib.__main__ import main as cli_main
from hudlib.config import RunConfig, make_config
from hudlib.data import load_scene
from hudlib.train import train_diffusion

TINY = {"unet": dict(model_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,),
                     num_heads=1, dropout=0.1),
        "train": dict(steps=7, batch_size=2, ckpt_every=3, patch_size=16)}


def _Z(seed=0, d=5, side=24):
    rng = np.random.default_rng(seed)
    X = rng.dirichlet(np.ones(d), size=(side, side)).transpose(2, 0, 1)
    return torch.from_numpy(np.log(X + np.exp(-np.log(d) - 8)).astype(np.float32))


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_config_json_round_trip_and_hash():
    cfg = make_config("IndianPines", "HUD", "quick", {"train": {"steps": 5}})
    back = RunConfig.from_dict(json.loads(cfg.to_json()))
    assert back == cfg and back.training_hash() == cfg.training_hash()
    assert make_config(profile="quick", overrides={"eval": {"n_samples": 3}}).training_hash() == \
        make_config(profile="quick").training_hash(), "eval settings must not change the training hash"
    assert make_config(profile="smoke").training_hash() != make_config(profile="quick").training_hash()
    # sampler settings never retrain, but they do key the sample and result caches
    base = make_config(profile="quick")
    other = make_config(profile="quick", overrides={"diffusion": {"eta": 0.0, "sample_steps": 20}})
    assert other.training_hash() == base.training_hash()
    clipped = make_config(profile="quick", overrides={"diffusion": {"clip_z0": not base.diffusion.clip_z0}})
    assert clipped.training_hash() == base.training_hash()
    weighted = make_config(profile="quick", overrides={"diffusion": {"min_snr_gamma": 1.0}})
    assert weighted.training_hash() != base.training_hash(), "the loss weighting changes the weights"
    with pytest.raises(ValueError, match="profile: unknown profile 'fast'"):
        make_config(profile="fast")
    with pytest.raises(ValueError, match="unknown keys"):
        RunConfig.from_dict({**cfg.to_dict(), "train": {"stepz": 1}})


class _Interrupt(Exception):
    pass


def test_resume_is_bit_identical(tmp_path):
    """Interrupt at an arbitrary step (5, between checkpoints at 3 and 6), resume, compare with an uninterrupted run."""
    cfg = make_config("IndianPines", "HUD", "smoke", TINY)
    Z = _Z()
    train_diffusion(cfg, Z, tmp_path / "a", device="cpu", progress=False)

    def stop(step, loss):
        if step == 5:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train_diffusion(cfg, Z, tmp_path / "b", device="cpu", progress=False, on_step=stop)
    assert _weights(tmp_path / "b" / "checkpoint.pt")["step"] == 3
    assert not (tmp_path / "b" / "ema.safetensors").exists()
    train_diffusion(cfg, Z, tmp_path / "b", device="cpu", progress=False, resume=True)
    a, b = _weights(tmp_path / "a" / "checkpoint.pt"), _weights(tmp_path / "b" / "checkpoint.pt")
    assert a["step"] == b["step"] == 7
    for k in a["nets"]["unet"]:
        assert torch.equal(a["nets"]["unet"][k], b["nets"]["unet"][k]), k
        assert torch.equal(a["emas"]["unet"][k], b["emas"]["unet"][k]), k
    assert a["history"] == b["history"]
    # and an unrelated seed does give different weights (the comparison can fail)
    other = make_config("IndianPines", "HUD", "smoke", {**TINY, "train": {**TINY["train"], "seed": 1}})
    train_diffusion(other, Z, tmp_path / "c", device="cpu", progress=False)
    c = _weights(tmp_path / "c" / "checkpoint.pt")
    assert not all(torch.equal(a["nets"]["unet"][k], c["nets"]["unet"][k]) for k in a["nets"]["unet"])


def test_hud_registry_round_trip_and_reuse(scene, tmp_path):
    gen = models.create("HUD").fit(scene, "smoke", tmp_path, overrides=TINY, progress=False)
    run = gen.run_dir_
    assert run.parent == tmp_path / "IndianPines" / "HUD" and run.name.startswith("smoke-")
    assert (run / "DONE").is_file() and json.loads((run / "config.json").read_text())["model"] == "HUD"
    Y, X = gen.sample(3, random_state=1, sampler="ddim", steps=4, return_abundances=True)
    assert Y.shape == (3, 200, 16, 16) and X.shape == (3, 16, 16, 16)
    # untrained-ish network: the simplex holds anyway (softmax)
    assert X.min() >= 0 and np.abs(X.sum(1) - 1).max() < 1e-5
    back = models.load(run)
    np.testing.assert_array_equal(back.sample(3, random_state=1, sampler="ddim", steps=4), Y)
    # Z's support [ln e, ln(1 + e)] (eq. 4) is what relax gives the simplex's vertices
    lo, hi = gen.z0_range()
    Zv = uae.relax(np.eye(gen.uae_.d)[:, :, None])  # (d, d vertices, 1)
    assert lo == pytest.approx(Zv.min(), abs=1e-12) and hi == pytest.approx(Zv.max(), abs=1e-12)
    _, Xc = gen.sample(3, random_state=1, sampler="ddim", steps=4, clip_z0=True, return_abundances=True)
    assert Xc.min() >= 0 and np.abs(Xc.sum(1) - 1).max() < 1e-5
    assert not np.array_equal(Xc, X), "clip_z0 had no effect on an untrained network"
    mtime = (run / "ema.safetensors").stat().st_mtime_ns
    again = models.create("HUD").fit(scene, "smoke", tmp_path, overrides=TINY, progress=False)
    assert again.run_dir_ == run and (run / "ema.safetensors").stat().st_mtime_ns == mtime, "finished run was retrained"


@pytest.mark.parametrize("name", models.names(controls=True))
def test_controls_registered_and_sample(scene, tmp_path, name):
    assert models.is_control(name)
    g = models.create(name).fit(scene, "smoke", tmp_path, progress=False)
    Y = g.sample(4, random_state=0)
    assert Y.shape == (4, 200, 32, 32) and Y.dtype == np.float32 and np.isfinite(Y).all()
    np.testing.assert_array_equal(models.load(g.run_dir_).sample(4, random_state=0), Y)


def test_registry_rejects_unknown_and_duplicates():
    with pytest.raises(ValueError, match="model: unknown model 'GAN9'"):
        models.get("GAN9")
    with pytest.raises(ValueError, match="registered already"):
        models.register("HUD", "hudlib.models.hud:HUD")
    assert "HUD" in models.names(controls=False) and "HUD" not in models.names(controls=True)


@pytest.mark.slow
def test_cli_train_and_sample(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["train", "--scene", "IndianPines", "--model", "HUD", "--profile", "smoke", "--out", "runs",
                     "--steps", "3", "--device", "cpu", "--quiet"]) == 0
    run = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert (run / "DONE").is_file()
    assert cli_main(["sample", "--run", str(run), "--n", "2", "--sampler", "ddim", "--steps", "3", "--seed", "0",
                     "--out", "s.npz", "--quiet"]) == 0
    z = np.load(tmp_path / "s.npz")
    assert z["Y"].shape == (2, 200, 32, 32) and z["X"].shape == (2, 16, 32, 32)
    meta = json.loads(str(z["meta"]))
    assert meta["sampler"] == {"sampler": "ddim", "steps": 3, "eta": 0.0, "clip_z0": False}  # what was run
    # the options reach the sampler: the ancestral sampler gives other samples, and says so
    assert cli_main(["sample", "--run", str(run), "--n", "2", "--sampler", "ddpm", "--seed", "0", "--out", "p.npz",
                     "--quiet"]) == 0
    p = np.load(tmp_path / "p.npz")
    assert json.loads(str(p["meta"]))["sampler"]["sampler"] == "ddpm" and not np.array_equal(p["Y"], z["Y"])
    # DPM-Solver++(2M): other samples from the same Z_T, recorded; it has no eta either
    assert cli_main(["sample", "--run", str(run), "--n", "2", "--sampler", "dpmpp2m", "--steps", "3", "--seed", "0",
                     "--out", "m.npz", "--quiet"]) == 0
    m = np.load(tmp_path / "m.npz")
    assert json.loads(str(m["meta"]))["sampler"] == {"sampler": "dpmpp2m", "steps": 3, "eta": None, "clip_z0": False}
    assert not np.array_equal(m["Y"], z["Y"])
    assert cli_main(["sample", "--run", str(run), "--n", "2", "--sampler", "dpmpp2m", "--eta", "1", "--out", "e.npz",
                     "--quiet"]) == 2
    assert ("eta: only the DDIM samplers (ddim, ddim-lambda) have an eta; the dpmpp2m sampler takes none"
            in capsys.readouterr().err)
    # DDIM on the λ grid: takes η, recorded under its own name, other samples than the time grid's
    assert cli_main(["sample", "--run", str(run), "--n", "2", "--sampler", "ddim-lambda", "--steps", "3", "--eta",
                     "1", "--seed", "0", "--out", "l.npz", "--quiet"]) == 0
    lam = np.load(tmp_path / "l.npz")
    assert json.loads(str(lam["meta"]))["sampler"] == {"sampler": "ddim-lambda", "steps": 3, "eta": 1.0,
                                                       "clip_z0": False}
    assert json.loads(str(lam["meta"]))["sampling_key"] == "ddim-lambda3-eta1.0"
    assert not np.array_equal(lam["Y"], z["Y"])
    # an option a generator has not is refused in one line, nothing written
    vae = models.create("VAE").fit(load_scene("IndianPines"), "smoke", tmp_path / "runs", progress=False)
    assert cli_main(["sample", "--run", str(vae.run_dir_), "--n", "2", "--sampler", "ddpm", "--out", "v.npz",
                     "--quiet"]) == 2
    assert "VAE: unknown sampler option(s) sampler; it accepts none" in capsys.readouterr().err
    assert not (tmp_path / "v.npz").exists()
    assert cli_main(["sample", "--run", str(run), "--n", "2", "--sampler", "ddpm", "--eta", "0.5", "--out", "e.npz",
                     "--quiet"]) == 2  # the ancestral sampler has no eta
    assert "eta: only the DDIM samplers (ddim, ddim-lambda) have an eta" in capsys.readouterr().err


def test_cli_lists_exactly_its_subcommands(capsys):
    with pytest.raises(SystemExit):
        cli_main(["--help"])
    out = capsys.readouterr().out
    listed = set(out.split("{", 1)[1].split("}", 1)[0].split(","))
    assert listed == {"download", "train", "sample", "synthesize", "layout", "evaluate", "tables", "figures",
                      "checkpoints"}
    for cmd in listed:
        with pytest.raises(SystemExit) as e:
            cli_main([cmd, "--help"])
        assert e.value.code == 0


DDP_SCRIPT = r"""
import os, sys, hashlib, torch, numpy as np
from hudlib.config import make_config
from hudlib.train import train_diffusion
cfg = make_config("IndianPines", "HUD", "smoke", {"unet": dict(model_channels=8, channel_mult=(1, 2),
    num_res_blocks=1, attention_resolutions=(), num_heads=1), "train": dict(steps=4, batch_size=2, ckpt_every=2,
    patch_size=16)})
rng = np.random.default_rng(0)
X = rng.dirichlet(np.ones(5), size=(24, 24)).transpose(2, 0, 1)
Z = torch.from_numpy(np.log(X + np.exp(-np.log(5) - 8)).astype(np.float32))
out = sys.argv[1]
import hudlib.train as T
captured = {}
orig = T._ema_update
def spy(ema, model, decay):
    orig(ema, model, decay)
    captured["model"] = model
T._ema_update = spy
train_diffusion(cfg, Z, out, device="cpu", progress=False)
h = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in captured["model"].parameters())).hexdigest()
open(os.path.join(out, f"rank{os.environ['RANK']}.sha"), "w").write(h)
from hudlib.utils import shutdown_distributed
shutdown_distributed()
"""


@pytest.mark.slow
def test_ddp_two_processes_hold_identical_weights(tmp_path, torchrun):
    torchrun(DDP_SCRIPT, tmp_path / "run")
    h0 = (tmp_path / "run" / "rank0.sha").read_text()
    h1 = (tmp_path / "run" / "rank1.sha").read_text()
    assert h0 == h1
    ck = _weights(tmp_path / "run" / "checkpoint.pt")
    assert ck["step"] == 4 and len(ck["rng_per_rank"]) == 2
    # the ranks drew different crops: their data RNG states differ
    assert ck["rng_per_rank"][0]["data_rng"] != ck["rng_per_rank"][1]["data_rng"]


def test_uae_copy_is_real_crops_through_huds_autoencoder(scene, tmp_path):
    from hudlib import uae as uae_mod
    from hudlib.data import crop, patch_corners

    g = models.create("UAECopy").fit(scene, "smoke", tmp_path, progress=False)
    Y = g.sample(3, random_state=4)
    m = uae_mod.UnmixingAutoEncoder.from_scene(scene, random_state=0)  # HUD's UAE under the same config
    corners = patch_corners(scene.cube.shape, 32, 3, np.random.default_rng(4))
    R = crop(scene.cube, corners, 32)
    np.testing.assert_allclose(Y, np.stack([m.decode(m.encode(r)) for r in R]), rtol=1e-5, atol=1e-6)
    # its spectra lie in the endmembers' simplex: unmixing them again reconstructs them; real crops do not
    def residual(P):
        return float(np.abs(np.stack([m.decode(m.encode(p.astype(np.float64))) for p in P]) - P).mean())
    assert residual(Y) < 1e-5 < 1e-3 < residual(R)


@pytest.mark.slow
@pytest.mark.parametrize("name", models.names())
def test_same_seed_same_machine_is_bit_identical(scene, tmp_path, name):
    """Every registered generator, fitted twice at the smoke profile with the same seed, has the same weights hash
    (a content hash of what sampling reads) and draws identical samples."""
    a = models.create(name).fit(scene, "smoke", tmp_path / "a", progress=False)
    b = models.create(name).fit(scene, "smoke", tmp_path / "b", progress=False)
    assert a.weights_hash() == b.weights_hash()
    np.testing.assert_array_equal(a.sample(2, random_state=3), b.sample(2, random_state=3))
    if not models.is_control(name):
        c = models.create(name).fit(scene, "smoke", tmp_path / "c", overrides={"train": {"seed": 1}}, progress=False)
        assert c.weights_hash() != a.weights_hash(), "another training seed must give other weights"
