"""One entry point for every scene: :func:`load_scene` takes a registered name (:mod:`hudlib.data.scenes`) or the
path of a user's own cube (:mod:`hudlib.data.user`)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import DataError
from .scenes import SCENES, Scene, _info, load_registered
from .user import _load_user, _split_key

__all__ = ["load_scene", "register_user_scene", "user_scenes", "USER_SCENES_ENV"]

# A user's cube given to the main job (``./run_all.sh --scene cube.hdr``) is named once and travels to the notebooks'
# kernels through this environment variable: JSON ``{name: {path, classes, key, gt, gt_key, rgb_bands}}``.
USER_SCENES_ENV = "HUD_USER_SCENES"


def user_scenes() -> dict:
    """The user scenes named in ``$HUD_USER_SCENES`` (``{}`` when unset)."""
    import json
    import os

    raw = os.environ.get(USER_SCENES_ENV, "").strip()
    if not raw:
        return {}
    try:
        d = json.loads(raw)
    except ValueError:
        raise DataError(f"${USER_SCENES_ENV}: expected JSON {{name: {{path, classes, ...}}}}, got {raw[:60]!r}") \
            from None
    if not isinstance(d, dict):
        raise DataError(f"${USER_SCENES_ENV}: expected a JSON object, got {type(d).__name__}")
    return d


def register_user_scene(path, *, classes: int | None = None, key: str | None = None, gt=None,
                        gt_key: str | None = None, rgb_bands: Sequence[int] | None = None) -> str:
    """Load a user's cube once (every check, one line per problem), then name it in ``$HUD_USER_SCENES`` so that
    :func:`load_scene` of that name, in this process and in the kernels it starts, loads the same files with the
    same options. Returns the name (:func:`hudlib.data.user.user_scene_name`)."""
    import json
    import os
    from pathlib import Path

    s = load_scene(str(path), classes=classes, key=key, gt=gt, gt_key=gt_key, rgb_bands=rgb_bands)
    p, k = _split_key(str(path), key)
    if gt is not None:
        gp, gt_key = _split_key(str(gt), gt_key)
        gt = str(Path(gp if gp is not None else str(gt)).resolve())
    spec = {"path": str(Path(p).resolve()), "classes": int(s.n_classes), "key": k, "gt": gt, "gt_key": gt_key,
            "rgb_bands": list(s.rgb_bands)}
    os.environ[USER_SCENES_ENV] = json.dumps({**user_scenes(), s.name: spec})
    return s.name


def load_scene(scene, root=None, *, classes: int | None = None, key: str | None = None, gt=None,
               gt_key: str | None = None, rgb_bands: Sequence[int] | None = None) -> Scene:
    """Load a registered scene, or a user's scene from an ENVI image or a ``.mat`` file.

    Args:
        scene: a registered name (:data:`~hudlib.data.scenes.SCENES`: the paper's ``IndianPines``, ``KSC``,
            ``Pavia``, ``PaviaU``, ``Salinas`` and any :func:`~hudlib.data.register_scene` added), or a path:
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
    user = dict(classes=classes, key=key, gt=gt, gt_key=gt_key, rgb_bands=rgb_bands)
    if isinstance(scene, str) and scene in SCENES:
        given = [k for k, v in user.items() if v is not None]
        if given:
            raise DataError(f"{', '.join(given)}: only for a user scene (an ENVI .hdr or .mat path); {scene} is a "
                            f"registered scene with fixed files, classes and bands")
        return load_registered(scene, root)
    named = user_scenes().get(scene) if isinstance(scene, str) else None
    if named is not None:  # a user scene named by register_user_scene
        return _load_user(Path(named["path"]), classes=named.get("classes"), key=named.get("key"),
                          gt=named.get("gt"), gt_key=named.get("gt_key"), rgb_bands=named.get("rgb_bands"))
    path, key = _split_key(scene, key)
    if path is None:
        _info(str(scene))  # raises: unknown scene
    return _load_user(path, **{**user, "key": key})
