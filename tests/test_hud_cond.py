"""HUD-cond: layout conditioning, classifier-free guidance, the held-out region it never sees, exact resume.

Synthetic scenes built with numpy: two endmember spectra and a block class map (the conditioning), and a larger
three-class scene with unlabelled pixels (the split). Tiny U-Nets on one intra-op thread (small CPU workloads only
lose to thread synchronisation, and far more on a busy machine).
"""
import functools
import json

import numpy as np
import pytest
import torch

import hudlib.train as train_mod
import hudlib.unmixing as unmixing_mod
from hudlib import models
from hudlib.config import RunConfig, make_config
from hudlib.data import DataError, Scene
from hudlib.models import hud_cond
from hudlib.models.hud_cond import CondUNet, GuidedDenoiser, allowed_corners, one_hot
from hudlib.splits import KFOLD, SpatialKFold, mask_sha256

TINY_UNET = dict(model_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(), num_heads=1)
# the conditioning run: v-prediction with x0-hat clipping (as the quick profile), 160 steps of 8 crops
COND = {"unet": TINY_UNET, "train": dict(steps=160, batch_size=8, lr=2e-3, ckpt_every=160, ema_decay=0.99),
        "cond": dict(fold=None), "diffusion": dict(prediction="v", clip_z0=True)}
# a fold of a small k-fold on the 80 x 72 split scene (the project's 16-px cells and buffer leave it no 32-px crop)
SMALL_KFOLD = SpatialKFold(n_folds=5, block=8, buffer=4, n_candidates=8)
SPLIT = {"unet": TINY_UNET, "train": dict(steps=7, batch_size=2, ckpt_every=3),
         "cond": dict(fold=1, split=SMALL_KFOLD.spec)}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _two_class_scene(seed=0, rows=48, cols=48, bands=10, block=12):
    """Two classes in random 12-px blocks; class 1 pixels are 75-95 % of endmember 1, class 2 pixels 75-95 % of
    endmember 2 (the spectra are two opposite ramps). Returns (scene, E (bands, 2))."""
    rng = np.random.default_rng(seed)
    E = np.stack([np.linspace(0.2, 0.8, bands), np.linspace(0.8, 0.2, bands)], 1)
    gt = np.kron(rng.integers(1, 3, (rows // block, cols // block)), np.ones((block, block), np.int64))
    a = np.where(gt == 1, rng.uniform(0.75, 0.95, gt.shape), rng.uniform(0.05, 0.25, gt.shape))
    cube = np.einsum("bd,dhw->bhw", E, np.stack([a, 1 - a])).astype(np.float32)
    return Scene("TwoClass", cube, (0.0, 1.0), gt, 2, (0, 1, 2)), E


def _split_scene(seed=0, rows=80, cols=72, bands=8, block=8):
    """Three classes and unlabelled pixels in 8-px blocks, random Dirichlet mixtures of 3 endmembers plus noise."""
    rng = np.random.default_rng(seed)
    gt = np.kron(rng.integers(0, 4, (rows // block, cols // block)), np.ones((block, block), np.int64))
    E = rng.uniform(0.1, 0.9, (bands, 3))
    X = rng.dirichlet(np.ones(3), size=(rows, cols)).transpose(2, 0, 1)
    cube = (np.einsum("bd,dhw->bhw", E, X) + rng.normal(0, 0.01, (bands, rows, cols))).astype(np.float32)
    return Scene("Split", cube, (0.0, 1.0), gt, 3, (0, 1, 2))


def _layouts(n=6, seed=1):
    """Random 8-px blocks of classes 1 and 2 (the training map's blocks are 12 px)."""
    return np.kron(np.random.default_rng(seed).integers(1, 3, (n, 4, 4)), np.ones((8, 8), np.int64))


def _agreement(Y, E, L):
    """Share of pixels whose nearer endmember (1 or 2) is the layout's class; Y (n, bands, h, w)."""
    d = np.stack([((Y - E[None, :, k, None, None]) ** 2).sum(1) for k in range(E.shape[1])])
    return float(((d.argmin(0) + 1) == L).mean())


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    scene, E = _two_class_scene()
    g = models.create("HUD-cond").fit(scene, "smoke", tmp_path_factory.mktemp("cond"), overrides=COND,
                                      progress=False, device="cpu")
    return g, scene, E


@pytest.mark.slow
def test_layout_conditions_the_samples(fitted):
    """The requested layout is reproduced: the nearer endmember agrees with it on most pixels, for a layout and
    for its swap with the same seed (a network that ignored the map would give the same samples for both, whose
    agreements then sum to 1), with and without guidance; unconditional samples follow neither."""
    g, _, E = fitted
    L = _layouts()
    for w in (0.0, 2.0):
        a = _agreement(g.sample(6, 0, layout=L, guidance=w), E, L)
        b = _agreement(g.sample(6, 0, layout=3 - L, guidance=w), E, 3 - L)
        assert a > 0.7 and b > 0.7, (w, a, b)
    assert _agreement(g.sample(6, 0), E, L) < 0.7


def test_guidance_zero_is_the_conditional_model_bitwise(fitted):
    g, _, _ = fitted
    K, d = g.n_classes_, g.latent_channels()
    L = _layouts(3)
    gen = torch.Generator().manual_seed(0)
    z, t = torch.randn(3, d, 32, 32, generator=gen), torch.tensor([999, 500, 10])
    cond = one_hot(L, K)
    assert cond.shape == (3, K + 1, 32, 32) and torch.equal(cond.sum(1), torch.ones(3, 32, 32))
    calls = []
    hook = g.unet_.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    try:
        with torch.no_grad():
            ref = g.unet_(z, t, cond)
            calls.clear()
            m0, kw0 = g.model_for(torch.device("cpu"), layout=L, guidance=0.0)
            out0 = m0(z, t, **kw0(0, 3))
            assert calls == [3], "w = 0 must be exactly one network call on the batch"
            assert torch.equal(out0, ref)
            m2, kw2 = g.model_for(torch.device("cpu"), layout=L, guidance=2.0)
            assert isinstance(m2, GuidedDenoiser)
            out2 = m2(z[1:], t[1:], **kw2(1, 3))
            null = g.unet_(z[1:], t[1:], torch.zeros(2, K + 1, 32, 32))
            assert not torch.allclose(out2, ref[1:]), "guidance had no effect"
            torch.testing.assert_close(out2, 3.0 * ref[1:] - 2.0 * null, rtol=1e-5, atol=1e-5)
            mu, kwu = g.model_for(torch.device("cpu"))  # unconditional: the null map
            assert kwu(0, 3) == {} and torch.equal(mu(z, t), g.unet_(z, t, torch.zeros(3, K + 1, 32, 32)))
    finally:
        hook.remove()
    assert not torch.equal(null, ref[1:]), "the map does not reach the network"
    # unconditional sampling is sampling the null map
    kw = g._sampler_kwargs(g.sampler_settings())
    with torch.no_grad():
        zn = g.diffusion_.sample(lambda z, t: g.unet_(z, t, torch.zeros(z.shape[0], K + 1, 32, 32)), (2, d, 32, 32),
                                 generator=torch.Generator().manual_seed(5), device=torch.device("cpu"), **kw)
    np.testing.assert_array_equal(g.sample_latent(2, 5, device="cpu"), zn.numpy())


def test_determinism_round_trip_and_one_window_synthesis(fitted):
    g, _, _ = fitted
    L = _layouts(2)
    Y = g.sample(2, 3, layout=L, guidance=1.0)
    np.testing.assert_array_equal(g.sample(2, 3, layout=L, guidance=1.0), Y)
    assert not np.array_equal(g.sample(2, 4, layout=L, guidance=1.0), Y)
    back = models.load(g.run_dir_)
    assert type(back) is type(g) and back.n_classes_ == 2
    np.testing.assert_array_equal(back.sample(2, 3, layout=L, guidance=1.0), Y)
    np.testing.assert_array_equal(back.sample(2, 3), g.sample(2, 3))
    for w in (0.0, 1.0):
        Ys, Xs = g.synthesize(32, 32, random_state=2, layout=L[0], guidance=w)
        Y1, X1 = g.sample(1, 2, layout=L[:1], guidance=w, return_abundances=True)
        np.testing.assert_array_equal(Ys, Y1[0])
        np.testing.assert_array_equal(Xs, X1[0])
    # larger canvases: every window is conditioned on its crop of the map (naive tiling: the map edge-padded)
    M = np.kron(np.random.default_rng(0).integers(1, 3, (5, 6)), np.ones((8, 8), np.int64))[:40, :44]
    for tiling in ("multidiffusion", "naive"):
        Yc, Xc = g.synthesize(40, 44, random_state=0, layout=M, tiling=tiling)
        assert Yc.shape == (10, 40, 44) and Xc.shape == (2, 40, 44) and np.isfinite(Yc).all()
        assert not np.array_equal(Yc, g.synthesize(40, 44, random_state=0, tiling=tiling)[0])


def test_layout_and_guidance_errors(fitted):
    g, _, _ = fitted
    L = _layouts(2)
    cases = [(dict(layout=L), 3, r"layout: expected one 32 x 32 map per sample: \(3, 32, 32\)"),
             (dict(layout=L[:, :16]), 2, r"layout: expected one 32 x 32 map per sample"),
             (dict(layout=L + 1), 2, r"layout: expected class ids in 0\.\.2 \(0 = unlabelled\), got values in \[2, 3"),
             (dict(layout=L - 2), 2, r"layout: expected class ids in 0\.\.2"),
             (dict(layout=L.astype(np.float32)), 2, r"layout: expected an integer array .* got dtype float32"),
             (dict(layout=L, guidance=-1.0), 2, r"guidance: expected a finite guidance weight w >= 0, got -1\.0"),
             (dict(layout=L, guidance=float("nan")), 2, r"guidance: expected a finite guidance weight"),
             (dict(layout=L, guidance=True), 2, r"guidance: expected a finite guidance weight"),
             (dict(guidance=1.0), 2, r"guidance: needs a layout"),
             (dict(cfg_scale=1.0), 2, r"HUD-cond: unknown sampler option\(s\) cfg_scale")]
    for kw, n, msg in cases:
        with pytest.raises(ValueError, match=msg):
            g.sample(n, 0, **kw)
    with pytest.raises(ValueError, match=r"layout: expected the canvas's class map \(H, W\) = \(40, 40\), got"):
        g.synthesize(40, 40, layout=L[0])
    with pytest.raises(ValueError, match=r"guidance: needs a layout"):
        g.sampling_key(guidance=2.0)


def test_sampling_keys_name_the_condition(fitted):
    g, _, _ = fitted
    L = _layouts(2)
    base = models.get("HUD").sampling_key(g)  # HUD's sampler tag
    keys = {"uncond": g.sampling_key(), "L": g.sampling_key(layout=L), "L copy": g.sampling_key(layout=L.copy()),
            "L w1": g.sampling_key(layout=L, guidance=1.0), "swap": g.sampling_key(layout=3 - L)}
    assert keys["uncond"] == base + "-uncond" and keys["L"].startswith(base + "-layout")
    assert keys["L"] == keys["L copy"] == g.sampling_key(layout=L, guidance=0.0)
    assert len({keys[k] for k in ("uncond", "L", "L w1", "swap")}) == 4
    assert g.sampling_key(layout=L, steps=3) != keys["L"]
    st = g.sampler_settings(layout=L, guidance=1.5)
    assert st["guidance"] == 1.5 and st["layout"] == hud_cond.layout_digest(L)
    assert g.sampler_settings()["layout"] is None


MARK = 7.0  # a value no pixel of a [0, 1] cube holds


def test_nothing_a_fold_generator_reads_holds_buffer_or_held_out_pixels(scene, tmp_path, monkeypatch):
    """Indian Pines with a marker planted in the spectra of every buffer and held-out pixel of fold 2 of the
    project's k-fold: VCA, the UAE's encoder and every training crop read neither the marker nor any pixel off the
    fold's training ground (a NaN would show it); the crops are among the fold's corners and their label channels
    are the real map there; latent.pt is finite exactly on the training ground; split.json records the fold.
    (The labels are not marked: the folds are a function of the label map, so marking it would move them.)"""
    fold = KFOLD.split(scene.gt)[2]
    cube = scene.cube.copy()
    cube[:, ~fold.train] = MARK
    marked = Scene(scene.name, cube, scene.raw_range, scene.gt, scene.n_classes, scene.rgb_bands)
    seen_vca, seen_fcls, crops, corners_drawn = [], [], [], []
    vca, fcls = unmixing_mod.vca, unmixing_mod.fcls
    monkeypatch.setattr(unmixing_mod, "vca", lambda Y, *a, **k: (seen_vca.append(np.array(Y)), vca(Y, *a, **k))[1])
    monkeypatch.setattr(unmixing_mod, "fcls", lambda Y, *a, **k: (seen_fcls.append(np.array(Y)),
                                                                   fcls(Y, *a, **k))[1])
    crop = train_mod.crop

    def spy(data, corners, size):
        out = crop(data, corners, size)
        corners_drawn.append(np.array(corners))
        crops.append(np.array(out))
        return out

    monkeypatch.setattr(train_mod, "crop", spy)
    ov = {"unet": TINY_UNET, "train": dict(steps=4, batch_size=3, ckpt_every=4), "cond": dict(fold=2)}
    g = models.create("HUD-cond").fit(marked, "smoke", tmp_path, overrides=ov, progress=False, device="cpu")
    assert len(seen_vca) == 1 and seen_vca[0].shape == (scene.bands, int(fold.train.sum()), 1)
    for Y in seen_vca + seen_fcls:
        assert np.isfinite(Y).all() and not (Y == MARK).any()
        assert Y.size > 0
    assert sum(Y[0].size for Y in seen_fcls) == fold.train.sum()  # the UAE encoded the training ground once
    allowed = {tuple(c) for c in fold.corners(32)}
    assert len(crops) == 4 and all(len(c) == 3 for c in corners_drawn)
    for cs, batch in zip(corners_drawn, crops):
        assert all(tuple(c) in allowed for c in cs)
        assert np.isfinite(batch).all() and not (batch == MARK).any()
        r, c = cs[0]
        labels = batch[0, -(scene.n_classes + 1):].argmax(0)  # the crop's one-hot map = the real map there
        np.testing.assert_array_equal(labels, scene.gt[r:r + 32, c:c + 32])
    Z = torch.load(g.run_dir_ / "latent.pt", weights_only=True)["Z"].numpy()
    np.testing.assert_array_equal(np.isfinite(Z).all(0), fold.train)
    rec = json.loads((g.run_dir_ / "split.json").read_text())
    assert rec["fold"] == 2 and rec["spec"] == KFOLD.spec and rec["held_sha256"] == mask_sha256(fold.held)
    assert rec["train_sha256"] == mask_sha256(fold.train) and rec["crop_corners"] == len(allowed)
    assert rec["unmixing_pixels"] == fold.train.sum() and rec["held_pixels"] == fold.held.sum()
    assert g.run_dir_ / "split.json" in type(g).artefact_files(g.run_dir_)  # shipped with the weights
    assert json.loads((g.run_dir_ / "config.json").read_text())["cond"]["fold"] == 2
    assert np.array_equal(g.fold_of(scene).held, fold.held)
    # another fold: another run; without a fold: the whole scene, corners unrestricted, split.json says so
    small = _split_scene()
    g2 = models.create("HUD-cond").fit(small, "smoke", tmp_path, overrides={**SPLIT, "cond": {"fold": None}},
                                       progress=False, device="cpu")
    rec2 = json.loads((g2.run_dir_ / "split.json").read_text())
    assert rec2["fold"] is None and rec2["held_pixels"] == 0 and g2.fold_of(small) is None
    assert seen_vca[-1].shape == small.cube.shape


def test_allowed_corners_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(5):
        held = rng.random((23, 19)) < 0.01
        got = {tuple(x) for x in allowed_corners(held, 7)}
        assert got == {(r, c) for r in range(17) for c in range(13) if not held[r:r + 7, c:c + 7].any()}
    assert len(allowed_corners(np.ones((9, 9), bool), 4)) == 0


class _Interrupt(Exception):
    pass


def test_resume_is_bit_identical(tmp_path, monkeypatch):
    """A HUD-cond run with a split and map dropout, interrupted at step 5 (checkpoints at 3, 6) and resumed, ends
    with the uninterrupted run's weights, EMA and losses; another p_uncond gives other weights."""
    scene = _split_scene(seed=1)
    ov = {**SPLIT, "cond": {"p_uncond": 0.5}}
    a = models.create("HUD-cond").fit(scene, "smoke", tmp_path / "a", overrides=ov, progress=False, device="cpu")

    def stop(step, loss):
        if step == 5:
            raise _Interrupt

    with monkeypatch.context() as mp:
        mp.setattr(hud_cond, "train_diffusion", functools.partial(train_mod.train_diffusion, on_step=stop))
        with pytest.raises(_Interrupt):
            models.create("HUD-cond").fit(scene, "smoke", tmp_path / "b", overrides=ov, progress=False, device="cpu")
    run_b = tmp_path / "b" / a.run_dir_.relative_to(tmp_path / "a")
    assert not (run_b / "DONE").exists() and torch.load(run_b / "checkpoint.pt", weights_only=True)["step"] == 3
    b = models.create("HUD-cond").fit(scene, "smoke", tmp_path / "b", overrides=ov, progress=False, device="cpu",
                                      resume=True)
    ca, cb = (torch.load(g.run_dir_ / "checkpoint.pt", weights_only=True) for g in (a, b))
    assert ca["step"] == cb["step"] == 7 and ca["history"] == cb["history"]
    for k in ca["nets"]["unet"]:
        assert torch.equal(ca["nets"]["unet"][k], cb["nets"]["unet"][k]), k
        assert torch.equal(ca["emas"]["unet"][k], cb["emas"]["unet"][k]), k
    assert a.weights_hash() == b.weights_hash()
    c = models.create("HUD-cond").fit(scene, "smoke", tmp_path / "c", overrides={**SPLIT, "cond": {"p_uncond": 0.0}},
                                      progress=False, device="cpu")
    cc = torch.load(c.run_dir_ / "checkpoint.pt", weights_only=True)
    assert not all(torch.equal(ca["nets"]["unet"][k], cc["nets"]["unet"][k]) for k in ca["nets"]["unet"])


def test_config_profiles_and_training_hash():
    q, h = make_config("IndianPines", "HUD-cond", "quick"), make_config("IndianPines", "HUD", "quick")
    assert q.unet.model_channels == 24 and q.train.steps == 2000
    assert (q.unet.channel_mult, q.unet.attention_resolutions, q.unet.num_heads) == \
        (h.unet.channel_mult, h.unet.attention_resolutions, h.unet.num_heads)
    assert (q.diffusion, q.unmixing, q.train.batch_size, q.train.lr) == (h.diffusion, h.unmixing, h.train.batch_size,
                                                                         h.train.lr)
    for p in ("smoke", "paper"):
        c, hp = make_config("IndianPines", "HUD-cond", p), make_config("IndianPines", "HUD", p)
        assert (c.unet, c.diffusion, c.train) == (hp.unet, hp.diffusion, hp.train)
    assert q.cond == hud_cond.CondConfig() and RunConfig.from_dict(json.loads(q.to_json())) == q
    base = q.training_hash()
    for kv in ({"fold": 1}, {"fold": None}, {"p_uncond": 0.1}, {"split": SMALL_KFOLD.spec}):
        assert make_config("IndianPines", "HUD-cond", "quick", {"cond": kv}).training_hash() != base, kv
    assert make_config("IndianPines", "HUD-cond", "quick", {"cond": {"guidance": 3.0}}).training_hash() == base
    assert h.training_hash() == "194cc941", "HUD's run hash must not move"
    assert models.get("HUD-cond").complexity_spec(q, 200, 16).net.config["cond_channels"] == 17


def test_config_and_scene_errors(tmp_path):
    scene, _ = _two_class_scene()
    cases = [({"cond": {"p_uncond": 1.5}}, r"cond\.p_uncond: expected a probability in \[0, 1\], got 1\.5"),
             ({"cond": {"fold": None, "split": SMALL_KFOLD.spec}}, r"cond\.split: has no effect without a fold"),
             ({"cond": {"fold": 5}}, r"cond\.fold: expected None or a fold index in 0\.\.4, got 5"),
             ({"cond": {"split": "kfold"}}, r"cond\.split: expected a SpatialKFold spec"),
             ({"diffusion": {"z_scale": "standardize"}}, r"diffusion\.z_scale: .* with a fold only 'none'")]
    for ov, msg in cases:
        with pytest.raises(ValueError, match=msg):
            models.create("HUD-cond").fit(scene, "smoke", tmp_path, overrides={**SPLIT, **ov}, progress=False)
    bad = Scene("Bad", scene.cube, (0.0, 1.0), scene.gt + 1, 2, (0, 1, 2))
    with pytest.raises(DataError, match=r"scene\.gt: expected labels in 0\.\.2 \(0 = unlabelled\), got \[2, 3\]"):
        models.create("HUD-cond").fit(bad, "smoke", tmp_path, overrides={**SPLIT, "cond": {"fold": None}},
                                      progress=False)
    with pytest.raises(ValueError, match=r"cond: expected \(2, 3, 8, 8\) one-hot maps"):
        CondUNet(train_mod.build_unet(make_config("TwoClass", "HUD-cond", "smoke", SPLIT), 2, 3), 3)(
            torch.zeros(2, 2, 8, 8), torch.zeros(2, dtype=torch.long), torch.zeros(2, 2, 8, 8))
