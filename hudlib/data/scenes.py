"""Registered scenes: the registry (:class:`SceneInfo`, :func:`register_scene`), the loaded :class:`Scene`, finding,
reading and loading a registered scene's files. The paper's five scenes (IV-A) are registered at the end of this
module the same way a user registers one.

Where files are looked for (first hit wins), like SPy's ``SPECTRAL_DATA``:

1. the ``root`` argument,
2. the folder named by the environment variable ``HUD_DATA``,
3. ``./data`` (relative to the working directory),
4. a scene's ``fallback``: for Indian Pines, the copy shipped inside the installed ``tensorly`` wheel
   (``tensorly/datasets/data/Indian_pines_corrected.npy``; CC BY 3.0, Baumgardner et al. 2015).

Files sit flat under a root with their official names (``PaviaU.mat``, ``PaviaU_gt.mat`` ...).
:func:`hudlib.data.load_scene` takes a registered name or the path of a user's own scene (:mod:`hudlib.data.user`).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.io

from ..errors import DataError
from ..registry import Registry
from .wavelengths import indian_pines_wavelengths, nearest_bands, samson_wavelengths


@dataclasses.dataclass(frozen=True, kw_only=True)
class SceneInfo:
    """Static facts of one registered scene (keyword arguments only).

    ``cube_file``/``gt_file``: the official file names, looked for under the search roots; ``cube_key``/``gt_key``:
    their MATLAB variables. ``shape``: the official (rows, cols, bands) of the cube. ``n_classes``: labelled classes,
    also the number of endmembers d (III-B). ``rgb_bands``: zero-based pseudo-colour bands (R, G, B).
    ``cube_url``/``gt_url``: where :func:`hudlib.data.download` fetches them. ``authors_clip``: the HUD authors' clip
    value V; their data space is ``clip(raw, 0, V) / V * 2 - 1`` (ldm/data/HSI.py), so generated cubes can be
    compared in their units too (:meth:`Scene.to_authors_space`). ``fallback``: a function giving ``(cube, gt)``
    ``.npy`` paths of a copy installed with a package, or None, tried when no file is found under the roots.
    ``citation``/``licence``: where the data come from and under which terms (empty: not recorded here; see the
    scene's page), written into the card of every checkpoint trained on it. ``class_names``: the names of classes
    1..n_classes as the data's publisher gives them (empty: "class k"), written into class-map files.
    ``wavelengths``: the band centres in nm (:mod:`hudlib.data.wavelengths`; empty: not known here).
    ``reader``: for files in another layout than a (rows, cols, bands) cube and a class map, a function
    ``(cube_path, gt_path) -> (raw (rows, cols, bands), gt (rows, cols), reference)`` (``reference``: a dict of the
    data's reference unmixing, or None). ``cube_sha256``/``gt_sha256``: the published files' digests, checked on
    download (empty: not checked). ``labels_note``: how the class map was made when it is not a surveyed ground truth
    (e.g. Samson's argmax of its reference abundances), shown wherever a label-based number appears.
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
    fallback: Callable[[], tuple[Path, Path] | None] | None = None
    citation: str = ""
    licence: str = ""
    class_names: tuple[str, ...] = ()
    wavelengths: tuple[float, ...] = ()
    reader: Callable[[Path, Path], tuple] | None = None
    cube_sha256: str = ""
    gt_sha256: str = ""
    labels_note: str = ""

    @property
    def bands(self) -> int:
        return self.shape[2]

    def __post_init__(self):
        if not self.name or not all(c.isalnum() or c in "_-" for c in self.name):
            raise DataError(f"name: expected letters, digits, '_' or '-' (it names folders), got {self.name!r}")
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise DataError(f"shape: expected (rows, cols, bands) of positive sizes, got {self.shape!r}")
        if self.n_classes < 1:
            raise DataError(f"n_classes: expected a positive number of classes, got {self.n_classes!r}")
        if len(self.rgb_bands) != 3 or not all(0 <= b < self.shape[2] for b in self.rgb_bands):
            raise DataError(f"rgb_bands: expected three band indices in 0..{self.shape[2] - 1}, "
                            f"got {self.rgb_bands!r}")
        if self.wavelengths and len(self.wavelengths) != self.shape[2]:
            raise DataError(f"wavelengths: expected {self.shape[2]} band centres (one per band), got "
                            f"{len(self.wavelengths)}")
        if self.class_names and len(self.class_names) != self.n_classes:
            raise DataError(f"class_names: expected {self.n_classes} names (classes 1..{self.n_classes}), "
                            f"got {len(self.class_names)}")


# The registry: name -> SceneInfo, in registration order (the paper's order for the built-in scenes).
SCENES = Registry("scene", SceneInfo, hint=" or the path of an ENVI .hdr or a .mat file")


def register_scene(info: SceneInfo) -> SceneInfo:
    """Add a scene to the registry: from then on :func:`hudlib.data.load_scene`, ``download``, the runner's
    ``--scenes`` and every table take its name. A name registered already is refused."""
    return SCENES.add(info)


def unregister_scene(name: str) -> None:
    """Remove a registered scene (tests register stand-ins and remove them again)."""
    SCENES.remove(name)


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
    return SCENES.lookup(name)


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
        class_names: names of classes 1..n_classes (empty: unnamed; :meth:`class_name` gives "class k").
        wavelengths: band centres in nm ``(bands,)``, or None where they are not known (every ENVI file the project
            writes carries them when known).
        reference: the data's reference unmixing where it has one (``endmembers`` (bands, p), ``abundances``
            (p, rows, cols), ``names``), else None.
        labels_note: how ``gt`` was made when it is not a surveyed class map ("" for a ground truth).
    """

    name: str
    cube: np.ndarray
    raw_range: tuple[float, float]
    gt: np.ndarray
    n_classes: int
    rgb_bands: tuple[int, int, int]
    source: str = ""
    authors_clip: float | None = None
    class_names: tuple[str, ...] = ()
    wavelengths: tuple[float, ...] | None = None
    reference: dict | None = None
    labels_note: str = ""

    def class_name(self, k: int) -> str:
        """The name of class ``k`` (1..n_classes; 0 is "unlabelled")."""
        if k == 0:
            return "unlabelled"
        return self.class_names[k - 1] if len(self.class_names) >= k else f"class {k}"

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
        defaults to :attr:`authors_V`.
        """
        V = self.authors_V if V is None else V
        if not V > 0:
            raise DataError(f"V: expected a positive clip value, got {V!r}")
        raw = np.asarray(Y, dtype=np.float64) * self.raw_range[1]
        return np.clip(raw, 0.0, float(V)) / float(V) * 2.0 - 1.0

    @property
    def authors_V(self) -> float:
        """The clip value of the authors' data space: the paper's V for its scenes (:attr:`authors_clip`), else the
        scene's maximum (their space is then ``2 * cube - 1``: nothing is clipped)."""
        return float(self.authors_clip) if self.authors_clip else float(self.raw_range[1])

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


def read_mat(path, key: str) -> np.ndarray:
    """Variable ``key`` of a MATLAB v5 file as an array; a DataError naming the file for a v7.3 (HDF5), corrupt or
    truncated file or a missing variable."""
    path = Path(path)
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
    if info.fallback is not None:
        found = info.fallback()
        if found is not None:
            return found[0], found[1], "npy"
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


def load_registered(name: str, root=None) -> Scene:
    """The registered scene ``name`` found under ``root`` (then ``$HUD_DATA``, ``./data``, its fallback), checked
    against its :class:`SceneInfo` and normalised as :func:`hudlib.data.load_scene` describes."""
    info = _info(name)
    cube_path, gt_path, kind = _locate(info, root)
    if kind == "npy":
        try:
            raw = np.load(cube_path)
            gt = np.load(gt_path)
        except Exception as e:
            raise DataError(f"{cube_path}: unreadable .npy ({type(e).__name__}: {e})") from e
    elif info.reader is not None:
        raw, gt, reference = info.reader(cube_path, gt_path)
    else:
        raw = read_mat(cube_path, info.cube_key)
        gt = read_mat(gt_path, info.gt_key)
    if info.reader is None:
        reference = None
    _check_cube(raw, info, cube_path)
    if gt.shape != raw.shape[:2]:
        raise DataError(f"{gt_path}: ground truth shape {gt.shape} does not match the cube's {raw.shape[:2]}")
    cube, (lo, hi) = _normalise(raw, cube_path)
    gt = _check_labels(gt, info.n_classes, gt_path)
    return Scene(info.name, cube, (lo, hi), gt, info.n_classes, info.rgb_bands, source=f"{cube_path}",
                 authors_clip=info.authors_clip, class_names=tuple(info.class_names),
                 wavelengths=tuple(info.wavelengths) or None, reference=reference, labels_note=info.labels_note)


# ---------------------------------------------------------------------------------------------- built-in scenes
_EHU = "https://www.ehu.eus/ccwintco/uploads"

# The paper's five scenes (IV-A): n_classes is also the number of endmembers d (III-B, IV-A); rgb_bands are the
# paper's pseudo-colour bands; authors_clip is the authors' clip value V (their ldm/data/HSI.py).
register_scene(SceneInfo(
    name="IndianPines", cube_file="Indian_pines_corrected.mat", cube_key="indian_pines_corrected",
    gt_file="Indian_pines_gt.mat", gt_key="indian_pines_gt", shape=(145, 145, 200), n_classes=16,
    rgb_bands=(46, 17, 11), cube_url=f"{_EHU}/6/67/Indian_pines_corrected.mat",
    gt_url=f"{_EHU}/c/c4/Indian_pines_gt.mat", authors_clip=8192, fallback=_tensorly_indian_pines,
    citation="Baumgardner, Biehl, Landgrebe (2015), 220 Band AVIRIS Hyperspectral Image Data Set: June 12, 1992 "
             "Indian Pine Test Site 3, Purdue University Research Repository, doi:10.4231/R7RX991C",
    licence="CC BY 3.0", wavelengths=indian_pines_wavelengths(),
    class_names=("Alfalfa", "Corn-notill", "Corn-mintill", "Corn", "Grass-pasture", "Grass-trees",
                 "Grass-pasture-mowed", "Hay-windrowed", "Oats", "Soybean-notill", "Soybean-mintill",
                 "Soybean-clean", "Wheat", "Woods", "Buildings-Grass-Trees-Drives", "Stone-Steel-Towers")))
register_scene(SceneInfo(
    name="KSC", cube_file="KSC.mat", cube_key="KSC", gt_file="KSC_gt.mat", gt_key="KSC_gt", shape=(512, 614, 176),
    n_classes=13, rgb_bands=(28, 9, 10), cube_url=f"{_EHU}/2/26/KSC.mat", gt_url=f"{_EHU}/a/a6/KSC_gt.mat",
    authors_clip=512,
    class_names=("Scrub", "Willow swamp", "CP hammock", "Slash pine", "Oak/Broadleaf", "Hardwood", "Swamp",
                 "Graminoid marsh", "Spartina marsh", "Cattail marsh", "Salt marsh", "Mud flats", "Water")))
register_scene(SceneInfo(
    name="Pavia", cube_file="Pavia.mat", cube_key="pavia", gt_file="Pavia_gt.mat", gt_key="pavia_gt",
    shape=(1096, 715, 102), n_classes=9, rgb_bands=(46, 27, 10), cube_url=f"{_EHU}/e/e3/Pavia.mat",
    gt_url=f"{_EHU}/5/53/Pavia_gt.mat", authors_clip=4096,
    class_names=("Water", "Trees", "Asphalt", "Self-Blocking Bricks", "Bitumen", "Tiles", "Shadows", "Meadows",
                 "Bare Soil")))
register_scene(SceneInfo(
    name="PaviaU", cube_file="PaviaU.mat", cube_key="paviaU", gt_file="PaviaU_gt.mat", gt_key="paviaU_gt",
    shape=(610, 340, 103), n_classes=9, rgb_bands=(46, 27, 10), cube_url=f"{_EHU}/e/ee/PaviaU.mat",
    gt_url=f"{_EHU}/5/50/PaviaU_gt.mat", authors_clip=4096,
    class_names=("Asphalt", "Meadows", "Gravel", "Trees", "Painted metal sheets", "Bare Soil", "Bitumen",
                 "Self-Blocking Bricks", "Shadows")))
register_scene(SceneInfo(
    name="Salinas", cube_file="Salinas_corrected.mat", cube_key="salinas_corrected", gt_file="Salinas_gt.mat",
    gt_key="salinas_gt", shape=(512, 217, 204), n_classes=16, rgb_bands=(36, 17, 11),
    cube_url=f"{_EHU}/a/a3/Salinas_corrected.mat", gt_url=f"{_EHU}/f/fa/Salinas_gt.mat", authors_clip=4096,
    class_names=("Brocoli_green_weeds_1", "Brocoli_green_weeds_2", "Fallow", "Fallow_rough_plow", "Fallow_smooth",
                 "Stubble", "Celery", "Grapes_untrained", "Soil_vinyard_develop", "Corn_senesced_green_weeds",
                 "Lettuce_romaine_4wk", "Lettuce_romaine_5wk", "Lettuce_romaine_6wk", "Lettuce_romaine_7wk",
                 "Vinyard_untrained", "Vinyard_vertical_trellis")))



def _read_samson(cube_path: Path, gt_path: Path):
    """Samson's two files (``Y`` bands x pixels in MATLAB column-major pixel order with ``nRow``/``nCol``; ``M``, ``A``,
    ``cood``): the cube ``(rows, cols, bands)``, the argmax of the reference abundances + 1 as a 3-class map, and the
    reference unmixing."""
    from .benchmark import load_unmixing_benchmark

    b = load_unmixing_benchmark(cube_path, gt_path)
    if b.abundances is None or b.endmembers is None:
        raise DataError(f"{gt_path}: expected Samson's reference endmembers M and abundances A")
    gt = (np.argmax(b.abundances, axis=0) + 1).astype(np.int64)
    reference = {"endmembers": np.asarray(b.endmembers, np.float64),
                 "abundances": np.asarray(b.abundances, np.float64), "names": list(b.names)}
    return np.ascontiguousarray(b.cube.transpose(1, 2, 0)), gt, reference


_MHAUT = "https://github.com/mhaut/HSI-datasets/raw"

# Samson (Zhu's unmixing benchmarks): 95 x 95 pixels, 156 bands over 401-889 nm, three endmembers (rock, tree,
# water) with reference abundances; no surveyed class map, so the labels are the reference abundances' argmax.
register_scene(SceneInfo(
    name="Samson", cube_file="Samson.mat", cube_key="Y", gt_file="_EndSamson.mat", gt_key="A",
    shape=(95, 95, 156),
    n_classes=3, rgb_bands=nearest_bands(samson_wavelengths(), (650.0, 550.0, 450.0)),
    cube_url=f"{_MHAUT}/29efb503bdde94f620ba3873d3a56039fef18257/Unmixing/Samson.mat",
    gt_url=f"{_MHAUT}/724d5c826ffa8c13af9b00fe92c3eeb4a0712ad2/Unmixing/_EndSamson.mat",
    cube_sha256="4ce4b636feb6f429f8d03ac4ecc94bb97fd87d380ff25ce505765e372d6a1cd9",
    gt_sha256="ce768182ce5292390180f827ff5769112cf3d299f4e64ab43e950a310b7ec9fa",
    reader=_read_samson, wavelengths=samson_wavelengths(), class_names=("rock", "tree", "water"),
    labels_note="pseudo-classes: argmax of the reference abundances (rock, tree, water); Samson has no class map",
    citation="Zhu, F. (2017), Hyperspectral unmixing: ground truth labeling, datasets, benchmark performances and "
             "survey, arXiv:1708.05125 (Samson data and reference endmembers/abundances); files from GitHub "
             "mhaut/HSI-datasets"))
