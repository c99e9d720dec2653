"""User scenes read through SPy (``spectral``): an ENVI image (``cube.hdr`` plus its data file, as AVIRIS and most
airborne sensors deliver it) or a variable of a ``.mat`` file (``cube.mat:key``), with an optional class map.

A ``.mat`` cube is either ``(rows, cols, bands)``, or 2-D in the layout most unmixing benchmarks are distributed
in (Samson, Jasper Ridge, Urban): ``(bands, pixels)`` or ``(pixels, bands)`` with ``nRow`` and ``nCol`` scalars in
the same file and an optional ``maxValue`` (see :func:`_cube_from_pixels`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.io
import spectral
import spectral.io.envi as envi

from .benchmark import _col_major_image, _scaled_pixels
from .scenes import SCENES, Scene, _check_labels, _normalise, read_mat
from ..errors import DataError

PATCH_SIZE = 32  # the paper's patch side (IV-A); a user scene needs at least this many rows and columns
MIN_BANDS = 3  # a pseudo-colour image needs three bands

_ENVI_INTERLEAVES = ("bsq", "bil", "bip")
_PIXEL_LAYOUT_SCALARS = ("nRow", "nCol", "nBand", "maxValue")  # scalars beside Y in the unmixing benchmarks


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


def read_envi(path: Path) -> tuple[np.ndarray, dict]:
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
        key = key or _only_variable(path, what)
        arr = read_mat(path, key)
        if what == "cube" and arr.ndim == 2:
            arr = _cube_from_pixels(arr, path, key)
        return arr, {}
    if suffix == ".npy":
        if not path.is_file():
            raise DataError(f"{path}: {what} file not found")
        try:
            return np.load(path, allow_pickle=False), {}
        except Exception as e:
            raise DataError(f"{path}: unreadable .npy ({type(e).__name__}: {e})") from e
    if not path.exists() and suffix == ".hdr":
        raise DataError(f"{path}: {what} file not found")
    return read_envi(path)


def _only_variable(path: Path, what: str) -> str:
    """The name of the single variable of a .mat file; a DataError listing them when there are several."""
    try:
        names = [w[0] for w in scipy.io.whosmat(str(path))]
    except Exception as e:
        raise DataError(f"{path}: not a readable MATLAB .mat file ({type(e).__name__}: {e})") from e
    if what == "cube" and "nRow" in names and "nCol" in names:
        names = [n for n in names if n not in _PIXEL_LAYOUT_SCALARS]  # the benchmarks' Y beside its scalars
    if len(names) != 1:
        flag = "--key" if what == "cube" else "--gt-key"
        raise DataError(f"{path}: holds {len(names)} variables {names}; name the {what} with {flag} or {path.name}:KEY")
    return names[0]


def _cube_from_pixels(arr: np.ndarray, path: Path, key: str) -> np.ndarray:
    """A 2-D ``.mat`` cube in the unmixing benchmarks' layout -> raw ``(rows, cols, bands)``; else ``arr`` as it is.

    The layout (Samson, Jasper Ridge, Urban): variable ``key`` is ``(bands, pixels)`` or ``(pixels, bands)`` with
    the scalars ``nRow`` and ``nCol`` in the same file and pixels = nRow * nCol in MATLAB column-major order: pixel
    ``q`` is row ``q % nRow``, column ``q // nRow`` (MATLAB's ``reshape(cube, [], bands)``). An optional
    ``maxValue`` divides the values, as :func:`~hudlib.data.benchmark.load_unmixing_benchmark` does; the divided
    values are the raw values of the scene (its ``raw_range``). The band axis is the axis that is not nRow * nCol; a
    DataError when both axes are or neither is. A file without ``nRow`` and ``nCol`` gives ``arr`` back unchanged.
    """
    m = scipy.io.loadmat(str(path), variable_names=list(_PIXEL_LAYOUT_SCALARS))
    if "nRow" not in m or "nCol" not in m:
        return arr
    Y, rows, cols = _scaled_pixels({**m, key: arr}, key, path)
    n = rows * cols
    if Y.shape == (n, n) or n not in Y.shape:
        why = f"both axes are nRow*nCol = {n}, so the band axis is unknown" if n in Y.shape else \
            f"neither axis is nRow*nCol = {rows}*{cols} = {n}"
        raise DataError(f"{path}: variable {key!r} has shape {Y.shape} with nRow = {rows}, nCol = {cols}: {why}; "
                        f"expected (bands, {n}) or ({n}, bands)")
    if Y.shape[0] == n:
        Y = Y.T  # (pixels, bands) -> (bands, pixels)
    return _col_major_image(Y, rows, cols, path, key).transpose(1, 2, 0)


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
        hint = "; a 2-D (bands, pixels) cube needs the scalars nRow and nCol in its .mat" if raw.ndim == 2 else ""
        raise DataError(f"{path}: expected a 3-D cube (rows, cols, bands), got shape {raw.shape}{hint}")
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
    wl = _wavelengths_nm(header)
    wl = tuple(float(v) for v in wl) if wl is not None and len(wl) == bands else None
    if rgb_bands is None:
        rgb_bands = default_rgb_bands(bands, wl)
    rgb_bands = tuple(int(b) for b in rgb_bands)
    if len(rgb_bands) != 3 or min(rgb_bands) < 0 or max(rgb_bands) >= bands:
        raise DataError(f"rgb_bands: expected three band indices in 0..{bands - 1}, got {rgb_bands}")
    source = str(path) + (f" (gt {gt_source})" if gt_source else "")
    return Scene(user_scene_name(path), cube, raw_range, labels, int(classes), rgb_bands, source=source,
                 wavelengths=wl)
