"""Class maps and labelled scenes: files in every accepted format read back exactly, the ENVI classification file is
a classification to GDAL and SPy, real-map crops are crops, the procedural generator recovers planted field sizes,
class shares and orientation, and ``synthesize --layout`` writes a labelled scene (or nothing on a bad map)."""
import hashlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from hudlib import layouts, models
from hudlib.__main__ import main as cli_main
from hudlib.envi_io import read_envi
from hudlib.errors import DataError
from hudlib.layouts import FieldLayout, make_layout, read_class_map, real_layout, write_class_map
from hudlib.splits import KFOLD


def _blocks(rows=120, cols=150, h=20, w=30, K=4, seed=0):
    """A planted map: a grid of h x w fields, each class 1..K or 0 at random (0 with probability 1/5)."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(K + 1, size=(rows // h, cols // w), p=[0.2] + [0.8 / K] * K)
    return np.kron(ids, np.ones((h, w), np.int64)).astype(np.int64)


# --------------------------------------------------------------------------------------------- files
def test_class_map_files_round_trip(tmp_path):
    L = _blocks()
    np.save(tmp_path / "m.npy", L)
    scipy.io.savemat(tmp_path / "m.mat", {"labels": L.astype(np.uint8)})
    Image.fromarray(L.astype(np.uint8), mode="L").save(tmp_path / "grey.png")
    im = Image.fromarray(L.astype(np.uint8), mode="P")
    im.putpalette(layouts.class_colours(5).ravel().tolist())
    im.save(tmp_path / "indexed.png")
    hdr, img = write_class_map(tmp_path / "m.hdr", L, ["a", "b", "c", "d"])
    for spec in ("m.npy", "m.mat", "m.mat:labels", "grey.png", "indexed.png", "m.hdr"):
        np.testing.assert_array_equal(read_class_map(tmp_path / spec).labels, L, err_msg=spec)
    cm = read_class_map(hdr)
    assert cm.names == ("unlabelled", "a", "b", "c", "d")
    np.testing.assert_array_equal(cm.colours, layouts.class_colours(5))
    np.testing.assert_array_equal(read_class_map(tmp_path / "indexed.png").colours[:5], layouts.class_colours(5))
    text = hdr.read_text()
    assert "file type = ENVI Classification" in text and "classes = 5" in text and "data type = 1" in text


def test_gdal_opens_the_class_map_as_a_classification(tmp_path):
    rasterio = pytest.importorskip("rasterio")  # declared in the dev extras: present wherever the suite runs
    L = _blocks()
    _, img = write_class_map(tmp_path / "m.hdr", L)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not georeferenced
        with rasterio.open(img) as ds:
            assert ds.count == 1 and ds.dtypes[0] == "uint8"
            np.testing.assert_array_equal(ds.read(1), L)
            cmap = ds.colormap(1)
    want = layouts.class_colours(5)
    for k in range(5):
        assert cmap[k][:3] == tuple(int(v) for v in want[k])


@pytest.mark.parametrize("make, message", [
    (lambda p: np.save(p / "m.npy", np.full((4, 4), 1.5)), "expected integer class ids"),
    (lambda p: np.save(p / "m.npy", -np.ones((4, 4), np.int64)), "expected class ids >= 0"),
    (lambda p: np.save(p / "m.npy", np.zeros((2, 4, 4), np.int64)), "expected a class map (rows, cols)"),
    (lambda p: Image.new("RGB", (4, 4)).save(p / "m.png"), "expected an indexed or grey-level PNG"),
    (lambda p: (p / "m.txt").write_text("1 2"), "expected a class map as .npy, .mat, ENVI .hdr or indexed .png"),
])
def test_bad_class_map_files_give_one_line(tmp_path, make, message):
    make(tmp_path)
    f = next(tmp_path.iterdir())
    with pytest.raises(DataError) as e:
        read_class_map(f)
    assert message in str(e.value) and str(f) in str(e.value) and "\n" not in str(e.value)


def test_failed_class_map_write_leaves_nothing(tmp_path, monkeypatch):
    import spectral.io.envi as envi

    def broken(path, *a, **k):
        Path(path).write_text("half")
        raise OSError("disk full")
    monkeypatch.setattr(envi, "save_classification", broken)
    with pytest.raises(OSError):
        write_class_map(tmp_path / "m.hdr", _blocks())
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match="class_names: names may not hold braces, commas"):
        write_class_map(tmp_path / "m.hdr", _blocks(), ["a", "b,c", "d", "e"])
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------- real maps
def test_real_layout_crops_restricts_and_tiles():
    gt = _blocks(seed=1)
    np.testing.assert_array_equal(real_layout(gt, (50, 60), transform=False, origin=(10, 20)), gt[10:60, 20:80])
    ground = np.zeros(gt.shape, bool)
    ground[:, :75] = True
    L = real_layout(gt, None, ground=ground, transform=False, origin=(0, 0))
    assert (L[:, 75:] == 0).all() and np.array_equal(L[:, :75], gt[:, :75])
    a, b = real_layout(gt, (300, 310), random_state=3), real_layout(gt, (300, 310), random_state=3)
    np.testing.assert_array_equal(a, b)  # deterministic
    assert a.shape == (300, 310) and set(np.unique(a)) <= set(np.unique(gt))
    # every mosaic piece is a crop of one of the map's eight rotations / flips
    piece = a[:120, :120]
    views = [np.rot90(gt, k)[:, ::-1] if f else np.rot90(gt, k) for k in range(4) for f in (0, 1)]
    assert any(any(np.array_equal(v[r:r + 120, c:c + 120], piece) for r in range(v.shape[0] - 119)
                   for c in range(v.shape[1] - 119)) for v in views)


# --------------------------------------------------------------------------------------------- procedural maps
def test_field_layout_recovers_planted_fields():
    gt = _blocks(rows=200, cols=300, h=20, w=30, K=4, seed=2)
    est = FieldLayout().fit(gt)
    assert np.median(est.field_heights_) == 20 and np.median(est.field_widths_) == 30
    share = np.bincount(gt.ravel(), minlength=5)[1:] / (gt > 0).sum()
    np.testing.assert_allclose(est.class_share_, share, atol=1e-12)
    assert abs(est.orientation_) < 1e-6
    # sampled maps (no jitter, no roads) are made of fields of the fitted sizes, with the fitted class mix
    flat = FieldLayout(jitter=0, road_density=0).fit(gt)
    maps = [flat.sample((200, 300), random_state=s) for s in range(20)]
    counts = sum(np.bincount(m.ravel(), minlength=5) for m in maps)
    np.testing.assert_allclose(counts[1:] / counts[1:].sum(), share, atol=0.06)
    assert abs(counts[0] / counts.sum() - est.unlabelled_share_) < 0.06
    again = FieldLayout(field_scale=2.0, jitter=0, road_density=0).fit(gt)
    h = [sl[0].stop - sl[0].start for m in maps[:3] for sl in _regions(m)]
    h2 = [sl[0].stop - sl[0].start for s in range(3) for sl in _regions(again.sample((200, 300), random_state=s))]
    assert np.median(h2) > 1.6 * np.median(h)  # field_scale is honoured
    np.testing.assert_array_equal(est.sample((64, 80), random_state=5), est.sample((64, 80), random_state=5))


def _regions(L):
    from scipy import ndimage

    out = []
    for k in np.unique(L):
        lab, _ = ndimage.label(L == k)
        out += [sl for sl in ndimage.find_objects(lab) if sl is not None]
    return out


def test_field_layout_fits_orientation_and_reads_only_the_mask():
    from scipy import ndimage

    gt = ndimage.rotate(_blocks(rows=300, cols=300, h=30, w=40, K=3, seed=4), 20, reshape=False, order=0)
    est = FieldLayout(jitter=0).fit(gt[60:240, 60:240])
    assert abs(est.orientation_ - 20) < 3
    L = est.sample((150, 150), random_state=0)
    assert abs(FieldLayout().fit(L).orientation_ - 20) < 4  # sampled maps carry the orientation
    # a class present only outside the mask is never learned
    gt2 = _blocks(seed=5)
    mask = np.zeros(gt2.shape, bool)
    mask[:, :90] = True
    gt2[:, 90:] = 5  # class 5 lives outside the mask only
    est2 = FieldLayout().fit(gt2, mask, n_classes=5)
    assert est2.class_share_[4] == 0 and est2.class_share_[:4].sum() == 1
    assert 5 not in np.unique(est2.sample((100, 100), random_state=1))


def test_field_layout_refusals():
    with pytest.raises(DataError, match="field_scale: expected a finite number > 0"):
        FieldLayout(field_scale=0).fit(_blocks())
    with pytest.raises(DataError, match="call fit"):
        FieldLayout().sample((10, 10))
    with pytest.raises(DataError, match="class_weights: expected 4 finite weights"):
        FieldLayout(class_weights=[1, 2]).fit(_blocks()).sample((10, 10))
    with pytest.raises(DataError, match="source: expected one of real, procedural, file"):
        make_layout("dream", (10, 10))


# --------------------------------------------------------------------------------------------- the command line
@pytest.fixture(scope="module")
def cond_runs(scene, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    models.create("HUD-cond").fit(scene, "smoke", runs, progress=False)
    return runs


def _synth(runs, out, layout, *extra, size=None, seed="0"):
    args = ["synthesize", "--scene", "IndianPines", "--model", "HUD-cond", "--profile", "smoke", "--seed", seed,
            "--out", str(out), "--runs", str(runs), "--quiet", "--layout", str(layout), *extra]
    return cli_main(args + (["--size", *size] if size else []))


def test_synthesize_with_a_layout_writes_a_labelled_scene(cond_runs, scene, tmp_path):
    fold = KFOLD.split(scene.gt)[0]
    L = make_layout("procedural", (48, 64), scene=scene, random_state=0, fold=fold)
    np.save(tmp_path / "map.npy", L)
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        assert _synth(cond_runs, tmp_path / sub / "s.hdr", tmp_path / "map.npy", size=("48", "64")) == 0
    names = ["s.hdr", "s.img", "s_abundances.hdr", "s_abundances.img", "s_classes.hdr", "s_classes.img", "s.png"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(names)
    digest = [[hashlib.sha256((tmp_path / s / n).read_bytes()).hexdigest() for n in names if not n.endswith(".hdr")]
              for s in ("a", "b")]
    assert digest[0] == digest[1]  # same seed, same files
    cm = read_class_map(tmp_path / "a" / "s_classes.hdr")
    np.testing.assert_array_equal(cm.labels, L)
    assert cm.names[:3] == ("unlabelled", "Alfalfa", "Corn-notill") and len(cm.names) == scene.n_classes + 1
    X, _ = read_envi(tmp_path / "a" / "s_abundances.hdr")
    assert X.shape == (16, 48, 64) and X.min() >= 0 and np.abs(X.sum(0) - 1).max() < 1e-5
    Y, hdr = read_envi(tmp_path / "a" / "s.hdr")
    gen = models.load(next((cond_runs / "IndianPines" / "HUD-cond").iterdir()), scene)
    np.testing.assert_array_equal(Y, gen.synthesize(48, 64, random_state=0, layout=L)[0])  # the map conditions it
    assert not np.array_equal(Y, gen.synthesize(48, 64, random_state=0)[0])
    assert "layout" in hdr["description"]


@pytest.mark.parametrize("make, extra, message", [
    (lambda: np.zeros((40, 40), np.int64), ("--size", "48", "64"), "expected a class map of --size 48 x 64"),
    (lambda: np.full((48, 64), 17), (), "layout: expected class ids in 0..16"),
    (lambda: np.full((48, 64), 0.5), (), "expected integer class ids"),
])
def test_a_bad_map_gives_one_line_and_writes_nothing(cond_runs, tmp_path, capsys, make, extra, message):
    np.save(tmp_path / "map.npy", make())
    out = tmp_path / "out"
    out.mkdir()
    assert _synth(cond_runs, out / "s.hdr", tmp_path / "map.npy", *extra) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert list(out.iterdir()) == []


def test_a_layout_is_refused_by_an_unconditional_generator(scene, tmp_path, capsys):
    runs = tmp_path / "runs"
    models.create("HUD").fit(scene, "smoke", runs, progress=False)
    np.save(tmp_path / "map.npy", np.zeros((40, 40), np.int64))
    out = tmp_path / "out"
    out.mkdir()
    assert cli_main(["synthesize", "--model", "HUD", "--profile", "smoke", "--runs", str(runs), "--quiet",
                     "--layout", str(tmp_path / "map.npy"), "--out", str(out / "s.hdr")]) == 2
    assert "layout" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_layout_command_writes_real_and_procedural_maps(scene, tmp_path):
    fold = KFOLD.split(scene.gt)[2]
    assert cli_main(["layout", "--source", "real", "--size", "145", "145", "--fold", "2", "--seed", "1",
                     "--out", str(tmp_path / "real.hdr")]) == 0
    L = read_class_map(tmp_path / "real.hdr").labels
    np.testing.assert_array_equal(L, make_layout("real", (145, 145), scene=scene, random_state=1, fold=fold))
    # the held-out region and the buffer stay unlabelled: the labels are those of the fold's training ground
    ground_labels = np.where(fold.train, scene.gt, 0)
    assert set(np.unique(L)) <= set(np.unique(ground_labels))
    assert (L > 0).sum() == (ground_labels > 0).sum()
    assert cli_main(["layout", "--size", "200", "100", "--field-scale", "2", "--out", str(tmp_path / "p.npy")]) == 0
    P = np.load(tmp_path / "p.npy")
    np.testing.assert_array_equal(P, make_layout("procedural", (200, 100), scene=scene, random_state=0,
                                                 field_scale=2.0))
    assert cli_main(["layout", "--source", "real", "--road-density", "2", "--out", str(tmp_path / "x.hdr")]) == 2
    assert cli_main(["layout", "--fold", "9", "--out", str(tmp_path / "x.hdr")]) == 2
    assert not (tmp_path / "x.hdr").exists()
