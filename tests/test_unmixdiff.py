"""UD and UBF: the learned unmixing autoencoder (simplex output for any band count, losses against brute force,
planted endmembers recovered), both training stages' exact resume, UBF's pseudo-RGB input, both decodings, the
registry and the tables' variant rows."""
import json

import numpy as np
import pytest
import torch

from hudlib import models, tables
from hudlib.config import make_config
from hudlib.data import Scene
from hudlib.diffusion import GaussianDiffusion
from hudlib.models.unmixdiff import UnmixingNet, charbonnier, sad_loss, tv_loss
from hudlib.train import train_loop
from hudlib.unmixing import match_endmembers

UDS = ["UD", "UBF"]


def _planted(bands=30, side=48, p=3, seed=0):
    """A linear-mixing scene with known endmembers E ``(bands, p)`` (smooth bumps) and sharp abundance maps (over
    half the pixels > 95 % one endmember)."""
    rng = np.random.default_rng(seed)
    wl = np.linspace(0, 1, bands)
    E = np.stack([0.2 + 0.6 * np.exp(-((wl - c) / 0.25) ** 2) for c in rng.uniform(0, 1, p)], 1)
    yy, xx = np.mgrid[:side, :side] / side
    logits = 4 * np.stack([np.sin(6 * xx + k) + np.cos(5 * yy * (k + 1)) for k in range(p)])
    A = np.exp(logits - logits.max(0))
    A /= A.sum(0)
    cube = np.einsum("bk,krc->brc", E, A).astype(np.float32)
    s = Scene(name="Planted", cube=cube, raw_range=(0.0, 1.0), gt=np.zeros((side, side), np.int64), n_classes=p,
              rgb_bands=(bands - 1, bands // 2, 0))
    return s, E, A


@pytest.mark.parametrize("bands,rgb", [(7, False), (103, False), (200, False), (176, True)])
def test_encoder_output_is_on_the_simplex_for_any_band_count(bands, rgb):
    torch.manual_seed(0)
    net = UnmixingNet(bands, 5, widths=(8, 12), n_blocks=1, reduction=4,
                      in_bands=[bands - 1, bands // 2, 0] if rgb else None).double()
    Y = 3 * torch.randn(2, bands, 16, 16, dtype=torch.float64)  # any input, negative values included
    with torch.no_grad():
        A, Y_hat = net(Y)
    assert A.shape == (2, 5, 16, 16) and Y_hat.shape == Y.shape
    assert A.min() >= 0
    np.testing.assert_allclose(A.sum(1).numpy(), 1.0, atol=1e-6)
    assert net.endmembers.shape == (bands, 5)
    np.testing.assert_allclose(Y_hat.detach().numpy(), np.einsum("bp,nphw->nbhw", net.endmembers.detach().numpy(),
                                                                 A.detach().numpy()), atol=1e-10)


def test_losses_against_brute_force():
    rng = np.random.default_rng(1)
    y, yh = rng.normal(size=(2, 6, 3, 4)), rng.normal(size=(2, 6, 3, 4))
    ch = np.mean([np.sqrt((a - b) ** 2 + 1e-6) for a, b in zip(yh.ravel(), y.ravel())])
    assert charbonnier(torch.from_numpy(yh), torch.from_numpy(y), 1e-3).item() == pytest.approx(ch, rel=1e-12)
    angles = []
    for n in range(2):
        for r in range(3):
            for c in range(4):
                a, b = yh[n, :, r, c], y[n, :, r, c]
                angles.append(np.arccos(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b)))
    assert sad_loss(torch.from_numpy(yh), torch.from_numpy(y)).item() == pytest.approx(np.mean(angles), rel=1e-9)
    assert sad_loss(torch.from_numpy(y), torch.from_numpy(2.5 * y)).item() < 1e-3  # scale-invariant
    E = rng.normal(size=(9, 4))
    by_em = [(E[b, k + 1] - E[b, k]) ** 2 for b in range(9) for k in range(3)]
    by_band = [(E[b + 1, k] - E[b, k]) ** 2 for b in range(8) for k in range(4)]
    assert tv_loss(torch.from_numpy(E), "endmembers").item() == pytest.approx(2 * np.mean(by_em), rel=1e-12)
    assert tv_loss(torch.from_numpy(E), "bands").item() == pytest.approx(2 * np.mean(by_band), rel=1e-12)
    with pytest.raises(ValueError, match="unmixdiff.tv_axis"):
        tv_loss(torch.from_numpy(E), "rows")


def test_l1_diffusion_loss_against_brute_force():
    diff = GaussianDiffusion.linear(50, 1e-6, 1e-2)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.rand(3, 2, 4, 4, generator=g, dtype=torch.float64), torch.randn(3, 2, 4, 4, generator=g,
                                                                                       dtype=torch.float64)
    t = torch.tensor([0, 17, 49])

    def model(z, tt):
        return 0.3 * z

    zt = np.sqrt(diff.alphas_cumprod[t.numpy()])[:, None, None, None] * x0.numpy() + \
        np.sqrt(1 - diff.alphas_cumprod[t.numpy()])[:, None, None, None] * noise.numpy()
    l1 = np.mean(np.abs(noise.numpy() - 0.3 * zt))
    assert diff.training_loss(model, x0, t=t, noise=noise, norm="l1").item() == pytest.approx(l1, rel=1e-12)
    with pytest.raises(ValueError, match="norm must be one of"):
        diff.training_loss(model, x0, t=t, noise=noise, norm="l3")


@pytest.mark.slow
def test_learned_autoencoder_recovers_planted_endmembers(tmp_path):
    s, E, _ = _planted()
    cfg = make_config(s.name, "UD", "smoke", {"unmixdiff": dict(uae_steps=1200, uae_lr=3e-3, uae_batch=8,
                                                                widths=(16, 16), n_blocks=1)})
    g = models.create("UD")
    ucfg = g.uae_config(cfg)
    _, plan, _ = train_loop(ucfg, lambda d: g._uae_plan(s, ucfg, d), s.cube, tmp_path, device="cpu", progress=False)
    E_hat = plan.nets["uae"].endmembers.detach().double().numpy()
    _, angles = match_endmembers(E_hat, E)
    assert np.median(angles) <= 0.1, angles


class _Stop(Exception):
    pass


@pytest.mark.parametrize("stage", ["uae", "diffusion"])
@pytest.mark.parametrize("name", UDS)
def test_exact_resume_of_both_stages(name, stage, tmp_path):
    s, _, A = _planted(bands=12, side=40)
    cfg = make_config(s.name, name, "smoke", {"train": {"steps": 7, "ckpt_every": 3},
                                              "unmixdiff": {"uae_steps": 7}})
    g = models.create(name)
    if stage == "uae":
        cfg = g.uae_config(cfg)
        cfg = type(cfg).from_dict({**cfg.to_dict(), "train": {**cfg.to_dict()["train"], "ckpt_every": 3}})
        data = s.cube

        def build(dev):
            return g._uae_plan(s, cfg, dev)
    else:
        data = (2 * A - 1).astype(np.float32)

        def build(dev):
            return g._diffusion_plan(cfg, 3, dev)

    def stop(step, loss):
        if step == 5:
            raise _Stop

    train_loop(cfg, build, data, tmp_path / "a", device="cpu", progress=False)
    with pytest.raises(_Stop):
        train_loop(cfg, build, data, tmp_path / "b", device="cpu", progress=False, on_step=stop)
    train_loop(cfg, build, data, tmp_path / "b", device="cpu", progress=False, resume=True)
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 7 and a["history"] == b["history"]
    for kind in ("nets", "emas"):
        for net in a[kind]:
            for k in a[kind][net]:
                assert torch.equal(a[kind][net][k], b[kind][net][k]), (kind, net, k)


def test_fit_resumes_in_the_diffusion_stage_to_the_same_weights(tmp_path, monkeypatch):
    s, _, _ = _planted(bands=12, side=40)
    ov = {"train": {"steps": 6, "ckpt_every": 2}, "unmixdiff": {"uae_steps": 4}}
    full = models.create("UD").fit(s, "smoke", tmp_path / "a", overrides=ov, progress=False)
    import hudlib.models.unmixdiff as U
    real_loop = U.train_loop

    def interrupted(cfg, build, data, run_dir, **kw):
        if run_dir.name == "diffusion" and not kw.get("resume"):
            kw["on_step"] = lambda step, loss: (_ for _ in ()).throw(_Stop()) if step == 3 else None
        return real_loop(cfg, build, data, run_dir, **kw)

    monkeypatch.setattr(U, "train_loop", interrupted)
    with pytest.raises(_Stop):
        models.create("UD").fit(s, "smoke", tmp_path / "b", overrides=ov, progress=False, resume=False)
    resumed = models.create("UD").fit(s, "smoke", tmp_path / "b", overrides=ov, progress=False, resume=True)
    assert resumed.weights_hash() == full.weights_hash()


def test_ubf_reads_only_the_pseudo_rgb_bands(tmp_path):
    s, _, _ = _planted(bands=12, side=40)
    other = np.setdiff1d(np.arange(s.bands), s.rgb_bands)
    patches = s.cube[None, :, :32, :32].copy()
    changed = patches.copy()
    changed[:, other] = np.random.default_rng(0).random((1, len(other), 32, 32), dtype=np.float32)
    for name in UDS:
        g = models.create(name).fit(s, "smoke", tmp_path, progress=False)
        same = np.array_equal(g.encode(patches), g.encode(changed))
        assert same == (name == "UBF"), name  # UD reads every band, UBF only the pseudo-RGB ones
        assert g.nets_["uae"].decode(torch.from_numpy(g.encode(patches))).shape[1] == s.bands  # all bands back
        rgb_changed = patches.copy()
        rgb_changed[:, s.rgb_bands[0]] *= 0.5
        assert not np.array_equal(g.encode(patches), g.encode(rgb_changed))


def test_both_decodings(tmp_path):
    s, _, _ = _planted(bands=12, side=40)
    g = models.create("UD").fit(s, "smoke", tmp_path, progress=False)
    x = np.random.default_rng(0).uniform(-1.3, 1.3, (4, 3, 8, 8))  # off the simplex, beyond [-1, 1]
    E = g.nets_["uae"].endmembers.detach().double().numpy()
    Y, A = g.decode(x, "simplex")
    assert A.min() >= 0
    np.testing.assert_allclose(A.sum(1), 1.0, atol=1e-6)
    for n, r, c in [(0, 0, 0), (3, 7, 5), (1, 4, 2)]:  # projection: the closest simplex point to (x+1)/2
        v, a = (x[n, :, r, c] + 1) / 2, A[n, :, r, c].astype(np.float64)
        rng = np.random.default_rng(r)
        for q in rng.dirichlet(np.ones(3), 200):
            assert np.sum((v - a) ** 2) <= np.sum((v - q) ** 2) + 1e-6
    np.testing.assert_allclose(Y, np.einsum("bp,nphw->nbhw", E, A), atol=1e-5)
    Ya, Aa = g.decode(x, "authors")
    En = (E - E.min()) / (E.max() - E.min())
    np.testing.assert_allclose(Aa, (x + 1) / 2, atol=1e-6)
    np.testing.assert_allclose(Ya, np.einsum("bp,nphw->nbhw", En, (x + 1) / 2), atol=1e-5)
    with pytest.raises(ValueError, match="unmixdiff.decode"):
        g.decode(x, "other")


@pytest.mark.parametrize("name", UDS)
def test_registry_round_trip_and_variant_shares_the_diffusion_samples(name, tmp_path):
    s, _, _ = _planted(bands=17, side=40)
    g = models.create(name).fit(s, "smoke", tmp_path, progress=False)
    Y, X = g.sample(5, random_state=3, return_abundances=True)
    assert Y.shape == (5, 17, 32, 32) and X.shape == (5, 3, 32, 32) and Y.dtype == np.float32
    np.testing.assert_allclose(X.sum(1), 1.0, atol=1e-6)
    back = models.get(name).load(g.run_dir_, s)
    np.testing.assert_array_equal(back.sample(5, random_state=3), Y)
    assert not np.array_equal(back.sample(5, random_state=4), Y)
    assert models.paper_name(name) == name
    v = models.get(name).variants["authors-decoding"]
    ga = models.create(name).fit(s, make_config(s.name, name, "smoke", v), tmp_path, progress=False)
    assert ga.run_dir_ == g.run_dir_ and ga.sampling_key() != g.sampling_key()  # same weights, other samples key
    Ya, Xa = ga.sample(5, random_state=3, return_abundances=True)
    np.testing.assert_allclose(Xa, g.decode(g.sample_latent(5, 3), "authors")[1], atol=1e-6)
    assert not np.allclose(Ya, Y)
    info = json.loads((g.run_dir_ / "train_info.json").read_text())
    assert set(info["stages"]) == {"uae", "diffusion"} and {"charbonnier", "diffusion_loss"} <= set(info["final_losses"])


def test_tables_put_the_variant_row_under_its_model_and_the_paper_row_after_it():
    rec = {"metrics": {"F_p": 0.9}, "n": 8, "machine": "m", "control": False, "weights_hash": "h"}
    res = {"HUD": rec, "UD": rec, "UD [authors-decoding]": rec, "UBF": rec}
    lines = [ln.split("|")[1].strip() for ln in tables.metric_table("IndianPines", res, "smoke").splitlines()
             if ln.startswith("| ") and "model" not in ln]
    assert lines.index("**UD** (ours)") + 1 == lines.index("**UD** [authors-decoding] (ours)")
    assert lines.index("**UD** [authors-decoding] (ours)") + 1 == lines.index("UD (paper)")
    assert lines.index("**UBF** (ours)") + 1 == lines.index("UBF (paper)")
    assert tables.variant_row("UD", "authors-decoding") == "UD [authors-decoding]"


DDP_FIT = r"""
import os, sys, hashlib, numpy as np, torch
from hudlib import models
from hudlib.data import Scene
name, out = sys.argv[1], sys.argv[2]
cube = np.random.default_rng(0).random((12, 40, 40)).astype(np.float32)
s = Scene(name="Tiny", cube=cube, raw_range=(0.0, 1.0), gt=np.zeros((40, 40), np.int64), n_classes=3,
          rgb_bands=(11, 6, 0))
g = models.create(name).fit(s, "smoke", out, overrides={"train": {"steps": 3, "ckpt_every": 2},
                                                        "unmixdiff": {"uae_steps": 3}}, progress=False)
h = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for m in g.nets_.values() for p in m.parameters()))
open(os.path.join(out, "rank" + os.environ["RANK"]), "w").write(h.hexdigest())
from hudlib.utils import shutdown_distributed
shutdown_distributed()
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", UDS)
def test_fit_under_torchrun_gives_every_rank_the_same_weights(name, tmp_path, torchrun):
    """``fit`` under torchrun (2 CPU processes, gloo): both stages train data-parallel, rank 0 writes weights.pt and
    every rank loads the same weights after the barrier."""
    torchrun(DDP_FIT, name, tmp_path / "runs")
    assert (tmp_path / "runs" / "rank0").read_text() == (tmp_path / "runs" / "rank1").read_text()
    run = next((tmp_path / "runs").glob(f"Tiny/{name}/smoke-*"))
    assert (run / "DONE").is_file() and json.loads((run / "train_info.json").read_text())["world_size"] == 2
