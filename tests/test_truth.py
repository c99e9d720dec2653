"""Unmixing judged against a reference: a planted linear-mixing scene with pure pixels gives VCA angles and FCLS
errors of zero, and a generator drawing the reference's own abundance law scores near zero on its statistics."""
import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from hudlib import truth
from hudlib.data import Scene


def _planted(rows=64, cols=64, bands=30, p=3, seed=0):
    """Y = M A with Dirichlet(1) abundances per pixel and p pure pixels; M smooth positive spectra."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, bands)[:, None]
    M = 0.2 + 0.6 * np.abs(np.sin(3 * t * (1 + np.arange(p)) + np.arange(p)))
    A = rng.dirichlet(np.ones(p), size=(rows, cols)).transpose(2, 0, 1)
    for j in range(p):
        A[:, j, j] = np.eye(p)[j]
    Y = np.einsum("bp,prc->brc", M, A).astype(np.float32)
    ref = {"endmembers": 3.0 * M, "abundances": A, "names": ["a", "b", "c"]}  # the reference on another scale
    return Scene("Planted", Y / Y.max(), (0.0, 1.0), np.argmax(A, 0) + 1, p, (0, 1, 2), reference=ref,
                 labels_note="argmax of the planted abundances")


def test_planted_scene_is_recovered_and_the_right_law_scores_near_zero(tmp_path):
    s = _planted()
    r = truth.reference_report(s, "smoke", runs=tmp_path, models=["RandomMixture"], n=64)
    assert max(max(v) for v in r["vca_sad"].values()) < 1e-4  # VCA finds the pure pixels
    assert r["abundance_rmse"]["FCLS, reference endmembers (rescaled)"] < 1e-4
    assert r["abundance_rmse"]["FCLS, the run's VCA endmembers"] < 1e-4
    g = r["generated"]["RandomMixture"]  # Dirichlet(1) per pixel: the planted law itself
    assert max(g["wasserstein"]) < 0.02 and max(g["tv"]) < 0.05
    assert abs(g["acl"] - r["generated"]["reference crops"]["acl"]) < 0.2
    md = truth.markdown(r)
    assert "| RandomMixture |" in md and "argmax of the planted abundances" in md


def test_wasserstein_is_the_sorted_difference_for_equal_sizes():
    """The 1-D W1 the report uses, against its brute-force transcription for equal sample sizes."""
    rng = np.random.default_rng(1)
    a, b = rng.random(500), rng.random(500) ** 2
    assert wasserstein_distance(a, b) == pytest.approx(np.abs(np.sort(a) - np.sort(b)).mean(), rel=1e-12)


def test_a_scene_without_reference_is_refused(scene):
    with pytest.raises(ValueError, match="IndianPines has no reference unmixing"):
        truth.reference_report(scene, "smoke", models=[])
