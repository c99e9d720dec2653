"""Hyperspectral scenes of the paper (IV-A): registry, loading, download, patches, pseudo-colour.

Arrays are channel-first like the paper's Y in R^{c x h x w}: a cube is ``(bands, rows, cols)``.

Where files are looked for (first hit wins), like SPy's ``SPECTRAL_DATA``:

1. the ``root`` argument,
2. the folder named by the environment variable ``HUD_DATA``,
3. ``./data`` (relative to the working directory),
4. for Indian Pines only: the copy shipped inside the installed ``tensorly`` wheel
   (``tensorly/datasets/data/Indian_pines_corrected.npy``; CC BY 3.0, Baumgardner et al. 2015).

Files sit flat under a root with their official names (``PaviaU.mat``, ``PaviaU_gt.mat`` ...).

Besides the registered scenes, :func:`load_scene` reads a user's own scene read through SPy (``spectral``): an ENVI
image (``cube.hdr`` plus its data file, as AVIRIS and most airborne sensors deliver it) or a variable of a ``.mat``
file (``cube.mat:key``), with an optional class map.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import os
import re
import tempfile
import urllib.request
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.io
import spectral
import spectral.io.envi as envi
import torch
from tqdm.auto import tqdm

__all__ = [
    "DataError", "SceneInfo", "SCENES", "Scene", "UnmixingBenchmark", "scene_names", "find_file",
    "load_scene", "download", "load_unmixing_benchmark", "patches", "PatchDataset", "pseudo_rgb",
    "rgb_limits", "class_mean_spectra", "PATCH_SIZE", "MIN_BANDS", "user_scene_name", "default_rgb_bands",
    "centre_square",
]

PATCH_SIZE = 32  # the paper's patch side (IV-A); a user scene needs at least this many rows and columns
MIN_BANDS = 3  # a pseudo-colour image needs three bands


class DataError(ValueError):
    """Bad or missing input data; the message names the file or parameter and what was expected."""


@dataclasses.dataclass(frozen=True)
class SceneInfo:
    """Static facts of one scene. ``shape`` is the official (rows, cols, bands) of the cube.

    ``authors_clip`` is the HUD authors' clip value V: their data space is ``clip(raw, 0, V) / V * 2 - 1``
    (ldm/data/HSI.py), so generated cubes can be compared in their units too (see :meth:`Scene.to_authors_space`).
    """

    name: str
    cube_file: str
    cube_key: str
    gt_file: str
    gt_key: str
    shape: tuple[int, int, int]
    n_classes: int
    rgb_bands: tuple[int, int, int]
    cube_url: str
    gt_url: str
    authors_clip: float | None = None

    @property
    def bands(self) -> int:
        return self.shape[2]


_EHU = "https://www.ehu.eus/ccwintco/uploads"

# The paper's five scenes (IV-A). n_classes is also the number of endmembers d (III-B, IV-A).
# rgb_bands are the paper's pseudo-colour bands, used as zero-based indices into the band axis.
# The last field is the authors' clip value V (their ldm/data/HSI.py).
SCENES: dict[str, SceneInfo] = {
    s.name: s
    for s in [
        SceneInfo("IndianPines", "Indian_pines_corrected.mat", "indian_pines_corrected",
                  "Indian_pines_gt.mat", "indian_pines_gt", (145, 145, 200), 16, (46, 17, 11),
                  f"{_EHU}/6/67/Indian_pines_corrected.mat", f"{_EHU}/c/c4/Indian_pines_gt.mat", 8192),
        SceneInfo("KSC", "KSC.mat", "KSC", "KSC_gt.mat", "KSC_gt", (512, 614, 176), 13, (28, 9, 10),
                  f"{_EHU}/2/26/KSC.mat", f"{_EHU}/a/a6/KSC_gt.mat", 512),
        SceneInfo("Pavia", "Pavia.mat", "pavia", "Pavia_gt.mat", "pavia_gt", (1096, 715, 102), 9, (46, 27, 10),
                  f"{_EHU}/e/e3/Pavia.mat", f"{_EHU}/5/53/Pavia_gt.mat", 4096),
        SceneInfo("PaviaU", "PaviaU.mat", "paviaU", "PaviaU_gt.mat", "paviaU_gt", (610, 340, 103), 9, (46, 27, 10),
                  f"{_EHU}/e/ee/PaviaU.mat", f"{_EHU}/5/50/PaviaU_gt.mat", 4096),
        SceneInfo("Salinas", "Salinas_corrected.mat", "salinas_corrected", "Salinas_gt.mat", "salinas_gt",
                  (512, 217, 204), 16, (36, 17, 11),
                  f"{_EHU}/a/a3/Salinas_corrected.mat", f"{_EHU}/f/fa/Salinas_gt.mat", 4096),
    ]
}


def scene_names() -> list[str]:
    """Names of the registered scenes, in the paper's order."""
    return list(SCENES)


def _info(name: str) -> SceneInfo:
    if name not in SCENES:
        raise DataError(f"unknown scene {name!r}: expected one of {', '.join(SCENES)} or the path of an ENVI "
                        f".hdr or a .mat file")
    return SCENES[name]


@dataclasses.dataclass
class Scene:
    """A loaded scene.

    Attributes:
        name: registry name, or for a user scene a clean name from its file stem.
        cube: float32 ``(bands, rows, cols)`` in [0, 1] (see :func:`load_scene` for the scaling).
        raw_range: ``(min, max)`` of the file's values before scaling.
        gt: int64 ``(rows, cols)`` class map, 0 = unlabelled.
        n_classes: number of labelled classes (= number of endmembers d in the paper).
        rgb_bands: the paper's pseudo-colour bands (zero-based).
        source: path(s) the data came from.
        authors_clip: the HUD authors' clip value V of a registered scene (None for a user scene).
    """

    name: str
    cube: np.ndarray
    raw_range: tuple[float, float]
    gt: np.ndarray
    n_classes: int
    rgb_bands: tuple[int, int, int]
    source: str = ""
    authors_clip: float | None = None

    @property
    def bands(self) -> int:
        return self.cube.shape[0]

    @functools.cached_property
    def sha256(self) -> str:
        """sha256 (hex) of the cube's bytes: runs record it, so weights trained on other data are never reused."""
        return hashlib.sha256(np.ascontiguousarray(self.cube).tobytes()).hexdigest()

    def to_authors_space(self, Y: np.ndarray, V: float | None = None) -> np.ndarray:
        """Cube(s) in our units (raw / hi, hi = ``raw_range[1]``) -> the authors' ``clip(raw, 0, V) / V * 2 - 1``.

        Works for any shape (a scene cube or a batch of generated patches); returns float64 in [-1, 1]. ``V``
        defaults to the scene's :attr:`authors_clip`.
        """
        V = self.authors_clip if V is None else V
        if V is None or not V > 0:
            raise DataError(f"scene {self.name!r}: no authors' clip value V (only the paper's registered scenes "
                            f"have one; pass V)")
        raw = np.asarray(Y, dtype=np.float64) * self.raw_range[1]
        return np.clip(raw, 0.0, float(V)) / float(V) * 2.0 - 1.0

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.cube.shape)


# --------------------------------------------------------------------------------------------- finding files
def _roots(root) -> list[Path]:
    roots = []
    if root is not None:
        roots.append(Path(root))
    if os.environ.get("HUD_DATA"):
        roots.append(Path(os.environ["HUD_DATA"]))
    roots.append(Path("data"))
    return roots


def find_file(filename: str, root=None) -> Path | None:
    """First existing ``filename`` under the search roots (``root``, ``$HUD_DATA``, ``./data``), else None."""
    for r in _roots(root):
        p = r / filename
        if p.is_file():
            return p
    return None


def _tensorly_indian_pines() -> tuple[Path, Path] | None:
    try:
        spec = importlib.util.find_spec("tensorly")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    cube, gt = d / "Indian_pines_corrected.npy", d / "Indian_pines_gt.npy"
    return (cube, gt) if cube.is_file() and gt.is_file() else None


# --------------------------------------------------------------------------------------------- reading
def _read_mat(path: Path, key: str) -> np.ndarray:
    """Variable ``key`` of a MATLAB v5 file; a clear DataError for a corrupt file or a wrong key."""
    with open(path, "rb") as f:
        head = f.read(128)
    if head[:8] == b"\x89HDF\r\n\x1a\n" or b"MATLAB 7.3" in head:
        raise DataError(f"{path}: MATLAB v7.3 (HDF5) file; expected a MATLAB v5 .mat as on the scene's public page")
    try:
        whos = scipy.io.whosmat(str(path))
    except Exception as e:  # scipy raises several types for a bad header
        raise DataError(f"{path}: not a readable MATLAB .mat file ({type(e).__name__}: {e})") from e
    names = [w[0] for w in whos]
    if key not in names:
        raise DataError(f"{path}: no variable {key!r}; found {names}")
    try:
        arr = scipy.io.loadmat(str(path), variable_names=[key])[key]
    except Exception as e:
        raise DataError(f"{path}: truncated or corrupt .mat file ({type(e).__name__}: {e})") from e
    return np.asarray(arr)


def _check_cube(arr: np.ndarray, info: SceneInfo, path) -> None:
    if arr.ndim != 3:
        raise DataError(f"{path}: expected a 3-D cube (rows, cols, bands) = {info.shape}, got shape {arr.shape}")
    if arr.shape[2] != info.bands:
        raise DataError(f"{path}: expected {info.bands} bands for {info.name} (shape {info.shape}), got {arr.shape}")
    if tuple(arr.shape) != info.shape:
        raise DataError(f"{path}: expected shape {info.shape} for {info.name}, got {arr.shape}")


def _download_hint(name: str) -> str:
    return f"python -m hudlib download {name} --root data"


def _locate(info: SceneInfo, root) -> tuple[Path, Path, str]:
    """Paths of cube and gt files plus their kind ('mat' or 'npy')."""
    cube = find_file(info.cube_file, root)
    if cube is not None:
        gt = find_file(info.gt_file, root) or cube.parent / info.gt_file
        if not gt.is_file():
            raise DataError(f"{gt}: ground truth of {info.name} missing (expected next to {cube}); "
                            f"get it with: {_download_hint(info.name)}")
        return cube, gt, "mat"
    if info.name == "IndianPines":
        tl = _tensorly_indian_pines()
        if tl is not None:
            return tl[0], tl[1], "npy"
    searched = ", ".join(str(r) for r in _roots(root))
    raise DataError(f"{info.cube_file}: cube of {info.name} not found under {searched} (or $HUD_DATA); "
                    f"get it with: {_download_hint(info.name)}")


def _normalise(raw: np.ndarray, path) -> tuple[np.ndarray, tuple[float, float]]:
    """Raw ``(rows, cols, bands)`` -> float32 ``(bands, rows, cols)`` = max(raw, 0) / max(raw), and (min, max)."""
    raw = np.asarray(raw).astype(np.float64, copy=False)
    if not np.isfinite(raw).all():
        raise DataError(f"{path}: cube holds {int((~np.isfinite(raw)).sum())} NaN/Inf values; expected finite")
    lo, hi = float(raw.min()), float(raw.max())
    if hi <= 0:
        raise DataError(f"{path}: cube maximum is {hi}; expected positive radiance/reflectance values")
    cube = (np.clip(raw, 0, None) / hi).astype(np.float32).transpose(2, 0, 1)
    return np.ascontiguousarray(cube), (lo, hi)


def _check_labels(gt: np.ndarray, n_classes: int, path) -> np.ndarray:
    """int64 class map with labels in 0..n_classes, else a DataError."""
    gt = gt.astype(np.int64)
    if gt.min() < 0 or gt.max() > n_classes:
        raise DataError(f"{path}: labels span {gt.min()}..{gt.max()}; expected 0..{n_classes}")
    return gt


def load_scene(scene, root=None, *, classes: int | None = None, key: str | None = None, gt=None,
               gt_key: str | None = None, rgb_bands: Sequence[int] | None = None) -> Scene:
    """Load a registered scene, or a user's scene from an ENVI image or a ``.mat`` file.

    Args:
        scene: one of :data:`SCENES` (``IndianPines``, ``KSC``, ``Pavia``, ``PaviaU``, ``Salinas``), or a path:
            an ENVI header ``cube.hdr`` (its data file beside it: ``cube``, ``cube.img``, ``cube.dat`` ...; the data
            file's own path also works when ``cube.hdr`` sits next to it), or ``cube.mat`` holding a
            ``(rows, cols, bands)`` variable named by ``key`` or written ``cube.mat:key``.
        root: registered scenes only: folder searched first (then ``$HUD_DATA``, ``./data``, tensorly for Indian
            Pines).
        classes: user scenes: number of classes = number of endmembers d (default: the class map's largest label).
        key: user ``.mat`` cube: variable name (optional when the file holds a single variable).
        gt: user scenes: class map ``(rows, cols)``, 0 = unlabelled, as an ENVI ``.hdr`` (one band), ``.mat``
            (``gt_key`` or ``path.mat:key``) or ``.npy``; without one the class map is all zeros.
        gt_key: variable name of a ``.mat`` class map.
        rgb_bands: user scenes: three zero-based pseudo-colour bands (R, G, B); default: the bands nearest 650, 550
            and 450 nm when the ENVI header lists wavelengths, else three evenly spread bands.

    Returns:
        :class:`Scene` with ``cube`` float32 ``(bands, rows, cols)``.

    Normalisation: the cube is divided by its global maximum after clipping negative values to 0, i.e.
    ``cube = max(raw, 0) / max(raw)``. One scalar for the whole scene (not per band, not min-max) keeps the linear
    mixing model Y = AX exact (a scaled Y is mixed from equally scaled endmembers) and keeps every spectral angle
    and cosine similarity (F_p, D_b, SAD) unchanged; an offset (min-max) would break both. The raw range is kept
    in ``raw_range``. User scenes are normalised by the same code.
    """
    user = dict(classes=classes, key=key, gt=gt, gt_key=gt_key, rgb_bands=rgb_bands)
    if isinstance(scene, str) and scene in SCENES:
        given = [k for k, v in user.items() if v is not None]
        if given:
            raise DataError(f"{', '.join(given)}: only for a user scene (an ENVI .hdr or .mat path); {scene} is a "
                            f"registered scene with fixed files, classes and bands")
        return _load_registered(SCENES[scene], root)
    path, key = _split_key(scene, key)
    if path is None:
        _info(str(scene))  # raises: unknown scene
    return _load_user(path, **{**user, "key": key})


def _load_registered(info: SceneInfo, root) -> Scene:
    cube_path, gt_path, kind = _locate(info, root)
    if kind == "npy":
        try:
            raw = np.load(cube_path)
            gt = np.load(gt_path)
        except Exception as e:
            raise DataError(f"{cube_path}: unreadable .npy ({type(e).__name__}: {e})") from e
    else:
        raw = _read_mat(cube_path, info.cube_key)
        gt = _read_mat(gt_path, info.gt_key)
    _check_cube(raw, info, cube_path)
    if gt.shape != raw.shape[:2]:
        raise DataError(f"{gt_path}: ground truth shape {gt.shape} does not match the cube's {raw.shape[:2]}")
    cube, (lo, hi) = _normalise(raw, cube_path)
    gt = _check_labels(gt, info.n_classes, gt_path)
    return Scene(info.name, cube, (lo, hi), gt, info.n_classes, info.rgb_bands, source=f"{cube_path}",
                 authors_clip=info.authors_clip)


# --------------------------------------------------------------------------------------------- user scenes
_ENVI_INTERLEAVES = ("bsq", "bil", "bip")


def _split_key(spec, key: str | None) -> tuple[Path | None, str | None]:
    """``'a.mat:k'`` -> (Path('a.mat'), 'k'); a path-like spec -> (Path, key); a bare unknown name -> (None, key)."""
    text = os.fspath(spec)
    m = re.fullmatch(r"(.+\.mat):([^:/\\]+)", text, flags=re.IGNORECASE)
    if m and not Path(text).exists():
        if key is not None and key != m.group(2):
            raise DataError(f"key: {key!r} contradicts the key {m.group(2)!r} written in {text!r}")
        return Path(m.group(1)), m.group(2)
    p = Path(text)
    looks_like_path = isinstance(spec, os.PathLike) or p.suffix != "" or os.sep in text or "/" in text
    return (p, key) if looks_like_path or p.exists() else (None, key)


def user_scene_name(path) -> str:
    """A clean scene name from a file stem (letters, digits, ``_``, ``-``); ``_user`` is appended when the stem
    equals a registered name, so a user's ``PaviaU.hdr`` never reuses the runs of the registered PaviaU."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(path).stem).strip("_-") or "scene"
    return f"{name}_user" if name.lower() in {n.lower() for n in SCENES} else name


def _envi_header(path: Path) -> Path:
    """The ENVI header of ``path``: itself for ``.hdr``, else ``path.hdr`` or ``<stem>.hdr`` beside a data file."""
    if path.suffix.lower() == ".hdr":
        return path
    for h in (path.with_name(path.name + ".hdr"), path.with_suffix(".hdr"), path.with_suffix(".HDR")):
        if h.is_file():
            return h
    raise DataError(f"{path}: not an ENVI header (.hdr), a .mat or a .npy file, and no {path.stem}.hdr beside it")


def _read_envi(path: Path) -> tuple[np.ndarray, dict]:
    """Raw ``(rows, cols, bands)`` array in the file's dtype and the header dict of an ENVI image."""
    hdr = _envi_header(path)
    if not hdr.is_file():
        raise DataError(f"{hdr}: file not found; expected an ENVI header")
    try:
        h = envi.read_envi_header(str(hdr))
        envi.check_compatibility(h)
    except Exception as e:  # SPy raises its own types for a bad header
        raise DataError(f"{hdr}: not a usable ENVI header ({type(e).__name__}: {e})") from e
    inter = str(h["interleave"]).strip().lower()
    if inter not in _ENVI_INTERLEAVES:
        raise DataError(f"{hdr}: interleave {h['interleave']!r}; expected one of {', '.join(_ENVI_INTERLEAVES)}")
    try:
        img = envi.open(str(hdr))
    except envi.EnviDataFileNotFoundError as e:
        raise DataError(f"{hdr}: data file missing; expected {hdr.with_suffix('')} (or .img, .dat, .raw, .bin, "
                        f".{inter}) beside the header") from e
    except Exception as e:
        raise DataError(f"{hdr}: not a usable ENVI image ({type(e).__name__}: {e})") from e
    if img.interleave != {"bsq": spectral.BSQ, "bil": spectral.BIL, "bip": spectral.BIP}[inter]:
        # SPy reads any spelling other than 'bil'/'BIL'/'bip'/'BIP' as bsq
        raise DataError(f"{hdr}: interleave {h['interleave']!r}; write it in lower case: {inter}")
    rows, cols, bands = img.nrows, img.ncols, img.nbands
    itemsize = np.dtype(img.dtype).itemsize
    expected = img.offset + rows * cols * bands * itemsize
    size = os.path.getsize(img.filename)
    if size != expected:
        raise DataError(f"{img.filename}: {size} bytes; the header {hdr.name} ({rows} lines x {cols} samples x "
                        f"{bands} bands of {np.dtype(img.dtype).name}, offset {img.offset}) expects {expected}")
    mm = img.open_memmap(interleave="bip")
    raw = np.array(mm)  # (rows, cols, bands), a copy so that the file is released
    del mm
    return raw, h


def _read_user_array(path: Path, key: str | None, what: str) -> tuple[np.ndarray, dict]:
    """A cube or class map from an ENVI image, a .mat variable or a .npy file, plus the ENVI header (or {})."""
    suffix = path.suffix.lower()
    if suffix == ".mat":
        if not path.is_file():
            raise DataError(f"{path}: {what} file not found")
        return _read_mat(path, key or _only_variable(path, what)), {}
    if suffix == ".npy":
        if not path.is_file():
            raise DataError(f"{path}: {what} file not found")
        try:
            return np.load(path, allow_pickle=False), {}
        except Exception as e:
            raise DataError(f"{path}: unreadable .npy ({type(e).__name__}: {e})") from e
    if not path.exists() and suffix == ".hdr":
        raise DataError(f"{path}: {what} file not found")
    return _read_envi(path)


def _only_variable(path: Path, what: str) -> str:
    """The name of the single variable of a .mat file; a DataError listing them when there are several."""
    try:
        names = [w[0] for w in scipy.io.whosmat(str(path))]
    except Exception as e:
        raise DataError(f"{path}: not a readable MATLAB .mat file ({type(e).__name__}: {e})") from e
    if len(names) != 1:
        flag = "--key" if what == "cube" else "--gt-key"
        raise DataError(f"{path}: holds {len(names)} variables {names}; name the {what} with {flag} or {path.name}:KEY")
    return names[0]


def _wavelengths_nm(header: dict) -> np.ndarray | None:
    """Band centres in nm from an ENVI header (micrometres converted), or None."""
    try:
        wl = np.array([float(w) for w in header.get("wavelength", [])])
    except (TypeError, ValueError):
        return None
    if wl.size == 0 or not np.isfinite(wl).all():
        return None
    unit = str(header.get("wavelength units", "")).strip().lower()
    if unit in ("micrometers", "micrometres", "microns", "um", "µm") or (unit == "" and wl.max() < 100):
        wl = wl * 1000.0
    return wl


def default_rgb_bands(bands: int, wavelengths_nm: Sequence[float] | None = None) -> tuple[int, int, int]:
    """Pseudo-colour (R, G, B) bands: nearest 650/550/450 nm when wavelengths are known and those three bands differ,
    else the bands at 3/4, 1/2 and 1/4 of the band axis (band order taken as increasing wavelength)."""
    if wavelengths_nm is not None and len(wavelengths_nm) == bands:
        wl = np.asarray(wavelengths_nm, dtype=np.float64)
        rgb = tuple(int(np.argmin(np.abs(wl - t))) for t in (650.0, 550.0, 450.0))
        if len(set(rgb)) == 3:
            return rgb
    return tuple(int(round((bands - 1) * f)) for f in (0.75, 0.5, 0.25))


def _check_user_cube(raw: np.ndarray, path) -> None:
    if raw.ndim != 3:
        raise DataError(f"{path}: expected a 3-D cube (rows, cols, bands), got shape {raw.shape}")
    rows, cols, bands = raw.shape
    if rows < PATCH_SIZE or cols < PATCH_SIZE or bands < MIN_BANDS:
        raise DataError(f"{path}: cube of {rows} rows x {cols} cols x {bands} bands is too small; expected at least "
                        f"{PATCH_SIZE} x {PATCH_SIZE} pixels (the patch size) and {MIN_BANDS} bands")


def _user_gt(gt, gt_key, shape: tuple[int, int]) -> tuple[np.ndarray, str]:
    """Class map ``(rows, cols)`` int64 (all zeros without ``gt``) and its source."""
    if gt is None:
        return np.zeros(shape, np.int64), ""
    gpath, gt_key = _split_key(gt, gt_key)
    gpath = gpath if gpath is not None else Path(os.fspath(gt))
    arr, _ = _read_user_array(gpath, gt_key, "ground truth")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.shape != tuple(shape):
        raise DataError(f"{gpath}: ground truth shape {arr.shape} does not match the cube's {tuple(shape)}")
    if not np.isfinite(arr).all() or not np.array_equal(arr, np.round(arr)):
        raise DataError(f"{gpath}: ground truth holds non-integer labels; expected integers 0 (unlabelled)..n")
    return arr.astype(np.int64), str(gpath)


def _load_user(path: Path, *, classes, key, gt, gt_key, rgb_bands) -> Scene:
    if not path.exists() and path.suffix.lower() not in (".hdr", ".mat", ".npy"):
        raise DataError(f"{path}: scene file not found; expected a registered name ({', '.join(SCENES)}), an ENVI "
                        f".hdr or a .mat file")
    if path.suffix.lower() == ".npy":
        raise DataError(f"{path}: a .npy cube has no known layout; expected an ENVI .hdr or a .mat (rows, cols, bands)")
    raw, header = _read_user_array(path, key, "cube")
    _check_user_cube(raw, path)
    cube, raw_range = _normalise(raw, path)
    labels, gt_source = _user_gt(gt, gt_key, raw.shape[:2])
    del raw
    if classes is None:
        classes = int(labels.max())
        if classes < 1:
            raise DataError(f"classes: {path} has no class map with labels; pass --classes N (classes=N), the number "
                            f"of endmembers d")
    if int(classes) != classes or classes < 1:
        raise DataError(f"classes: expected a positive integer (number of endmembers d), got {classes!r}")
    labels = _check_labels(labels, int(classes), gt_source or "gt")
    bands = cube.shape[0]
    if rgb_bands is None:
        rgb_bands = default_rgb_bands(bands, _wavelengths_nm(header))
    rgb_bands = tuple(int(b) for b in rgb_bands)
    if len(rgb_bands) != 3 or min(rgb_bands) < 0 or max(rgb_bands) >= bands:
        raise DataError(f"rgb_bands: expected three band indices in 0..{bands - 1}, got {rgb_bands}")
    source = str(path) + (f" (gt {gt_source})" if gt_source else "")
    return Scene(user_scene_name(path), cube, raw_range, labels, int(classes), rgb_bands, source=source)


# --------------------------------------------------------------------------------------------- download
def _validate_download(path: Path, info: SceneInfo, which: str) -> None:
    if which == "cube":
        _check_cube(_read_mat(path, info.cube_key), info, path)
    else:
        gt = _read_mat(path, info.gt_key)
        if gt.shape != info.shape[:2]:
            raise DataError(f"{path}: expected ground truth shape {info.shape[:2]}, got {gt.shape}")


def _fetch(url: str, dest: Path, progress: bool, timeout: float) -> Path:
    """Stream ``url`` into a temporary file beside ``dest`` and return its path; raise on a short read.

    The temporary file is removed on any failure, so nothing partial is left behind.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = resp.headers.get("Content-Length")
            total = int(total) if total is not None else None
            n = 0
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
                    n += len(chunk)
                    bar.update(len(chunk))
        if total is not None and n != total:
            raise DataError(f"{url}: download truncated: got {n} of {total} bytes")
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp)


def download(name: str, root="data", mirror: str | None = None, progress: bool = True, force: bool = False,
             timeout: float = 60.0) -> tuple[Path, Path]:
    """Download cube and ground truth of a scene into ``root`` under their official names.

    Each file is streamed to a temporary file beside its destination, checked (byte count against
    Content-Length, readable .mat, expected variable and shape) and only then renamed into place, so a corrupt or
    partial file never sits under the official name.

    Args:
        name: registered scene name.
        root: destination folder (created).
        mirror: base URL replacing the official location (``{mirror}/{file name}``); also ``$HUD_MIRROR``.
        progress: show a tqdm bar.
        force: download even if a valid file is present.

    Returns:
        ``(cube_path, gt_path)``.
    """
    info = _info(name)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    mirror = mirror or os.environ.get("HUD_MIRROR")
    out = []
    for which, fname, url in (("cube", info.cube_file, info.cube_url), ("gt", info.gt_file, info.gt_url)):
        dest = root / fname
        if mirror:
            url = mirror.rstrip("/") + "/" + fname
        if dest.is_file() and not force:
            _validate_download(dest, info, which)
            out.append(dest)
            continue
        part = _fetch(url, dest, progress, timeout)
        try:
            _validate_download(part, info, which)
        except Exception:
            part.unlink(missing_ok=True)
            raise
        os.replace(part, dest)
        out.append(dest)
    return out[0], out[1]


# --------------------------------------------------------------------------------------------- unmixing sets
@dataclasses.dataclass
class UnmixingBenchmark:
    """An unmixing benchmark scene (Samson, Jasper Ridge, Urban family).

    Attributes:
        cube: float32 ``(bands, rows, cols)``.
        endmembers: float64 ``(bands, p)`` reference endmembers, or None.
        abundances: float64 ``(p, rows, cols)`` reference abundances, or None.
        names: endmember names (length p).
    """

    cube: np.ndarray
    endmembers: np.ndarray | None
    abundances: np.ndarray | None
    names: list[str]


def _scalar(m: dict, key: str, path) -> int:
    if key not in m:
        raise DataError(f"{path}: no variable {key!r}; expected Y, nRow, nCol (optional maxValue)")
    return int(np.asarray(m[key]).ravel()[0])


def _col_major_image(mat: np.ndarray, rows: int, cols: int, path, what: str) -> np.ndarray:
    """``(k, rows*cols)`` with MATLAB column-major pixel order -> ``(k, rows, cols)``."""
    if mat.ndim != 2 or mat.shape[1] != rows * cols:
        raise DataError(f"{path}: {what} has shape {mat.shape}; expected (k, nRow*nCol) = (k, {rows * cols})")
    # pixel index q = r + c * rows  (column-major), so reshape to (k, cols, rows) and swap.
    return mat.reshape(mat.shape[0], cols, rows).transpose(0, 2, 1)


def load_unmixing_benchmark(cube_file, endmember_file=None) -> UnmixingBenchmark:
    """Load a Samson/Jasper-Ridge/Urban style pair of .mat files.

    Args:
        cube_file: .mat with ``Y`` ``(bands, pixels)`` (pixels in MATLAB column-major order), ``nRow``,
            ``nCol``, optional ``maxValue`` (Y is divided by it when present).
        endmember_file: optional .mat with ``M`` ``(bands, p)``, ``A`` ``(p, pixels)`` and ``cood`` (names).

    Returns:
        :class:`UnmixingBenchmark` (cube ``(bands, rows, cols)``, endmembers ``(bands, p)``,
        abundances ``(p, rows, cols)``).
    """
    def load(p):
        try:
            return scipy.io.loadmat(str(p))
        except FileNotFoundError as e:
            raise DataError(f"{p}: file not found") from e
        except Exception as e:
            raise DataError(f"{p}: not a readable MATLAB .mat file ({type(e).__name__}: {e})") from e

    m = load(cube_file)
    if "Y" not in m:
        raise DataError(f"{cube_file}: no variable 'Y'; expected Y (bands x pixels), nRow, nCol")
    rows, cols = _scalar(m, "nRow", cube_file), _scalar(m, "nCol", cube_file)
    Y = np.asarray(m["Y"], dtype=np.float64)
    if "maxValue" in m:
        Y = Y / float(np.asarray(m["maxValue"]).ravel()[0])
    if not np.isfinite(Y).all():
        raise DataError(f"{cube_file}: Y holds NaN/Inf values; expected finite")
    cube = _col_major_image(Y, rows, cols, cube_file, "Y").astype(np.float32)
    E = A = None
    names: list[str] = []
    if endmember_file is not None:
        e = load(endmember_file)
        for k in ("M", "A"):
            if k not in e:
                raise DataError(f"{endmember_file}: no variable {k!r}; expected M (bands x p), A (p x pixels), cood")
        E = np.asarray(e["M"], dtype=np.float64)
        if E.shape[0] != cube.shape[0]:
            raise DataError(f"{endmember_file}: M has {E.shape[0]} bands; expected {cube.shape[0]} like Y")
        A = _col_major_image(np.asarray(e["A"], dtype=np.float64), rows, cols, endmember_file, "A")
        if A.shape[0] != E.shape[1]:
            raise DataError(f"{endmember_file}: A has {A.shape[0]} rows; expected p = {E.shape[1]} like M")
        if "cood" in e:
            names = [str(np.asarray(c).ravel()[0]).strip() for c in np.asarray(e["cood"], dtype=object).ravel()]
        else:
            names = [f"endmember {i + 1}" for i in range(E.shape[1])]
    return UnmixingBenchmark(cube, E, A, names)


# --------------------------------------------------------------------------------------------- patches
def centre_square(a):
    """Centre square crop of the last two axes (a view), offsets as the authors' ``(h - s) // 2 : (h + s) // 2``
    with s = min(h, w): their "whole image" for VCA, statistics and the metrics' original image."""
    H, W = a.shape[-2:]
    s = min(H, W)
    return a[..., (H - s) // 2:(H + s) // 2, (W - s) // 2:(W + s) // 2]


def _as_cube(scene_or_cube) -> np.ndarray:
    cube = scene_or_cube.cube if isinstance(scene_or_cube, Scene) else np.asarray(scene_or_cube)
    if cube.ndim != 3:
        raise DataError(f"cube: expected (bands, rows, cols), got shape {cube.shape}")
    return cube


def patch_corners(shape: Sequence[int], size: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, 2)`` random top-left corners of ``size`` x ``size`` crops of a ``(bands, rows, cols)`` cube."""
    _, rows, cols = shape
    if rows < size or cols < size:
        raise DataError(f"size: patch size {size} exceeds the scene's spatial size {rows}x{cols}")
    return np.stack([rng.integers(0, rows - size + 1, n), rng.integers(0, cols - size + 1, n)], axis=1)


def crop(cube: np.ndarray, corners: np.ndarray, size: int) -> np.ndarray:
    """Crops at ``corners`` ``(n, 2)`` of ``cube`` ``(bands, rows, cols)`` -> ``(n, bands, size, size)``."""
    return np.stack([cube[:, r:r + size, c:c + size] for r, c in corners]) if len(corners) else \
        np.empty((0, cube.shape[0], size, size), cube.dtype)


def patches(scene, size: int = 32, n: int = 64, random_state=None) -> np.ndarray:
    """Random overlapping ``size`` x ``size`` crops (paper IV-A).

    Args:
        scene: :class:`Scene` or cube ``(bands, rows, cols)``.
    Returns:
        ``(n, bands, size, size)`` array of the cube's dtype.
    """
    cube = _as_cube(scene)
    rng = np.random.default_rng(random_state)
    return crop(cube, patch_corners(cube.shape, size, n, rng), size)


class PatchDataset:
    """A torch-style map dataset of random crops: item ``i`` is the ``i``-th crop ``(bands, size, size)``.

    The crop positions are drawn once from ``random_state`` (``n`` of them), so the dataset is deterministic.
    """

    def __init__(self, scene, size: int = 32, n: int = 1024, random_state=None):
        self.cube = _as_cube(scene)
        self.size = size
        self.corners = patch_corners(self.cube.shape, size, n, np.random.default_rng(random_state))

    def __len__(self) -> int:
        return len(self.corners)

    def __getitem__(self, i):
        r, c = self.corners[i]
        return torch.from_numpy(np.ascontiguousarray(self.cube[:, r:r + self.size, c:c + self.size]))


# --------------------------------------------------------------------------------------------- display
def rgb_limits(cube: np.ndarray, bands: Sequence[int], percentiles=(2.0, 98.0)) -> np.ndarray:
    """Per-channel stretch limits ``(3, 2)`` (low, high) from percentiles of ``cube`` ``(bands, ...)``."""
    cube = np.asarray(cube)
    sel = np.stack([cube[b].ravel() if cube.ndim == 3 else cube[:, b].ravel() for b in bands])
    return np.percentile(sel, percentiles, axis=1).T


def pseudo_rgb(cube: np.ndarray, bands: Sequence[int], limits: np.ndarray | None = None,
               percentiles=(2.0, 98.0)) -> np.ndarray:
    """Pseudo-colour image with a robust percentile stretch.

    Args:
        cube: ``(bands, rows, cols)`` or a batch ``(n, bands, rows, cols)``.
        bands: three band indices (R, G, B), zero-based.
        limits: ``(3, 2)`` fixed stretch (share one across models to compare colours); by default the
            ``percentiles`` of ``cube`` itself.
    Returns:
        float array ``(rows, cols, 3)`` (or ``(n, rows, cols, 3)``) in [0, 1].
    """
    cube = np.asarray(cube)
    if len(bands) != 3:
        raise DataError(f"bands: expected three band indices, got {bands}")
    nb = cube.shape[-3]
    if max(bands) >= nb or min(bands) < 0:
        raise DataError(f"bands: {tuple(bands)} out of range for a cube with {nb} bands")
    if limits is None:
        limits = rgb_limits(cube, bands, percentiles)
    limits = np.asarray(limits, dtype=np.float64)
    img = np.stack([cube[..., b, :, :] for b in bands], axis=-1).astype(np.float64)
    lo, hi = limits[:, 0], limits[:, 1]
    return np.clip((img - lo) / np.maximum(hi - lo, 1e-12), 0.0, 1.0)


def class_mean_spectra(scene: Scene) -> np.ndarray:
    """Mean spectrum of every labelled class: ``(n_classes, bands)``; NaN rows for empty classes."""
    flat = scene.cube.reshape(scene.bands, -1)
    gt = scene.gt.ravel()
    out = np.full((scene.n_classes, scene.bands), np.nan)
    for k in range(1, scene.n_classes + 1):
        m = gt == k
        if m.any():
            out[k - 1] = flat[:, m].mean(axis=1)
    return out
