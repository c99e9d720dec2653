"""Tests of hudlib.metrics against brute-force numpy references and invariances on Indian Pines."""
import numpy as np
import pytest
import scipy.spatial.distance
import scipy.stats
import torch
from numpy.lib.stride_tricks import sliding_window_view

from hudlib import metrics as M
from hudlib.data import load_scene, patches


# --------------------------------------------------------------------------------------------- references
def _unit(x, axis=-1):
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), M.EPS)


def ref_point_fidelity(G, R):
    """Per-pixel max cosine, explicit float64 matmul over all pairs -> (n, h, w)."""
    n, C, h, w = G.shape
    g = _unit(G.transpose(0, 2, 3, 1).reshape(-1, C).astype(np.float64))
    r = _unit(R.reshape(C, -1).T.astype(np.float64))
    return (g @ r.T).max(1).reshape(n, h, w)


def ref_block_diversity(G, R, b, normalise="block"):
    """Per-block max cosine against every real b x b window, explicit loops -> (n, h//b, w//b)."""
    n, C, h, w = G.shape
    win = sliding_window_view(R.astype(np.float64), (b, b), axis=(1, 2))  # (C, Ho, Wo, b, b)
    win = win.transpose(1, 2, 0, 3, 4).reshape(-1, C, b, b)
    out = np.zeros((n, h // b, w // b))
    for i in range(n):
        for u in range(h // b):
            for v in range(w // b):
                g = G[i, :, u * b:(u + 1) * b, v * b:(v + 1) * b].astype(np.float64)
                if normalise == "block":
                    out[i, u, v] = (_unit(win.reshape(len(win), -1)) @ _unit(g.ravel())).max()
                else:
                    cos = (_unit(win, axis=1) * _unit(g, axis=0)[None]).sum(1)  # (P, b, b)
                    out[i, u, v] = cos.mean((1, 2)).max()
    return out


def ref_pr(X, Y, k):
    """Improved precision/recall with scipy cdist and full sorts."""
    def radii(A):
        return np.sort(scipy.spatial.distance.cdist(A, A), axis=1)[:, k]
    rx, ry = radii(X), radii(Y)
    D = scipy.spatial.distance.cdist(X, Y)  # (fake, real)
    return (D <= ry[None]).any(1).mean(), (D <= rx[:, None]).any(0).mean()


def ref_wp_p(x, y, p):
    """W_p^p of two 1-D samples by replicating both to a common size lcm(n, m) and matching sorted values."""
    n, m = len(x), len(y)
    L = np.lcm(n, m)
    xs, ys = np.sort(np.repeat(x, L // n)), np.sort(np.repeat(y, L // m))
    return np.mean(np.abs(xs - ys) ** p)


def ref_nn_windows(G, R, exclude=None):
    """Nearest h x w window (stride 1) of each patch by explicit loops; exclude: (K, E, 2) corners."""
    K, C, h, w = G.shape
    _, H, W = R.shape
    d = np.full(K, np.inf)
    pos = np.zeros((K, 2), int)
    for i in range(K):
        for r in range(H - h + 1):
            for c in range(W - w + 1):
                if exclude is not None and any(abs(r - er) < h and abs(c - ec) < w for er, ec in exclude[i]):
                    continue
                v = np.linalg.norm(G[i].astype(np.float64) - R[:, r:r + h, c:c + w])
                if v < d[i]:
                    d[i], pos[i] = v, (r, c)
    return d, pos


@pytest.fixture(scope="module")
def scene():
    return load_scene("IndianPines").cube


# --------------------------------------------------------------------------------------------- F_p, eq. 16
def test_point_fidelity_matches_brute_force_with_chunking():
    rng = np.random.default_rng(0)
    R = rng.standard_normal((12, 20, 17)).astype(np.float32)
    G = rng.standard_normal((3, 12, 6, 5)).astype(np.float32)
    ref = ref_point_fidelity(G, R)
    fp, per = M.point_fidelity(G, R, return_per_pixel=True)
    assert per.shape == (3, 6, 5)
    np.testing.assert_allclose(per, ref, atol=1e-5)
    assert abs(fp - ref.mean()) < 1e-5
    # tiny chunks: several generated chunks, patch groups split, real pixels chunked (max_bytes -> 9 columns)
    fp2, per2 = M.point_fidelity(G, R, chunk=7, max_bytes=4 * 7 * 9, return_per_pixel=True)
    np.testing.assert_allclose(per2, ref, atol=1e-5)


def test_point_fidelity_real_crops_is_one_and_scale_invariant(scene):
    crops = patches(scene, size=16, n=4, random_state=3)
    assert M.point_fidelity(crops, scene) == pytest.approx(1.0, abs=1e-5)
    rng = np.random.default_rng(1)
    noisy = (crops + 0.05 * rng.standard_normal(crops.shape)).astype(np.float32)
    fp = M.point_fidelity(noisy, scene)
    assert fp < 0.999
    assert M.point_fidelity(3.7 * noisy, scene) == pytest.approx(fp, abs=1e-6)


def test_zero_norm_pixels_and_blocks_give_no_nan():
    rng = np.random.default_rng(2)
    R = rng.random((5, 12, 12)).astype(np.float32)
    R[:, 3, 4] = 0.0
    G = rng.random((2, 5, 8, 8)).astype(np.float32)
    G[0, :, 1, 2] = 0.0
    G[1, :, 4:, 4:] = 0.0  # one whole 4 x 4 block is zero
    fp, per = M.point_fidelity(G, R, return_per_pixel=True)
    assert np.isfinite(fp) and np.isfinite(per).all()
    assert per[0, 1, 2] == 0.0 and per[1, 5, 5] == 0.0
    np.testing.assert_allclose(per, ref_point_fidelity(G, R), atol=1e-5)
    for mode in ("block", "pixel"):
        db, blk = M.block_diversity(G, R, block=4, normalise=mode, return_per_block=True)
        assert np.isfinite(db) and np.isfinite(blk).all() and blk[1, 1, 1] == 0.0
        np.testing.assert_allclose(blk, ref_block_diversity(G, R, 4, mode), atol=1e-5)


def _low_rank_batch(seed=0, n=3, C=40, d=5, side=16, off=((1, 2, 3),)):
    """Patches decoded from d endmembers (Y = E X, as HUD's) with a few pixels pushed off span(E)."""
    rng = np.random.default_rng(seed)
    E = rng.random((C, d))
    X = rng.dirichlet(np.ones(d), size=(n, side, side)).transpose(0, 3, 1, 2)
    G = np.einsum("cd,ndhw->nchw", E, X).astype(np.float32)
    for i, r, c in off:
        G[i, :, r, c] += 0.3 * rng.random(C).astype(np.float32)
    return G


def test_subspace_certifies_each_row():
    """The basis spans the decoded pixels and the off-directions of a few outliers; a row off it is not certified,
    every certified row lies within tol of span(Q); too many directions for the rank cap: no subspace."""
    from hudlib.metrics._common import subspace

    G = _low_rank_batch(off=[(0, r, 0) for r in range(12)])  # 12 pixels with their own directions
    pix = G.transpose(0, 2, 3, 1).reshape(-1, 40)
    Q, ok = subspace(pix, max_rank=20)  # room for all: 5 + 12 directions
    assert Q.shape == (40, 17) and np.allclose(Q.T @ Q, np.eye(17), atol=1e-12) and ok.all()
    assert subspace(pix) is None  # C // 4 = 10 < 17
    Q, ok = subspace(pix[pix.shape[0] // 2:])  # patches 1, 2: the 5 endmember directions only
    assert Q.shape == (40, 5) and ok.all()
    x = pix.astype(np.float64)
    res = np.linalg.norm(x - x @ Q @ Q.T, axis=1) / np.linalg.norm(x, axis=1)
    off = np.zeros(len(pix), bool)
    off[[r * 16 for r in range(12)]] = True
    assert res[off].min() > 2e-7 and res[~off].max() <= 2e-7  # the outliers are far from span(E), the rest in it
    full = np.random.default_rng(1).random((500, 40)).astype(np.float32)
    assert subspace(full) is None  # full rank


def test_low_rank_point_fidelity_and_block_diversity_match_brute_force():
    """Generated pixels in a 5-D subspace (plus one pixel off it) scored in that subspace: the same per-pixel and
    per-block values as the full computation and the float64 transcription, to 1e-6."""
    from hudlib.metrics import paper_exact as PE

    rng = np.random.default_rng(3)
    R = rng.random((40, 30, 28)).astype(np.float32)
    G = _low_rank_batch()
    ref = ref_point_fidelity(G, R)
    for lr in (True, False):
        _, per = M.point_fidelity(G, R, return_per_pixel=True, low_rank=lr)
        np.testing.assert_allclose(per, ref, atol=1e-6)
        for mode in ("block", "pixel"):
            _, blk = M.block_diversity(G, R, block=4, normalise=mode, return_per_block=True, low_rank=lr)
            np.testing.assert_allclose(blk, ref_block_diversity(G, R, 4, mode), atol=1e-6)
    a = PE.block_diversity_paper(G, R, return_per_patch=True, low_rank=True)[1]
    b = PE.block_diversity_paper(G, R, return_per_patch=True, low_rank=False)[1]
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_point_fidelity_scores_each_distinct_pixel_once(monkeypatch):
    """Repeated pixels (crops of a small real scene) are scored once each: the same per-pixel values as the direct
    computation and the float64 transcription."""
    import hudlib.metrics.paper as P

    rng = np.random.default_rng(5)
    R = rng.random((12, 20, 17)).astype(np.float32)
    G = np.stack([R[:, r:r + 8, c:c + 8] for r, c in rng.integers(0, 9, (30, 2))])  # 1920 pixels, <= 340 distinct
    assert P._repeated_rows(G.transpose(0, 2, 3, 1).reshape(-1, 12)) is not None
    _, once = M.point_fidelity(G, R, return_per_pixel=True)
    monkeypatch.setattr(P, "_repeated_rows", lambda pix, share=0.5: None)
    _, direct = M.point_fidelity(G, R, return_per_pixel=True)
    np.testing.assert_array_equal(once, direct)
    np.testing.assert_allclose(once, ref_point_fidelity(G, R), atol=1e-6)


# --------------------------------------------------------------------------------------------- D_b, eq. 17
@pytest.mark.parametrize("mode", ["block", "pixel"])
def test_block_diversity_matches_brute_force_with_chunking(mode):
    rng = np.random.default_rng(4)
    R = rng.standard_normal((6, 19, 23)).astype(np.float32)
    G = rng.standard_normal((3, 6, 10, 9)).astype(np.float32)  # remainder rows/cols are ignored
    ref = ref_block_diversity(G, R, 4, mode)
    db, per = M.block_diversity(G, R, block=4, normalise=mode, return_per_block=True)
    assert per.shape == (3, 2, 2)
    np.testing.assert_allclose(per, ref, atol=1e-5)
    assert abs(db - ref.mean()) < 1e-5
    # kernel chunks of 5 blocks and one output row per strip
    db2, per2 = M.block_diversity(G, R, block=4, normalise=mode, return_per_block=True, kernel_chunk=5,
                                  max_bytes=1)
    np.testing.assert_allclose(per2, ref, atol=1e-5)


def test_block_diversity_real_crops_is_one_aligned_or_not(scene):
    rng = np.random.default_rng(5)
    corners = [(0, 0), (8, 16), (13, 7), (101, 90), (125, 122)]  # block-aligned and not
    crops = np.stack([scene[:, r:r + 20, c:c + 20] for r, c in corners])  # 20 = 2 blocks of 8 + remainder
    db, per = M.block_diversity(crops, scene, block=8, return_per_block=True)
    assert db == pytest.approx(1.0, abs=1e-5)
    assert per.shape == (5, 2, 2)
    assert M.block_diversity(crops, scene, block=8, normalise="pixel") == pytest.approx(1.0, abs=1e-5)
    noisy = (crops + 0.05 * rng.standard_normal(crops.shape)).astype(np.float32)
    db_noisy = M.block_diversity(noisy, scene, block=8)
    assert db_noisy < 0.999
    assert M.block_diversity(0.25 * noisy, scene, block=8) == pytest.approx(db_noisy, abs=1e-6)


# --------------------------------------------------------------------------------------------- precision/recall
def test_manifold_precision_recall_matches_brute_force():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((60, 7)).astype(np.float32)
    Y = (rng.standard_normal((45, 7)) * 1.3 + 0.4).astype(np.float32)
    for k in (1, 3, 5):
        p_ref, r_ref = ref_pr(X.astype(np.float64), Y.astype(np.float64), k)
        out = M.manifold_precision_recall(X, Y, k=k, max_bytes=8 * 60 * 7)  # row chunks of 7
        assert out["precision"] == pytest.approx(p_ref, abs=1e-12)
        assert out["recall"] == pytest.approx(r_ref, abs=1e-12)
    assert M.manifold_precision_recall(X, X, k=3) == {"precision": 1.0, "recall": 1.0}


def test_precision_recall_spectra_matches_brute_force_and_self_is_one():
    rng = np.random.default_rng(7)
    R = rng.random((6, 5, 10)).astype(np.float32)
    G = (rng.random((10, 6, 2, 2)) * 0.8 + 0.1).astype(np.float32)
    p_ref, r_ref = ref_pr(G.transpose(0, 2, 3, 1).reshape(-1, 6).astype(np.float64),
                          R.reshape(6, -1).T.astype(np.float64), 3)
    out = M.precision_recall(G, R, k=3, space="spectra", max_points=None)
    assert (out["precision"], out["recall"]) == pytest.approx((p_ref, r_ref), abs=1e-12)
    assert M.precision_recall(R[None], R, max_points=None) == {"precision": 1.0, "recall": 1.0}
    # spectral PCA keeping every axis is a rotation + shift: same result
    assert M.precision_recall(G, R, max_points=None, n_components=6) == out


def test_precision_recall_patches_space():
    rng = np.random.default_rng(15)
    R = rng.random((3, 9, 10)).astype(np.float32)
    every = np.stack([R[:, r:r + 4, c:c + 4] for r in range(6) for c in range(7)])  # all 42 windows
    # every real crop is one of the generated points (distance 0): recall 1
    assert M.precision_recall(every, R, space="patches", max_points=None)["recall"] == 1.0
    far = (every + 100.0).astype(np.float32)
    assert M.precision_recall(far, R, space="patches") == {"precision": 0.0, "recall": 0.0}
    # rectangular patches are accepted, points are bands*h*w long
    out = M.precision_recall(every[:, :, :, :3], R, space="patches", n_components=2)
    assert 0.0 < out["recall"] <= 1.0


# --------------------------------------------------------------------------------------------- sliced Wasserstein
def test_wasserstein_1d_exact_for_unequal_sizes():
    rng = np.random.default_rng(8)
    for n, m in ((4, 6), (7, 5), (9, 9), (1, 3)):
        x, y = rng.standard_normal(n), rng.standard_normal(m) + 0.3
        got = M.wasserstein_1d(torch.from_numpy(x)[None], torch.from_numpy(y)[None], p=1).item()
        assert got == pytest.approx(scipy.stats.wasserstein_distance(x, y), abs=1e-12)
        for p in (1, 2):
            got = M.wasserstein_1d(torch.from_numpy(x)[None], torch.from_numpy(y)[None], p=p).item()
            assert got == pytest.approx(ref_wp_p(x, y, p), abs=1e-12)


@pytest.mark.parametrize("p", [1, 2])
def test_sliced_wasserstein_matches_projection_loop(p):
    rng = np.random.default_rng(9)
    G = rng.random((3, 8, 3, 4)).astype(np.float32)  # 36 spectra
    R = (rng.random((8, 5, 6)) * 1.2).astype(np.float32)  # 30 spectra
    theta = rng.standard_normal((17, 8))
    unit = theta / np.linalg.norm(theta, axis=1, keepdims=True)
    x = G.transpose(0, 2, 3, 1).reshape(-1, 8).astype(np.float64)
    y = R.reshape(8, -1).T.astype(np.float64)
    if p == 1:
        per = [scipy.stats.wasserstein_distance(x @ t, y @ t) for t in unit]
    else:
        per = [ref_wp_p(x @ t, y @ t, 2) for t in unit]
    ref = np.mean(per) ** (1.0 / p)
    got = M.sliced_wasserstein(G, R, p=p, directions=theta, max_points=None)
    assert got == pytest.approx(ref, rel=1e-5)
    assert M.sliced_wasserstein(R[None], R, p=p, max_points=None) == pytest.approx(0.0, abs=1e-6)


# --------------------------------------------------------------------------------------------- copy rate
@pytest.mark.parametrize("criterion", ["relative", "absolute"])
def test_copy_rate_distances_match_brute_force(criterion):
    rng = np.random.default_rng(10)
    R = rng.random((4, 13, 11)).astype(np.float32)
    G = rng.random((5, 4, 4, 4)).astype(np.float32)
    G[0] = R[:, 2:6, 5:9]  # a copy
    rate, det = M.copy_rate(G, R, criterion=criterion, n_components=None, n_calibration=9, quantile=0.3,
                            return_details=True)
    d1, p1 = ref_nn_windows(G, R)
    np.testing.assert_allclose(det["d1"], d1, atol=1e-4)
    corners = det["corners"]
    d1_0, p1_0 = ref_nn_windows(np.stack([R[:, r:r + 4, c:c + 4] for r, c in corners]), R, corners[:, None])
    np.testing.assert_allclose(det["d1_0"], d1_0, atol=1e-4)
    if criterion == "relative":
        d2, _ = ref_nn_windows(G, R, p1[:, None])
        np.testing.assert_allclose(det["d2"], d2, atol=1e-4)
        cal = np.stack([R[:, r:r + 4, c:c + 4] for r, c in corners])
        d2_0, _ = ref_nn_windows(cal, R, np.stack([corners, p1_0], 1))
        np.testing.assert_allclose(det["d2_0"], d2_0, atol=1e-4)
        stat, stat0 = d1 / d2, d1_0 / d2_0
    else:
        stat, stat0 = d1, d1_0
    tau = np.quantile(stat0, 0.3)
    assert det["tau"] == pytest.approx(tau, abs=1e-4)
    np.testing.assert_array_equal(det["copy"], stat <= tau)
    assert det["copy"][0] and rate == pytest.approx(np.mean(stat <= tau))


def test_copy_rate_calibration_is_computed_once_per_scene(monkeypatch):
    """The held-out calibration depends on the scene only: a second generator reuses it (half of the nearest-window
    searches), a changed scene or seed recomputes it, and the results equal a fresh computation."""
    from hudlib.metrics import _common, distribution as D
    rng = np.random.default_rng(13)
    R = rng.random((4, 13, 11)).astype(np.float32)
    G1, G2 = rng.random((2, 5, 4, 4, 4)).astype(np.float32)
    calls = []
    real_nn = D._nn_windows
    monkeypatch.setattr(D, "_nn_windows", lambda *a, **k: calls.append(a[5]) or real_nn(*a, **k))
    _common._MEMO.clear()
    r1, det1 = M.copy_rate(G1, R, n_calibration=9, n_components=None, return_details=True)
    assert sorted(calls) == sorted(["copy: generated", "copy: generated 2nd", "copy: held-out",
                                    "copy: held-out 2nd"])
    calls.clear()
    r2, det2 = M.copy_rate(G2, R, n_calibration=9, n_components=None, return_details=True)
    assert sorted(calls) == ["copy: generated", "copy: generated 2nd"]  # calibration reused
    _common._MEMO.clear()
    r2_fresh, det2_fresh = M.copy_rate(G2, R, n_calibration=9, n_components=None, return_details=True)
    assert r2 == r2_fresh and det2["tau"] == det2_fresh["tau"]
    np.testing.assert_array_equal(det2["rho_0"], det2_fresh["rho_0"])
    calls.clear()
    R2 = R.copy()
    R2[0, 0, 0] += 1.0
    M.copy_rate(G2, R2, n_calibration=9, n_components=None)
    M.copy_rate(G2, R, n_calibration=9, n_components=None, random_state=1)
    assert calls.count("copy: held-out") == 2  # another scene, another seed: calibrated again


def test_copy_rate_pca_shrinks_distances():
    rng = np.random.default_rng(11)
    R = rng.random((6, 12, 14)).astype(np.float32)
    G = rng.random((4, 6, 5, 5)).astype(np.float32)
    _, exact = M.copy_rate(G, R, n_components=None, n_calibration=8, return_details=True)
    _, full = M.copy_rate(G, R, n_components=6, n_calibration=8, return_details=True)  # all axes = exact
    _, low = M.copy_rate(G, R, n_components=2, n_calibration=8, return_details=True)
    np.testing.assert_allclose(full["d1"], exact["d1"], atol=1e-4)
    assert (low["d1"] <= exact["d1"] + 1e-4).all() and (low["d1"] < exact["d1"] - 1e-3).any()


def test_copy_rate_real_crops_one_noise_zero_mean_spectrum_zero(scene):
    rng = np.random.default_rng(12)
    crops = patches(scene, size=32, n=8, random_state=13)
    mu, sd = scene.mean((1, 2))[:, None, None], scene.std((1, 2))[:, None, None]
    noise = (mu + sd * rng.standard_normal((8, 200, 32, 32))).astype(np.float32)
    mean = np.broadcast_to(mu, (8, 200, 32, 32))
    G = np.concatenate([crops, noise, mean])
    rate, det = M.copy_rate(G, scene, n_calibration=32, return_details=True)
    assert det["copy"][:8].all() and not det["copy"][8:].any()
    assert rate == pytest.approx(1 / 3)
    # the absolute rule (documented in copy_rate) flags the smooth mean-spectrum patches as copies
    _, det_abs = M.copy_rate(G, scene, criterion="absolute", n_calibration=32, return_details=True)
    assert det_abs["copy"][:8].all() and not det_abs["copy"][8:16].any() and det_abs["copy"][16:].all()


# --------------------------------------------------------------------------------------------- discrimination
def test_mean_spectrum_generator_high_fidelity_low_recall(scene):
    """F_p cannot tell the mean spectrum repeated from real data; recall and SW can."""
    crops = patches(scene, size=32, n=8, random_state=14)
    mean = np.broadcast_to(scene.mean((1, 2))[:, None, None], crops.shape).astype(np.float32)
    fp_mean = M.point_fidelity(mean, scene)
    assert fp_mean > 0.99
    pr_mean = M.precision_recall(mean, scene, max_points=2000)
    pr_real = M.precision_recall(crops, scene, max_points=2000)
    assert pr_mean["recall"] < 0.05 and pr_real["recall"] > 0.5
    sw_mean = M.sliced_wasserstein(mean, scene, n_projections=64, max_points=5000)
    sw_real = M.sliced_wasserstein(crops, scene, n_projections=64, max_points=5000)
    assert sw_mean > 3 * sw_real


# --------------------------------------------------------------------------------------------- bad input
def test_bad_input_raises_naming_the_parameter():
    R = np.zeros((4, 10, 10), np.float32)
    G = np.zeros((2, 4, 4, 4), np.float32)
    with pytest.raises(ValueError, match="generated"):
        M.point_fidelity(G[0], R)
    with pytest.raises(ValueError, match="real"):
        M.point_fidelity(G, R[:3])
    with pytest.raises(ValueError, match="generated"):
        M.block_diversity(np.full_like(G, np.nan), R)
    with pytest.raises(ValueError, match="block"):
        M.block_diversity(G, R, block=5)
    with pytest.raises(ValueError, match="normalise"):
        M.block_diversity(G, R, block=2, normalise="x")
    with pytest.raises(ValueError, match="space"):
        M.precision_recall(G, R, space="pixels")
    with pytest.raises(ValueError, match="k"):
        M.manifold_precision_recall(np.zeros((3, 2)), np.zeros((5, 2)), k=3)
    with pytest.raises(ValueError, match="p"):
        M.sliced_wasserstein(G, R, p=3)
    with pytest.raises(ValueError, match="quantile"):
        M.copy_rate(G, R, quantile=1.5)
    with pytest.raises(ValueError, match="real"):
        M.copy_rate(np.zeros((1, 4, 6, 6), np.float32), R)


# ----------------------------------------------------------------------------- texture (neighbour angle)

def _brute_neighbour_angle(G):
    out = []
    n, b, h, w = G.shape
    for i in range(n):
        for y in range(h):
            for x in range(w):
                for yy, xx in ((y, x + 1), (y + 1, x)):
                    if yy < h and xx < w:
                        p, q = G[i, :, y, x].astype(np.float64), G[i, :, yy, xx].astype(np.float64)
                        c = p @ q / (np.linalg.norm(p) * np.linalg.norm(q))
                        out.append(np.arccos(np.clip(c, -1, 1)))
    return float(np.mean(out))


def test_neighbour_angle_against_brute_force_and_roughness_gap():
    from hudlib.metrics import neighbour_angle, roughness_gap

    rng = np.random.default_rng(0)
    G = rng.random((3, 7, 5, 6)).astype(np.float32)
    assert neighbour_angle(G) == pytest.approx(_brute_neighbour_angle(G), rel=1e-6)
    # a smooth field: two endmembers mixed along a ramp; noise on it raises the angle, flat colour zeroes it
    e1, e2 = rng.random(7) + 0.1, rng.random(7) + 0.1
    a = np.linspace(0, 1, 16)[None, :, None] * np.ones((4, 1, 16))
    smooth = (a[:, None] * e1[None, :, None, None] + (1 - a[:, None]) * e2[None, :, None, None]).astype(np.float32)
    noisy = smooth * rng.uniform(0.5, 1.5, smooth.shape).astype(np.float32)
    flat = np.broadcast_to(e1[None, :, None, None], smooth.shape).astype(np.float32)
    assert roughness_gap(smooth, smooth) == 0.0
    assert neighbour_angle(flat) == pytest.approx(0.0, abs=1e-6)
    assert roughness_gap(noisy, smooth) > 1.0 and roughness_gap(flat, smooth) == pytest.approx(np.log(1e3))
    with pytest.raises(ValueError, match="real_patches"):
        roughness_gap(smooth, flat)


def test_within_patch_angle_and_spatial_coherence():
    from hudlib.metrics import coherence_gap, neighbour_angle, spatial_coherence, within_patch_angle

    rng = np.random.default_rng(1)
    G = rng.random((2, 5, 4, 3)).astype(np.float32)
    ref = []
    for i in range(2):
        F = G[i].reshape(5, -1).astype(np.float64)
        for a in range(12):
            for b in range(12):
                if a != b:
                    c = F[:, a] @ F[:, b] / (np.linalg.norm(F[:, a]) * np.linalg.norm(F[:, b]))
                    ref.append(np.arccos(np.clip(c, -1, 1)))
    assert within_patch_angle(G, chunk=1) == pytest.approx(np.mean(ref), rel=1e-9)
    # the symmetric block evaluation: blocks of 5 pixels (12 = 5 + 5 + 2; diagonal and off-diagonal blocks)
    assert within_patch_angle(G, pixel_block=5) == pytest.approx(np.mean(ref), rel=1e-9)
    assert within_patch_angle(G, pixel_block=1) == pytest.approx(np.mean(ref), rel=1e-9)
    # i.i.d. pixels: neighbours are no closer than any pair; a smooth ramp: much closer; flat: 0 by convention
    iid = rng.random((8, 6, 16, 16)).astype(np.float32)
    assert spatial_coherence(iid) == pytest.approx(1.0, abs=0.03)
    e1, e2 = rng.random(6) + 0.1, rng.random(6) + 0.1
    a = np.linspace(0, 1, 16)[None, :, None] * np.ones((4, 1, 16))
    ramp = (a[:, None] * e1[None, :, None, None] + (1 - a[:, None]) * e2[None, :, None, None]).astype(np.float32)
    assert spatial_coherence(ramp) < 0.2
    flat = np.broadcast_to(e1[None, :, None, None], ramp.shape).astype(np.float32)
    assert spatial_coherence(flat) == 0.0 and coherence_gap(flat, ramp) == pytest.approx(np.log(1e3))
    assert coherence_gap(ramp, ramp) == 0.0 and coherence_gap(iid, ramp) > 1.5
    gap, det = coherence_gap(iid, ramp, return_details=True)
    assert gap == coherence_gap(iid, ramp) and det == {"generated": spatial_coherence(iid),
                                                        "real": spatial_coherence(ramp)}
    assert neighbour_angle(ramp) > 0
    # the real patches' statistics are memoised by content: a changed array in the same buffer is recomputed
    real = ramp.copy()
    assert coherence_gap(iid, real) == gap
    real[:] = iid[:4]
    assert coherence_gap(iid[:4], real) == 0.0


def test_copy_rate_stride_without_admissible_calibration_windows_is_a_one_line_error():
    """A stride so coarse that every window near a held-out crop overlaps it leaves nothing to calibrate on: a clear
    error naming the stride and the scene's size (it used to fail with a NameError while formatting the message)."""
    rng = np.random.default_rng(0)
    R = rng.random((5, 64, 40)).astype(np.float32)
    G = rng.random((2, 5, 32, 32)).astype(np.float32)
    with pytest.raises(ValueError, match=r"stride: 32 leaves no admissible windows .* 64x40 scene"):
        M.copy_rate(G, R, stride=32, n_calibration=4, n_components=3)
