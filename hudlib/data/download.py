"""Download of the registered scenes' files: official location or a mirror, streamed to a temporary file beside the
destination, validated, then renamed into place."""
from __future__ import annotations

import os
import tempfile
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from .scenes import SceneInfo, _check_cube, _info, read_mat
from ..errors import DataError
from ..utils import file_sha256


def _validate_download(path: Path, info: SceneInfo, which: str) -> None:
    """The published digest where the scene records one, then a readable .mat with the expected variable (and, for
    the standard layout, shape)."""
    want = info.cube_sha256 if which == "cube" else info.gt_sha256
    if want:
        got = file_sha256(path)
        if got != want:
            raise DataError(f"{path}: sha256 {got} differs from the published file's {want}")
    if info.reader is not None:  # another layout: the reader checks shapes when the scene is loaded
        read_mat(path, info.cube_key if which == "cube" else info.gt_key)
        return
    if which == "cube":
        _check_cube(read_mat(path, info.cube_key), info, path)
    else:
        gt = read_mat(path, info.gt_key)
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
    Content-Length, the published sha256 where the scene records one, readable .mat, expected variable and shape) and
    only then renamed into place, so a corrupt or partial file never sits under the official name.

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
