"""The audit of the paper's Tables I-III against the authors' own code and logs (``hudlib/paper_audit.json``).

Every cell (5 scenes x 6 models x 5 metrics) holds the printed value, the authors' logged value where one exists
(with the file, line and commit of Teemo341/latent-diffusion it comes from), how the two agree and, where they do
not or where the code makes the number misleading, flags with a short reason and a source.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

__all__ = ["load_audit", "audit_rows", "audit_markdown", "findings"]


@lru_cache(maxsize=1)
def _audit_text() -> str:
    return resources.files("hudlib").joinpath("paper_audit.json").read_text(encoding="utf-8")


def load_audit() -> dict:
    """The whole audit: ``{"about", "scenes", "models", "metrics", "cells", "averages", "findings", ...}``."""
    return json.loads(_audit_text())


def audit_rows(scene: str) -> list[dict]:
    """The audit cells of one scene (``IndianPines``, ``KSC``, ``Pavia``, ``PaviaU``, ``Salinas``), table order."""
    audit = load_audit()
    if scene not in audit["scenes"]:
        raise ValueError(f"scene: expected one of {audit['scenes']}, got {scene!r}")
    return [c for c in audit["cells"] if c["scene"] == scene]


def _fmt(v) -> str:
    return "—" if v is None else f"{v:.4g}" if abs(v) >= 10 else f"{v:.4f}".rstrip("0").rstrip(".")


def audit_markdown(scene: str | None = None) -> str:
    """A markdown table (cell, paper, authors' log, agreement, flag, source) of one scene or of all five."""
    audit = load_audit()
    cells = audit["cells"] if scene is None else audit_rows(scene)
    lines = ["| cell | paper | authors' log | agreement | flag | source |", "|---|---|---|---|---|---|"]
    for c in cells:
        log = _fmt(c["log"])
        if c["metric"] == "IS" and c["log"] is not None:
            log += f" (standard IS {c['log_is_standard']:.2f})"
        flags = "; ".join(f"**{f['code']}**: {f['reason']}" for f in c["flags"]) or ""
        parts = [c["log_source"] or ""] + [f["source"] for f in c["flags"]]
        sources = "; ".join(dict.fromkeys(p for s in parts for p in s.split("; ") if p))
        lines.append(f"| {c['scene']} {c['model']} {c['metric']} | {_fmt(c['paper'])} | {log} | {c['agreement']} "
                     f"| {flags} | {sources} |")
    return "\n".join(lines)


def findings() -> list[str]:
    """What the paper's own code shows: short statements, each ending with its source in brackets."""
    return [f"{f['text']} [source: {f['source']}]" for f in load_audit()["findings"]]
