"""Full-scene synthesis: tiled sampling (MultiDiffusion / naive), the seam score, field-scale statistics, ENVI I/O.

Stand-ins instead of a U-Net: the exact ε-predictor of Z_0 ~ N(μ(col), s² I), optionally with a mean that
ramps over the columns *of the window it is shown* (a window-dependent network, the source of seams), and
fixed convolutions. All fast, on CPU.
"""
import math
import os

import numpy as np
import pytest
import torch
from scipy import ndimage

from hudlib import envi_io
from hudlib.data import DataError
from hudlib.diffusion import GaussianDiffusion, linear_beta_schedule, tile_origins
from hudlib.envi_io import check_writable, read_envi, write_envi
from hudlib.metrics import field_scale_statistics, seam_score
from hudlib.metrics.spatial import _radial_correlation

T = 50
MU = torch.tensor([-1.0, -2.0, -3.0, -4.0])  # a spectrum in Z, spatially constant
S = 0.1
RAMP_DIR = torch.tensor([1.0, -1.0, 1.0, -1.0])


@pytest.fixture(scope="module")
def diff():
    return GaussianDiffusion(linear_beta_schedule(T=T))


def gaussian_eps(diffusion, ramp: float = 0.0):
    """Exact ε-predictor of Z_0 ~ N(μ + ramp * (col / (w - 1)) * RAMP_DIR, S² I) for a crop of width w.

    ramp = 0: stationary and translation invariant (pointwise). ramp > 0: the mean depends on the position inside
    the window it is shown, so windows sampled on their own disagree at their borders."""
    abar = torch.from_numpy(diffusion.alphas_cumprod)

    def model(z, t):
        ab = abar.to(z)[t].view(-1, 1, 1, 1)
        w = z.shape[-1]
        mu = MU.to(z).view(1, -1, 1, 1) + ramp * (torch.linspace(0, 1, w, dtype=z.dtype).view(1, 1, 1, w)
                                                  * RAMP_DIR.to(z).view(1, -1, 1, 1))
        return torch.sqrt(1 - ab) * (z - torch.sqrt(ab) * mu) / (ab * S * S + 1 - ab)

    return model


def conv_model(channels: int = 3):
    """A fixed 3x3 convolution (zero padding) plus a t-dependent pointwise term: spatial context, no U-Net."""
    w = torch.randn(channels, channels, 3, 3, generator=torch.Generator().manual_seed(0)) * 0.1

    def model(z, t):
        return torch.nn.functional.conv2d(z, w.to(z), padding=1) + torch.tanh(z) * (t.view(-1, 1, 1, 1) / T)

    return model


def gen(seed):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- tile_origins

@pytest.mark.parametrize("H, W, window, stride", [(96, 96, 32, 16), (80, 72, 32, 12), (32, 50, 32, 32),
                                                   (33, 33, 32, 7), (64, 64, 32, 32), (40, 40, 1, 1)])
def test_tile_origins_cover_canvas_inside_border(H, W, window, stride):
    origins = tile_origins(H, W, window, stride)
    count = np.zeros((H, W), dtype=int)
    for r, c in origins:
        assert 0 <= r <= H - window and 0 <= c <= W - window  # no window sticks out
        count[r:r + window, c:c + window] += 1
    assert count.min() >= 1  # every pixel covered
    rows = sorted({r for r, _ in origins})
    cols = sorted({c for _, c in origins})
    assert rows[0] == 0 and rows[-1] == H - window and cols[0] == 0 and cols[-1] == W - window
    assert all(0 < b - a <= stride for a, b in zip(rows, rows[1:]))
    assert len(origins) == len(rows) * len(cols) == len(set(origins))
    assert len(rows) == math.ceil((H - window) / stride) + 1


def test_tile_origins_counts():
    origins = tile_origins(96, 96, 32, 16)
    assert len(origins) == 25 and origins[:3] == [(0, 0), (0, 16), (0, 32)]
    count = np.zeros((96, 96), dtype=int)
    for r, c in origins:
        count[r:r + 32, c:c + 32] += 1
    assert count[0, 0] == 1 and count[0, 20] == 2 and count[20, 20] == 4 and count[95, 95] == 1
    assert tile_origins(64, 64, 32, 32) == [(0, 0), (0, 32), (32, 0), (32, 32)]  # naive tiling
    assert tile_origins(32, 32, 32, 5) == [(0, 0)]


@pytest.mark.parametrize("args, name", [((31, 64, 32, 16), "height"), ((64, 31, 32, 16), "width"),
                                        ((64, 64, 32, 0), "stride"), ((64, 64, 32, -4), "stride"),
                                        ((64, 64, 32, 33), "stride"), ((64.0, 64, 32, 16), "height"),
                                        ((64, 64, "32", 16), "window"), ((64, 64, 32, 1.5), "stride"),
                                        ((64, True, 32, 16), "width"), ((64, 64, 0, 1), "window")])
def test_tile_origins_bad_inputs(args, name):
    with pytest.raises(ValueError, match=f"^{name}: expected") as e:
        tile_origins(*args)
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------- one window = sample

@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("kw", [dict(sampler="ddim", steps=10, eta=0.0), dict(sampler="ddim", steps=10, eta=1.0),
                                dict(sampler="ddpm", sigma="beta"), dict(sampler="ddpm", sigma="posterior"),
                                dict(sampler="dpmpp2m", steps=10), dict(sampler="dpmpp2m-sde", steps=10),
                                dict(sampler="ddim-lambda", steps=10, eta=1.0)],
                         ids=["ddim-eta0", "ddim-eta1", "ddpm-beta", "ddpm-posterior", "dpmpp2m", "dpmpp2m-sde",
                              "ddim-lambda"])
@pytest.mark.parametrize("z0_range", [None, (-1.5, 0.5)], ids=["noclip", "clip"])
def test_one_window_canvas_equals_sample_bitwise(prediction, kw, z0_range):
    diffusion = GaussianDiffusion(linear_beta_schedule(T=T), prediction=prediction)
    model = conv_model(3)
    ref = diffusion.sample(model, (2, 3, 16, 16), generator=gen(3), z0_range=z0_range, **kw)
    for tiling in ("multidiffusion", "naive"):
        out = diffusion.sample_tiled(model, (2, 3, 16, 16), 16, generator=gen(3), z0_range=z0_range,
                                     tiling=tiling, **kw)
        assert torch.equal(out, ref), tiling
    if z0_range is not None:  # the clipping really acts in this setting
        assert not torch.equal(ref, diffusion.sample(model, (2, 3, 16, 16), generator=gen(3), **kw))


def test_one_window_float64_and_module(diff):
    net = torch.nn.Conv2d(4, 4, 3, padding=1).double()
    model = lambda z, t: net(z)  # noqa: E731
    ref = diff.sample(model, (3, 4, 8, 8), sampler="ddim", steps=7, eta=0.5, generator=gen(1), dtype=torch.float64)
    out = diff.sample_tiled(model, (3, 4, 8, 8), 8, 4, steps=7, eta=0.5, generator=gen(1), dtype=torch.float64)
    assert out.dtype == torch.float64 and torch.equal(out, ref)


# ----------------------------------------------------------------------------- averaging, batching, kwargs

@pytest.mark.parametrize("sampler", ["ddim", "ddim-lambda", "ddpm", "dpmpp2m", "dpmpp2m-sde"])
def test_pointwise_model_tiled_equals_untiled(diff, sampler):
    """A pointwise network gives every window the same output at a pixel: the average is that output, so an odd
    canvas with an odd stride must reproduce the untiled sample (up to the rounding of the average)."""
    model = gaussian_eps(diff)
    kw = dict(sampler=sampler, steps=None if sampler == "ddpm" else 8, eta=0.3, generator=None,
              z0_range=(-4.5, 0.0), dtype=torch.float64)
    ref = diff.sample(model, (2, 4, 45, 38), **{**kw, "generator": gen(7)})
    out = diff.sample_tiled(model, (2, 4, 45, 38), 16, 11, batch_size=5, **{**kw, "generator": gen(7)})
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)


def test_batches_never_exceed_batch_size():
    diffusion = GaussianDiffusion(linear_beta_schedule(T=T))
    calls = []

    def model(z, t):
        calls.append(tuple(z.shape))
        return torch.zeros_like(z)

    origins = tile_origins(256, 256, 32, 16)
    diffusion.sample_tiled(model, (1, 2, 256, 256), 32, 16, steps=2, batch_size=4, generator=gen(0))
    assert max(s[0] for s in calls) == 4 and all(s[1:] == (2, 32, 32) for s in calls)
    assert sum(s[0] for s in calls) == 2 * len(origins)  # every window once per step
    assert len(calls) == 2 * math.ceil(len(origins) / 4)


def test_model_kwargs_and_window_kwargs(diff):
    """A layout-conditioned stand-in: its ε is the layout crop it is given. With window_kwargs handing each window
    its crop, the window average is the full layout, i.e. the untiled sample with the whole layout."""
    layout = torch.linspace(-1, 1, 40 * 56, dtype=torch.float64).view(1, 1, 40, 56)
    n, window = 2, 16
    seen = []

    def model(z, t, layout, scale):
        assert scale == 0.5 and layout.shape == (z.shape[0], 1) + z.shape[2:]
        return scale * layout.expand_as(z) + 0.1 * z

    def window_kwargs(origins):
        seen.append(len(origins))
        crops = torch.cat([layout[:, :, r:r + window, c:c + window] for r, c in origins])
        return {"layout": torch.repeat_interleave(crops, n, 0)}

    ref = diff.sample(model, (n, 3, 40, 56), sampler="ddim", steps=6, generator=gen(2), dtype=torch.float64,
                      model_kwargs={"scale": 0.5, "layout": layout.expand(n, 1, 40, 56)})
    out = diff.sample_tiled(model, (n, 3, 40, 56), window, 8, steps=6, generator=gen(2), dtype=torch.float64,
                            model_kwargs={"scale": 0.5}, window_kwargs=window_kwargs, batch_size=7)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    assert max(seen) == 7 and sum(seen) == 6 * len(tile_origins(40, 56, window, 8))


def test_naive_rounds_up_and_crops(diff):
    model = gaussian_eps(diff, ramp=1.0)
    a = diff.sample_tiled(model, (1, 4, 40, 50), 16, steps=5, generator=gen(4), tiling="naive")
    b = diff.sample_tiled(model, (1, 4, 48, 64), 16, steps=5, generator=gen(4), tiling="naive")
    assert a.shape == (1, 4, 40, 50) and torch.equal(a, b[:, :, :40, :50])
    c = diff.sample_tiled(model, (1, 4, 10, 12), 16, 16, steps=5, generator=gen(4), tiling="naive")
    assert c.shape == (1, 4, 10, 12)  # smaller than one window: one window, cropped


def test_sample_tiled_determinism_per_seed(diff):
    model = conv_model(3)
    for kw in (dict(sampler="ddim", steps=6, eta=0.5), dict(sampler="ddpm")):
        a = diff.sample_tiled(model, (1, 3, 32, 32), 16, 8, generator=gen(11), **kw)
        b = diff.sample_tiled(model, (1, 3, 32, 32), 16, 8, generator=gen(11), **kw)
        c = diff.sample_tiled(model, (1, 3, 32, 32), 16, 8, generator=gen(12), **kw)
        assert torch.equal(a, b) and not torch.allclose(a, c)


@pytest.mark.parametrize("kw, name", [(dict(tiling="mosaic"), "tiling"), (dict(tiling="naive", stride=8), "stride"),
                                      (dict(batch_size=0), "batch_size"), (dict(window=0), "window"),
                                      (dict(window=48), "height"), (dict(stride=40), "stride"),
                                      (dict(shape=(1, 3, 32)), "shape"), (dict(window_kwargs=3), "window_kwargs"),
                                      (dict(sampler="euler"), "sampler"), (dict(eta=2.0), "eta"),
                                      (dict(sampler="ddpm", steps=None, sigma="learned"), "sigma")])
def test_sample_tiled_bad_inputs(diff, kw, name):
    args = dict(shape=(1, 3, 40, 40), window=16, stride=8, steps=2)
    args.update(kw)
    with pytest.raises(ValueError, match=name) as e:
        diff.sample_tiled(conv_model(3), **args)
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------- seams of tiled canvases

def _seam_scores(diff, model, tiling, stride, seeds=range(3), n=2):
    scores = []
    for seed in seeds:
        z = diff.sample_tiled(model, (n, 4, 96, 96), 32, stride, steps=10, generator=gen(seed), tiling=tiling)
        origins = None if tiling == "naive" else tile_origins(96, 96, 32, stride)
        scores += [seam_score(z[k].numpy(), 32, origins=origins)["score"] for k in range(n)]
    return np.array(scores)


def test_stationary_model_overlapped_canvas_has_no_seam(diff):
    scores = _seam_scores(diff, gaussian_eps(diff), "multidiffusion", 16)
    # pixel noise only: the per-canvas score scatters ~0.02 around 1 (960 straddling pairs)
    assert abs(scores.mean() - 1.0) < 0.04 and np.all(np.abs(scores - 1.0) < 0.1), scores
    naive_borders = [seam_score(z.numpy(), 32)["score"] for z in
                     diff.sample_tiled(gaussian_eps(diff), (2, 4, 96, 96), 32, 16, steps=10, generator=gen(9))]
    assert np.all(np.abs(np.array(naive_borders) - 1.0) < 0.1)


def test_window_dependent_model_seams_under_naive_tiling(diff):
    ramp = gaussian_eps(diff, ramp=1.0)
    naive = _seam_scores(diff, ramp, "naive", None)
    assert np.all(naive > 3.0), naive  # a jump of ~1 in Z against a pixel spread of 0.1
    # control: the stationary (pointwise) model under the same naive tiling leaves no seam
    flat = _seam_scores(diff, gaussian_eps(diff), "naive", None, seeds=[0])
    assert np.all(np.abs(flat - 1.0) < 0.1)


# ----------------------------------------------------------------------------- seam_score

def test_seam_score_planted_discontinuity():
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float64)
    theta = 0.01 * (xx + yy)  # every neighbour pair turns by exactly 0.01 rad
    smooth = np.stack([np.cos(theta), np.sin(theta), np.full_like(theta, 0.0)]) * (2.0 + 0.1 * np.sin(yy / 5))
    s = seam_score(smooth, 32)
    assert s["score"] == pytest.approx(1.0, abs=1e-6) and s["within"] == pytest.approx(0.01, rel=1e-5)
    assert s["n_across"] == 128 and s["n_within"] == 2 * 64 * 63 - 128
    jump = smooth.copy()
    jump[2, :, 32:] += 0.5  # an exact discontinuity at column 32
    j = seam_score(jump, 32)
    assert j["score"] > 5.0 and j["within"] == pytest.approx(s["within"], rel=0.05)
    shifted = seam_score(jump, 32, origins=[(0, 8), (32, 8)])  # borders elsewhere: the jump is "within"
    assert shifted["score"] < 1.0


def test_seam_score_smooth_random_cube_near_one():
    scores = []
    for seed in range(5):
        f = ndimage.gaussian_filter(np.random.default_rng(seed).normal(size=(6, 96, 96)), (0, 3, 3), mode="wrap")
        scores.append(seam_score(5 * f + 2, 32)["score"])
    assert abs(np.mean(scores) - 1.0) < 0.1 and max(abs(np.array(scores) - 1.0)) < 0.25, scores


def test_seam_score_counts_and_errors():
    cube = np.random.default_rng(0).normal(size=(3, 64, 64)) + 3
    assert seam_score(cube, 32, stride=16)["n_across"] == 3 * 64 * 2  # borders at 16, 32, 48
    # a window's edges cut only along the window: one 16-px window in the middle
    assert seam_score(cube, 16, origins=[(24, 24)])["n_across"] == 4 * 16
    zero = np.zeros((3, 8, 8))
    z = seam_score(zero, 4)
    assert z["score"] == 1.0 and z["across"] == 0.0
    for kw, name in ((dict(window=64), "window"), (dict(window=1), "window"), (dict(window=0), "window"),
                     (dict(window=32, stride=8, origins=[(0, 0)]), "stride"),
                     (dict(window=32, origins=[(-1, 0)]), "origins")):
        with pytest.raises(ValueError, match=name):
            seam_score(cube, **kw)
    with pytest.raises(DataError, match="cube"):
        seam_score(cube[0], 32)


# ----------------------------------------------------------------------------- field-scale statistics

def _blocks(block, seed, n=256, d=4):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, d, size=(n // block, n // block)).repeat(block, 0).repeat(block, 1)
    abundances = np.eye(d)[labels].transpose(2, 0, 1) * 0.8 + 0.2 / d + rng.normal(0, 0.02, (d, n, n))
    return labels, abundances


def test_field_scale_statistics_small_vs_large_fields():
    for seed in range(2):
        lab16, ab16 = _blocks(16, seed)
        lab64, ab64 = _blocks(64, seed)
        s16, s64 = field_scale_statistics(ab16), field_scale_statistics(ab64)
        assert all(isinstance(v, float) for v in s16.values())
        # blocks of side B with independent classes: correlation (1 - |dx|/B)(1 - |dy|/B), 1/e at ~0.55 B
        assert 6 < s16["autocorrelation_length"] < 13 and 25 < s64["autocorrelation_length"] < 60
        assert s64["autocorrelation_length"] > 2.5 * s16["autocorrelation_length"]
        assert s16["median_region_size"] >= 256 and s64["median_region_size"] >= 4096
        assert s64["median_region_size"] > s16["median_region_size"]
        assert s64["share_ge_1024"] == 1.0 > s16["share_ge_1024"]
        assert s64["n_regions"] < s16["n_regions"]
        l16 = field_scale_statistics(lab16)  # the label map itself: the same regions, indicator maps
        assert l16["median_region_size"] == s16["median_region_size"]
        assert l16["autocorrelation_length"] == pytest.approx(s16["autocorrelation_length"], rel=0.05)


def test_field_scale_regions_planted():
    lab = np.zeros((40, 40), dtype=np.int64)
    lab[5:15, 5:15] = 7
    s = field_scale_statistics(lab, thresholds=(64, 256, 1024, 2000))
    assert s["n_regions"] == 2 and s["median_region_size"] == 1500
    assert s["share_ge_64"] == 1.0 and s["share_ge_256"] == pytest.approx(1500 / 1600)
    assert s["share_ge_2000"] == 0.0
    checker = (np.indices((32, 32)) // 2).sum(0) % 2  # 2x2 blocks touching only at corners: 4-connectivity
    c = field_scale_statistics(checker)
    assert c["median_region_size"] == 4 and c["n_regions"] == 256 and c["share_ge_64"] == 0.0
    const = field_scale_statistics(np.zeros((20, 20), dtype=int))
    assert const["autocorrelation_censored"] == 1.0 and const["autocorrelation_length"] == const["max_lag"] == 10


def test_radial_correlation_brute_force():
    m = ndimage.gaussian_filter(np.random.default_rng(1).normal(size=(30, 37)), 2)
    profile, var = _radial_correlation(m, 5)
    x = m - m.mean()
    assert var == pytest.approx(np.mean(x * x)) and profile[0] == pytest.approx(1.0)
    H, W = x.shape
    for r in (1, 3):
        vals = []
        for dy in range(-5, 6):
            for dx in range(-5, 6):
                if round(math.hypot(dy, dx)) == r:
                    a = x[max(0, -dy):H - max(0, dy), max(0, -dx):W - max(0, dx)]
                    b = x[max(0, dy):H - max(0, -dy) or None, max(0, dx):W - max(0, -dx) or None]
                    vals.append(np.mean(a * b) / var)
        assert profile[r] == pytest.approx(np.mean(vals), rel=1e-9)


def test_field_scale_bad_inputs():
    with pytest.raises(DataError, match="maps"):
        field_scale_statistics(np.zeros((8, 8)))  # a float 2-D map is not a label map
    with pytest.raises(DataError, match="maps"):
        field_scale_statistics(np.zeros(8))
    with pytest.raises(ValueError, match="max_lag"):
        field_scale_statistics(np.zeros((2, 8, 8)), max_lag=8)


# ----------------------------------------------------------------------------- ENVI

def _cube():
    return np.random.default_rng(0).normal(size=(5, 7, 9)).astype(np.float32)


def test_envi_round_trip(tmp_path):
    cube = _cube()
    wl = np.linspace(400.5, 2500.0, 5)
    hdr, img = write_envi(tmp_path / "scene.hdr", cube.astype(np.float64), wavelengths=wl,
                          band_names=["b1", "b 2", "b3", "b4", "b5"], description="HUD full scene\nseed 3",
                          extra={"hud window": 32})  # wavelength units: set with the wavelengths
    assert (hdr, img) == (tmp_path / "scene.hdr", tmp_path / "scene.img")
    assert sorted(os.listdir(tmp_path)) == ["scene.hdr", "scene.img"]  # no temp files left
    assert img.stat().st_size == cube.size * 4
    back, header = read_envi(hdr)
    assert back.shape == cube.shape and back.dtype == np.float32 and np.array_equal(back, cube)
    assert header["interleave"] == "bsq" and header["data type"] == "4"
    assert [float(v) for v in header["wavelength"]] == wl.tolist()
    assert header["band names"] == ["b1", "b 2", "b3", "b4", "b5"]
    assert header["description"] == "HUD full scene\nseed 3"
    assert header["wavelength units"] == "Nanometers" and header["hud window"] == "32"
    # band-sequential on disk: the first 63 floats are band 0
    raw = np.fromfile(img, dtype=np.float32)
    assert np.array_equal(raw[:63], cube[0].ravel())
    write_envi(tmp_path / "scene.hdr", cube * 2)  # overwrite in place
    assert np.array_equal(read_envi(tmp_path / "scene.hdr")[0], cube * 2)


def _one_line_error(fn, match):
    with pytest.raises(ValueError, match=match) as e:
        fn()
    assert "\n" not in str(e.value)
    return str(e.value)


def test_envi_bad_paths_write_nothing(tmp_path, monkeypatch):
    cube = _cube()
    _one_line_error(lambda: write_envi(tmp_path / "scene.img", cube), "path: expected .*\\.hdr")
    _one_line_error(lambda: write_envi(tmp_path / "scene", cube), "path")
    missing = tmp_path / "nope"
    msg = _one_line_error(lambda: write_envi(missing / "scene.hdr", cube), "does not exist")
    assert str(missing) in msg
    assert not missing.exists() and os.listdir(tmp_path) == []

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        probe = ro / "probe"
        try:  # root ignores permission bits: then make the folder refuse files another way
            probe.touch()
            probe.unlink()
            real = envi_io.tempfile.mkstemp

            def refuse(*a, dir=None, **k):
                if dir is not None and os.path.samefile(dir, ro):
                    raise PermissionError(13, "Permission denied")
                return real(*a, dir=dir, **k)

            monkeypatch.setattr(envi_io.tempfile, "mkstemp", refuse)
        except PermissionError:
            pass
        msg = _one_line_error(lambda: write_envi(ro / "scene.hdr", cube), "not writable")
        assert str(ro) in msg
        _one_line_error(lambda: check_writable(ro / "scene.hdr"), "not writable")
        assert os.listdir(ro) == []
    finally:
        ro.chmod(0o755)
    assert check_writable(tmp_path / "x.hdr") == tmp_path and os.listdir(tmp_path) == ["ro"]


@pytest.mark.parametrize("fail", ["save", "rename_header"])
def test_envi_failure_leaves_nothing(tmp_path, monkeypatch, fail):
    if fail == "save":
        def broken(hdr_file, image, **kw):
            open(hdr_file, "w").write("ENVI\n")
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(envi_io.envi, "save_image", broken)
    else:
        real = os.replace

        def replace(src, dst):
            if str(dst).endswith(".hdr"):
                raise OSError(5, "Input/output error")
            return real(src, dst)
        monkeypatch.setattr(envi_io.os, "replace", replace)
    with pytest.raises(OSError):
        write_envi(tmp_path / "scene.hdr", _cube())
    assert os.listdir(tmp_path) == []


def test_envi_bad_header_fields(tmp_path):
    cube = _cube()
    _one_line_error(lambda: write_envi(tmp_path / "a.hdr", cube, wavelengths=[1, 2]), "wavelengths")
    _one_line_error(lambda: write_envi(tmp_path / "a.hdr", cube, band_names=list("abcd")), "band_names")
    _one_line_error(lambda: write_envi(tmp_path / "a.hdr", cube, band_names=["a,b"] + list("bcde")), "band_names")
    _one_line_error(lambda: write_envi(tmp_path / "a.hdr", cube, extra={"interleave": "bip"}), "extra")
    _one_line_error(lambda: write_envi(tmp_path / "a.hdr", cube, description="{x}"), "description")
    _one_line_error(lambda: write_envi(tmp_path / "a.hdr", cube[0]), "cube")
    _one_line_error(lambda: read_envi(tmp_path / "a.hdr"), "path")
    assert os.listdir(tmp_path) == []
