"""hudlib.data: real Indian Pines from tensorly, search order, every bad input, download against 127.0.0.1."""
import http.server
import io
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from hudlib import data
from hudlib.__main__ import main as cli_main

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test starts in an empty folder with no $HUD_DATA, so only tensorly provides Indian Pines."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HUD_DATA", raising=False)
    monkeypatch.delenv("HUD_MIRROR", raising=False)


def test_indian_pines_from_tensorly():
    s = data.load_scene("IndianPines")
    assert s.cube.shape == (200, 145, 145) and s.cube.dtype == np.float32
    assert s.gt.shape == (145, 145) and s.gt.max() == 16 and s.n_classes == 16
    assert s.raw_range == (955.0, 9604.0)
    assert 0.0 <= s.cube.min() and s.cube.max() == 1.0
    # PROVENANCE.md: pixel [0, 0] starts 3172, 4142, 4506 (raw counts); scaling is division by the global max
    np.testing.assert_allclose(s.cube[:3, 0, 0], np.array([3172, 4142, 4506]) / 9604.0, rtol=1e-6)
    assert "tensorly" in s.source
    counts = np.bincount(s.gt.ravel(), minlength=17)
    assert counts[0] == 10776 and counts[1:].sum() == 10249


def _write_ip_mat(folder: Path, scale: float = 1.0):
    s = data.load_scene("IndianPines")
    raw = (s.cube.transpose(1, 2, 0) * 9604 * scale).astype(np.float64)
    folder.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(folder / "Indian_pines_corrected.mat", {"indian_pines_corrected": raw})
    scipy.io.savemat(folder / "Indian_pines_gt.mat", {"indian_pines_gt": s.gt.astype(np.uint8)})
    return raw


def test_search_order_root_then_env_then_data(tmp_path, monkeypatch):
    _write_ip_mat(tmp_path / "data", 1.0)
    _write_ip_mat(tmp_path / "env", 0.5)
    _write_ip_mat(tmp_path / "root", 0.25)
    monkeypatch.setenv("HUD_DATA", str(tmp_path / "env"))
    assert data.load_scene("IndianPines", root=tmp_path / "root").raw_range[1] == pytest.approx(9604 * 0.25)
    assert data.load_scene("IndianPines").raw_range[1] == pytest.approx(9604 * 0.5)
    monkeypatch.delenv("HUD_DATA")
    s = data.load_scene("IndianPines")
    assert s.raw_range[1] == pytest.approx(9604) and s.source.endswith("Indian_pines_corrected.mat")
    # the .mat and the tensorly copy hold the same scene after normalisation
    np.testing.assert_allclose(s.cube, data.load_scene("IndianPines", root=tmp_path / "nowhere").cube, atol=1e-6)


def test_unknown_scene_and_missing_file():
    with pytest.raises(data.DataError, match="unknown scene 'Foo'.*IndianPines"):
        data.load_scene("Foo")
    with pytest.raises(data.DataError, match=r"PaviaU\.mat.*python -m hudlib download PaviaU"):
        data.load_scene("PaviaU")


def _small_info(monkeypatch, shape=(40, 36, 12)):
    """Register a tiny stand-in scene so that bad-input tests stay small."""
    info = data.SceneInfo(name="Tiny", cube_file="Tiny.mat", cube_key="tiny", gt_file="Tiny_gt.mat", gt_key="tiny_gt",
                          shape=shape, n_classes=3, rgb_bands=(1, 2, 3), cube_url="http://127.0.0.1:9/Tiny.mat",
                          gt_url="http://127.0.0.1:9/Tiny_gt.mat")
    monkeypatch.setitem(data.SCENES, "Tiny", info)
    return info


def _write_tiny(folder, shape=(40, 36, 12), key="tiny", gt_shape=None, cube=None):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    cube = rng.uniform(0, 100, shape) if cube is None else cube
    scipy.io.savemat(folder / "Tiny.mat", {key: cube})
    scipy.io.savemat(folder / "Tiny_gt.mat", {"tiny_gt": rng.integers(0, 4, gt_shape or shape[:2]).astype(np.uint8)})


def test_bad_inputs_each_give_one_clear_error(tmp_path, monkeypatch):
    _small_info(monkeypatch)
    d = tmp_path / "d"
    _write_tiny(d)
    s = data.load_scene("Tiny", d)
    assert s.cube.shape == (12, 40, 36)
    # wrong key
    _write_tiny(d, key="other")
    with pytest.raises(data.DataError, match=r"Tiny\.mat: no variable 'tiny'; found \['other'\]"):
        data.load_scene("Tiny", d)
    # wrong band count / wrong shape
    _write_tiny(d, shape=(40, 36, 11))
    with pytest.raises(data.DataError, match="expected 12 bands"):
        data.load_scene("Tiny", d)
    _write_tiny(d, shape=(40, 35, 12))
    with pytest.raises(data.DataError, match=r"expected shape \(40, 36, 12\)"):
        data.load_scene("Tiny", d)
    # NaN
    cube = np.ones((40, 36, 12))
    cube[3, 4, 5] = np.nan
    _write_tiny(d, cube=cube)
    with pytest.raises(data.DataError, match="NaN/Inf"):
        data.load_scene("Tiny", d)
    # ground truth of another shape
    _write_tiny(d, gt_shape=(40, 30))
    with pytest.raises(data.DataError, match="ground truth shape"):
        data.load_scene("Tiny", d)
    # truncated and corrupt files
    _write_tiny(d)
    blob = (d / "Tiny.mat").read_bytes()
    (d / "Tiny.mat").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(data.DataError, match=r"Tiny\.mat: (truncated or corrupt|not a readable)"):
        data.load_scene("Tiny", d)
    (d / "Tiny.mat").write_bytes(b"this is not a mat file at all" * 10)
    with pytest.raises(data.DataError, match=r"Tiny\.mat: not a readable MATLAB"):
        data.load_scene("Tiny", d)
    # missing gt next to the cube
    _write_tiny(d)
    (d / "Tiny_gt.mat").unlink()
    with pytest.raises(data.DataError, match="ground truth of Tiny missing"):
        data.load_scene("Tiny", d)


def test_patches():
    s = data.load_scene("IndianPines")
    p = data.patches(s, size=32, n=5, random_state=3)
    assert p.shape == (5, 200, 32, 32)
    np.testing.assert_array_equal(p, data.patches(s.cube, size=32, n=5, random_state=3))
    # each crop is a real window of the cube
    corners = data.patch_corners(s.cube.shape, 32, 5, np.random.default_rng(3))
    for (r, c), x in zip(corners, p):
        np.testing.assert_array_equal(x, s.cube[:, r:r + 32, c:c + 32])
    # n crops of the asked size, the same ones again for the same random_state
    q = data.patches(s, size=16, n=7, random_state=1)
    assert q.shape == (7, 200, 16, 16) and q.dtype == s.cube.dtype
    np.testing.assert_array_equal(q, data.patches(s, size=16, n=7, random_state=1))
    with pytest.raises(data.DataError, match="patch size 200 exceeds"):
        data.patches(s, size=200, n=1)


def test_package_keeps_every_name_of_the_old_module():
    """hudlib.data is a package now; the names importers use still come from hudlib.data itself."""
    import hudlib.data.scenes

    for name in data.__all__:
        assert hasattr(data, name), name
    assert data.scene_available("IndianPines") is None  # tensorly's copy
    with pytest.raises(data.DataError, match="unknown scene 'Nowhere'"):
        data.scene_available("Nowhere")
    assert not hasattr(data, "PatchDataset")
    assert data.SCENES is hudlib.data.scenes.SCENES  # one registry: monkeypatching data.SCENES reaches the loaders


def test_pseudo_rgb_stretch():
    s = data.load_scene("IndianPines")
    img = data.pseudo_rgb(s.cube, s.rgb_bands)
    assert img.shape == (145, 145, 3) and img.min() == 0.0 and img.max() == 1.0
    lim = data.rgb_limits(s.cube, s.rgb_bands)
    batch = data.pseudo_rgb(data.patches(s, 32, 2, random_state=0), s.rgb_bands, limits=lim)
    assert batch.shape == (2, 32, 32, 3)
    with pytest.raises(data.DataError, match="out of range"):
        data.pseudo_rgb(s.cube, (0, 1, 500))


# ------------------------------------------------------------------------------------------------ download
class _Server:
    """Serves {path: bytes} on 127.0.0.1; a path in ``truncate`` announces more bytes than it sends."""

    def __init__(self, files, truncate=()):
        files, truncate = dict(files), set(truncate)

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body) + (1000 if self.path in truncate else 0)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.httpd.shutdown()
        self.httpd.server_close()


def _mat_bytes(**arrays):
    buf = io.BytesIO()
    scipy.io.savemat(buf, arrays, do_compression=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def paviau_files():
    """Stand-in PaviaU files with the official names, keys and shapes (mostly zeros, compressed)."""
    cube = np.zeros((610, 340, 103), np.uint16)
    cube[:5, :5] = np.arange(103, dtype=np.uint16) + 1
    gt = np.zeros((610, 340), np.uint8)
    gt[:3, :3] = 2
    return {"/PaviaU.mat": _mat_bytes(paviaU=cube), "/PaviaU_gt.mat": _mat_bytes(paviaU_gt=gt)}


def test_download_from_local_server(tmp_path, paviau_files):
    root = tmp_path / "dl"
    with _Server(paviau_files) as srv:
        cube, gt = data.download("PaviaU", root, mirror=srv.url, progress=False)
    assert cube == root / "PaviaU.mat" and gt == root / "PaviaU_gt.mat"
    assert sorted(p.name for p in root.iterdir()) == ["PaviaU.mat", "PaviaU_gt.mat"]
    s = data.load_scene("PaviaU", root)
    assert s.cube.shape == (103, 610, 340) and s.cube[102, 0, 0] == 1.0 and s.n_classes == 9


def test_download_cli(tmp_path, paviau_files, capsys):
    with _Server(paviau_files) as srv:
        assert cli_main(["download", "PaviaU", "--root", str(tmp_path / "c"), "--mirror", srv.url]) == 0
    assert (tmp_path / "c" / "PaviaU_gt.mat").is_file()
    assert "PaviaU.mat" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["truncated", "corrupt", "wrong_shape", "missing"])
def test_download_never_leaves_a_bad_file(tmp_path, paviau_files, case):
    files = dict(paviau_files)
    truncate = ()
    if case == "truncated":
        truncate = ("/PaviaU.mat",)
    elif case == "corrupt":
        files["/PaviaU.mat"] = b"\x00garbage" * 5000
    elif case == "wrong_shape":
        files["/PaviaU.mat"] = _mat_bytes(paviaU=np.zeros((610, 340, 102), np.uint16))
    else:
        del files["/PaviaU.mat"]
    root = tmp_path / case
    with _Server(files, truncate) as srv, pytest.raises(Exception) as ei:
        data.download("PaviaU", root, mirror=srv.url, progress=False, timeout=5)
    msg = str(ei.value)
    expected = {"truncated": "truncated", "corrupt": "not a readable", "wrong_shape": "expected 103 bands",
                "missing": "404"}[case]
    assert expected in msg
    assert not (root / "PaviaU.mat").exists()
    assert not list(root.glob(".*part")), "temporary file left behind"


# ------------------------------------------------------------------------------------------------ unmixing sets
def test_unmixing_benchmark_column_major_layout(tmp_path):
    """A non-symmetric image written in MATLAB column-major pixel order comes back in (bands, rows, cols)."""
    rows, cols, bands, p = 4, 6, 3, 2
    img = np.arange(rows * cols * bands, dtype=np.float64).reshape(bands, rows, cols)
    Y = np.stack([b.ravel(order="F") for b in img])  # MATLAB: reshape(img, [], bands)'  
    A_img = np.random.default_rng(0).dirichlet([1, 1], size=(rows, cols)).transpose(2, 0, 1)
    A = np.stack([a.ravel(order="F") for a in A_img])
    scipy.io.savemat(tmp_path / "c.mat", {"Y": Y * 10, "nRow": rows, "nCol": cols, "maxValue": 10.0})
    scipy.io.savemat(tmp_path / "e.mat", {"M": np.ones((bands, p)), "A": A,
                                           "cood": np.array([["a"], ["b"]], dtype=object)})
    b = data.load_unmixing_benchmark(tmp_path / "c.mat", tmp_path / "e.mat")
    np.testing.assert_allclose(b.cube, img, rtol=1e-6)
    np.testing.assert_allclose(b.abundances, A_img)
    assert b.names == ["a", "b"] and b.endmembers.shape == (bands, p)
    scipy.io.savemat(tmp_path / "bad.mat", {"Y": Y, "nRow": rows, "nCol": cols + 1})
    with pytest.raises(data.DataError, match=r"bad\.mat: Y has shape"):
        data.load_unmixing_benchmark(tmp_path / "bad.mat")
    with pytest.raises(data.DataError, match="file not found"):
        data.load_unmixing_benchmark(tmp_path / "nope.mat")


def test_samson_benchmark():
    folder = Path(os.environ.get("HUD_SAMSON", SHARED / "Samson"))
    if not folder.is_dir():  # a data set outside the product: present in the development checkout and its CI
        pytest.skip(f"Samson benchmark not found at {folder}; set HUD_SAMSON to a folder with Samson.mat and "
                    f"_EndSamson.mat to run this test")
    b = data.load_unmixing_benchmark(folder / "Samson.mat", folder / "_EndSamson.mat")
    assert b.cube.shape == (156, 95, 95) and b.endmembers.shape == (156, 3) and b.abundances.shape == (3, 95, 95)
    assert [n.split("-")[1].lower() for n in b.names] == ["rock", "tree", "water"]
    np.testing.assert_allclose(b.abundances.sum(0), 1.0, atol=1e-6)
    # cube and abundances share one layout: the mixing model explains the cube pixel by pixel in spectral angle
    # (the reference endmembers are scaled to a maximum of 1, so compare angles, not values) ...
    recon = np.einsum("bp,prc->brc", b.endmembers, b.abundances)

    def mean_sad(a, c):
        cos = (a * c).sum(0) / np.linalg.norm(a, axis=0) / np.linalg.norm(c, axis=0)
        return np.arccos(np.clip(cos, -1, 1)).mean()

    good, transposed = mean_sad(recon, b.cube), mean_sad(recon.transpose(0, 2, 1), b.cube)
    assert good < 0.06 and transposed > 5 * good, (good, transposed)
    # ... and the abundance maps are spatially smooth images (orientation itself is pinned by the synthetic test)
    water = b.abundances[2]
    assert np.corrcoef(water[:, :-1].ravel(), water[:, 1:].ravel())[0, 1] > 0.9


# ------------------------------------------------------------------------------------------------ Samson
SAMSON_DIR = Path("/work/shared/data/Samson")


@pytest.mark.skipif(not SAMSON_DIR.is_dir(), reason="the Samson benchmark files are not on this machine")
def test_samson_downloads_checked_and_loads(tmp_path):
    """Samson's two published files come down from a local server, sha256-checked; the scene carries its reference
    unmixing, the argmax of the reference abundances as 3 pseudo-classes, and its band centres."""
    files = {f"/{n}": (SAMSON_DIR / n).read_bytes() for n in ("Samson.mat", "_EndSamson.mat")}
    root = tmp_path / "dl"
    with _Server(files) as srv:
        data.download("Samson", root, mirror=srv.url, progress=False)
    s = data.load_scene("Samson", root)
    assert s.cube.shape == (156, 95, 95) and s.n_classes == 3 and s.class_name(3) == "water"
    A = s.reference["abundances"]
    assert A.shape == (3, 95, 95) and np.array_equal(s.gt, A.argmax(0) + 1)
    assert s.reference["endmembers"].shape == (156, 3) and "pseudo-classes" in s.labels_note
    assert len(s.wavelengths) == 156 and [round(s.wavelengths[b]) for b in s.rgb_bands] == [650, 549, 451]
    # pixel order: column-major in the file; the brute-force transcription of pixel (r, c) = Y[:, r + c * 95]
    Y = scipy.io.loadmat(SAMSON_DIR / "Samson.mat")["Y"]
    for r, c in ((0, 0), (3, 70), (94, 1)):
        np.testing.assert_allclose(s.cube[:, r, c], Y[:, r + c * 95] / Y.max(), rtol=1e-6)
    # a file that differs from the published one by one byte is refused, and nothing is left
    bad = dict(files)
    body = bytearray(files["/_EndSamson.mat"])
    body[-1] ^= 1
    bad["/_EndSamson.mat"] = bytes(body)
    with _Server(bad) as srv, pytest.raises(data.DataError, match="sha256 .* differs from the published file's"):
        data.download("Samson", tmp_path / "bad", mirror=srv.url, progress=False)
    assert sorted(p.name for p in (tmp_path / "bad").iterdir()) == ["Samson.mat"]
