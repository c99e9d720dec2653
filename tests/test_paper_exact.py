"""hudlib.metrics.paper_exact against direct loop-by-loop transcriptions of the authors' metric definitions."""
from __future__ import annotations


import numpy as np
import pytest

from hudlib.metrics import paper_exact as P
from hudlib.data import SCENES, Scene


def unit_pixel(v):
    n = np.sqrt(np.sum(v * v))
    return v / max(n, 1e-12)


def loop_fp(G, O):
    """F_p: for every generated pixel the best cosine with any original pixel, mean over generated pixels."""
    n, C, h, w = G.shape
    _, H, W = O.shape
    vals = []
    for i in range(n):
        for y in range(h):
            for x in range(w):
                g = unit_pixel(G[i, :, y, x].astype(np.float64))
                vals.append(max(float(g @ unit_pixel(O[:, r, c].astype(np.float64)))
                                for r in range(H) for c in range(W)))
    return float(np.mean(vals))


def loop_db(G, O):
    """D_b: per patch, max over rotations rot90(patch, k) and every stride-1 window of the per-pixel cosine mean."""
    n = G.shape[0]
    _, H, W = O.shape
    per = []
    for i in range(n):
        best = -np.inf
        for k in range(4):
            R = np.rot90(G[i].astype(np.float64), k, axes=(1, 2))
            _, h, w = R.shape
            for r in range(H - h + 1):
                for c in range(W - w + 1):
                    s = 0.0
                    for y in range(h):
                        for x in range(w):
                            s += unit_pixel(R[:, y, x]) @ unit_pixel(O[:, r + y, c + x].astype(np.float64))
                    best = max(best, s / (h * w))
        per.append(best)
    return float(np.mean(per)), np.array(per)


def loop_kl_rows(p):
    pbar = p.mean(0)
    return np.array([sum(p[i, c] * np.log(p[i, c] / pbar[c]) for c in range(p.shape[1]) if p[i, c] > 0)
                     for i in range(p.shape[0])])


def FakeScene(name, cube, raw_range):
    """A Scene with the registry's authors' clip value of ``name``."""
    return Scene(name, cube, raw_range, np.zeros(cube.shape[1:], int), 1, (0, 0, 0),
                 authors_clip=SCENES[name].authors_clip if name in SCENES else None)


def signed(rng, shape):
    return rng.uniform(-1.0, 1.0, shape).astype(np.float32)


def test_to_authors_space_by_hand():
    scene = FakeScene("KSC", np.zeros((1, 1, 1), np.float32), (-3.0, 1000.0))
    Y = np.array([0.0, 0.256, 0.512, 0.6, 1.0, -0.1], np.float32)  # raw = 0, 256, 512, 600, 1000, -100
    want = np.array([-1.0, 0.0, 1.0, 1.0, 1.0, -1.0])
    assert np.allclose(P.to_authors_space(Y, scene), want, atol=1e-6)
    scene.authors_clip = 1000
    assert np.allclose(P.to_authors_space(np.float32(0.25), scene), -0.5, atol=1e-6)
    # a scene without the paper's V clips at its own maximum: 2 * Y - 1, nothing clipped below it
    assert np.allclose(P.to_authors_space(Y, FakeScene("Nowhere", Y[:, None, None], (0, 1))),
                       np.clip(Y, 0, 1) * 2 - 1, atol=1e-6)


def test_original_image_centre_crop_non_square():
    rng = np.random.default_rng(0)
    cube = rng.uniform(0, 1, (3, 9, 4)).astype(np.float32)
    scene = FakeScene("Pavia", cube, (0.0, 4096.0))
    O = P.original_image(scene)
    assert O.shape == (3, 4, 4)
    # the authors' offsets (h - s) // 2 : (h + s) // 2 -> rows 2..5
    assert np.allclose(O, cube[:, 2:6, :] * 2.0 - 1.0, atol=1e-6)
    wide = FakeScene("Pavia", cube.transpose(0, 2, 1).copy(), (0.0, 4096.0))
    assert np.allclose(P.original_image(wide), cube[:, 2:6, :].transpose(0, 2, 1) * 2 - 1, atol=1e-6)


def test_point_fidelity_paper_matches_loops_with_negative_values():
    rng = np.random.default_rng(1)
    G, O = signed(rng, (2, 4, 3, 3)), signed(rng, (4, 5, 6))
    assert abs(P.point_fidelity_paper(G, O) - loop_fp(G, O)) < 1e-6
    assert P.point_fidelity_paper(G, O) < 1.0


@pytest.mark.parametrize("shape", [(3, 4, 4), (2, 3, 5)])
def test_block_diversity_paper_matches_loops(shape):
    rng = np.random.default_rng(2)
    n, h, w = shape
    G, O = signed(rng, (n, 5, h, w)), signed(rng, (5, 9, 11))
    db, per = P.block_diversity_paper(G, O, return_per_patch=True)
    ref, ref_per = loop_db(G, O)
    assert np.abs(per - ref_per).max() < 1e-6 and abs(db - ref) < 1e-6
    assert ref < 0.5  # random signed data: far from a copy


def test_block_diversity_paper_tiles_match_loops():
    rng = np.random.default_rng(3)
    G, O = signed(rng, (2, 3, 4, 4)), signed(rng, (3, 30, 23))
    L = P._plan(30, 23, 4, 3, 16000)
    assert L < 23  # the scene is cut into overlapping tiles
    db, per = P.block_diversity_paper(G, O, return_per_patch=True, max_bytes=16000)
    assert np.abs(per - loop_db(G, O)[1]).max() < 1e-6


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_planted_rotated_window_scores_one(k):
    rng = np.random.default_rng(4 + k)
    O = signed(rng, (6, 20, 17))
    win = O[:, 7:15, 3:11]
    G = np.stack([np.rot90(win, k, axes=(1, 2)), signed(rng, (6, 8, 8))]).astype(np.float32)
    _, per = P.block_diversity_paper(G, O, return_per_patch=True)
    assert abs(per[0] - 1.0) < 1e-6 and per[1] < 0.5


def test_block_8_is_hudlibs_variant():
    from hudlib import metrics
    rng = np.random.default_rng(5)
    G, O = signed(rng, (2, 3, 16, 16)), signed(rng, (3, 20, 20))
    assert P.block_diversity_paper(G, O, block=8) == metrics.block_diversity(G, O, block=8)


def test_inception_scores_against_loops():
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(50, 7)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    p[0] = np.eye(7)[2]  # exact zeros: 0 log 0 = 0
    kl = loop_kl_rows(p)
    assert abs(P.inception_score_standard(p) - np.exp(kl.mean())) < 1e-9
    assert abs(P.inception_score_paper(p) - np.exp(kl.mean() / 7)) < 1e-9
    assert abs(P.inception_score_standard(p) - P.inception_score_paper(p) ** 7) < 1e-9


def test_inception_score_uniform_is_one_and_cap():
    u = np.full((10, 17), 1 / 17)
    assert abs(P.inception_score_paper(u) - 1.0) < 1e-12 and abs(P.inception_score_standard(u) - 1.0) < 1e-12
    onehot = np.eye(17)  # every class once, with certainty: the largest possible IS
    assert abs(P.inception_score_standard(onehot) - 17) < 1e-9
    assert abs(P.inception_score_paper(onehot) - P.inception_score_cap(17)) < 1e-12
    assert abs(P.inception_score_cap(17) - 17 ** (1 / 17)) < 1e-12
    with pytest.raises(ValueError, match="p:"):
        P.inception_score_paper(np.full((3, 4), 0.3))


def test_frechet_distance_paper():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, 6))
    assert abs(P.frechet_distance_paper(x, x)) < 1e-6
    y = x + 3.0  # pure shift: FID = |shift|^2
    assert abs(P.frechet_distance_paper(x, y) - 6 * 9.0) < 1e-6
    a, b = rng.normal(size=(300, 3)), rng.normal(size=(200, 3)) * 2
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, V = np.linalg.eigh(s1)
    r1 = V @ np.diag(np.sqrt(w)) @ V.T  # tr sqrtm(S1 S2) = tr sqrtm(r1 S2 r1) for SPD matrices
    tr = np.sqrt(np.linalg.eigvalsh(r1 @ s2 @ r1)).sum()
    want = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s1 + s2) - 2 * tr
    assert abs(P.frechet_distance_paper(a, b) - want) < 1e-8


def test_paper_exact_metrics_draws_and_classifier():
    rng = np.random.default_rng(8)
    cube = rng.uniform(0, 1, (4, 14, 12)).astype(np.float32)
    scene = FakeScene("Salinas", cube, (0.0, 5000.0))
    Y = rng.uniform(0, 1, (10, 4, 4, 4)).astype(np.float32)
    W = rng.normal(size=(4, 5))

    def classifier(x):  # per-pixel: softmax of a linear map; features = the pixel's spectrum
        pix = x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1]).astype(np.float64)
        z = np.exp(pix @ W)
        return z / z.sum(1, keepdims=True), pix

    out = P.paper_exact_metrics(Y, scene, classifier=classifier, draws=6, draw_size=3)
    G, O = P.to_authors_space(Y, scene), P.original_image(scene)
    assert O.shape == (4, 12, 12)
    assert abs(out["F_p"]["value"] - loop_fp(G, O)) < 1e-6
    db, per = loop_db(G, O)
    assert abs(out["D_b"]["value"] - db) < 1e-6
    picks = np.random.default_rng(0)
    draws = [picks.choice(10, 3, replace=False) for _ in range(6)]
    d = np.array([per[i].mean() for i in draws])
    assert abs(out["D_b"]["draw_mean"] - d.mean()) < 1e-6 and abs(out["D_b"]["draw_std"] - d.std(ddof=1)) < 1e-6
    p, _ = classifier(G)
    assert abs(out["IS_paper"]["value"] - P.inception_score_paper(p)) < 1e-12
    assert abs(out["IS_standard"]["value"] - out["IS_paper"]["value"] ** 5) < 1e-9
    f_real = O.transpose(1, 2, 0).reshape(-1, 4)
    f0 = classifier(G[draws[0]])[1]
    assert out["FID"]["value"] >= 0 and np.isfinite(P.frechet_distance_paper(f0, f_real))
    assert out["n"] == 10 and set(out) >= {"F_p", "D_b", "D_b/F_p", "IS_paper", "IS_standard", "FID"}
    with pytest.raises(ValueError, match="draw_size"):
        P.paper_exact_metrics(Y[:2], scene, draw_size=3)
