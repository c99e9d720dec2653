"""Where runs, results and figures live: relative to the project root (the folder holding pyproject.toml and
hudlib/), so notebooks executed from notebooks/ (nbval) and from the root (papermill) agree."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["project_root", "runs_dir", "results_dir", "figures_dir", "build_dir"]


def project_root() -> Path:
    """``$HUD_ROOT`` if set, else the nearest parent of the working directory with pyproject.toml and hudlib/,
    else the working directory."""
    if os.environ.get("HUD_ROOT"):
        return Path(os.environ["HUD_ROOT"])
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if (p / "pyproject.toml").is_file() and (p / "hudlib").is_dir():
            return p
    return here


def _sub(name: str, override=None) -> Path:
    p = Path(override) if override else project_root() / name
    return p if p.is_absolute() else project_root() / p


def runs_dir(override=None) -> Path:
    return _sub("runs", override)


def results_dir(override=None) -> Path:
    return _sub("results", override)


def figures_dir(override=None) -> Path:
    return _sub("figures", override)


def build_dir(override=None) -> Path:
    return _sub("build", override)
