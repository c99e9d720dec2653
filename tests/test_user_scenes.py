"""User scenes through SPy: ENVI images (bsq/bil/bip) and .mat variables, class maps, pseudo-colour bands, every bad
input, the authors' clip value V, and the CLI end to end on a tiny synthetic cube."""
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import spectral.io.envi as envi

from hudlib import data
from hudlib.__main__ import main as cli_main
from hudlib.data import DataError

SAMSON = Path(__file__).resolve().parents[2] / "shared" / "data" / "Samson" / "Samson.mat"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HUD_DATA", raising=False)
    monkeypatch.delenv("SPECTRAL_DATA", raising=False)


def _raw(rows=40, cols=36, bands=5, seed=0, dtype=np.int16):
    """(rows, cols, bands) raw counts with some negative values (clipped at 0 by the loader)."""
    rng = np.random.default_rng(seed)
    return rng.integers(-50, 3000, (rows, cols, bands)).astype(dtype)


def _expected(raw):
    """The normalisation by its definition: max(raw, 0) / max(raw), float32, (bands, rows, cols)."""
    r = raw.astype(np.float64)
    return (np.maximum(r, 0) / r.max()).astype(np.float32).transpose(2, 0, 1)


def _save(path, raw, **kw):
    kw.setdefault("interleave", "bsq")
    envi.save_image(str(path), raw, dtype=raw.dtype, force=True, **kw)
    return Path(path)


# ------------------------------------------------------------------------------------------------ ENVI round trip
@pytest.mark.parametrize("interleave,ext,byteorder", [("bsq", ".img", 0), ("bil", "", 1), ("bip", ".dat", 0)])
def test_envi_round_trip(tmp_path, interleave, ext, byteorder):
    raw = _raw()
    hdr = _save(tmp_path / "my cube (v2).hdr", raw, interleave=interleave, ext=ext, byteorder=byteorder)
    assert envi.read_envi_header(str(hdr))["interleave"] == interleave
    s = data.load_scene(hdr, classes=4)
    assert s.cube.dtype == np.float32 and s.cube.shape == (5, 40, 36)
    np.testing.assert_array_equal(s.cube, _expected(raw))
    assert s.raw_range == (float(raw.min()), float(raw.max())) and raw.min() < 0
    assert s.name == "my_cube_v2" and s.n_classes == 4 and s.authors_clip is None
    assert s.gt.shape == (40, 36) and s.gt.dtype == np.int64 and not s.gt.any()
    # the data file's own path finds its header
    data_file = hdr.with_suffix(ext) if ext else hdr.with_suffix("")
    np.testing.assert_array_equal(data.load_scene(str(data_file), classes=4).cube, s.cube)


def test_envi_float_cube_and_header_offset(tmp_path):
    raw = np.random.default_rng(1).uniform(0, 0.8, (33, 34, 7)).astype(np.float32)
    hdr = _save(tmp_path / "refl.hdr", raw, interleave="bil")
    # prepend a 64-byte header to the data file and declare it: the loader must skip it
    img = tmp_path / "refl.img"
    img.write_bytes(b"\xff" * 64 + img.read_bytes())
    text = hdr.read_text().replace("header offset = 0", "header offset = 64")
    assert "header offset = 64" in text
    hdr.write_text(text)
    np.testing.assert_array_equal(data.load_scene(hdr, classes=2).cube, _expected(raw))


# ------------------------------------------------------------------------------------------------ pseudo-colour bands
def test_rgb_bands_from_wavelengths(tmp_path):
    raw = _raw(bands=24)
    wl = np.linspace(400, 2500, 24)
    hdr = _save(tmp_path / "a.hdr", raw, metadata={"wavelength": list(wl), "wavelength units": "Nanometers"})
    want = tuple(int(np.argmin(np.abs(wl - t))) for t in (650, 550, 450))
    assert want == (3, 2, 1)  # centres 400, 491, 583, 674 ... nm
    assert data.load_scene(hdr, classes=3).rgb_bands == want
    # the same centres in micrometres
    hdr = _save(tmp_path / "b.hdr", raw, metadata={"wavelength": list(wl / 1000), "wavelength units": "Micrometers"})
    assert data.load_scene(hdr, classes=3).rgb_bands == want
    np.testing.assert_allclose(data.load_scene(hdr, classes=3).wavelengths, wl)  # kept, in nm
    # a finer visible grid: nearest band to each target by brute force
    wl2 = np.linspace(380, 1000, 24)
    hdr = _save(tmp_path / "c.hdr", raw, metadata={"wavelength": list(wl2)})
    assert data.load_scene(hdr, classes=3).rgb_bands == tuple(
        min(range(24), key=lambda b: abs(wl2[b] - t)) for t in (650, 550, 450))
    # no wavelengths: three evenly spread bands; explicit bands win
    hdr = _save(tmp_path / "d.hdr", raw)
    assert data.load_scene(hdr, classes=3).rgb_bands == (17, 12, 6)
    assert data.load_scene(hdr, classes=3).wavelengths is None
    assert data.load_scene(hdr, classes=3, rgb_bands=[5, 4, 3]).rgb_bands == (5, 4, 3)
    with pytest.raises(DataError, match=r"rgb_bands: expected three band indices in 0\.\.23, got \(1, 2, 24\)"):
        data.load_scene(hdr, classes=3, rgb_bands=(1, 2, 24))
    # SWIR-only sensor: 650/550/450 would all pick band 0, so fall back to evenly spread bands
    hdr = _save(tmp_path / "e.hdr", raw, metadata={"wavelength": list(np.linspace(1000, 2500, 24))})
    assert data.load_scene(hdr, classes=3).rgb_bands == (17, 12, 6)


# ------------------------------------------------------------------------------------------------ .mat
def test_mat_cube_with_key(tmp_path):
    raw = _raw(rows=32, cols=45, bands=6).astype(np.float64)
    scipy.io.savemat(tmp_path / "scene.mat", {"cube": raw, "other": np.ones(3)})
    want = _expected(raw)
    for s in (data.load_scene(tmp_path / "scene.mat", key="cube", classes=2),
              data.load_scene(f"{tmp_path / 'scene.mat'}:cube", classes=2)):
        np.testing.assert_array_equal(s.cube, want)
        assert s.name == "scene" and s.shape == (6, 32, 45)
    with pytest.raises(DataError, match=r"scene\.mat: no variable 'Cube'; found \['cube', 'other'\]"):
        data.load_scene(tmp_path / "scene.mat", key="Cube", classes=2)
    with pytest.raises(DataError, match=r"scene\.mat: holds 2 variables \['cube', 'other'\]; name the cube with --key"):
        data.load_scene(tmp_path / "scene.mat", classes=2)
    # a file with one variable needs no key
    scipy.io.savemat(tmp_path / "one.mat", {"x": raw})
    np.testing.assert_array_equal(data.load_scene(tmp_path / "one.mat", classes=2).cube, want)


def test_user_file_named_like_a_registered_scene_gets_its_own_name(tmp_path):
    scipy.io.savemat(tmp_path / "PaviaU.mat", {"paviaU": _raw(bands=4).astype(np.float64)})
    s = data.load_scene(f"{tmp_path / 'PaviaU.mat'}:paviaU", classes=2)
    assert s.name == "PaviaU_user" and s.bands == 4


# ------------------------------------------------------------------------------------------------ benchmark layout
def _column_major(cube):
    """``(bands, rows, cols)`` -> the benchmarks' ``Y`` ``(bands, rows*cols)``: pixel q = r + c * rows (MATLAB order)."""
    bands, rows, cols = cube.shape
    Y = np.empty((bands, rows * cols), cube.dtype)
    for r in range(rows):
        for c in range(cols):
            Y[:, r + c * rows] = cube[:, r, c]
    return Y


@pytest.mark.parametrize("pixels_first", [False, True])
@pytest.mark.parametrize("max_value", [None, 250.0])
def test_mat_cube_in_the_unmixing_benchmarks_layout(tmp_path, pixels_first, max_value):
    """A 2-D Y (bands x pixels or pixels x bands) with nRow/nCol (and maxValue) is read as (bands, nRow, nCol)."""
    rows, cols, bands = 33, 40, 6
    planted = np.random.default_rng(4).uniform(-5, 1000, (bands, rows, cols))  # (bands, rows, cols) raw values
    Y = _column_major(planted) * (max_value or 1.0)
    variables = {"Y": Y.T if pixels_first else Y, "nRow": rows, "nCol": cols, "nBand": bands}
    if max_value is not None:
        variables["maxValue"] = max_value
    scipy.io.savemat(tmp_path / "bench.mat", variables)
    gt = np.random.default_rng(5).integers(0, 4, (rows, cols)).astype(np.uint8)
    np.save(tmp_path / "gt.npy", gt)
    want = (np.maximum(planted, 0) / planted.max()).astype(np.float32)  # the loader's normalisation, by definition
    # no key needed: Y is the only variable besides the layout's scalars; the key works too
    for s in (data.load_scene(tmp_path / "bench.mat", classes=3, gt=tmp_path / "gt.npy"),
              data.load_scene(f"{tmp_path / 'bench.mat'}:Y", classes=3, gt=tmp_path / "gt.npy")):
        assert s.shape == (bands, rows, cols) and s.cube.dtype == np.float32 and s.name == "bench"
        if max_value is None:
            np.testing.assert_array_equal(s.cube, want)
            assert s.raw_range == (planted.min(), planted.max())
        else:  # the file's values divided by maxValue are the raw values
            np.testing.assert_allclose(s.cube, want, rtol=1e-6, atol=0)
            np.testing.assert_allclose(s.raw_range, (planted.min(), planted.max()), rtol=1e-12)
        np.testing.assert_array_equal(s.gt, gt)  # the class map lies on the same (nRow, nCol) grid
    # the order is column-major: the file's second pixel is row 1 of column 0, its (rows+1)-th is row 1 of column 1
    for q, (r, c) in ((1, (1, 0)), (rows + 1, (1, 1))):
        np.testing.assert_allclose(s.cube[:, r, c], np.maximum(Y[:, q], 0) / Y.max(), rtol=1e-6)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # the zero maxValue
def test_benchmark_layout_ambiguous_or_mismatching_shape(tmp_path):
    def error(name, **variables):
        scipy.io.savemat(tmp_path / name, variables)
        with pytest.raises(DataError) as ei:
            data.load_scene(tmp_path / name, key="Y" if "Y" in variables else None, classes=3)
        assert "\n" not in str(ei.value)
        return str(ei.value)

    # both axes are nRow*nCol: either could be the band axis
    msg = error("amb.mat", Y=np.ones((6, 6)), nRow=2, nCol=3)
    assert msg == (f"{tmp_path / 'amb.mat'}: variable 'Y' has shape (6, 6) with nRow = 2, nCol = 3: both axes are "
                   f"nRow*nCol = 6, so the band axis is unknown; expected (bands, 6) or (6, bands)")
    # neither axis is nRow*nCol
    msg = error("mis.mat", cube=np.ones((5, 1000)), nRow=33, nCol=40)
    assert msg == (f"{tmp_path / 'mis.mat'}: variable 'cube' has shape (5, 1000) with nRow = 33, nCol = 40: neither "
                   f"axis is nRow*nCol = 33*40 = 1320; expected (bands, 1320) or (1320, bands)")
    # a zero maxValue, and a 2-D variable without nRow/nCol
    assert error("zero.mat", Y=np.ones((5, 1320)), nRow=33, nCol=40, maxValue=0.0).endswith(
        "zero.mat: Y holds NaN/Inf values; expected finite")
    assert error("flat.mat", Y=np.ones((5, 1320)), nCol=40).endswith(
        "flat.mat: expected a 3-D cube (rows, cols, bands), got shape (5, 1320); a 2-D (bands, pixels) cube needs "
        "the scalars nRow and nCol in its .mat")


@pytest.mark.skipif(not SAMSON.is_file(), reason=f"{SAMSON} (shared/data/PROVENANCE.md) is not on this machine")
def test_samson_file_loads_as_a_user_scene():
    """The real benchmark file (Y 156 x 9025, nRow = nCol = 95, values already in [0, 1]) as a user scene (named
    Samson_user: the registered Samson's runs never mix with it)."""
    s = data.load_scene(SAMSON, classes=3)
    assert s.name == "Samson_user" and s.shape == (156, 95, 95) and s.raw_range == (0.0, 1.0)
    Y = scipy.io.loadmat(SAMSON)["Y"]
    for r, c in [(0, 0), (1, 0), (0, 1), (94, 3), (7, 94)]:  # pixel q = r + c * nRow
        np.testing.assert_array_equal(s.cube[:, r, c], Y[:, r + c * 95].astype(np.float32))
    np.testing.assert_array_equal(s.cube, data.load_unmixing_benchmark(SAMSON).cube)


# ------------------------------------------------------------------------------------------------ class maps
def test_gt_round_trip(tmp_path):
    raw = _raw()
    hdr = _save(tmp_path / "cube.hdr", raw)
    gt = np.random.default_rng(2).integers(0, 6, (40, 36)).astype(np.uint8)
    gt[0, 0] = 5
    _save(tmp_path / "labels.hdr", gt[:, :, None])
    scipy.io.savemat(tmp_path / "labels.mat", {"gt": gt, "names": np.arange(3)})
    np.save(tmp_path / "labels.npy", gt)
    for kw in (dict(gt=tmp_path / "labels.hdr"), dict(gt=tmp_path / "labels.mat", gt_key="gt"),
               dict(gt=f"{tmp_path / 'labels.mat'}:gt"), dict(gt=str(tmp_path / "labels.npy"))):
        s = data.load_scene(hdr, **kw)
        np.testing.assert_array_equal(s.gt, gt.astype(np.int64))
        assert s.n_classes == 5, kw  # the class map's largest label
    assert data.load_scene(hdr, gt=tmp_path / "labels.npy", classes=9).n_classes == 9
    with pytest.raises(DataError, match=r"labels\.npy: labels span 0\.\.5; expected 0\.\.3"):
        data.load_scene(hdr, gt=tmp_path / "labels.npy", classes=3)
    np.save(tmp_path / "half.npy", gt / 2)
    with pytest.raises(DataError, match=r"half\.npy: ground truth holds non-integer labels"):
        data.load_scene(hdr, gt=tmp_path / "half.npy")


# ------------------------------------------------------------------------------------------------ bad inputs
def test_missing_data_file(tmp_path):
    hdr = _save(tmp_path / "cube.hdr", _raw())
    (tmp_path / "cube.img").unlink()
    with pytest.raises(DataError, match=r"cube\.hdr: data file missing; expected .*cube \(or \.img"):
        data.load_scene(hdr, classes=3)
    with pytest.raises(DataError, match=r"nothere\.hdr: cube file not found"):
        data.load_scene(tmp_path / "nothere.hdr", classes=3)
    with pytest.raises(DataError, match=r"nothere\.mat: cube file not found"):
        data.load_scene(f"{tmp_path / 'nothere.mat'}:k", classes=3)


def test_wrong_interleave_and_size(tmp_path):
    hdr = _save(tmp_path / "cube.hdr", _raw())
    text = hdr.read_text()
    hdr.write_text(text.replace("interleave = bsq", "interleave = bsx"))
    with pytest.raises(DataError, match=r"cube\.hdr: interleave 'bsx'; expected one of bsq, bil, bip"):
        data.load_scene(hdr, classes=3)
    hdr.write_text(text.replace("interleave = bsq", "interleave = Bil"))  # SPy alone would read it as bsq
    with pytest.raises(DataError, match=r"cube\.hdr: interleave 'Bil'; write it in lower case: bil"):
        data.load_scene(hdr, classes=3)
    hdr.write_text(text.replace("interleave = bsq", "interleave = BIP"))  # upper case is fine
    np.testing.assert_array_equal(data.load_scene(hdr, classes=3).cube,
                                  _expected(_raw()).reshape(40, 36, 5).transpose(2, 0, 1))
    hdr.write_text(text.replace("lines = 40", "lines = 41"))
    with pytest.raises(DataError, match=r"cube\.img: 14400 bytes; the header cube\.hdr \(41 lines x 36 samples x 5 "
                                        r"bands of int16, offset 0\) expects 14760"):
        data.load_scene(hdr, classes=3)
    hdr.write_text(text)
    img = tmp_path / "cube.img"
    img.write_bytes(img.read_bytes() + b"\0\0")
    with pytest.raises(DataError, match=r"cube\.img: 14402 bytes; .* expects 14400"):
        data.load_scene(hdr, classes=3)
    hdr.write_text("not an ENVI header\n")
    with pytest.raises(DataError, match=r"cube\.hdr: not a usable ENVI header"):
        data.load_scene(hdr, classes=3)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf(tmp_path, bad):
    raw = _raw().astype(np.float32)
    raw[3, 4, 2] = bad
    hdr = _save(tmp_path / "cube.hdr", raw, interleave="bip")
    with pytest.raises(DataError, match=r"cube\.hdr: cube holds 1 NaN/Inf values; expected finite"):
        data.load_scene(hdr, classes=3)


@pytest.mark.parametrize("shape", [(31, 40, 5), (40, 20, 5), (40, 40, 2)])
def test_too_small(tmp_path, shape):
    hdr = _save(tmp_path / "cube.hdr", _raw(*shape))
    r, c, b = shape
    with pytest.raises(DataError, match=rf"cube\.hdr: cube of {r} rows x {c} cols x {b} bands is too small; expected "
                                        r"at least 32 x 32 pixels \(the patch size\) and 3 bands"):
        data.load_scene(hdr, classes=3)
    scipy.io.savemat(tmp_path / "flat.mat", {"c": np.ones((40, 40))})
    with pytest.raises(DataError, match=r"flat\.mat: expected a 3-D cube \(rows, cols, bands\), got shape \(40, 40\)"):
        data.load_scene(f"{tmp_path / 'flat.mat'}:c", classes=3)


def test_gt_shape_and_classes_errors(tmp_path):
    hdr = _save(tmp_path / "cube.hdr", _raw())
    np.save(tmp_path / "gt.npy", np.ones((36, 40), np.uint8))
    with pytest.raises(DataError, match=r"gt\.npy: ground truth shape \(36, 40\) does not match the cube's \(40, 36\)"):
        data.load_scene(hdr, gt=tmp_path / "gt.npy")
    scipy.io.savemat(tmp_path / "gt.mat", {"a": np.ones((40, 36)), "b": np.ones((40, 36))})
    with pytest.raises(DataError, match=r"gt\.mat: no variable 'c'; found \['a', 'b'\]"):
        data.load_scene(hdr, gt=tmp_path / "gt.mat", gt_key="c")
    with pytest.raises(DataError, match=r"gt\.mat: holds 2 variables \['a', 'b'\]; name the ground truth with --gt-key"):
        data.load_scene(hdr, gt=tmp_path / "gt.mat")
    with pytest.raises(DataError, match=r"classes: .*cube\.hdr has no class map with labels; pass --classes N"):
        data.load_scene(hdr)
    np.save(tmp_path / "zeros.npy", np.zeros((40, 36), np.uint8))
    with pytest.raises(DataError, match=r"pass --classes N"):
        data.load_scene(hdr, gt=tmp_path / "zeros.npy")
    with pytest.raises(DataError, match=r"classes: expected a positive integer"):
        data.load_scene(hdr, classes=0)


def test_names_and_registered_scenes_keep_their_rules(tmp_path):
    with pytest.raises(DataError, match=r"unknown scene 'Foo': expected one of IndianPines.* or the path of an ENVI"):
        data.load_scene("Foo")
    with pytest.raises(DataError, match=r"nope\.img: scene file not found"):
        data.load_scene("nope.img")
    with pytest.raises(DataError, match=r"classes, rgb_bands: only for a user scene"):
        data.load_scene("IndianPines", classes=3, rgb_bands=(1, 2, 3))


# ------------------------------------------------------------------------------------------------ authors' V
def test_authors_clip_values_and_conversion():
    assert {n: i.authors_clip for n, i in data.SCENES.items()} == {
        "IndianPines": 8192, "KSC": 512, "Pavia": 4096, "PaviaU": 4096, "Salinas": 4096, "Samson": None}
    s = data.load_scene("IndianPines")  # tensorly's copy, raw max 9604 > V
    assert s.authors_clip == 8192
    A = s.to_authors_space(s.cube)
    # pixel [0, 0] starts with raw counts 3172, 4142, 4506 (PROVENANCE.md); the raw maximum 9604 clips to V -> 1
    np.testing.assert_allclose(A[:3, 0, 0], np.array([3172, 4142, 4506]) / 8192 * 2 - 1, rtol=0, atol=1e-6)
    assert A.max() == 1.0 and A.min() >= -1.0
    np.testing.assert_allclose(s.to_authors_space(s.cube[None, :, :32, :32])[0], A[:, :32, :32])


def test_a_scene_without_authors_clip_uses_its_maximum(tmp_path):
    """Without the paper's V the authors' space clips at the scene's maximum, i.e. clips nothing: 2 * cube - 1."""
    s = data.load_scene(_save(tmp_path / "cube.hdr", _raw()), classes=2)
    assert s.authors_clip is None and s.authors_V == s.raw_range[1]
    np.testing.assert_allclose(s.to_authors_space(s.cube), 2.0 * s.cube.astype(np.float64) - 1.0, atol=1e-6)
    with pytest.raises(DataError, match=r"V: expected a positive clip value, got -1"):
        s.to_authors_space(s.cube, V=-1)


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_train_on_an_envi_cube(tmp_path, capsys):
    raw = np.random.default_rng(3).uniform(0, 1000, (40, 40, 24)).astype(np.float32)
    hdr = _save(tmp_path / "x.hdr", raw, interleave="bil")
    assert cli_main(["train", "--scene", str(hdr), "--classes", "3", "--profile", "smoke", "--out", "tmp",
                     "--steps", "2", "--quiet"]) == 0
    run = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert run.parts[-4:-1] == ("tmp", "x", "HUD") and (run / "DONE").exists()
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["scene"] == "x" and cfg["train"]["steps"] == 2
    # a bad input is one line on stderr and exit status 2
    assert cli_main(["train", "--scene", str(hdr), "--profile", "smoke", "--out", "tmp", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pass --classes N" in err


def test_cli_evaluate_passes_the_loaded_scene(tmp_path, monkeypatch, capsys):
    import hudlib.__main__ as cli

    seen = {}

    def fake_evaluate(scene, model, profile, **kw):
        seen.update(scene=scene, model=model, obj=kw["scene_obj"])
        return tmp_path / "r.json"

    monkeypatch.setattr(cli, "evaluate", fake_evaluate)
    raw = _raw(bands=6)
    _save(tmp_path / "y.hdr", raw)
    scipy.io.savemat(tmp_path / "g.mat", {"lab": np.full((40, 36), 2, np.uint8)})
    assert cli_main(["evaluate", "--scene", str(tmp_path / "y.hdr"), "--gt", str(tmp_path / "g.mat"),
                     "--gt-key", "lab", "--rgb-bands", "4", "2", "0", "--model", "mean"]) == 0
    s = seen["obj"]
    assert seen["scene"] == "y" == s.name and seen["model"] == "mean"
    assert s.n_classes == 2 and s.rgb_bands == (4, 2, 0) and (s.gt == 2).all()
    np.testing.assert_array_equal(s.cube, _expected(raw))


# ------------------------------------------------------------------------------------------------ no class map
@pytest.mark.slow
def test_a_cube_without_class_map_is_evaluated_on_stated_pseudo_classes(tmp_path):
    """evaluate on a cube with no class map computes every metric; the classifier-based ones on the argmax of the
    FCLS abundances on the scene's VCA endmembers, and the record says so."""
    import json

    from hudlib.__main__ import main as cli_main
    from hudlib.config import make_config
    from hudlib.evaluate import PSEUDO_LABELS_NOTE, scene_endmembers, with_labels
    from hudlib.unmixing import fcls

    rng = np.random.default_rng(3)
    E = rng.random((12, 3)) + 0.1
    X = rng.dirichlet(np.ones(3) * 0.3, size=(40, 70)).transpose(2, 0, 1)  # 70: D_b needs two windows across
    raw = (np.einsum("bp,prc->rcb", E, X) * 1000).astype(np.int16)
    hdr = _save(tmp_path / "field.hdr", raw)
    s = data.load_scene(hdr, classes=3)
    assert not (s.gt > 0).any()
    lab = with_labels(s, make_config(s.name, "HUD", "smoke"))
    want = fcls(s.cube, scene_endmembers(s, make_config(s.name, "HUD", "smoke")), progress=False).argmax(0) + 1
    np.testing.assert_array_equal(lab.gt, want)
    assert lab.labels_note == PSEUDO_LABELS_NOTE and with_labels(lab, None) is lab
    runs, results = tmp_path / "runs", tmp_path / "results"
    assert cli_main(["train", "--scene", str(hdr), "--classes", "3", "--model", "HUD", "--profile", "smoke",
                     "--out", str(runs), "--quiet"]) == 0
    assert cli_main(["evaluate", "--scene", str(hdr), "--classes", "3", "--model", "HUD", "--profile", "smoke",
                     "--runs", str(runs), "--results", str(results), "--quiet"]) == 0
    rec = json.loads(next(results.glob("*/HUD/smoke.json")).read_text())
    assert rec["labels_note"] == PSEUDO_LABELS_NOTE
    for m in ("FID", "IS", "SWD", "F_p", "D_b"):
        assert np.isfinite(rec["metrics"][m]), m
    # a 40 x 70 scene is too small for the copy rate's calibration: not computed, with the reason, not a failure
    assert np.isnan(rec["metrics"]["copy_rate"]) and "calibration" in rec["skipped_metrics"]["copy_rate"]
