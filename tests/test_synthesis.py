"""Whole scenes: ``python -m hudlib synthesize`` writes ENVI files (cube, abundances) and a PNG, deterministic per
seed; bad requests write nothing; the generator API behind it (one window = sample, simplex, naive tiling)."""
import hashlib
from pathlib import Path

import numpy as np
import pytest

from hudlib import models
from hudlib.__main__ import main as cli_main
from hudlib.envi_io import read_envi


@pytest.fixture(scope="module")
def runs(scene, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    for m in ("HUD", "VAE", "MPRNet"):
        models.create(m).fit(scene, "smoke", runs, progress=False)
    return runs


def _cli(runs, out, *extra, model="HUD", size=("40", "50"), seed="0"):
    return cli_main(["synthesize", "--scene", "IndianPines", "--model", model, "--profile", "smoke", "--size",
                     *size, "--seed", seed, "--out", str(out), "--runs", str(runs), "--quiet", *extra])


def _digest(paths):
    return [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]


def test_cli_writes_envi_cube_abundances_and_png(runs, scene, tmp_path):
    out = tmp_path / "a" / "scene.hdr"
    out.parent.mkdir()
    assert _cli(runs, out) == 0
    files = [out, out.with_suffix(".img"), tmp_path / "a" / "scene_abundances.hdr",
             tmp_path / "a" / "scene_abundances.img", out.with_suffix(".png")]
    assert all(f.is_file() for f in files)
    Y, hdr = read_envi(out)
    assert Y.shape == (200, 40, 50) and Y.dtype == np.float32 and np.isfinite(Y).all()
    assert hdr["interleave"] == "bsq" and hdr["data type"] == "4"
    for word in ("HUD", "weights_hash", "seed", "multidiffusion", "ddim"):
        assert word in hdr["description"], word
    # the band centres travel with the cube (nm), as GDAL reads them
    np.testing.assert_allclose([float(v) for v in hdr["wavelength"]], scene.wavelengths, atol=1e-9)
    assert hdr["wavelength units"] == "Nanometers"
    X, _ = read_envi(files[2])
    assert X.shape == (16, 40, 50) and X.min() >= 0 and np.abs(X.sum(0) - 1).max() < 1e-6
    gen = models.load(next((runs / "IndianPines" / "HUD").iterdir()), scene)
    Ys, _ = gen.synthesize(40, 50, random_state=0)
    np.testing.assert_array_equal(Y, Ys)  # the file holds exactly the API's scene
    # same seed: identical files; another seed: another scene
    again = tmp_path / "b" / "scene.hdr"
    again.parent.mkdir()
    assert _cli(runs, again) == 0
    assert _digest([again.with_suffix(".img"), again.with_suffix(".png")]) == _digest(files[1::3])
    other = tmp_path / "c" / "scene.hdr"
    other.parent.mkdir()
    assert _cli(runs, other, seed="1") == 0
    assert not np.array_equal(read_envi(other)[0], Y)


@pytest.mark.parametrize("extra, size, message", [
    ((), ("20", "50"), "height: expected an integer of at least the window 32"),
    (("--stride", "0"), ("40", "50"), "stride: expected an integer in [1, 32]"),
    (("--stride", "40"), ("40", "50"), "stride: expected an integer in [1, 32]"),
    (("--tiling", "patchwork"), ("40", "50"), "tiling: expected one of multidiffusion, naive"),
    (("--tiling", "naive", "--stride", "16"), ("40", "50"), "stride: naive tiling uses stride = window = 32"),
    (("--sampler", "ddpm", "--eta", "1"), ("40", "50"), "eta: only the DDIM samplers (ddim, ddim-lambda) have an eta"),
])
def test_bad_requests_give_one_line_and_write_nothing(runs, tmp_path, capsys, extra, size, message):
    out = tmp_path / "scene.hdr"
    assert _cli(runs, out, *extra, size=size) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # nothing, not even a temporary file


def test_bad_outputs_and_generators_are_refused(runs, tmp_path, capsys):
    assert _cli(runs, tmp_path / "missing" / "scene.hdr") == 2
    assert "does not exist" in capsys.readouterr().err
    assert _cli(runs, tmp_path / "scene.img") == 2
    assert "expected an ENVI header path ending in .hdr" in capsys.readouterr().err
    assert _cli(runs, tmp_path / "v.hdr", model="VAE") == 2  # the VAE has no iterative sampler
    assert "only naive tiling" in capsys.readouterr().err
    assert _cli(runs, tmp_path / "v.hdr", "--tiling", "naive", model="VAE") == 0  # naive works
    assert read_envi(tmp_path / "v.hdr")[0].shape == (200, 40, 50)
    assert not (tmp_path / "v_abundances.hdr").exists()  # no abundances for the VAE
    assert _cli(runs, tmp_path / "m.hdr", "--tiling", "naive", model="MPRNet") == 2
    assert "conditioned on real crops" in capsys.readouterr().err
    assert not (tmp_path / "m.hdr").exists()
