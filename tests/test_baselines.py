"""The baselines (VAE, WGAN-GP, MPRNet) on the shared training loop: shapes for several band counts, each model's
defining computation against an independent transcription, learning on a tiny scene, exact resume, registry round
trip."""
import numpy as np
import pytest
import torch

import hudlib.models.wgan as W
from hudlib import models
from hudlib.config import make_config
from hudlib.data import Scene
from hudlib.models.mprnet import MPRNetNet
from hudlib.models.vae import VAENet, kl_divergence
from hudlib.models.wgan import Critic, Generator32, gradient_penalty
from hudlib.train import train_loop

BASELINES = ["VAE", "WGAN-GP", "MPRNet"]


def _scene(bands=24, side=40, seed=0, name="Tiny"):
    """A smooth synthetic scene: 3 endmembers mixed by blob-shaped abundances (bands, side, side) in [0, 1]."""
    rng = np.random.default_rng(seed)
    E = rng.uniform(0.1, 0.9, (bands, 3))
    yy, xx = np.mgrid[:side, :side] / side
    A = np.stack([np.sin(3 * xx + 1) + 1.2, np.cos(4 * yy) + 1.2, xx * yy + 0.3])
    A = A / A.sum(0)
    cube = np.einsum("bk,krc->brc", E, A).astype(np.float32)
    return Scene(name=name, cube=cube, raw_range=(0.0, 1.0), gt=np.zeros((side, side), np.int64), n_classes=3,
                 rgb_bands=(bands - 1, bands // 2, 0))


@pytest.mark.parametrize("bands", [200, 103, 176])
def test_output_shapes_for_band_counts(bands):
    torch.manual_seed(0)
    vae = VAENet(bands, 32, latent=4, widths=(8, 8, 4), fc=8).eval()
    xh, mu, logvar = vae(torch.rand(2, bands, 32, 32))
    assert xh.shape == (2, bands, 32, 32) and mu.shape == logvar.shape == (2, 4)
    assert vae.decode(torch.randn(3, 4)).shape == (3, bands, 32, 32)
    G, D = Generator32(bands, 32, z_dim=8, width=16).eval(), Critic(bands, 32, width=4)
    y = G(torch.randn(3, 8))
    assert y.shape == (3, bands, 32, 32) and D(y).shape == (3,)
    net = MPRNetNet(bands, n_feat=8, scale_unetfeats=4, scale_orsnetfeats=4, num_cab=1)
    outs = net(torch.rand(2, 3, 32, 32))
    assert [o.shape for o in outs] == [(2, bands, 32, 32)] * 3


def test_vae_kl_is_the_closed_form_and_outputs_stay_in_the_data_range():
    g = torch.Generator().manual_seed(1)
    mu, logvar = torch.randn(5, 7, generator=g, dtype=torch.float64), torch.randn(5, 7, generator=g,
                                                                                   dtype=torch.float64)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    assert kl_divergence(mu, logvar).item() == pytest.approx(torch.distributions.kl_divergence(q, p).sum().item(),
                                                             rel=1e-12)
    assert kl_divergence(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0.0
    vae = VAENet(10, 16, latent=3, widths=(4, 4, 4), fc=4).eval()
    out = vae.decode(10 * torch.randn(64, 3))
    assert out.min() >= 0 and out.max() <= 1


def test_gradient_penalty_equals_per_sample_autograd():
    torch.manual_seed(0)
    D = Critic(6, 16, width=4).double()
    real, fake = torch.rand(5, 6, 16, 16, dtype=torch.float64), torch.rand(5, 6, 16, 16, dtype=torch.float64)
    alpha = torch.rand(5, dtype=torch.float64)
    brute = []
    for i in range(5):  # one interpolate at a time: InstanceNorm makes the critic per-sample
        x = (alpha[i] * real[i:i + 1] + (1 - alpha[i]) * fake[i:i + 1]).requires_grad_(True)
        (g,) = torch.autograd.grad(D(x).sum(), x)
        brute.append((g.norm() - 1) ** 2)
    assert gradient_penalty(D, real, fake, alpha).item() == pytest.approx(torch.stack(brute).mean().item(),
                                                                          rel=1e-10)


def test_wgan_interpolation_option_changes_the_draw(tmp_path):
    s = _scene()
    seen = {}
    for mode in ("uniform", "normal"):  # spy on the penalty's interpolation weights
        cfg = make_config(s.name, "WGAN-GP", "smoke", {"train": {"steps": 1}, "wgan": {"interpolation": mode}})
        orig = W.gradient_penalty

        def spy(critic, real, fake, alpha):
            seen.setdefault(mode, []).append(alpha.clone())
            return orig(critic, real, fake, alpha)

        W.gradient_penalty = spy
        try:
            train_loop(cfg, lambda dev: models.create("WGAN-GP")._plan(s, cfg, dev), s.cube, tmp_path / mode,
                       device="cpu", progress=False)
        finally:
            W.gradient_penalty = orig
    u, n = torch.cat(seen["uniform"]), torch.cat(seen["normal"])
    assert ((u >= 0) & (u <= 1)).all() and (n < 0).any()


def test_mprnet_rejects_sizes_not_divisible_by_8_and_reads_only_the_pseudo_rgb_bands(tmp_path):
    net = MPRNetNet(5, n_feat=4, scale_unetfeats=2, scale_orsnetfeats=2, num_cab=1)
    with pytest.raises(ValueError, match=r"MPRNet input: expected \(n, 3, H, W\) with H and W multiples of 8"):
        net(torch.rand(1, 3, 20, 32))
    s = _scene()
    g = models.create("MPRNet").fit(s, "smoke", tmp_path, progress=False)
    Y = g.sample(4, random_state=2)
    other = np.setdiff1d(np.arange(s.bands), s.rgb_bands)
    g.cube_ = g.cube_.copy()
    g.cube_[other] = np.random.default_rng(0).random((len(other),) + g.cube_.shape[1:], dtype=np.float32)
    np.testing.assert_array_equal(g.sample(4, random_state=2), Y)
    g.cube_[s.rgb_bands[0]] *= 0.5
    assert not np.array_equal(g.sample(4, random_state=2), Y)


def _learns(name, tmp_path):
    """(before, after): a model-specific error on the tiny scene at step 0 and after a short training."""
    s = _scene()
    ov = {"VAE": {"train": {"steps": 60, "lr": 3e-3}},
          "WGAN-GP": {"train": {"steps": 40, "lr": 2e-3}},
          "MPRNet": {"train": {"steps": 40, "lr": 2e-3}}}[name]
    g = models.create(name).fit(s, "smoke", tmp_path, overrides=ov, progress=False)
    from hudlib.train import load_losses
    h = load_losses(g.run_dir_)
    if name == "WGAN-GP":  # a GAN's losses need not fall: its samples' mean spectrum must approach the scene's
        g0 = models.create(name).fit(s, "smoke", tmp_path / "0", overrides={"train": {"steps": 1}}, progress=False)
        target = s.cube.mean((1, 2))
        err = [np.abs(m.sample(64, 0).mean((0, 2, 3)) - target).mean() for m in (g0, g)]
        return err[0], err[1]
    curve = h["recon"] if name == "VAE" else h["rmse"]
    return float(np.mean(curve[:5])), float(np.mean(curve[-5:]))


@pytest.mark.parametrize("name", BASELINES)
def test_each_baseline_learns_on_a_tiny_scene(name, tmp_path):
    before, after = _learns(name, tmp_path)
    assert after < 0.7 * before, (name, before, after)


class _Stop(Exception):
    pass


@pytest.mark.parametrize("name", BASELINES)
def test_exact_resume(name, tmp_path):
    s = _scene()
    cfg = make_config(s.name, name, "smoke", {"train": {"steps": 7, "ckpt_every": 3}})

    def build(dev):
        return models.create(name)._plan(s, cfg, dev)

    def stop(step, loss):
        if step == 5:
            raise _Stop

    train_loop(cfg, build, s.cube, tmp_path / "a", device="cpu", progress=False)
    with pytest.raises(_Stop):
        train_loop(cfg, build, s.cube, tmp_path / "b", device="cpu", progress=False, on_step=stop)
    train_loop(cfg, build, s.cube, tmp_path / "b", device="cpu", progress=False, resume=True)
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 7 and a["history"] == b["history"]
    for net in a["nets"]:
        for k in a["nets"][net]:
            assert torch.equal(a["nets"][net][k], b["nets"][net][k]), (net, k)
    for opt in a["optimizers"]:
        assert a["optimizers"][opt]["param_groups"] == b["optimizers"][opt]["param_groups"]


@pytest.mark.parametrize("name", BASELINES)
def test_registry_round_trip(name, tmp_path):
    s = _scene(bands=17)
    g = models.create(name).fit(s, "smoke", tmp_path, progress=False)
    Y = g.sample(5, random_state=3)
    assert Y.shape == (5, 17, 32, 32) and Y.dtype == np.float32 and Y.min() >= 0 and Y.max() <= 1
    back = models.get(name).load(g.run_dir_, s)
    np.testing.assert_array_equal(back.sample(5, random_state=3), Y)
    assert not np.array_equal(back.sample(5, random_state=4), Y)
    assert models.paper_name(name) in ("VAE", "GAN", "MPRNet")


def test_learning_rate_schedules():
    s = _scene()
    vae = make_config(s.name, "VAE", "smoke", {"train": {"batch_size": 4}})
    plan = models.create("VAE")._plan(s, vae, torch.device("cpu"))
    epoch = (40 - 31) ** 2 // 4  # stride-1 32-px windows of the 40 x 40 scene per batch of 4
    assert plan.lr_factor(epoch - 1) == 1.0 and plan.lr_factor(epoch) == pytest.approx(vae.vae.lr_gamma)
    mpr = make_config(s.name, "MPRNet", "smoke")
    plan = models.create("MPRNet")._plan(s, mpr, torch.device("cpu"))
    assert plan.lr_factor(0) == pytest.approx(1.0)
    assert plan.lr_factor(mpr.train.steps) * mpr.train.lr == pytest.approx(mpr.mprnet.lr_min)


DDP_SCRIPT = r"""
import os, sys, hashlib, numpy as np
import hudlib.models.wgan as W
from hudlib import models
from hudlib.config import make_config
from hudlib.data import Scene
from hudlib.train import train_loop
name, out = sys.argv[1], sys.argv[2]
cube = np.random.default_rng(0).random((12, 40, 40)).astype(np.float32)
s = Scene(name="Tiny", cube=cube, raw_range=(0.0, 1.0), gt=np.zeros((40, 40), np.int64), n_classes=3,
          rgb_bands=(11, 6, 0))
cfg = make_config("Tiny", name, "smoke", {"train": {"steps": 3, "ckpt_every": 2}})
info, plan, emas = train_loop(cfg, lambda dev: models.create(name)._plan(s, cfg, dev), s.cube, out, device="cpu",
                              progress=False)
h = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for m in plan.nets.values() for p in m.parameters()))
open(os.path.join(out, "rank" + os.environ["RANK"]), "w").write(h.hexdigest())
from hudlib.utils import shutdown_distributed
shutdown_distributed()
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", BASELINES)
def test_ddp_two_processes_hold_identical_weights(name, tmp_path, torchrun):
    """Under torchrun (2 CPU processes, gloo) every network of every baseline stays identical across ranks, the
    WGAN-GP's gradient penalty (a double backward through the DDP-wrapped critic) included."""
    torchrun(DDP_SCRIPT, name, tmp_path / "run")
    assert (tmp_path / "run" / "rank0").read_text() == (tmp_path / "run" / "rank1").read_text()
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert ck["step"] == 3 and len(ck["rng_per_rank"]) == 2
