"""HUD as the authors ran it (HUD-asrun), the latent options behind the ablation, the square-root-linear β
schedule and the physical-consistency measures."""
import numpy as np
import pytest

from hudlib import models
from hudlib.config import make_config
from hudlib.data import Scene, centre_square
from hudlib.diffusion import sqrt_linear_beta_schedule
from hudlib.metrics import physical_consistency, simplex_angles
from hudlib.models.hud import clip_renormalise
from hudlib.train import build_diffusion


def _span_scene(seed=0, bands=12, rows=20, cols=28, d=4):
    """A non-square scene exactly in the span of d endmembers with abundances off the simplex (sums 0.5-1.5),
    raw values inside the authors' clip range (no clipping)."""
    rng = np.random.default_rng(seed)
    E = rng.uniform(0.1, 0.5, (bands, d))
    X = rng.dirichlet(np.ones(d), size=(rows, cols)).transpose(2, 0, 1) * rng.uniform(0.5, 1.5, (1, rows, cols))
    cube = np.einsum("bd,dhw->bhw", E, X)
    cube = (0.7 * cube / cube.max()).astype(np.float32)
    return Scene(name="Span", cube=cube, raw_range=(0.0, 1000.0), gt=np.zeros((rows, cols), np.int64),
                 n_classes=d, rgb_bands=(0, 1, 2), authors_clip=800.0)


def _prepared(model, scene, tmp_path, **diffusion):
    cfg = make_config("Span", model, "smoke", {"unmixing": {"d": 4}, "diffusion": diffusion})
    g = models.create(model)
    g.config_ = cfg
    Z = g._prepare(scene, cfg, tmp_path)
    return g, Z.numpy().astype(np.float64)


def test_asrun_round_trip_reproduces_the_scene(tmp_path):
    """Linear encoder without projection, per-endmember standardisation, scale factor, the authors' space and
    back: decode(encode(Y)) == Y to 1e-5 for a scene in the endmembers' span."""
    scene = _span_scene()
    g, Z = _prepared("HUD-asrun", scene, tmp_path, scale_factor=10.0)
    X = Z * g.z_scale_ + g.z_shift_
    assert (X < 0).any() or np.abs(X.sum(0) - 1).max() > 0.1  # off the simplex: nothing was projected
    np.testing.assert_allclose(g.decode(X[None])[0], scene.cube, atol=1e-5)
    # the cached uae.pt rebuilds the same maps
    g2, Z2 = _prepared("HUD-asrun", scene, tmp_path, scale_factor=10.0)
    np.testing.assert_array_equal(Z2, Z)
    np.testing.assert_allclose(g2.decode(X[None])[0], scene.cube, atol=1e-5)


def test_asrun_standardisation_statistics_match_a_direct_computation(tmp_path):
    scene = _span_scene(seed=1)
    g, Z = _prepared("HUD-asrun", scene, tmp_path, scale_factor=10.0)
    Y = np.clip(scene.cube.astype(np.float64) * 1000.0, 0, 800.0) / 800.0 * 2.0  # their x + 1
    E = g.uae_.endmembers
    X = np.linalg.lstsq(E, Y.reshape(Y.shape[0], -1), rcond=None)[0].reshape(4, *Y.shape[1:])
    Xc = centre_square(X)  # statistics of the centre square crop (20 x 20 of 20 x 28)
    np.testing.assert_allclose(g.z_shift_.ravel(), Xc.mean(axis=(1, 2)), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(g.z_scale_.ravel() * 10.0, Xc.std(axis=(1, 2)), rtol=1e-9)
    Zc = centre_square(Z)
    np.testing.assert_allclose(Zc.mean(axis=(1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(Zc.std(axis=(1, 2)), 10.0, rtol=1e-5)
    # VCA saw the crop: every endmember is a pixel of the centre square
    crop = centre_square(Y).reshape(Y.shape[0], -1)
    for k in range(4):
        assert np.abs(crop - E[:, k:k + 1]).max(axis=0).min() < 1e-6  # float32 inside VCA


def test_asrun_config_and_hash_neutral_defaults():
    c = make_config("IndianPines", "HUD-asrun", "quick")
    assert (c.unmixing.encoder, c.unmixing.simplex, c.unmixing.projection, c.unmixing.space) == \
        ("linear", False, "none", "authors")
    assert c.diffusion.z_scale == "per_endmember" and c.diffusion.scale_factor == 10.0 and not c.diffusion.clip_z0
    assert make_config("KSC", "HUD-asrun", "quick").diffusion.scale_factor == 20.0
    # same U-Net, steps and sampler as HUD at quick: the ablation changes the latent only
    h = make_config("IndianPines", "HUD", "quick")
    assert (c.unet, c.train, c.diffusion.sampler, c.diffusion.prediction) == \
        (h.unet, h.train, h.diffusion.sampler, h.diffusion.prediction)
    # fields added for the ablation leave HUD's existing run hashes unchanged at their defaults
    assert h.training_hash() == "194cc941" and make_config("IndianPines", "HUD", "smoke").training_hash() == "4361870b"
    for sec, kv in (("unmixing", {"projection": "clip"}), ("unmixing", {"simplex": False}),
                    ("diffusion", {"schedule": "sqrt_linear"}), ("diffusion", {"scale_factor": 2.0})):
        assert make_config("IndianPines", "HUD", "quick", {sec: kv}).training_hash() != h.training_hash()
    p = make_config("IndianPines", "HUD-asrun", "paper")
    assert (p.unet.model_channels, p.unet.channel_mult, p.unet.attention_resolutions) == (192, (1, 2, 2, 4, 4),
                                                                                          (32, 16, 8, 4))
    assert (p.diffusion.sampler, p.diffusion.sample_steps, p.diffusion.eta) == ("ddim", 250, 1.0)


def test_sqrt_linear_schedule_is_exactly_the_authors():
    b = sqrt_linear_beta_schedule(1000, 0.0015, 0.0155)
    assert np.array_equal(b, np.linspace(np.sqrt(0.0015), np.sqrt(0.0155), 1000) ** 2)
    diff = build_diffusion(make_config("IndianPines", "HUD-asrun", "paper"))
    assert np.array_equal(diff.betas, b)
    assert diff.alphas_cumprod[-1] == pytest.approx(6.7e-4, rel=0.02)
    lin = build_diffusion(make_config("IndianPines", "HUD", "paper"))
    assert np.array_equal(lin.betas, np.linspace(1e-4, 0.02, 1000))
    with pytest.raises(ValueError, match="diffusion.schedule"):
        build_diffusion(make_config("IndianPines", "HUD", "smoke", {"diffusion": {"schedule": "cosine"}}))


@pytest.mark.parametrize("projection", ["softmax", "clip", "none"])
def test_latent_options_sample_as_documented(projection, tmp_path):
    """A smoke fit per latent option: softmax and clip give abundances on the simplex, none does not have to."""
    scene = _span_scene(seed=2, rows=40, cols=40)
    over = {"unmixing": {"d": 4, "projection": projection},
            "diffusion": {"z_scale": "standardize" if projection != "softmax" else "none",
                          "clip_z0": projection != "none"}}
    g = models.create("HUD").fit(scene, "smoke", tmp_path, overrides=over, device="cpu", progress=False)
    Y, X = g.sample(3, random_state=0, device="cpu", return_abundances=True)
    assert Y.shape == (3, 12, 32, 32) and X.shape == (3, 4, 32, 32) and np.isfinite(Y).all()
    if projection != "none":
        assert X.min() >= 0 and np.abs(X.sum(1) - 1).max() < 1e-5
        np.testing.assert_allclose(Y, np.einsum("bd,ndhw->nbhw", g.uae_.endmembers, X), atol=1e-5)
    with pytest.raises(ValueError, match="unmixing.projection"):
        models.create("HUD").fit(scene, "smoke", tmp_path / "bad", overrides={"unmixing": {"projection": "exp"}},
                                 device="cpu", progress=False)


def test_asrun_fits_and_decodes_inside_the_authors_data_range(tmp_path):
    scene = _span_scene(seed=3, rows=40, cols=40)
    g = models.create("HUD-asrun").fit(scene, "smoke", tmp_path, overrides={"unmixing": {"d": 4}}, device="cpu",
                                       progress=False)
    Y, X = g.sample(2, random_state=0, device="cpu", return_abundances=True)
    assert Y.min() >= 0.0 and Y.max() <= 800.0 / 1000.0 + 1e-6  # clamp to [-1, 1] in their space = [0, V/hi]
    assert X.shape == (2, 4, 32, 32)
    with pytest.raises(ValueError, match="clip_z0"):
        g.z0_range()


def test_clip_renormalise_against_loops():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2, 5, 3, 4))
    X[0, :, 0, 0] = -1.0  # no positive entry: uniform
    out = clip_renormalise(X)
    for n in range(2):
        for i in range(3):
            for j in range(4):
                v = np.maximum(X[n, :, i, j], 0)
                ref = v / v.sum() if v.sum() > 0 else np.full(5, 0.2)
                np.testing.assert_allclose(out[n, :, i, j], ref, rtol=1e-12)


def test_physical_measures_on_planted_cases():
    rng = np.random.default_rng(0)
    bands, d, n, h, w = 8, 3, 2, 4, 4
    E = rng.uniform(0.1, 1.0, (bands, d))
    X = rng.dirichlet(np.ones(d), size=(n, h, w)).transpose(0, 3, 1, 2)  # (n, d, h, w) on the simplex
    Y = np.einsum("bd,ndhw->nbhw", E, X)
    base = physical_consistency(Y, E, X)
    assert base["negative_reflectance_share"] == 0 and base["negative_abundance_share"] == 0
    assert base["sum_to_one_max_dev"] < 1e-6 and base["simplex_angle_mean"] < 1e-6  # float32 inputs
    # one pixel off the simplex by a component orthogonal to span(E): its FCLS point is unchanged, so its angle
    # is arctan(|o| / |E x|)
    Q, _ = np.linalg.qr(np.concatenate([E, rng.normal(size=(bands, 1))], axis=1))
    o = 0.3 * Q[:, d]
    Y2 = Y.copy()
    Y2[1, :, 2, 3] += o
    ang = np.arctan(np.linalg.norm(o) / np.linalg.norm(Y[1, :, 2, 3]))
    a = simplex_angles(Y2, E)
    assert a[1, 2, 3] == pytest.approx(ang, abs=1e-6) and np.delete(a.ravel(), 1 * 16 + 2 * 4 + 3).max() < 1e-6
    assert physical_consistency(Y2, E)["simplex_angle_mean"] == pytest.approx(ang / (n * h * w), abs=1e-7)
    # one negative abundance, one pixel summing to 1.3, one negative reflectance
    X2 = X.copy()
    X2[0, :, 1, 1] = [1.2, -0.2, 0.0]
    X2[1, :, 0, 0] = [0.5, 0.5, 0.3]
    Y3 = Y.copy()
    Y3[0, 4, 3, 3] = -0.1
    r = physical_consistency(Y3, E, X2)
    assert r["negative_abundance_share"] == 1 / (n * h * w)
    assert r["sum_to_one_max_dev"] == pytest.approx(0.3, abs=1e-6)
    assert r["negative_reflectance_share"] == 1 / (n * h * w)
    assert physical_consistency(Y, E)["negative_abundance_share"] is None
    with pytest.raises(ValueError, match="X: expected"):
        physical_consistency(Y, E, X[:1])


def test_ablation_table_reports_seed_spread_and_counts_runs():
    from hudlib import ablation

    def rec(fid, seed):
        return {"scene": "IndianPines", "profile": "quick", "n": 256, "seed": 0, "machine": "CPU", "sampling_key": "ddim50",
                "metrics": {"FID": fid, "IS": 1.0, "SWD": 0.1, "recall_patches": 0.5, "precision_patches": 0.5,
                            "coherence_gap": 0.1},
                "paper_exact": {"F_p": {"value": 0.99}, "D_b": {"value": 0.98}, "FID": {"value": 3.0}},
                "physical": {"negative_reflectance_share": 0.0, "negative_abundance_share": None,
                             "sum_to_one_max_dev": 2e-7, "simplex_angle_mean": 0.01}}
    rows = [{"row": "hud", "label": "HUD", "seed": s, "schedule": "linear", "record": rec(f, s)}
            for s, f in ((0, 10.0), (1, 12.0), (2, 14.0))]
    rows.append({"row": "clip", "label": "clip", "seed": 0, "schedule": "linear", "record": rec(20.0, 0)})
    md = ablation.ablation_table(rows)
    assert "| HUD | 0, 1, 2 | ddim50 | 12.000 ± 2.000 |" in md  # mean ± sample std of 10, 12, 14
    assert "| clip | 0 | ddim50 | 20.000 |" in md and "2.0e-07" in md and "—" in md
    assert "the same U-Net, training steps, sampler and sampling seed" in md
    rows[-1]["record"] = {**rec(20.0, 0), "sampling_key": "dpmpp2m10-clip"}  # rows sampled differently: said so
    md = ablation.ablation_table(rows)
    assert "| clip | 0 | dpmpp2m10-clip | 20.000 |" in md and "each generator's own sampler" in md
    assert "sampler and sampling seed;" not in md
    # extra trainings: 2 single-seed rows + 2 main rows x 2 more seeds + 2 schedule rows; smoke: one seed
    assert ablation.extra_runs("quick") == 8 and ablation.extra_runs("smoke") == 4


def test_ablation_page_has_a_section_per_scene_and_names_a_scene_without_rows(tmp_path):
    from hudlib import ablation

    def row(scene, fid):
        return {"row": "hud", "label": "HUD", "seed": 0, "schedule": "linear",
                "record": {"scene": scene, "profile": "quick", "n": 256, "seed": 0, "machine": "CPU",
                           "sampling_key": "ddim50", "metrics": {"FID": fid}}}

    one = ablation.write_ablation([row("IndianPines", 10.0)], tmp_path, scene="IndianPines").read_text()
    assert "(IndianPines, profile `quick`)" in one and "## IndianPines" not in one
    assert "| HUD | 0 | ddim50 | 10.000 |" in one
    both = ablation.write_ablation([row("IndianPines", 10.0), row("Samson", 30.0)], tmp_path,
                                   scene=["IndianPines", "Samson", "Other"], profile="quick").read_text()
    ip, sam, other = (both.index(f"## {s}\n") for s in ("IndianPines", "Samson", "Other"))
    assert ip < both.index("| 10.000 |") < sam < both.index("| 30.000 |") < other
    assert "No row has a trained run" in both[other:]
    assert "No row has a trained run" in ablation.write_ablation([], tmp_path, profile="quick").read_text()
