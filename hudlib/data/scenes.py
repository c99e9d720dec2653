"""Registered scenes of the paper (IV-A): the registry, the loaded :class:`Scene`, finding and loading their files.

Where files are looked for (first hit wins), like SPy's ``SPECTRAL_DATA``:

1. the ``root`` argument,
2. the folder named by the environment variable ``HUD_DATA``,
3. ``./data`` (relative to the working directory),
4. for Indian Pines only: the copy shipped inside the installed ``tensorly`` wheel
   (``tensorly/datasets/data/Indian_pines_corrected.npy``; CC BY 3.0, Baumgardner et al. 2015).

Files sit flat under a root with their official names (``PaviaU.mat``, ``PaviaU_gt.mat`` ...). :func:`load_scene`
also takes the path of a user's own scene and hands it to :mod:`hudlib.data.user`.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.io


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


def scene_available(name: str, root=None) -> str | None:
    """None when the registered scene ``name`` can be loaded here (found under ``root``, ``$HUD_DATA``, ``./data``
    or, for Indian Pines, tensorly), else why not, with the command that fetches it. An unknown name is an error."""
    try:
        _locate(_info(name), root)
    except DataError as e:
        if name not in SCENES:
            raise
        return str(e)
    return None


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
            ``(rows, cols, bands)`` variable named by ``key`` or written ``cube.mat:key``, or a 2-D variable in the
            unmixing benchmarks' layout: ``(bands, pixels)`` or ``(pixels, bands)`` with ``nRow`` and ``nCol`` (and
            optional ``maxValue``) in the same file, pixels in MATLAB column-major order (see
            :func:`hudlib.data.user._cube_from_pixels`).
        root: registered scenes only: folder searched first (then ``$HUD_DATA``, ``./data``, tensorly for Indian
            Pines).
        classes: user scenes: number of classes = number of endmembers d (default: the class map's largest label).
        key: user ``.mat`` cube: variable name (optional when the file holds a single variable, not counting
            ``nRow``, ``nCol``, ``nBand`` and ``maxValue`` next to ``nRow`` and ``nCol``).
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
    from .user import _load_user, _split_key  # user scene I/O builds on this module; resolved at call time
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
