"""hudlib.downstream: label draws, windows, scores, classic augmentation, the two classifiers, the providers and
the training ground they are handed (a marker planted off the ground never comes out), the statistics (Holm against
its definition, Wilcoxon against scipy), the benchmark loop on a planted-truth scene (validation switches a harmful
provider off and keeps a perfect one), the report, and the whole experiment at smoke scale with its leak audit."""
import dataclasses
import json
import math
import sys

import numpy as np
import pytest
import torch
from scipy.stats import wilcoxon
from sklearn.metrics import accuracy_score, balanced_accuracy_score, cohen_kappa_score

from hudlib import downstream as ds
from hudlib.classifier import _cpu_threads, _dihedral, _fit_pixel_net
from hudlib.classifier_nets import PixelNeighbourhoodNet
from hudlib.data import DataError, Scene
from hudlib.downstream import benchmark as bm
from hudlib.downstream import providers as pv
from hudlib.downstream import report as rp
from hudlib.splits import KFOLD, SpatialKFold


# --------------------------------------------------------------------------------------------- metrics
def _brute_metrics(t, p):
    """OA, AA and kappa transcribed from their definitions."""
    n = len(t)
    oa = sum(a == b for a, b in zip(t, p)) / n
    classes = sorted(set(t))
    aa = np.mean([sum(1 for a, b in zip(t, p) if a == k and b == k) / sum(1 for a in t if a == k) for k in classes])
    labels = sorted(set(t) | set(p))
    pe = sum((sum(1 for a in t if a == k) / n) * (sum(1 for b in p if b == k) / n) for k in labels)
    return oa, aa, (oa - pe) / (1 - pe)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_sklearn_and_definitions(seed):
    rng = np.random.default_rng(seed)
    t = rng.integers(1, 6, size=200)
    p = np.where(rng.random(200) < 0.6, t, rng.integers(1, 8, size=200))  # classes 6, 7 only predicted
    m = ds.classification_metrics(t, p)
    assert set(m) == {"OA", "AA", "kappa", "per_class"}
    assert m["OA"] == pytest.approx(accuracy_score(t, p))
    assert m["AA"] == pytest.approx(balanced_accuracy_score(t, p))
    assert m["kappa"] == pytest.approx(cohen_kappa_score(t, p))
    oa, aa, kappa = _brute_metrics(t.tolist(), p.tolist())
    assert (m["OA"], m["AA"], m["kappa"]) == pytest.approx((oa, aa, kappa))
    assert sorted(m["per_class"]) == sorted(set(t.tolist()))
    for k, acc in m["per_class"].items():
        assert acc == pytest.approx(np.mean(p[t == k] == k))
    assert np.mean(list(m["per_class"].values())) == pytest.approx(m["AA"])
    with pytest.raises(DataError, match="y_true/y_pred"):
        ds.classification_metrics(t, p[:-1])


# --------------------------------------------------------------------------------------------- label draws
def _toy_gt(seed=0, shape=(30, 30), n_classes=4):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, n_classes + 1, size=shape)
    return gt, rng.random(shape) < 0.7


def test_draw_labels_per_class_seeded_inside_mask():
    gt, mask = _toy_gt()
    r, c = ds.draw_labels(gt, mask, 5, random_state=3)
    assert mask[r, c].all() and len(r) == 20
    assert np.bincount(gt[r, c], minlength=5).tolist() == [0, 5, 5, 5, 5]
    assert len(set(zip(r.tolist(), c.tolist()))) == 20  # without replacement
    r2, c2 = ds.draw_labels(gt, mask, 5, random_state=3)
    assert np.array_equal(r, r2) and np.array_equal(c, c2)
    r3, c3 = ds.draw_labels(gt, mask, 5, random_state=4)
    assert set(zip(r.tolist(), c.tolist())) != set(zip(r3.tolist(), c3.tolist()))
    # per class: shrinking class 2's pool leaves the draw of every other class unchanged
    mask2 = mask & ~((gt == 2) & (np.arange(30)[:, None] < 15))
    r4, c4 = ds.draw_labels(gt, mask2, 5, random_state=3)
    for k in (1, 3, 4):
        assert np.array_equal(r[gt[r, c] == k], r4[gt[r4, c4] == k]) and np.array_equal(c[gt[r, c] == k],
                                                                                       c4[gt[r4, c4] == k])
    # nested budgets for one seed; "all" takes every training label
    r10, c10 = ds.draw_labels(gt, mask, 10, random_state=3)
    assert set(zip(r.tolist(), c.tolist())) <= set(zip(r10.tolist(), c10.tolist()))
    ra, ca, counts = ds.draw_labels(gt, mask, "all", return_counts=True)
    assert len(ra) == (mask & (gt > 0)).sum() and counts == {k: int((mask & (gt == k)).sum()) for k in range(1, 5)}


def test_draw_labels_budget_larger_than_class():
    gt, mask = _toy_gt()
    n1 = int((mask & (gt == 1)).sum())
    with pytest.raises(DataError, match=rf"class 1 has {n1} labelled pixels.*fewer than the 1000") as e:
        ds.draw_labels(gt, mask, 1000)
    assert "\n" not in str(e.value)
    r, c, counts = ds.draw_labels(gt, mask, 1000, cap=True, return_counts=True)
    assert counts == {k: int((mask & (gt == k)).sum()) for k in range(1, 5)} and len(r) == sum(counts.values())
    _, _, counts = ds.draw_labels(gt, mask, 3, n_classes=6, cap=True, return_counts=True)
    assert counts == {1: 3, 2: 3, 3: 3, 4: 3, 5: 0, 6: 0}  # classes absent from the mask give 0
    for bad in (0, -2, 2.5, "some", True, None):
        with pytest.raises(DataError, match="per_class"):
            ds.draw_labels(gt, mask, bad)
    with pytest.raises(DataError, match="train_mask"):
        ds.draw_labels(gt, mask[:-1], 5)


# --------------------------------------------------------------------------------------------- windows
def test_scene_and_patch_windows():
    rng = np.random.default_rng(0)
    cube = rng.random((4, 6, 7)).astype(np.float32)
    rows, cols = np.array([0, 2, 5]), np.array([0, 3, 6])
    w = ds.scene_windows(cube, rows, cols, k=3)
    assert w.shape == (3, 4, 3, 3) and w.dtype == np.float32
    np.testing.assert_array_equal(w[:, :, 1, 1], cube[:, rows, cols].T)
    np.testing.assert_array_equal(w[1], cube[:, 1:4, 2:5])
    np.testing.assert_array_equal(w[0, :, 0, 0], cube[:, 1, 1])  # reflected: row -1 -> 1, col -1 -> 1
    with pytest.raises(DataError, match="rows/cols"):
        ds.scene_windows(cube, np.array([6]), np.array([0]))
    with pytest.raises(DataError, match="k:"):
        ds.scene_windows(cube, rows, cols, k=2)

    Y = rng.random((2, 4, 5, 5)).astype(np.float32)
    L = np.zeros((2, 5, 5), dtype=np.int64)
    L[0, 0, 0], L[1, 2, 3], L[1, 4, 4] = 3, 1, 2
    pw, pl = ds.patch_windows(Y, L)
    assert pw.shape == (3, 4, 3, 3) and pl.tolist() == [3, 1, 2]  # patch, row, col order; 0 ignored
    np.testing.assert_array_equal(pw[1], Y[1, :, 1:4, 2:5])
    np.testing.assert_array_equal(pw[2, :, 2, 2], Y[1, :, 3, 3])  # reflected inside its own patch
    np.testing.assert_array_equal(pw[:, :, 1, 1], Y[[0, 1, 1], :, [0, 2, 4], [0, 3, 4]])
    with pytest.raises(DataError, match="L:"):
        ds.patch_windows(Y, L[:, :4])
    with pytest.raises(DataError, match="L:"):
        ds.patch_windows(Y, L - 1)




def test_patch_windows_index_and_ground_windows():
    rng = np.random.default_rng(2)
    Y = rng.random((3, 4, 6, 6)).astype(np.float32)
    L = rng.integers(0, 3, (3, 6, 6))
    full_w, full_y = ds.patch_windows(Y, L)
    i, r, c = np.nonzero(L > 0)
    pick = np.array([4, 0, 7])
    w, y = ds.patch_windows(Y, L, index=(i[pick], r[pick], c[pick]))
    np.testing.assert_array_equal(w, full_w[pick])
    np.testing.assert_array_equal(y, full_y[pick])
    # a ground view: positions off the ground take the centre pixel's spectrum, on-ground ones are the scene's
    cube = rng.random((4, 7, 7)).astype(np.float32)
    view = cube.copy()
    view[:, :, 4:] = np.nan
    W = ds.ground_windows(view, np.array([3, 0]), np.array([3, 1]))
    np.testing.assert_array_equal(W[0, :, :, :2], cube[:, 2:5, 2:4])
    np.testing.assert_array_equal(W[0, :, :, 2], np.repeat(cube[:, 3, 3][:, None], 3, 1))
    np.testing.assert_array_equal(W[1], ds.scene_windows(cube, np.array([0]), np.array([1]))[0])
    with pytest.raises(DataError, match="on the training ground"):
        ds.ground_windows(view, np.array([3]), np.array([5]))


# --------------------------------------------------------------------------------------------- augmentation
def test_augment_preserves_labels_shapes_and_class():
    rng = np.random.default_rng(1)
    y = np.repeat([1, 2, 3], 10)
    X = (rng.random((30, 5, 3, 3)) + 10.0 * (y[:, None, None, None] - 1)).astype(np.float32)  # [10(k-1), 10(k-1)+1)
    W, yw, info = ds.augment(X, y, 75, random_state=0, noise=0.0, brightness=0.0, mixup=1.0, return_info=True)
    assert W.shape == (75, 5, 3, 3) and W.dtype == np.float32 and yw.shape == (75,)
    assert np.array_equal(yw, y[info["source"]]) and np.array_equal(y[info["partner"]], yw)  # mixup in class
    lo, hi = 10.0 * (yw - 1), 10.0 * (yw - 1) + 1.0
    assert (W.min(axis=(1, 2, 3)) >= lo - 1e-5).all() and (W.max(axis=(1, 2, 3)) <= hi + 1e-5).all()
    lam = info["lam"][:, None, None, None]
    for i in range(75):  # exactly a dihedral transform of a convex combination of two same-class windows
        mixed = lam[i] * X[info["source"][i]] + (1 - lam[i]) * X[info["partner"][i]]
        np.testing.assert_allclose(W[i], _dihedral(mixed, int(info["transform"][i])), rtol=1e-6)
    assert ((info["lam"] > 0) & (info["lam"] < 1)).all() and len(set(info["transform"].tolist())) > 4
    # no transform at all: the sources themselves; noise ~ noise * band std; brightness within its range
    W0, _, i0 = ds.augment(X, y, 30, flips=False, noise=0.0, brightness=0.0, mixup=0.0, return_info=True)
    np.testing.assert_array_equal(W0, X[i0["source"]])
    W1, _, i1 = ds.augment(X, y, 1200, flips=False, noise=0.1, brightness=0.0, mixup=0.0, return_info=True)
    resid = (W1 - X[i1["source"]]).transpose(1, 0, 2, 3).reshape(5, -1).std(axis=1)
    band_std = X.transpose(1, 0, 2, 3).reshape(5, -1).std(axis=1)
    np.testing.assert_allclose(resid, 0.1 * band_std, rtol=0.05)
    _, _, i2 = ds.augment(X, y, 90, brightness=0.2, return_info=True)
    assert (np.abs(i2["factor"] - 1) <= 0.2).all()
    assert ds.augment(X, y, 0)[0].shape == (0, 5, 3, 3)
    for kw in (dict(n_new=-1), dict(n_new=1.5), dict(n_new=3, mixup=1.5), dict(n_new=3, brightness=1.0)):
        with pytest.raises(DataError):
            ds.augment(X, y, **kw)


# --------------------------------------------------------------------------------------------- classifiers
def _fields_scene(seed=0, rows=64, cols=64, bands=6, sigma=0.04, n_classes=3, cell=8):
    """``n_classes`` endmember ramps in random 8-px cells (a few cells unlabelled), per-pixel brightness and noise:
    a scene whose labels any decent classifier learns. Returns (scene, E (n_classes, bands))."""
    rng = np.random.default_rng(seed)
    E = np.stack([np.roll(np.linspace(0.3, 0.8, bands), k * bands // n_classes) for k in range(n_classes)])
    gt = np.kron(rng.integers(0, n_classes + 1, (rows // cell, cols // cell)), np.ones((cell, cell), np.int64))
    mix = np.where(gt > 0, gt - 1, rng.integers(0, n_classes, gt.shape))
    b = rng.uniform(0.8, 1.2, (rows, cols))
    cube = (E[mix] * b[..., None]).transpose(2, 0, 1) + rng.normal(0, sigma, (bands, rows, cols))
    return Scene("Fields", cube.astype(np.float32), (0.0, 1.0), gt, n_classes, (0, 1, 2)), E


def _labelled(scene, n, seed=0):
    r, c = np.nonzero(scene.gt > 0)
    pick = np.random.default_rng(seed).choice(len(r), n, replace=False)
    return ds.scene_windows(scene.cube, r[pick], c[pick]), scene.gt[r[pick], c[pick]]


def test_net_classifier_learns_is_seeded_and_counts_epochs_over_real_labels():
    scene, _ = _fields_scene()
    X, y = _labelled(scene, 300)
    Xt, yt = _labelled(scene, 500, seed=1)
    net = ds.NetClassifier(n_classes=3, epochs=40, batch_size=32, random_state=3).fit(X, y)
    assert net.n_steps_ == math.ceil(40 * 300 / 32) and (net.predict(Xt) == yt).mean() > 0.9
    assert net.classes_.tolist() == [1, 2, 3] and np.allclose(net.predict_proba(Xt[:5]).sum(1), 1, atol=1e-5)
    again = ds.NetClassifier(n_classes=3, epochs=40, batch_size=32, random_state=3).fit(X, y)
    np.testing.assert_array_equal(net.predict_proba(Xt), again.predict_proba(Xt))
    other = ds.NetClassifier(n_classes=3, epochs=40, batch_size=32, random_state=4).fit(X, y)
    assert not np.array_equal(net.predict_proba(Xt), other.predict_proba(Xt))
    # epochs count the real labels: 300 real + 600 added train as long as 300 real alone
    wrong = np.concatenate([X, X, X]), np.concatenate([y, y % 3 + 1, y % 3 + 1])
    sw0 = np.concatenate([np.ones(300), np.zeros(600)])
    n0 = ds.NetClassifier(n_classes=3, epochs=40, batch_size=32, random_state=3).fit(*wrong, sample_weight=sw0,
                                                                                     epoch_size=300)
    n1 = ds.NetClassifier(n_classes=3, epochs=40, batch_size=32, random_state=3).fit(*wrong, epoch_size=300)
    assert n0.n_steps_ == n1.n_steps_ == net.n_steps_
    # weight 0 on the mislabelled copies leaves the classifier good, weight 1 ruins it
    assert (n0.predict(Xt) == yt).mean() > 0.85 > (n1.predict(Xt) == yt).mean() + 0.3
    # bounds on the steps; warm start continues from the fitted weights
    assert ds.NetClassifier(epochs=1, min_steps=50).n_steps(10) == 50
    assert ds.NetClassifier(epochs=1000, max_steps=70).n_steps(1000) == 70
    warm = ds.fit_classifier("net", X, y, params=dict(epochs=1, batch_size=32, min_steps=5, max_steps=5),
                             epoch_size=300, random_state=9, n_classes=3, base=net)
    assert warm is net and warm.n_steps_ == 5 and (warm.predict(Xt) == yt).mean() > 0.85
    with pytest.raises(DataError, match="y: expected class labels in 1..3"):
        ds.NetClassifier(n_classes=3).fit(X, y + 1)
    with pytest.raises(DataError, match="sample_weight"):
        ds.NetClassifier(n_classes=3).fit(X, y, sample_weight=-np.ones(300))


def test_net_classifier_is_the_project_step_loop_on_windows():
    """NetClassifier trains exactly as the project's classifier loop does on scene coordinates (same batches, flips,
    updates: bitwise equal weights), its windows laid out as a strip."""
    scene, _ = _fields_scene()
    r, c = np.nonzero(scene.gt > 0)
    pick = np.random.default_rng(0).choice(len(r), 200, replace=False)
    r, c = r[pick], c[pick]
    y = scene.gt[r, c]
    net = ds.NetClassifier(n_classes=3, epochs=1, min_steps=20, max_steps=20, batch_size=32, random_state=5)
    net.fit(ds.scene_windows(scene.cube, r, c), y)
    rng = np.random.default_rng(5)
    with torch.random.fork_rng(devices=[]), _cpu_threads(torch.device("cpu")):
        torch.manual_seed(int(rng.integers(2 ** 31)))
        ref = PixelNeighbourhoodNet(scene.bands, 3)
        centre = np.ascontiguousarray(scene.cube[:, r, c].T)
        ref.set_normalisation(centre.mean(axis=0), centre.std(axis=0))
        padded = np.pad(scene.cube, ((0, 0), (1, 1), (1, 1)), mode="reflect")
        _fit_pixel_net(ref, padded, r, c, y - 1, dict(steps=20, batch_size=32, lr=2e-3, weight_decay=0.05), rng,
                       torch.device("cpu"), False, "")
    assert net.n_steps_ == 20 and not net.net_.training
    for (k, a), b in zip(net.net_.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), k


def test_svm_reads_the_centre_spectrum_and_tunes_by_grouped_cv():
    scene, _ = _fields_scene()
    X, y = _labelled(scene, 240)
    Xt, yt = _labelled(scene, 400, seed=1)
    model = ds.make_svm(C=10.0).fit(X, y)
    np.testing.assert_array_equal(model.predict(X), ds.make_svm(C=10.0).fit(X[:, :, 1, 1], y).predict(X[:, :, 1, 1]))
    groups = np.arange(240) % 4
    t = ds.tune_svm(X, y, groups, C_grid=(0.01, 10.0), gamma_factors=(1.0,), n_splits=3)
    assert t["C"] == 10.0 and t["gamma"] == pytest.approx(1 / 6) and t["cv_splits"] == 3 and t["cv_score"] > 0.8
    assert ds.tune_svm(X, y, np.zeros(240))["cv_score"] is None  # one group: no CV, the defaults
    svm = ds.fit_classifier("svm", X, y, params=dict(C=10.0, gamma=1 / 6))
    assert (svm.predict(Xt) == yt).mean() > 0.9
    flipped = np.concatenate([X, X]), np.concatenate([y, y % 3 + 1])
    good = ds.fit_classifier("svm", *flipped, params=dict(C=10.0, gamma=1 / 6),
                             sample_weight=np.concatenate([np.ones(240), np.full(240, 1e-6)]))
    bad = ds.fit_classifier("svm", *flipped, params=dict(C=10.0, gamma=1 / 6))
    assert (good.predict(Xt) == yt).mean() > 0.85 > (bad.predict(Xt) == yt).mean() + 0.2
    with pytest.raises(DataError, match="at least 2 classes"):
        ds.fit_classifier("svm", X[y == 1], y[y == 1], params=dict(C=1.0, gamma=0.1))
    with pytest.raises(DataError, match="groups"):
        ds.tune_svm(X, y, groups[:-1])


# --------------------------------------------------------------------------------------------- statistics
def _holm_by_definition(p):
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adj = [None] * m
    for rank, i in enumerate(order):
        adj[i] = max(min(1.0, (m - j) * p[order[j]]) for j in range(rank + 1))
    return adj


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_holm_matches_its_definition_and_wilcoxon_is_scipys(seed):
    rng = np.random.default_rng(seed)
    p = rng.random(12) ** 3
    assert ds.holm(list(p)) == pytest.approx(_holm_by_definition(list(p)))
    assert ds.holm([0.01, None, 0.04]) == pytest.approx([0.02, None, 0.04])
    a, b = rng.normal(0.5, 0.1, 25), rng.normal(0.45, 0.1, 25)
    t = ds.paired_test(a, b, "greater")
    ref = wilcoxon(a - b, alternative="greater")
    assert (t["statistic"], t["p"], t["n"]) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue), 25)
    assert t["wins"] + t["losses"] == 25 and t["mean_diff"] == pytest.approx(np.mean(a - b))
    assert ds.paired_test(a, a)["p"] == 1.0  # no difference at all
    assert ds.paired_test([1.0, None, 2.0], [0.5, 0.2, 1.0])["n"] == 2
    with pytest.raises(DataError, match="alternative"):
        ds.paired_test(a, b, "bigger")
    with pytest.raises(DataError, match="pvalues"):
        ds.holm([0.5, 1.5])


# --------------------------------------------------------------------------------------------- providers
MARK = 9.0


@pytest.fixture(scope="module")
def marked_ground(scene):
    """Fold 2 of the project's k-fold of Indian Pines, the marker in the spectra of everything off its ground."""
    fold = KFOLD.split(scene.gt)[1]
    cube = scene.cube.copy()
    cube[:, ~fold.train] = MARK
    marked = Scene(scene.name, cube, scene.raw_range, scene.gt, scene.n_classes, scene.rgb_bands)
    return fold, ds.Ground.of(fold, marked), marked


def test_class_quota_follows_the_real_labels():
    q = ds.class_quota(np.array([1, 1, 1, 2, 3, 3]), 10)
    assert sum(q.values()) == 10 and q == {1: 5, 2: 2, 3: 3}
    for n in (1, 7, 33):
        assert sum(ds.class_quota(np.repeat([1, 2, 5], [3, 4, 9]), n).values()) == n


def test_no_provider_reaches_outside_its_ground(marked_ground, scene):
    """Every provider, handed the ground of a scene whose off-ground spectra hold a marker, returns finite windows
    without the marker, labels in 1..K to the real labels' class proportions; the controls' pixels are the ground's
    labelled pixels (copies: up to their noise)."""
    fold, ground, marked = marked_ground
    assert np.isnan(ground.cube[:, ~fold.train]).all()  # the view: nothing off the ground exists
    r, c = ds.draw_labels(ground.gt, ground.mask, 5, random_state=0, cap=True, n_classes=16)
    real_w, real_y = ground.windows(r, c), ground.gt[r, c]
    E = np.abs(np.random.default_rng(0).normal(0.3, 0.1, (scene.bands, 16)))
    L = pv.layout_crops(ground, 32, 1, random_state=0)
    assert L.shape[1:] == (32, 32) and set(np.unique(L)) <= set(range(17))
    Y = np.random.default_rng(1).random((len(L), scene.bands, 32, 32)).astype(np.float32)
    res = ds.FoldResources(endmembers=E, pools={(ground.name, 0.0): (Y, L)})
    clf = ds.make_svm(C=10.0).fit(real_w, real_y)
    for name, fn in ds.PROVIDERS.items():
        req = ds.Request(ground=ground, real_windows=real_w, real_labels=real_y, n_pixels=160, random_state=4,
                         classify=clf.predict, confidence=lambda W: ds.confidence(clf, W), resources=res)
        W, y = fn(req)
        assert W.shape[1:] == (scene.bands, 3, 3) and len(W) == len(y) > 0, name
        assert np.isfinite(W).all() and not (W == MARK).any(), name
        assert set(np.unique(y)) <= set(range(1, 17)), name
        if name not in ("self-training",):
            assert len(y) == 160 and set(np.unique(y)) <= set(real_y.tolist()), name
    # copies without noise would be exact ground pixels; the windows' centres lie on the ground's labelled pixels
    W, y = pv.copies_provider(ds.Request(ground, real_w, real_y, 50, 0))
    gr, gc = ground.labelled()
    S = ground.cube[:, gr, gc].T
    d = np.abs(W[:, :, 1, 1][:, None, :] - S[None]).max(-1).min(1)
    assert d.max() < 6 * pv.COPY_NOISE * ground.band_std.max()
    # HUD-cond draws labelled pool pixels at their layout's class; shuffled keeps the multiset, not the pairing
    req = ds.Request(ground, real_w, real_y, 400, 5, resources=res)
    W1, y1 = pv.hud_cond_provider(req)
    W2, y2 = pv.hud_cond_shuffled_provider(req)
    np.testing.assert_array_equal(W1, W2)
    assert sorted(y1.tolist()) == sorted(y2.tolist()) and (y1 != y2).mean() > 0.5
    i, rr, cc = np.nonzero(L > 0)
    centres = Y[i, :, rr, cc]
    for w, lab in zip(W1[:20], y1[:20]):
        hit = np.flatnonzero((centres == w[:, 1, 1]).all(1))
        assert len(hit) and (L[i[hit], rr[hit], cc[hit]] == lab).all()


# --------------------------------------------------------------------------------------------- the loop
def _oracle(E, sigma=0.04):
    def provider(req):
        rng = np.random.default_rng(req.random_state)
        quota = ds.class_quota(req.real_labels, req.n_pixels)
        y = np.concatenate([np.full(q, k) for k, q in quota.items()])
        b = rng.uniform(0.8, 1.2, (len(y), 1, 3, 3))
        W = E[y - 1][:, :, None, None] * b + rng.normal(0, sigma, (len(y), E.shape[1], 3, 3))
        return W.astype(np.float32), y
    return provider


def _liar(E):
    oracle = _oracle(E)

    def provider(req):
        W, y = oracle(req)
        return W, y % E.shape[0] + 1  # every pixel labelled as the next class
    return provider


@pytest.fixture(scope="module")
def planted():
    """A 3-class fields scene, a 3-fold split of it, a perfect provider and a lying one, 1 label per class: the
    benchmark loop's choices and scores on planted truth."""
    scene, E = _fields_scene(rows=96, cols=96, sigma=0.15)
    mp = pytest.MonkeyPatch()
    mp.setitem(pv.PROVIDERS, "oracle", _oracle(E, sigma=0.15))
    mp.setitem(pv.PROVIDERS, "liar", _liar(E))
    p = ds.Protocol(name="test", splitter=SpatialKFold(n_folds=3, block=8, buffer=4, n_candidates=4), draws=3,
                    budgets=(1,), headline_budgets=(1,), classifiers=("svm",), rows=("oracle", "liar", "aug"),
                    ratios=(4.0, 16.0), weights=(1.0,), filters=(False,), val_draws_svm=2, levers=(),
                    svm_C=(10.0,), svm_gamma_factors=(1.0,), n_jobs=1)
    out = ds.run(scene, p)
    yield scene, p, out
    mp.undo()


def test_validation_keeps_a_perfect_provider_and_drops_a_lying_one(planted):
    scene, p, out = planted
    recs = out["records"]
    folds = p.splitter.split(scene.gt)
    for f in range(3):
        ch = out["choices"][str(f)]["1"]["svm"]["rows"]
        assert ch["oracle"]["ratio"] > 0 and ch["liar"]["ratio"] == 0, (f, ch)
        for r in recs:
            if r["fold"] == f and r["row"] != "ceiling":
                assert r["n_real"] == 3  # one label per class, drawn on the fold's ground
    real = {(r["fold"], r["draw"]): r["OA"] for r in recs if r["row"] == "real"}
    oracle = {(r["fold"], r["draw"]): r["OA"] for r in recs if r["row"] == "oracle"}
    liar = {(r["fold"], r["draw"]): r for r in recs if r["row"] == "liar"}
    assert np.mean([oracle[k] - real[k] for k in real]) > 0.05
    assert all(liar[k]["OA"] == real[k] and liar[k]["n_added"] == 0 for k in real)  # switched off: it is real
    assert {r["fold"] for r in recs if r["row"] == "ceiling"} == {0, 1, 2}
    # the labels each run drew lie on its fold's training ground (re-drawn here with the loop's own seed)
    for f in range(3):
        g = ds.Ground.of(folds[f], scene)
        rs = bm.RealSet(g, g.gt, g.mask, 1, bm.seed("draw", f, 0), 3, 8)
        assert folds[f].train[rs.rows, rs.cols].all()


def test_the_loop_is_the_same_in_worker_processes(planted):
    scene, p, out = planted
    par = ds.run(scene, dataclasses.replace(p, folds=(0, 2)), n_jobs=2)
    mine = [r for r in out["records"] if r["fold"] in (0, 2)]
    key = lambda r: (r["fold"], r["classifier"], r["row"], -1 if r["draw"] is None else r["draw"])  # noqa: E731
    for a, b in zip(sorted(mine, key=key), sorted(par["records"], key=key)):
        assert key(a) == key(b) and (a["OA"], a["AA"]) == (b["OA"], b["AA"])


def _records(diff, n_folds=5, draws=5, rows=("aug", "GMM")):
    recs = []
    for f in range(n_folds):
        for d in range(draws):
            for clf in ("svm", "net"):
                for b in (5, 10):
                    base = 0.4 + 0.01 * f + 0.003 * d
                    recs.append(dict(fold=f, draw=d, budget=b, classifier=clf, row="real", OA=base, AA=base,
                                     kappa=base, n_added=0))
                    for row in rows:
                        recs.append(dict(fold=f, draw=d, budget=b, classifier=clf, row=row, OA=base + 0.001 * d,
                                         AA=base, kappa=base, n_added=10))
                    recs.append(dict(fold=f, draw=d, budget=b, classifier=clf, row="HUD-cond",
                                     OA=base + diff + 0.001 * d * (f + 1), AA=base + diff, kappa=base, n_added=10))
    return recs


def test_headline_goal_needs_every_comparison_after_holm():
    proto = dict(classifiers=["svm", "net"], budgets=[5, 10], headline_budgets=[5, 10], headline_metrics=["OA", "AA"],
                 rows=["aug", "HUD-cond", "GMM"])
    win = rp.summarise({"records": _records(0.05), "protocol": proto})
    assert win["headline"]["goal_met"] is True and len(win["headline"]["comparisons"]) == 3 * 2 * 2 * 2
    assert all(c["p_holm"] < 0.05 and c["wins"] == 25 for c in win["headline"]["comparisons"])
    tie = rp.summarise({"records": _records(0.0), "protocol": proto})
    assert tie["headline"]["goal_met"] is False
    cell = next(c for c in win["summary"] if c["row"] == "HUD-cond" and c["classifier"] == "svm" and c["budget"] == 5)
    assert cell["n"] == 25 and cell["vs_real"]["AA"]["mean_diff"] == pytest.approx(0.05)
    ps = [c["vs_real"][m]["p"] for c in win["summary"] for m in c["vs_real"]]
    hs = [c["vs_real"][m]["p_holm"] for c in win["summary"] for m in c["vs_real"]]
    assert hs == pytest.approx(ds.holm(ps))


# --------------------------------------------------------------------------------------------- the experiment
@pytest.mark.slow
def test_experiment_at_smoke_with_its_leak_audit_report_and_reuse(scene, tmp_path, monkeypatch):
    """The smoke protocol end to end on Indian Pines: a HUD-cond trained on fold 1's ground, its pools, the rows,
    levers and ceiling, the leak audit (0 pixels of buffer or held-out cells), the files, and reuse of the stored
    result for the same weights and protocol."""
    res, reused = ds.run_or_reuse(scene, "smoke", runs=tmp_path / "runs", results=tmp_path / "res", device="cpu")
    assert not reused and res["version"] == ds.DOWNSTREAM_VERSION
    assert {a["pixels_in_buffer"] for a in res["leak_audit"]} == {0} == {a["pixels_in_held_out"]
                                                                        for a in res["leak_audit"]}
    assert any(a["learner"].startswith("HUD-cond") for a in res["leak_audit"])
    assert all(r["fold"] == 0 for r in res["records"])
    rows = {r["row"] for r in res["records"]}
    assert {"real", "ceiling", *ds.PROTOCOLS["smoke"].rows} <= rows and any("[" in r for r in rows)
    assert res["folds"][0]["held_pixels"] == KFOLD.split(scene.gt)[0].held.sum()
    # a lever whose options were already run reuses that run: its scores and its pixel count
    for r in res["records"]:
        if r.get("same_as"):
            src = next(q for q in res["records"] if q["row"] == r["same_as"] and q["classifier"] == r["classifier"]
                       and q["draw"] == r["draw"] and q["budget"] == r["budget"])
            assert (r["OA"], r["AA"], r["n_added"]) == (src["OA"], src["AA"], src["n_added"]) and r["n_added"] > 0
        if r["option"] and r["option"]["ratio"] > 0 and r["row"] != "self-training":
            assert r["n_added"] > 0, r["row"]
    md = (tmp_path / "res" / "downstream_smoke.md").read_text()
    for part in ("## Folds", "## Headline", "## SVM", "## PixelNeighbourhoodNet", "## OA per fold", "## Leak audit",
                 "## What validation chose", "majority-class baseline"):
        assert part in md, part
    back = json.loads((tmp_path / "res" / "downstream_smoke.json").read_text())
    assert back["key"] == json.loads(json.dumps(res["key"]))
    calls = []
    monkeypatch.setattr(sys.modules["hudlib.downstream.experiment"], "run", lambda *a, **k: calls.append(1))
    again, reused = ds.run_or_reuse(scene, "smoke", runs=tmp_path / "runs", results=tmp_path / "res",
                                    recompute=False, device="cpu")
    assert reused and not calls and again["records"] == back["records"]
    with pytest.raises(DataError, match="profile"):
        ds.write_result(res, tmp_path, "../x")
