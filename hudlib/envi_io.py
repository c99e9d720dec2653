"""ENVI files of generated scenes (float32, band-sequential), written and read through ``spectral``.

A full generated scene is handed to remote-sensing tools (ENVI, QGIS/GDAL, spectral) as an ENVI pair: a text
header ``name.hdr`` and the raw image ``name.img``. :func:`write_envi` writes both under temporary names in the
destination folder and renames them into place only once both are complete, so an interrupted or failed write
leaves nothing under the final names. :func:`check_writable` lets a caller fail on a bad output folder before
computing the scene.

Cubes are channel-first ``(bands, rows, cols)`` as everywhere in the project; ``spectral`` works with
``(rows, cols, bands)`` and the transposition happens here.

Sources of the facts used here: docs/methods.md (ENVI files).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import spectral.io.envi as envi

from .utils import usual_mode

__all__ = ["write_envi", "read_envi", "check_writable", "place_envi"]

# Header fields written from the cube itself: ``extra`` may not set them.
_RESERVED = ("samples", "lines", "bands", "header offset", "file type", "data type", "interleave", "byte order",
             "wavelength", "wavelength units", "band names", "description")


def _hdr_path(path, name: str = "path") -> Path:
    p = Path(path)
    if p.suffix.lower() != ".hdr" or not p.stem:
        raise ValueError(f"{name}: expected an ENVI header path ending in .hdr, got {str(path)!r}")
    return p


def check_writable(path) -> Path:
    """Check that the folder of ``path`` exists and a file can be created in it; return the folder.

    Raises a one-line ``ValueError`` naming the folder otherwise. Creates and removes a probe file (a real
    attempt, so it also holds for read-only file systems and for root, which permission bits do not stop).
    """
    folder = Path(path).parent
    if not folder.exists():
        raise ValueError(f"path: output folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise ValueError(f"path: output folder {str(folder)!r} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
    except OSError as e:
        raise ValueError(f"path: output folder {str(folder)!r} is not writable ({e.strerror or e})") from None
    os.close(fd)
    os.unlink(probe)
    return folder


def _check_names(values, bands: int, name: str) -> list[str]:
    values = [str(v) for v in values]
    if len(values) != bands:
        raise ValueError(f"{name}: expected {bands} entries (one per band), got {len(values)}")
    for v in values:
        if any(ch in v for ch in "{},\n"):
            raise ValueError(f"{name}: entries may not hold braces, commas or newlines (ENVI list syntax), got {v!r}")
    return values


def _metadata(bands: int, wavelengths, band_names, description, extra) -> dict:
    meta: dict = {}
    if not isinstance(description, str) or any(ch in description for ch in "{}"):
        raise ValueError(f"description: expected a string without braces, got {description!r}")
    meta["description"] = description
    if wavelengths is not None:
        wl = np.asarray(wavelengths, dtype=np.float64).ravel()
        if wl.size != bands or not np.isfinite(wl).all():
            raise ValueError(f"wavelengths: expected {bands} finite values (one per band), got {wl.size}")
        meta["wavelength"] = [float(v) for v in wl]
        meta["wavelength units"] = "Nanometers"
    if band_names is not None:
        meta["band names"] = _check_names(band_names, bands, "band_names")
    for key, value in (extra or {}).items():
        if not isinstance(key, str) or not key.strip() or any(ch in key for ch in "={}\n"):
            raise ValueError(f"extra: header field names must be non-empty strings without '=', braces or "
                             f"newlines, got {key!r}")
        if key.strip().lower() in _RESERVED:
            raise ValueError(f"extra: {key!r} is set by write_envi itself; expected other header fields")
        if isinstance(value, str):
            if any(ch in value for ch in "{}\n"):
                raise ValueError(f"extra: field {key!r} may not hold braces or newlines, got {value!r}")
        elif np.ndim(value) > 1:
            raise ValueError(f"extra: field {key!r} expected a string, a number or a flat list, got {value!r}")
        elif np.ndim(value) == 1:
            value = _check_names(value, len(value), f"extra[{key!r}]")
        meta[key.strip().lower()] = value
    return meta


def write_envi(path, cube, *, wavelengths=None, band_names=None, description: str = "",
               extra: dict | None = None) -> tuple[Path, Path]:
    """Write ``cube`` ``(bands, rows, cols)`` as a float32, band-sequential ENVI image: ``path`` (.hdr) + ``.img``.

    Written by :func:`spectral.envi.save_image` (``interleave = bsq``, ``data type = 4``, native byte order).
    The header holds ``description``, ``wavelength`` (one number per band, nm: ``wavelength units = Nanometers``)
    and ``band names`` when given, and
    every ``extra`` field (a string, number or flat list each; field names are lower-cased, as ENVI readers
    read them; fields that write_envi sets itself are refused).

    ``path`` must end in ``.hdr``; its folder must exist and be writable (checked first, before the cube is
    converted). Both files are written under temporary names in that folder; the image is renamed into place,
    then the header; on any failure the temporary files are removed and nothing is left under the final names.
    Returns ``(hdr_path, img_path)``.
    """
    hdr = _hdr_path(path)
    folder = check_writable(hdr)
    a = np.asarray(cube)
    if a.ndim != 3 or min(a.shape) < 1:
        raise ValueError(f"cube: expected a non-empty (bands, rows, cols) array, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or np.iscomplexobj(a):
        raise ValueError(f"cube: expected a real numeric array, got dtype {a.dtype}")
    meta = _metadata(a.shape[0], wavelengths, band_names, description, extra)
    data = np.ascontiguousarray(a.astype(np.float32, copy=False).transpose(1, 2, 0))  # (rows, cols, bands)

    return place_envi(hdr, folder, lambda tmp: envi.save_image(tmp, data, dtype=np.float32, interleave="bsq",
                                                               metadata=meta, force=True, ext=".img"))


def place_envi(hdr: Path, folder: Path, save) -> tuple[Path, Path]:
    """Run ``save(tmp_hdr)`` (a ``spectral`` writer that puts ``tmp.hdr`` + ``tmp.img`` in ``folder``), give both files
    the usual mode, rename the image then the header into place as ``hdr`` and its ``.img``; on any failure remove
    the temporary files (and an image already renamed) so nothing is left under the final names. Returns
    ``(hdr, img)``."""
    img = hdr.with_suffix(".img")
    fd, tmp_hdr = tempfile.mkstemp(prefix=f".{hdr.stem}.", suffix=".hdr", dir=folder)
    os.close(fd)
    tmp_img = tmp_hdr[:-len(".hdr")] + ".img"
    placed_img = False
    try:
        save(tmp_hdr)
        usual_mode(tmp_hdr)
        usual_mode(tmp_img)
        os.replace(tmp_img, img)
        placed_img = True
        os.replace(tmp_hdr, hdr)
    except BaseException:
        for p in (tmp_hdr, tmp_img):
            Path(p).unlink(missing_ok=True)
        if placed_img:
            img.unlink(missing_ok=True)
        raise
    return hdr, img


def read_envi(path) -> tuple[np.ndarray, dict]:
    """Read an ENVI image through :func:`spectral.envi.open`: ``(cube (bands, rows, cols) float32, header)``.

    ``header`` is spectral's metadata dict (lower-case field names; values as strings or lists of strings,
    e.g. ``header["wavelength"]``, ``header["data type"] == "4"``).
    """
    hdr = _hdr_path(path)
    if not hdr.is_file():
        raise ValueError(f"path: no ENVI header at {str(hdr)!r}")
    image = envi.open(str(hdr))
    cube = np.ascontiguousarray(np.asarray(image.load(), dtype=np.float32).transpose(2, 0, 1))
    return cube, dict(image.metadata)
