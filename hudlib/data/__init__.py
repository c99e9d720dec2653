"""Hyperspectral scenes of the paper (IV-A): registry, loading, download, patches, pseudo-colour.

Arrays are channel-first like the paper's Y in R^{c x h x w}: a cube is ``(bands, rows, cols)``.

The package is split by concern; every name is importable from ``hudlib.data`` itself:

- :mod:`~hudlib.data.scenes`: the registry (:class:`SceneInfo`, :func:`register_scene`, :data:`SCENES`), the
  loaded :class:`Scene`, finding files (:func:`find_file`), :func:`read_mat`, loading a registered scene;
- :mod:`~hudlib.data.user`: a user's own scene read through SPy (``spectral``): an ENVI image (``cube.hdr`` plus its
  data file, as AVIRIS and most airborne sensors deliver it) or a variable of a ``.mat`` file (``cube.mat:key``,
  also in the unmixing benchmarks' bands x pixels layout with ``nRow``/``nCol``), with an optional class map;
- :mod:`~hudlib.data.load`: :func:`load_scene`, a registered name or a user's path; :func:`register_user_scene`
  names a user's cube for the main job and its notebooks;
- :mod:`~hudlib.data.download`: :func:`download` from the official location or a mirror;
- :mod:`~hudlib.data.benchmark`: unmixing benchmark scenes (:func:`load_unmixing_benchmark`, Samson style);
- :mod:`~hudlib.data.patches`: random crops, the centre square, pseudo-colour and class mean spectra;
- :mod:`~hudlib.data.wavelengths`: the registered scenes' band centres (nm) and their sources.
"""
from __future__ import annotations

from .benchmark import UnmixingBenchmark, load_unmixing_benchmark
from .download import download
from .patches import centre_square, class_mean_spectra, crop, patch_corners, patches, pseudo_rgb, rgb_limits
from ..errors import DataError
from .load import USER_SCENES_ENV, load_scene, register_user_scene, user_scenes
from .scenes import (SCENES, Scene, SceneInfo, find_file, read_mat, register_scene, scene_available, scene_names,
                     unregister_scene)
from .user import MIN_BANDS, PATCH_SIZE, default_rgb_bands, read_envi, user_scene_name

__all__ = [
    "DataError", "scene_available", "SceneInfo", "SCENES", "Scene", "UnmixingBenchmark", "scene_names", "find_file",
    "load_scene", "register_user_scene", "user_scenes", "USER_SCENES_ENV", "download", "load_unmixing_benchmark", "patches", "pseudo_rgb",
    "rgb_limits", "class_mean_spectra", "PATCH_SIZE", "MIN_BANDS", "user_scene_name", "default_rgb_bands",
    "centre_square", "crop", "patch_corners", "register_scene", "unregister_scene", "read_mat", "read_envi",
]
