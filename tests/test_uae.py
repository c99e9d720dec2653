"""hudlib.uae: the relaxation pair (eqs. 4-6), simplex projection, and the frozen autoencoder."""
import itertools
import math

import numpy as np
import pytest
import torch

from hudlib import uae


def _simplex(rng, d, shape):
    return rng.dirichlet(np.ones(d) * 0.3, size=shape).transpose(len(shape), *range(len(shape)))


@pytest.mark.parametrize("d", [3, 9, 16])
def test_eq6_round_trip(d):
    rng = np.random.default_rng(d)
    X = _simplex(rng, d, (2, 8, 8)).transpose(1, 0, 2, 3)  # (n, d, h, w)
    X[0, :, 0, 0] = 0.0
    X[0, 0, 0, 0] = 1.0  # a pure pixel: exact zeros must not give -inf/NaN
    Z = uae.relax(X)
    assert np.isfinite(Z).all()
    assert Z.min() >= -8 - math.log(d) - 1e-12 and Z.max() <= math.log(1 + math.exp(-8) / d) + 1e-12
    Xh = uae.constrain(Z)
    expected = (X + math.exp(-math.log(d) - 8)) / (1 + math.exp(-8))  # eq. 6
    assert np.abs(Xh - expected).max() < 1e-6
    # torch path gives the same
    Zt = uae.relax(torch.from_numpy(X))
    np.testing.assert_allclose(uae.constrain(Zt).numpy(), Xh, atol=1e-12)


def test_constrain_is_on_the_simplex_for_any_z():
    Z = torch.randn(4, 7, 5, 5) * 20
    X = uae.constrain(Z)
    assert X.min() >= 0 and torch.allclose(X.sum(1), torch.ones(4, 5, 5), atol=1e-6)


def _project_brute(v):
    """Exact simplex projection by enumerating supports (KKT): fine for d <= 6."""
    d = len(v)
    best, best_dist = None, np.inf
    for k in range(1, d + 1):
        for S in itertools.combinations(range(d), k):
            S = list(S)
            x = np.zeros(d)
            x[S] = v[S] - (v[S].sum() - 1) / k
            if (x[S] >= -1e-12).all():
                dist = np.sum((x - v) ** 2)
                if dist < best_dist:
                    best, best_dist = np.clip(x, 0, None), dist
    return best


def test_project_simplex_matches_brute_force():
    rng = np.random.default_rng(0)
    V = rng.normal(0, 1.5, size=(5, 200))
    P = uae.project_simplex(V, axis=0)
    ref = np.stack([_project_brute(v) for v in V.T], axis=1)
    np.testing.assert_allclose(P, ref, atol=1e-10)
    assert P.min() >= 0 and np.abs(P.sum(0) - 1).max() < 1e-12
    on = _simplex(rng, 5, (30,))
    np.testing.assert_allclose(uae.project_simplex(on, axis=0), on, atol=1e-12)  # identity on the simplex


def _lmm_scene(seed=0, d=4, bands=30, side=12):
    rng = np.random.default_rng(seed)
    E = np.abs(np.cumsum(rng.normal(0, 0.1, (bands, d)), axis=0)) + 0.1
    X = _simplex(rng, d, (side, side))
    Y = np.einsum("bd,dhw->bhw", E, X)
    return E, X, Y


@pytest.mark.parametrize("encoder", ["fcls", "linear"])
def test_autoencoder_recovers_planted_abundances(encoder):
    E, X, Y = _lmm_scene()
    ae = uae.UnmixingAutoEncoder(E, encoder=encoder)
    Xe = ae.encode(Y)
    np.testing.assert_allclose(Xe, X, atol=1e-6)
    np.testing.assert_allclose(ae.decode(Xe), Y, atol=1e-6)
    # batched torch input gives torch output of the same values
    Xt = ae.encode(torch.from_numpy(np.stack([Y, Y])).float())
    assert isinstance(Xt, torch.Tensor) and Xt.shape == (2,) + X.shape
    np.testing.assert_allclose(Xt[1].numpy(), X, atol=1e-4)


def test_linear_encoder_lands_on_simplex_for_noisy_data():
    E, X, Y = _lmm_scene(1)
    Yn = Y + np.random.default_rng(1).normal(0, 0.2, Y.shape)  # eq. 3 then gives negative abundances
    ae = uae.UnmixingAutoEncoder(E, encoder="linear")
    from hudlib.unmixing import linear_abundances

    assert linear_abundances(Yn, E).min() < 0
    Xe = ae.encode(Yn)
    assert Xe.min() >= 0 and np.abs(Xe.sum(0) - 1).max() < 1e-9
    assert np.isfinite(uae.relax(Xe)).all()


def test_frozen_by_default_and_pinv_is_eq3():
    E, _, _ = _lmm_scene()
    ae = uae.UnmixingAutoEncoder(E)
    assert not any(p.requires_grad for p in ae.parameters())
    assert all(p.requires_grad for p in uae.UnmixingAutoEncoder(E, trainable=True).parameters())
    W = ae.pinv.weight.double().numpy()
    np.testing.assert_allclose(W, np.linalg.solve(E.T @ E, E.T), atol=1e-5)
    with pytest.raises(ValueError, match="encoder: expected 'fcls' or 'linear'"):
        uae.UnmixingAutoEncoder(E, encoder="nmf")
    with pytest.raises(ValueError, match="Y: expected 30 bands"):
        ae.encode(np.zeros((29, 2, 2)))


def test_from_scene_uses_n_classes():
    from hudlib.data import load_scene

    s = load_scene("IndianPines")
    ae = uae.UnmixingAutoEncoder.from_scene(s, random_state=0, encoder="linear")
    assert ae.d == 16 and ae.bands == 200
