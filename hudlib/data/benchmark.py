"""Unmixing benchmark scenes (Samson, Jasper Ridge, Urban family): ``Y`` as bands x pixels with ``nRow``/``nCol``
(and optional ``maxValue``), reference endmembers and abundances."""
from __future__ import annotations

import dataclasses

import numpy as np
import scipy.io

from ..errors import DataError


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


def _scaled_pixels(m: dict, key: str, path) -> tuple[np.ndarray, int, int]:
    """``m[key]`` as float64, divided by ``maxValue`` when ``m`` holds one and checked finite, and ``(nRow, nCol)``.

    ``m`` holds the variables of a .mat file in the benchmarks' layout (``Y``, ``nRow``, ``nCol``, optional
    ``maxValue``); the pixel axis is left as it is (see :func:`_col_major_image`).
    """
    rows, cols = _scalar(m, "nRow", path), _scalar(m, "nCol", path)
    Y = np.asarray(m[key], dtype=np.float64)
    if "maxValue" in m:
        Y = Y / float(np.asarray(m["maxValue"]).ravel()[0])
    if not np.isfinite(Y).all():
        raise DataError(f"{path}: {key} holds NaN/Inf values; expected finite")
    return Y, rows, cols


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
    Y, rows, cols = _scaled_pixels(m, "Y", cube_file)
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
