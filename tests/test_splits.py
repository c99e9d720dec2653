"""hudlib.splits: the spatial k-fold that decides what a generator trains on and what a classifier is scored on.

Properties checked by brute force on small numpy maps (every labelled pixel held out exactly once, the buffer's
Chebyshev width, crops wholly on the training ground, inner folds inside the outer ground), then on Indian Pines
(every class held out somewhere, the masks the view hides).
"""
import dataclasses

import numpy as np
import pytest

from hudlib.data import DataError
from hudlib.splits import KFOLD, SpatialKFold, crop_corners_inside, mask_sha256


def _fields(seed=0, shape=(70, 64), n_classes=5, cell=6):
    """Random rectangular 'fields' of 5 classes on an unlabelled background."""
    rng = np.random.default_rng(seed)
    gt = np.zeros(shape, np.int64)
    for _ in range(40):
        r, c = rng.integers(0, shape[0] - cell), rng.integers(0, shape[1] - cell)
        h, w = rng.integers(3, 3 * cell, size=2)
        gt[r:r + h, c:c + w] = rng.integers(1, n_classes + 1)
    return gt


def _chebyshev(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Brute force: for every pixel of mask ``a``, its Chebyshev distance to the nearest pixel of mask ``b``."""
    pa, pb = np.argwhere(a), np.argwhere(b)
    if len(pb) == 0:
        return np.full(len(pa), np.inf)
    return np.abs(pa[:, None, :] - pb[None, :, :]).max(-1).min(1)


@pytest.mark.parametrize("seed", [0, 1])
def test_folds_partition_the_labels_and_keep_the_buffer(seed):
    gt = _fields(seed)
    kf = SpatialKFold(n_folds=5, block=8, buffer=4, random_state=seed, n_candidates=8)
    folds = kf.split(gt)
    assert len(folds) == kf.get_n_splits() == 5
    count = np.zeros(gt.shape, int)
    for f in folds:
        count += f.held
        # held-out pixels are the labelled pixels of the region; the four masks tile the scene
        assert np.array_equal(f.held, f.region & (gt > 0))
        assert not (f.train & f.buffer).any() and not (f.train & f.region).any() and not (f.buffer & f.region).any()
        assert (f.train | f.buffer | f.region).all()
        # the region is made of whole 8 x 8 cells (cut by the scene's edge only)
        cells = f.region[:64, :64].reshape(8, 8, 8, 8).transpose(0, 2, 1, 3).reshape(64, 64)
        assert np.all((cells.sum(1) == 0) | (cells.sum(1) == 64))
        # Chebyshev width of the buffer: train pixels are farther than 4 from the region, buffer pixels within 4
        assert _chebyshev(f.train, f.region).min() > 4
        assert _chebyshev(f.buffer, f.region).max() <= 4
        assert f.record(gt)["held_pixels"] == f.held.sum()
    assert np.array_equal(count, (gt > 0).astype(int)), "every labelled pixel held out exactly once"
    # deterministic; another seed, other folds
    again = kf.split(gt)
    assert all(np.array_equal(a.held, b.held) and np.array_equal(a.train, b.train) for a, b in zip(folds, again))
    other = dataclasses.replace(kf, random_state=seed + 10).split(gt)
    assert any(not np.array_equal(a.held, b.held) for a, b in zip(folds, other))


def test_inner_folds_stay_on_the_outer_training_ground():
    gt = _fields(3, shape=(96, 96))
    kf = SpatialKFold(n_folds=5, block=8, buffer=4, n_candidates=8)
    outer = kf.split(gt)[2]
    inner = outer.inner(gt, n_folds=3)
    assert len(inner) == 3
    count = np.zeros(gt.shape, int)
    for f in inner:
        count += f.held
        assert not ((f.train | f.buffer | f.region) & ~outer.train).any()
        assert _chebyshev(f.train, f.region).min() > 4
    assert np.array_equal(count, outer.train_labels(gt).astype(int))
    assert np.array_equal(inner[0].held, outer.inner(gt, n_folds=3)[0].held)  # seeded from the outer fold


def test_crop_corners_inside_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(5):
        ground = rng.random((23, 19)) > 0.02
        got = {tuple(x) for x in crop_corners_inside(ground, 7)}
        assert got == {(r, c) for r in range(17) for c in range(13) if ground[r:r + 7, c:c + 7].all()}
    assert len(crop_corners_inside(np.zeros((9, 9), bool), 4)) == 0


def test_spec_round_trip_and_errors():
    assert SpatialKFold.from_spec(KFOLD.spec) == KFOLD
    kf = SpatialKFold(n_folds=7, block=4, buffer=2, random_state=3, n_candidates=5, min_class_pixels=1)
    assert SpatialKFold.from_spec(kf.spec) == kf
    with pytest.raises(DataError, match=r"split: expected a SpatialKFold spec"):
        SpatialKFold.from_spec("kfold")
    with pytest.raises(DataError, match=r"version 'v0'"):
        SpatialKFold.from_spec(KFOLD.spec.replace("version=v1", "version=v0"))
    with pytest.raises(DataError, match=r"SpatialKFold\.n_folds: expected an int >= 2, got 1"):
        SpatialKFold(n_folds=1)
    with pytest.raises(DataError, match=r"gt: 2 cells of 8 x 8 hold labelled pixels; expected at least n_folds = 5"):
        gt = np.zeros((32, 32), np.int64)
        gt[0, 0] = gt[20, 20] = 1
        SpatialKFold(block=8).split(gt)
    with pytest.raises(DataError, match=r"within: expected a bool mask"):
        KFOLD.split(np.ones((32, 32), np.int64), within=np.ones((3, 3), bool))


def test_indian_pines_folds_and_view(scene):
    folds = KFOLD.split(scene.gt)
    held_classes = set()
    for f in folds:
        rec = f.record(scene.gt)
        held_classes |= {int(k) for k in rec["held_classes"]}
        assert rec["majority_baseline_OA"] < 0.5  # no fold where always answering one class does well
        assert len(f.corners(32)) > 1000  # a generator has crops to learn from
        v = f.view(scene)
        assert v.name == scene.name and v.cube.shape == scene.cube.shape
        assert np.isnan(v.cube[:, ~f.train]).all() and np.isfinite(v.cube[:, f.train]).all()
        assert np.array_equal(v.cube[:, f.train], scene.cube[:, f.train])
        assert (v.gt[~f.train] == 0).all() and np.array_equal(v.gt[f.train], scene.gt[f.train])
        assert rec["held_sha256"] == mask_sha256(f.held)
    assert held_classes == set(range(1, scene.n_classes + 1)), "every class is held out in some fold"
