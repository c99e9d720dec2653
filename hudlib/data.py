"""Hyperspectral scenes of the paper (IV-A): registry, loading, download, patches, pseudo-colour.

Arrays are channel-first like the paper's Y in R^{c x h x w}: a cube is ``(bands, rows, cols)``.

Where files are looked for (first hit wins), like SPy's ``SPECTRAL_DATA``:

1. the ``root`` argument,
2. the folder named by the environment variable ``HUD_DATA``,
3. ``./data`` (relative to the working directory),
4. for Indian Pines only: the copy shipped inside the installed ``tensorly`` wheel
   (``tensorly/datasets/data/Indian_pines_corrected.npy``; CC BY 3.0, Baumgardner et al. 2015).

Files sit flat under a root with their official names (``PaviaU.mat``, ``PaviaU_gt.mat`` ...).
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
import urllib.request
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = [
    "DataError", "SceneInfo", "SCENES", "Scene", "UnmixingBenchmark", "scene_names", "find_file",
    "load_scene", "download", "load_unmixing_benchmark", "patches", "PatchDataset", "pseudo_rgb",
    "rgb_limits", "class_mean_spectra",
]


class DataError(ValueError):
    """Bad or missing input data; the message names the file or parameter and what was expected."""


@dataclasses.dataclass(frozen=True)
class SceneInfo:
    """Static facts of one scene. ``shape`` is the official (rows, cols, bands) of the cube."""

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

    @property
    def bands(self) -> int:
        return self.shape[2]


_EHU = "https://www.ehu.eus/ccwintco/uploads"

# The paper's five scenes (IV-A). n_classes is also the number of endmembers d (III-B, IV-A).
# rgb_bands are the paper's pseudo-colour bands, used as zero-based indices into the band axis.
SCENES: dict[str, SceneInfo] = {
    s.name: s
    for s in [
        SceneInfo("IndianPines", "Indian_pines_corrected.mat", "indian_pines_corrected",
                  "Indian_pines_gt.mat", "indian_pines_gt", (145, 145, 200), 16, (46, 17, 11),
                  f"{_EHU}/6/67/Indian_pines_corrected.mat", f"{_EHU}/c/c4/Indian_pines_gt.mat"),
        SceneInfo("KSC", "KSC.mat", "KSC", "KSC_gt.mat", "KSC_gt", (512, 614, 176), 13, (28, 9, 10),
                  f"{_EHU}/2/26/KSC.mat", f"{_EHU}/a/a6/KSC_gt.mat"),
        SceneInfo("Pavia", "Pavia.mat", "pavia", "Pavia_gt.mat", "pavia_gt", (1096, 715, 102), 9, (46, 27, 10),
                  f"{_EHU}/e/e3/Pavia.mat", f"{_EHU}/5/53/Pavia_gt.mat"),
        SceneInfo("PaviaU", "PaviaU.mat", "paviaU", "PaviaU_gt.mat", "paviaU_gt", (610, 340, 103), 9, (46, 27, 10),
                  f"{_EHU}/e/ee/PaviaU.mat", f"{_EHU}/5/50/PaviaU_gt.mat"),
        SceneInfo("Salinas", "Salinas_corrected.mat", "salinas_corrected", "Salinas_gt.mat", "salinas_gt",
                  (512, 217, 204), 16, (36, 17, 11),
                  f"{_EHU}/a/a3/Salinas_corrected.mat", f"{_EHU}/f/fa/Salinas_gt.mat"),
    ]
}


def scene_names() -> list[str]:
    """Names of the registered scenes, in the paper's order."""
    return list(SCENES)


def _info(name: str) -> SceneInfo:
    if name not in SCENES:
        raise DataError(f"unknown scene {name!r}: expected one of {', '.join(SCENES)}")
    return SCENES[name]


@dataclasses.dataclass
class Scene:
    """A loaded scene.

    Attributes:
        name: registry name.
        cube: float32 ``(bands, rows, cols)`` in [0, 1] (see :func:`load_scene` for the scaling).
        raw_range: ``(min, max)`` of the file's values before scaling.
        gt: int64 ``(rows, cols)`` class map, 0 = unlabelled.
        n_classes: number of labelled classes (= number of endmembers d in the paper).
        rgb_bands: the paper's pseudo-colour bands (zero-based).
        source: path(s) the data came from.
    """

    name: str
    cube: np.ndarray
    raw_range: tuple[float, float]
    gt: np.ndarray
    n_classes: int
    rgb_bands: tuple[int, int, int]
    source: str = ""

    @property
    def bands(self) -> int:
        return self.cube.shape[0]

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
        import importlib.util

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
    import scipy.io

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


def load_scene(name: str, root=None) -> Scene:
    """Load a registered scene.

    Args:
        name: one of :data:`SCENES` (``IndianPines``, ``KSC``, ``Pavia``, ``PaviaU``, ``Salinas``).
        root: optional folder searched first (then ``$HUD_DATA``, ``./data``, tensorly for Indian Pines).

    Returns:
        :class:`Scene` with ``cube`` float32 ``(bands, rows, cols)``.

    Normalisation: the cube is divided by its global maximum after clipping negative values to 0, i.e.
    ``cube = max(raw, 0) / max(raw)``. One scalar for the whole scene (not per band, not min-max) keeps the linear
    mixing model Y = AX exact (a scaled Y is mixed from equally scaled endmembers) and keeps every spectral angle
    and cosine similarity (F_p, D_b, SAD) unchanged; an offset (min-max) would break both. The raw range is kept
    in ``raw_range``.
    """
    info = _info(name)
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
    raw = raw.astype(np.float64, copy=False)
    if not np.isfinite(raw).all():
        raise DataError(f"{cube_path}: cube holds {int((~np.isfinite(raw)).sum())} NaN/Inf values; expected finite")
    lo, hi = float(raw.min()), float(raw.max())
    if hi <= 0:
        raise DataError(f"{cube_path}: cube maximum is {hi}; expected positive radiance/reflectance values")
    cube = (np.clip(raw, 0, None) / hi).astype(np.float32).transpose(2, 0, 1)
    gt = gt.astype(np.int64)
    if gt.min() < 0 or gt.max() > info.n_classes:
        raise DataError(f"{gt_path}: labels span {gt.min()}..{gt.max()}; expected 0..{info.n_classes}")
    return Scene(name, np.ascontiguousarray(cube), (lo, hi), gt, info.n_classes, info.rgb_bands,
                 source=f"{cube_path}")


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
    from tqdm.auto import tqdm

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
    import scipy.io

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
        import torch

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
