"""Downstream benchmark machinery (hudlib.downstream): label draws, metrics, windows, augmentation, classifiers,
run_benchmark on a two-class numpy scene, and the written report."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, cohen_kappa_score

from hudlib import downstream as ds
from hudlib.classifier import _cpu_threads, _dihedral, _fit_pixel_net, spatial_split
from hudlib.classifier_nets import PixelNeighbourhoodNet
from hudlib.data import DataError, Scene, load_scene


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


# --------------------------------------------------------------------------------------------- split (Indian Pines)
@pytest.fixture(scope="module")
def indian_pines():
    return load_scene("IndianPines")


def test_split_keeps_heldout_out_of_every_training_crop(indian_pines):
    gt, size, h = indian_pines.gt, 32, 16
    for seed in (0, 1, 2):  # the benchmark's default split seeds; every training centre (brute force)
        train, held = spatial_split(gt, size=size, random_state=seed)
        pad = ((h, size - h), (h, size - h))
        held_pad, train_pad = np.pad(held, pad, mode="reflect"), np.pad(train, pad, mode="reflect")
        for r, c in zip(*np.nonzero(train)):
            assert not held_pad[r:r + size, c:c + size].any(), (seed, r, c)
        for r, c in zip(*np.nonzero(held)):
            assert not train_pad[r:r + size, c:c + size].any(), (seed, r, c)
        r, c = ds.draw_labels(gt, train, 25, random_state=seed, cap=True, n_classes=16)
        assert train[r, c].all()


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


# --------------------------------------------------------------------------------------------- augmentation
def test_augment_preserves_labels_shapes_and_class():
    rng = np.random.default_rng(1)
    y = np.repeat([1, 2, 3], 10)
    X = (rng.random((30, 5, 3, 3)) + 10.0 * (y[:, None, None, None] - 1)).astype(np.float32)  # [10(k-1), 10(k-1)+1)
    W, yw, info = ds.augment(X, y, 2.5, random_state=0, noise=0.0, brightness=0.0, mixup=1.0, return_info=True)
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
    W0, _, i0 = ds.augment(X, y, 1, flips=False, noise=0.0, brightness=0.0, mixup=0.0, return_info=True)
    np.testing.assert_array_equal(W0, X[i0["source"]])
    W1, _, i1 = ds.augment(X, y, 40, flips=False, noise=0.1, brightness=0.0, mixup=0.0, return_info=True)
    resid = (W1 - X[i1["source"]]).transpose(1, 0, 2, 3).reshape(5, -1).std(axis=1)
    band_std = X.transpose(1, 0, 2, 3).reshape(5, -1).std(axis=1)
    np.testing.assert_allclose(resid, 0.1 * band_std, rtol=0.05)
    _, _, i2 = ds.augment(X, y, 3, brightness=0.2, return_info=True)
    assert (np.abs(i2["factor"] - 1) <= 0.2).all()
    assert ds.augment(X, y, 0)[0].shape == (0, 5, 3, 3)
    for kw in (dict(ratio=-1), dict(ratio=1, mixup=1.5), dict(ratio=1, brightness=1.0)):
        with pytest.raises(DataError):
            ds.augment(X, y, **kw)


# --------------------------------------------------------------------------------------------- classifiers
def _two_class_scene(seed=0, rows=24, cols=48, bands=6, sigma=0.08, boundary=10):
    """Two endmembers, class 1 left of column ``boundary`` and class 2 right of it; per-pixel brightness and noise.

    The boundary is off-centre so that spatial_split(size=8)'s held-out corner region holds both classes."""
    rng = np.random.default_rng(seed)
    E = np.stack([np.linspace(0.3, 0.6, bands), np.linspace(0.6, 0.3, bands)]) * 0.5 + 0.25
    gt = np.ones((rows, cols), np.int64)
    gt[:, boundary:] = 2
    b = rng.uniform(0.7, 1.3, (rows, cols))
    cube = (E[gt - 1] * b[..., None]).transpose(2, 0, 1) + rng.normal(0, sigma, (bands, rows, cols))
    return Scene("TwoClass", cube.astype(np.float32), (0.0, 1.0), gt, 2, (0, 1, 2)), E


def _oracle(E, sigma=0.08):
    """A perfect provider: windows drawn from the scene's own generative model, correctly labelled."""
    def provider(*, n_pixels, random_state, **_):
        rng = np.random.default_rng(random_state)
        y = rng.integers(1, 3, n_pixels)
        b = rng.uniform(0.7, 1.3, (n_pixels, 3, 3))
        W = E[y - 1][:, :, None, None] * b[:, None] + rng.normal(0, sigma, (n_pixels, E.shape[1], 3, 3))
        return W.astype(np.float32), y
    return provider


def test_fit_net_is_the_project_step_loop_on_windows():
    scene, _ = _two_class_scene()
    rows, cols = np.nonzero(scene.gt > 0)
    pick = np.random.default_rng(0).choice(len(rows), 200, replace=False)
    r, c = rows[pick], cols[pick]
    y = scene.gt[r, c]
    W = ds.scene_windows(scene.cube, r, c)
    net = ds.fit_net(W, y, 2, steps=20, batch_size=32, random_state=5, device="cpu")
    # the same training by hand on scene coordinates, as classifier._train_sound does it
    rng = np.random.default_rng(5)
    with torch.random.fork_rng(devices=[]), _cpu_threads(torch.device("cpu")):
        torch.manual_seed(int(rng.integers(2 ** 31)))
        ref = PixelNeighbourhoodNet(6, 2)
        centre = np.ascontiguousarray(scene.cube[:, r, c].T)  # (N, bands), reduced as fit_net does
        ref.set_normalisation(centre.mean(axis=0), centre.std(axis=0))
        padded = np.pad(scene.cube, ((0, 0), (1, 1), (1, 1)), mode="reflect")
        _fit_pixel_net(ref, padded, r, c, y - 1, dict(steps=20, batch_size=32, lr=2e-3, weight_decay=0.05), rng,
                       torch.device("cpu"), False, "")
    for (k, a), b in zip(net.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), k
    assert not net.training
    pred = ds.predict_windows(net, W)
    assert pred.shape == (200,) and set(pred.tolist()) <= {1, 2}
    assert np.array_equal(ds.predict(net, W), pred)
    net2 = ds.fit_net(W, y, 2, steps=20, batch_size=32, random_state=5, device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), net2.state_dict().values()))
    with pytest.raises(DataError, match="labels"):
        ds.fit_net(W, y + 1, 2, steps=2)


def test_fit_svm_uses_centre_spectrum():
    scene, _ = _two_class_scene()
    rows, cols = np.nonzero(scene.gt > 0)
    W, y = ds.scene_windows(scene.cube, rows[::7], cols[::7]), scene.gt[rows[::7], cols[::7]]
    model = ds.fit_svm(W, y)
    spectra_model = ds.fit_svm(W[:, :, 1, 1], y)
    assert np.array_equal(model.predict(W), spectra_model.predict(W[:, :, 1, 1]))
    assert np.array_equal(ds.predict(model, W), model.predict(W)) and (model.predict(W) == y).mean() > 0.8
    assert model.named_steps["svc"].C == 100.0 and model.named_steps["svc"].gamma == "scale"
    with pytest.raises(DataError, match="at least 2 classes"):
        ds.fit_svm(W[y == 1], y[y == 1])


def test_pseudo_label_provider_labels_with_the_row1_classifier():
    def sample_fn(n, random_state):
        return np.random.default_rng(random_state).random((n, 4, 8, 8)).astype(np.float32)

    def classify(W):  # a stand-in for the row-1 model: class by the centre's first band
        return np.where(W[:, 0, 1, 1] > 0.5, 2, 1)

    provider = ds.pseudo_label_provider(sample_fn, patch_size=8)
    W, y = provider(n_pixels=150, random_state=3, classify=classify, real_windows=np.zeros((1, 4, 3, 3)))
    assert W.shape == (150, 4, 3, 3) and np.array_equal(y, classify(W))
    W2, _ = provider(n_pixels=150, random_state=3, classify=classify, real_windows=np.zeros((1, 4, 3, 3)))
    np.testing.assert_array_equal(W, W2)


# --------------------------------------------------------------------------------------------- run_benchmark
@pytest.fixture(scope="module")
def tiny_result():
    scene, E = _two_class_scene()
    seen = []

    def pseudo(*, n_pixels, random_state, classify, real_windows, real_labels, train_mask, split_seed):
        seen.append(dict(train_mask=train_mask, split_seed=split_seed, n_real=len(real_labels)))
        W, _ = _oracle(E)(n_pixels=n_pixels, random_state=random_state)
        return W, classify(W)

    res = ds.run_benchmark(scene, budgets=(1,), split_seeds=(0,), draws=(0, 1, 2), rows=(
        "real", "real+aug", "real+oracle", "real+pseudo", "synthetic-only:oracle"),
        synthetic={"oracle": _oracle(E), "pseudo": pseudo}, ratios={"real+oracle": 100.0},
        sweep=dict(row="real+oracle", budget=1, ratios=(10, 100)), size=8, net_steps=30)
    return scene, res, seen


def test_run_benchmark_perfect_provider_beats_poor_budget(tiny_result):
    scene, res, seen = tiny_result
    runs = res["runs"]
    train, held = spatial_split(scene.gt, size=8, random_state=0)
    assert all(r["n_held"] == held.sum() for r in runs)  # every held-out labelled pixel is scored
    key = lambda r: (r["classifier"], r["draw"])  # noqa: E731
    real = {key(r): r for r in runs if r["row"] == "real" and r["budget"] == 1}
    oracle = {key(r): r for r in runs if r["row"] == "real+oracle" and r["budget"] == 1 and not r["sweep"]}
    assert set(real) == set(oracle) == {(c, d) for c in ("svm", "net") for d in (0, 1, 2)}
    for k in real:  # the same real labels, plus 100 oracle pixels per label
        assert real[k]["n_real"] == oracle[k]["n_real"] == 2 and oracle[k]["n_synthetic"] == 200
        assert oracle[k]["OA"] >= real[k]["OA"]
    mean = {(row, clf): np.mean([runs_[(clf, d)]["OA"] for d in (0, 1, 2)])
            for row, runs_ in (("real", real), ("oracle", oracle)) for clf in ("svm", "net")}
    assert mean[("oracle", "svm")] - mean[("real", "svm")] > 0.1  # 1 label per class: the centre spectrum is poor
    assert mean[("oracle", "net")] > max(0.95, mean[("real", "net")])  # the 3 x 3 net was better already
    agg = {(a["row"], a["classifier"], a["budget"], a["ratio"]): a for a in res["aggregate"]}
    a = agg[("real+oracle", "svm", 1, 100.0)]
    v = [oracle[("svm", d)]["OA"] for d in (0, 1, 2)]
    assert a["n_runs"] == 3 and a["OA"]["mean"] == pytest.approx(np.mean(v))
    assert a["OA"]["std"] == pytest.approx(np.std(v, ddof=1))
    diff = [oracle[("svm", d)]["OA"] - real[("svm", d)]["OA"] for d in (0, 1, 2)]  # paired by draw
    assert a["gain_vs_real"]["OA"]["mean"] == pytest.approx(np.mean(diff))
    assert a["gain_vs_real"]["OA"]["std"] == pytest.approx(np.std(diff, ddof=1))
    assert "gain_vs_real" not in agg[("real", "svm", 1, None)]
    # synthetic-only only at "all", TSTR vs TRTR summarised; the sweep is recorded apart
    assert {r["budget"] for r in runs if r["row"] == "synthetic-only:oracle"} == {"all"}
    assert all(r["n_real"] == 0 for r in runs if r["row"] == "synthetic-only:oracle")
    assert {(t["provider"], t["classifier"]) for t in res["tstr"]} == {("oracle", "svm"), ("oracle", "net")}
    assert sorted(r["ratio"] for r in runs if r["sweep"] and r["classifier"] == "svm") == [10.0] * 3 + [100.0] * 3
    # the pseudo-labelling hook got the training mask and a classifier fitted on the run's real labels
    assert seen and all(s["split_seed"] == 0 and np.array_equal(s["train_mask"], train) for s in seen)
    assert len(seen) == 3 * 2  # draws x classifiers at budget 1 (its output depends on the classifier)
    assert all(r["n_synthetic"] == r["n_real"] for r in runs if r["row"] == "real+pseudo")
    json.dumps(res, allow_nan=False)  # JSON-able


def test_run_benchmark_rejects_bad_input():
    scene, E = _two_class_scene()
    kw = dict(budgets=(1,), split_seeds=(0,), draws=(0,), classifiers=("svm",), size=8)
    with pytest.raises(DataError, match=re.escape("rows: unknown row 'real+gan'")) as e:
        ds.run_benchmark(scene, rows=("real", "real+gan"), **kw)
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="budgets"):
        ds.run_benchmark(scene, rows=("real",), **{**kw, "budgets": (0,)})
    with pytest.raises(DataError, match="classifiers"):
        ds.run_benchmark(scene, rows=("real",), **{**kw, "classifiers": ("rf",)})

    def wrong_shape(*, n_pixels, **_):
        return np.zeros((n_pixels, 6, 5, 5), np.float32), np.ones(n_pixels, np.int64)

    def wrong_labels(*, n_pixels, **_):
        return np.zeros((n_pixels, 6, 3, 3), np.float32), np.full(n_pixels, 3)

    with pytest.raises(DataError, match=r"synthetic\['bad'\] windows: expected 3 x 3 windows") as e:
        ds.run_benchmark(scene, rows=("real+bad",), synthetic={"bad": wrong_shape}, **kw)
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match=r"synthetic\['bad'\] labels: expected class labels in 1..2"):
        ds.run_benchmark(scene, rows=("real+bad",), synthetic={"bad": wrong_labels}, **kw)
    with pytest.raises(DataError, match="returned no pixels|return"):
        ds.run_benchmark(scene, rows=("real+bad",), synthetic={"bad": lambda **_: None}, **kw)


def test_write_benchmark_writes_both_files_atomically(tiny_result, tmp_path, monkeypatch):
    _, res, _ = tiny_result
    written = []
    real_write = ds.atomic_write_text
    monkeypatch.setattr(ds, "atomic_write_text", lambda p, t: (written.append(Path(p).name), real_write(p, t)))
    jpath, mpath = ds.write_benchmark(res, tmp_path / "out", "smoke")
    assert written == ["downstream_smoke.json", "downstream_smoke.md"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["downstream_smoke.json", "downstream_smoke.md"]
    back = json.loads(jpath.read_text())
    assert back["profile"] == "smoke" and len(back["runs"]) == len(res["runs"])
    md = mpath.read_text()
    assert "## SVM" in md and "## PixelNeighbourhoodNet" in md and "Per-class accuracy at 1/class" in md
    assert "| real+aug |" in md and "Ratio sweep" in md and "TSTR" in md and "Paired gain over `real`" in md
    assert "split seeds 0 × label draws 0, 1, 2" in md and "Machine:" in md and "profile `smoke`" in md
    with pytest.raises(DataError, match="profile"):
        ds.write_benchmark(res, tmp_path, "../x")
