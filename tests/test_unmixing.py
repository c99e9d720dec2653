"""Tests of hudlib.unmixing: VCA, FCLS (eq. 2), linear abundances (eq. 3), spectral angle, matching."""
from pathlib import Path

import numpy as np
import pytest
import torch

from hudlib import data, unmixing as um
from hudlib.data import DataError

SAMSON = Path("/work/shared/data/Samson")


def _lmm(L=60, p=4, N=800, noise=0.0, seed=0, sparse=False):
    """Linear mixing scene: smooth positive spectra E (L, p), Dirichlet X (p, N) with p pure pixels, Y = EX + n."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, L)[:, None]
    c, w, h = rng.uniform(0, 1, (3, p)), rng.uniform(0.05, 0.3, (3, p)), rng.uniform(0.2, 1, (3, p))
    E = 0.1 + sum(h[i] * np.exp(-0.5 * ((t - c[i]) / w[i]) ** 2) for i in range(3))
    X = rng.dirichlet(np.ones(p), N).T
    if sparse:  # many exact zeros, as FCLS solutions have
        X[rng.random(X.shape) < 0.5] = 0.0
        X[:, X.sum(0) == 0] = 1.0
        X /= X.sum(0)
    pos = rng.choice(N, p, replace=False)
    X[:, pos] = np.eye(p)
    Yc = E @ X
    return E, X, Yc + noise * rng.standard_normal(Yc.shape), pos


@pytest.fixture(scope="module")
def indian_pines():
    scene = data.load_scene("IndianPines")
    E, idx = um.vca(scene.cube, 16, random_state=0)
    return scene, E, idx


def _kkt_violation(Y, E, X):
    """Largest violation of the KKT conditions of eq. 2, from the gradient g = Eᵀ(EX - Y) (brute force)."""
    g = E.T @ (E @ X - Y)  # (p, N)
    on = X > 1e-9
    nu = -np.where(on, g, np.nan)
    nu_mean = np.nanmean(nu, axis=0)
    stat = np.nanmax(np.abs(np.where(on, g + nu_mean, np.nan)), axis=0)  # g_i + ν = 0 on the support
    dual = np.max(np.where(~on, -(g + nu_mean), -np.inf), axis=0)  # g_i + ν >= 0 off the support
    return max(float(stat.max()), float(np.max(dual, initial=0.0)))


# ------------------------------------------------------------------------------------------ spectral angle
def test_spectral_angle_matches_arccos_and_broadcasts():
    rng = np.random.default_rng(0)
    a, b = rng.random((30, 5, 1)), rng.random((30, 1, 7))
    got = um.spectral_angle(a, b)
    assert got.shape == (5, 7)
    for i in range(5):
        for j in range(7):
            x, y = a[:, i, 0], b[:, 0, j]
            ref = np.arccos(np.clip(x @ y / np.linalg.norm(x) / np.linalg.norm(y), -1, 1))
            assert abs(got[i, j] - ref) < 1e-7
    assert np.allclose(um.spectral_angle(a, 3.5 * a), 0, atol=1e-12)  # scale invariant, exact at 0
    e = np.eye(3)
    np.testing.assert_allclose(um.spectral_angle(e[:, 0], e[:, 1]), np.pi / 2, atol=1e-15)
    np.testing.assert_allclose(um.spectral_angle(e[:, 0], -e[:, 0]), np.pi, atol=1e-15)
    assert np.isnan(um.spectral_angle(np.zeros(3), e[:, 0]))
    with pytest.raises(ValueError, match="band counts"):
        um.spectral_angle(np.ones(3), np.ones(4))


# ------------------------------------------------------------------------------------------ VCA
def test_vca_recovers_pure_pixels_noise_free():
    E, X, Y, pos = _lmm()
    model = um.VCA(4, random_state=0).fit(Y)
    assert model.snr_ == np.inf and model.branch_ == "projective"
    assert sorted(model.indices_.tolist()) == sorted(pos.tolist())
    perm, ang = um.match_endmembers(model.endmembers_, E)
    assert ang.max() < 1e-6
    np.testing.assert_allclose(model.endmembers_[:, perm], E, atol=1e-12)  # original spectra returned


@pytest.mark.parametrize("snr_input, branch", [(0.0, "pca"), (100.0, "projective")])
def test_vca_both_snr_branches_forced(snr_input, branch):
    E, X, Y, pos = _lmm(p=5, seed=3)
    model = um.VCA(5, random_state=1, snr_input=snr_input).fit(Y)
    assert model.branch_ == branch and model.snr_ == snr_input
    assert sorted(model.indices_.tolist()) == sorted(pos.tolist())
    assert um.match_endmembers(model.endmembers_, E)[1].max() < 1e-6


def test_vca_snr_estimate_and_branch_follow_noise():
    threshold = 15 + 10 * np.log10(4)
    for noise, branch in [(0.01, "projective"), (0.3, "pca")]:
        E, X, Y, pos = _lmm(noise=noise, seed=2)
        signal = E @ X
        snr_true = 10 * np.log10(np.sum(signal ** 2) / np.sum((Y - signal) ** 2))
        model = um.VCA(4, random_state=0).fit(Y)
        assert abs(model.snr_ - snr_true) < 1.0  # the estimator of Nascimento & Dias
        assert model.branch_ == branch and (model.snr_ < threshold) == (branch == "pca")
    E, X, Y, pos = _lmm(noise=0.01, seed=2)
    assert um.match_endmembers(um.vca(Y, 4, random_state=0)[0], E)[1].max() < 0.05


def test_vca_deterministic_and_shape_handling(monkeypatch):
    E, X, Y, pos = _lmm(N=30 * 20, noise=0.01, seed=4)
    cube = Y.reshape(60, 30, 20)
    E1, i1 = um.vca(cube, 4, random_state=7)
    E2, i2 = um.vca(cube, 4, random_state=7)
    E3, i3 = um.vca(Y, 4, random_state=np.random.default_rng(7))
    assert np.array_equal(i1, i2) and np.array_equal(E1, E2) and np.array_equal(i1, i3)
    monkeypatch.setattr(um, "_VCA_CHUNK", 97)  # chunked accumulation gives the same pixels
    assert np.array_equal(um.vca(cube.astype(np.float32), 4, random_state=7)[1],
                          um.vca(cube.astype(np.float32).astype(np.float64), 4, random_state=7)[1])
    assert np.array_equal(um.vca(cube, 4, random_state=7)[1], i1)
    assert E1.shape == (60, 4) and E1.dtype == np.float64 and i1.shape == (4,)
    np.testing.assert_array_equal(E1, cube.reshape(60, -1)[:, i1])  # flat C-order indices
    rows, cols = np.unravel_index(i1, (30, 20))
    np.testing.assert_array_equal(E1, cube[:, rows, cols])


def test_vca_bad_inputs():
    E, X, Y, pos = _lmm(N=100)
    with pytest.raises(DataError, match="Y"):
        um.vca(Y[:, 0], 2)
    with pytest.raises(DataError, match="Y"):
        um.vca(Y.reshape(60, 10, 5, 2), 2)
    with pytest.raises(ValueError, match="n_endmembers"):
        um.vca(Y[:5], 6)  # more endmembers than bands
    with pytest.raises(ValueError, match="n_endmembers"):
        um.vca(Y, 0)
    with pytest.raises(ValueError, match="n_endmembers"):
        um.vca(Y[:, :3], 4)  # more endmembers than pixels
    bad = Y.copy()
    bad[3, 7] = np.nan
    with pytest.raises(DataError, match="NaN"):
        um.VCA(3).fit(bad)


# ------------------------------------------------------------------------------------------ abundances
def test_linear_abundances_is_eq3_and_exact_noise_free():
    E, X, Y, pos = _lmm(N=300)
    Xt = X + np.random.default_rng(1).normal(0, 0.5, X.shape)  # eq. 3 has no constraints
    got = um.linear_abundances((E @ Xt).reshape(60, 15, 20), E)
    assert got.shape == (4, 15, 20)
    np.testing.assert_allclose(got.reshape(4, -1), Xt, atol=1e-9)
    explicit = np.linalg.inv(E.T @ E) @ E.T @ Y  # eq. 3 written out
    np.testing.assert_allclose(um.linear_abundances(Y, E), explicit, atol=1e-8)


def test_fcls_recovers_planted_abundances_noise_free():
    for sparse in (False, True):
        E, X, Y, pos = _lmm(N=1000, sparse=sparse, seed=5)
        got = um.fcls(Y, E, progress=False)
        assert np.abs(got - X).max() < 1e-6
        assert got.min() >= 0 and np.abs(got.sum(0) - 1).max() <= 1e-6


def test_fcls_constraints_optimality_and_reference_on_random_data():
    rng = np.random.default_rng(6)
    E, _, _, _ = _lmm(L=40, p=6, seed=6)
    Y = rng.uniform(0, 2, (40, 23, 19))  # far outside the simplex: many active constraints
    X = um.fcls(Y, E, progress=False)
    assert X.shape == (6, 23, 19) and X.dtype == np.float64
    assert X.min() >= 0.0 and np.abs(X.sum(0) - 1).max() <= 1e-6
    ref = um.fcls_reference(Y, E, progress=False)
    assert ref.shape == X.shape and np.abs(X - ref).max() <= 1e-4
    assert _kkt_violation(Y.reshape(40, -1), E, X.reshape(6, -1)) < 1e-7
    # the penalised (Heinz & Chang) system is close to, but not as exact as, the homogeneous one
    pen = um.fcls_reference(Y[:, :4], E, delta=1e3, progress=False)
    assert np.abs(pen - ref[:, :4]).max() < 1e-4
    assert np.abs(ref.sum(0) - 1).max() < 1e-12
    # eq. 2 is invariant to a common scale of Y and E (raw sensor counts give the same abundances)
    np.testing.assert_allclose(um.fcls(1e4 * Y, 1e4 * E, progress=False), X, atol=1e-9)
    np.testing.assert_allclose(um.fcls_reference(1e4 * Y[:, :3], 1e4 * E, progress=False), ref[:, :3], atol=1e-9)


def test_fcls_shapes_chunks_torch_path_and_tensors(monkeypatch):
    E, X, Y, pos = _lmm(L=30, p=5, N=240, noise=0.05, seed=8)
    base = um.fcls(Y, E, progress=False)
    np.testing.assert_allclose(um.fcls(Y.reshape(30, 4, 6, 10), E, progress=False), base.reshape(5, 4, 6, 10))
    np.testing.assert_allclose(um.fcls(Y[:, 3], E, progress=False), base[:, 3], atol=1e-12)  # one spectrum
    np.testing.assert_allclose(um.fcls(Y, E, chunk_size=17, progress=False), base, atol=1e-12)
    np.testing.assert_allclose(um.fcls(Y.astype(np.float32), E, progress=False),
                               um.fcls(Y.astype(np.float32).astype(np.float64), E, progress=False))
    out = um.fcls(torch.from_numpy(Y), E, device="cpu", progress=False)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), base, atol=1e-12)
    monkeypatch.setattr(um, "_FORCE_TORCH", True)  # the code path used on GPUs
    np.testing.assert_allclose(um.fcls(Y, E, progress=False), base, atol=1e-10)


def test_fcls_fallback_after_max_iter():
    E, X, Y, pos = _lmm(L=30, p=5, N=200, noise=0.1, seed=9)
    with pytest.warns(RuntimeWarning, match="max_iter"):
        got = um.fcls(Y, E, max_iter=0, progress=False)
    np.testing.assert_allclose(got, um.fcls(Y, E, progress=False), atol=1e-9)


def test_fcls_more_endmembers_than_bands():
    # [E; 1ᵀ] of full rank is all eq. 2 needs: EᵀE may be singular (p = bands + 1)
    rng = np.random.default_rng(11)
    E = rng.uniform(0.1, 1, (3, 4))
    Y = rng.uniform(0, 1, (3, 300))
    got = um.fcls(Y, E, progress=False)
    assert np.abs(got - um.fcls_reference(Y, E, progress=False)).max() <= 1e-6
    assert got.min() >= 0 and np.abs(got.sum(0) - 1).max() <= 1e-6


def test_fcls_indian_pines_matches_reference(indian_pines):
    scene, E, _ = indian_pines
    X = um.fcls(scene.cube, E, progress=False)
    assert X.shape == (16, 145, 145) and X.min() >= 0 and np.abs(X.sum(0) - 1).max() <= 1e-6
    pix = np.random.default_rng(0).choice(145 * 145, 1500, replace=False)
    Y = scene.cube.reshape(scene.bands, -1)[:, pix]
    ref = um.fcls_reference(Y, E, progress=False)
    assert np.abs(X.reshape(16, -1)[:, pix] - ref).max() <= 1e-4
    assert np.abs(um.fcls(Y, E, progress=False) - ref).max() <= 1e-4
    assert _kkt_violation(Y.astype(np.float64), E, X.reshape(16, -1)[:, pix]) < 1e-6


def test_fcls_bad_inputs():
    E, X, Y, pos = _lmm(N=50)
    with pytest.raises(DataError, match="bands"):
        um.fcls(Y[:-1], E, progress=False)
    with pytest.raises(DataError, match="E"):
        um.fcls(Y, E[:, 0], progress=False)
    bad = Y.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        um.fcls(bad, E, progress=False)
    with pytest.raises(ValueError, match="affinely"):
        um.fcls(Y, np.c_[E, E[:, :1]], progress=False)  # a repeated endmember
    with pytest.raises(ValueError, match="chunk_size"):
        um.fcls(Y, E, chunk_size=0, progress=False)
    with pytest.raises(DataError, match="bands"):
        um.linear_abundances(Y, E[:-2])
    with pytest.raises(DataError, match="bands"):
        um.fcls_reference(Y, E[:-2], progress=False)


# ------------------------------------------------------------------------------------------ matching
def test_match_endmembers_recovers_permutation():
    E, X, Y, pos = _lmm(p=5, seed=10)
    perm_true = np.array([3, 0, 4, 1, 2])
    E_est = E[:, perm_true] * np.array([2.0, 0.5, 1.0, 3.0, 1.5])  # scales do not change angles
    perm, ang = um.match_endmembers(E_est, E)
    np.testing.assert_array_equal(perm, np.argsort(perm_true))
    np.testing.assert_allclose(E_est[:, perm] / np.linalg.norm(E_est[:, perm], axis=0),
                               E / np.linalg.norm(E, axis=0), atol=1e-12)
    assert ang.shape == (5,) and ang.max() < 1e-7
    extra = np.c_[E_est, E[:, :1] + 0.3]  # more estimates than references
    perm2, _ = um.match_endmembers(extra, E)
    np.testing.assert_array_equal(perm2, perm)
    with pytest.raises(ValueError, match="p_ref <= p_est"):
        um.match_endmembers(E[:, :2], E)


# ------------------------------------------------------------------------------------------ Samson
@pytest.mark.skipif(not SAMSON.is_dir(), reason="Samson benchmark folder missing")
def test_samson_vca_and_fcls():
    b = data.load_unmixing_benchmark(SAMSON / "Samson.mat", SAMSON / "_EndSamson.mat")
    _, ang = um.match_endmembers(um.vca(b.cube, 3, random_state=0)[0], b.endmembers)
    # measured: SAD rock 0.066, tree 0.071, water 0.130 rad (mean 0.089)
    assert ang.mean() < 0.15 and ang.max() < 0.2
    # The file's M is on another scale than Y (M has max 1); calibrate one factor per endmember by least
    # squares of Y ≈ M diag(c) A_ref, then FCLS with M diag(c). Measured RMSE 0.168 (0.130, 0.135, 0.222).
    Y = b.cube.reshape(b.cube.shape[0], -1).astype(np.float64)
    A = b.abundances.reshape(3, -1)
    design = np.stack([np.outer(b.endmembers[:, j], A[j]).ravel() for j in range(3)], axis=1)
    c = np.linalg.lstsq(design, Y.ravel(), rcond=None)[0]
    Ec = b.endmembers * c
    X = um.fcls(b.cube, Ec, progress=False).reshape(3, -1)
    assert np.sqrt(np.mean((X - A) ** 2)) < 0.2
    # FCLS minimises eq. 2 over the simplex, so it fits Y at least as well as the (feasible) reference
    assert np.sum((Y - Ec @ X) ** 2) <= np.sum((Y - Ec @ A) ** 2)
