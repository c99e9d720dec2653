"""The trained weights shipped with the repository (``checkpoints/``): export from ``runs/``, install into ``runs/``.

``checkpoints/<scene>/<model>/<profile>-<training hash>/`` is laid out like a run directory and loads with
:func:`hudlib.models.load`, but holds only what sampling and the figures read: the generator's artefact files
(:meth:`~hudlib.models.Generator.artefact_files`: the EMA network in fp32, HUD's frozen UAE, a control's state),
``config.json``, ``train_info.json``, ``losses.json`` and ``DONE`` — no optimiser state, no samples.
``checkpoints/classifiers/`` holds the evaluation's own trained networks (the sound classifier and the authors'
two classifiers), keyed by their cache names. ``checkpoints/MANIFEST.json`` lists every file with its sha256 and
size, and every run with the weights hash the results name, its training wall time and machine. Each run carries a
model card, ``README.md`` (:func:`card_text`: what it is, the scene and its licence, profile, training budget and
machine, the committed metrics of its weights, how to load it with :func:`hudlib.models.from_pretrained`), written
by :func:`export` and ``python -m hudlib checkpoints cards``.

:func:`install` (:mod:`hudlib.runstore`) copies a shipped run into ``runs/`` when the config hash matches and no
finished run is there (it marks the copy with ``SHIPPED``), checking every file against the manifest first, so
``./run_all.sh`` and ``fit()`` sample and evaluate the shipped weights instead of training them; ``--retrain``
removes such copies and trains from scratch.
"""
from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path

from . import models, paths
from .runstore import (MANIFEST, SHIPPED, checkpoints_dir, install, manifest, remove_shipped, shipped_run,
                       verify_files)
from .utils import atomic_write_text, file_sha256

__all__ = ["BUDGET_BYTES", "export", "write_cards", "card_text", "committed_results", "CARD", "install", "manifest",
           "shipped_run", "remove_shipped", "checkpoints_dir", "SHIPPED", "MANIFEST", "verify_files", "machine_name"]

_RUN_FILES = ("config.json", "train_info.json", "losses.json", "DONE")

# the most the shipped checkpoints may weigh together (MANIFEST's total_bytes): 100 MB for one scene's generators,
# raised to 150 MB by issue 34 so that a second scene (Samson) ships all its generators too (docs/running.md)
BUDGET_BYTES = 150 * 2 ** 20


def machine_name() -> str:
    """The CPU model (``/proc/cpuinfo``) or the platform's processor string, and the core count."""
    import os

    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} logical CPUs"


def export(run_dirs, root=None, classifier_files=(), machine: str | None = None) -> Path:
    """Copy the finished runs ``run_dirs`` (and the evaluation's ``classifier_files``: weights ``.pt`` beside their
    ``.json``) into ``root`` (default ``checkpoints/``) and rewrite its manifest. Runs are keyed by their relative
    path; an existing entry is replaced. Returns the manifest's path."""
    root = checkpoints_dir(root)
    man = manifest(root)
    machine = machine or machine_name()
    for run in map(Path, run_dirs):
        gen = models.load(run)  # a finished, loadable run
        cfg = gen.config_
        rel = Path(cfg.scene) / cfg.model / run.name
        dest = root / rel
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        files = [f for f in type(gen).artefact_files(run)] + [run / f for f in _RUN_FILES if (run / f).is_file()]
        for f in files:
            shutil.copy2(f, dest / f.name)
        info = json.loads((run / "train_info.json").read_text()) if (run / "train_info.json").is_file() else {}
        man["runs"][rel.as_posix()] = {
            "scene": cfg.scene, "model": cfg.model, "profile": cfg.profile, "training_hash": cfg.training_hash(),
            "weights_hash": gen.weights_hash(),
            "files": {f.name: {"sha256": file_sha256(dest / f.name), "bytes": (dest / f.name).stat().st_size}
                      for f in files},
            "train_wall_time_s": info.get("wall_time_s"), "train_device": info.get("device"),
            "train_threads": info.get("threads"), "torch": info.get("torch"),
            "machine": machine if info else None}
    cdir = root / "classifiers"
    for w in map(Path, classifier_files):
        cdir.mkdir(parents=True, exist_ok=True)
        for f in (w, w.with_suffix(".json")):
            shutil.copy2(f, cdir / f.name)
        info = json.loads(w.with_suffix(".json").read_text())
        man["classifiers"][w.name] = {
            "files": {f.name: {"sha256": file_sha256(cdir / f.name), "bytes": (cdir / f.name).stat().st_size}
                      for f in (w, w.with_suffix(".json"))},
            "weights_sha256": info.get("weights_sha256"), "train_wall_time_s": info.get("wall_time_s"),
            "machine": machine}
    man["total_bytes"] = sum(e["bytes"] for grp in ("runs", "classifiers") for r in man[grp].values()
                             for e in r["files"].values())
    out = root / MANIFEST
    atomic_write_text(out, json.dumps(man, indent=1, sort_keys=True))
    write_cards(root)
    return out


# ------------------------------------------------------------------------------------------------------ model cards
CARD = "README.md"
_CARD_METRICS = ("FID", "SWD", "recall_patches", "precision_patches", "coherence_gap", "F_p", "D_b")


def committed_results(profile: str, results=None) -> dict[str, dict]:
    """``{relative path: record}`` of ``profile`` as committed (git ``HEAD``; the results folder outside a git
    checkout): a card states what was committed, whatever a later run recomputes."""
    from . import verify

    recs = verify.committed_records(profile, results)
    return verify.collect(profile, results) if recs is None else recs


def card_text(rel: str, entry: dict, root=None, results=None, records: dict | None = None) -> str:
    """The model card of the shipped run ``rel`` (its manifest ``entry``): what it is, the scene and its licence,
    the profile, training budget and machine, the metrics it produced (the committed records computed from these
    weights; ``records``: :func:`committed_results` of its profile, read here when None) and how to load it."""
    from .data import SCENES

    run = checkpoints_dir(root) / rel
    cfg = json.loads((run / "config.json").read_text())
    info = json.loads((run / "train_info.json").read_text()) if (run / "train_info.json").is_file() else {}
    model, scene = entry["model"], entry["scene"]
    si = SCENES.get(scene)
    desc = models.info(model).description if model in models.names() else ""
    lines = [f"# {model} on {scene}, profile `{entry['profile']}` ({Path(rel).name})", "",
             f"**What**: {desc}." if desc else "", "",
             f"**Scene**: {scene}" + (f"; {si.citation}" if si and si.citation else "")
             + (f"; licence {si.licence}." if si and si.licence else "; licence: not recorded here (see the "
                                                                      "scene's page)."), "",
             f"**Profile** `{entry['profile']}` (hudlib.profiles; not the paper's setting unless `paper`); training "
             f"hash `{entry['training_hash']}`, the full configuration in `config.json`; weights hash "
             f"`{entry['weights_hash']}` (what results name).", ""]
    if info:
        steps = info.get("steps", cfg.get("train", {}).get("steps"))
        wall = entry.get("train_wall_time_s") or info.get("wall_time_s")
        lines.append(f"**Training**: {steps} steps at batch {cfg.get('train', {}).get('batch_size')}, "
                     + (f"{wall / 60:.1f} min" if wall else "time not recorded")
                     + f" on {info.get('device')} ({info.get('threads')} threads, torch {info.get('torch')}), "
                       f"machine: {entry.get('machine')}.")
    else:
        lines.append("**Training**: none (a control built from the scene).")
    lines += ["", "**Files** (sha256 in `checkpoints/MANIFEST.json`, checked when loaded): "
              + ", ".join(f"`{f}` ({m['bytes']:,} bytes)" for f, m in sorted(entry["files"].items())) + "."]
    records = committed_results(entry["profile"], results) if records is None else records
    recs = [(r, rec) for r, rec in sorted(records.items())
            if isinstance(rec, dict) and rec.get("weights_hash") == entry["weights_hash"] and "metrics" in rec]
    if recs:
        lines += ["", "**Metrics it produced** (the committed records computed from these weights; hudlib's "
                  "metrics, docs/results.md):", "",
                  "| record | n | " + " | ".join(_CARD_METRICS) + " | machine |",
                  "|---|---|" + "---|" * len(_CARD_METRICS) + "---|"]
        for path, rec in recs:
            vals = [rec["metrics"].get(k) for k in _CARD_METRICS]
            lines.append(f"| results/{path} | {rec.get('n')} | "
                         + " | ".join("—" if v is None else f"{v:.4g}" for v in vals) + f" | {rec.get('machine')} |")
    ds = paths.results_dir(results) / f"downstream_{entry['profile']}.md"
    if ds.is_file() and Path(rel).name in ds.read_text():
        lines += ["", f"**Used by** the downstream benchmark, results/{ds.name} (one HUD-cond per fold of its split; "
                      "the fold and its training ground are in `config.json`)."]
    lines += ["", "**Load** (from the repository's folder):", "", "```python",
              "from hudlib.models import from_pretrained",
              f'gen = from_pretrained("checkpoints/{rel}")  # files checked against the manifest',
              "Y = gen.sample(16, random_state=0)  # (16, bands, 32, 32) in the scene's units", "```", ""]
    return "\n".join(ln for i, ln in enumerate(lines) if ln or (i and lines[i - 1]))


def write_cards(root=None, results=None) -> list[Path]:
    """Write the card (:func:`card_text`) of every run in the manifest as ``<run>/README.md``."""
    root = checkpoints_dir(root)
    out, records = [], {}
    for rel, entry in manifest(root)["runs"].items():
        if entry["profile"] not in records:  # the committed records, read once per profile
            records[entry["profile"]] = committed_results(entry["profile"], results)
        path = root / rel / CARD
        atomic_write_text(path, card_text(rel, entry, root, results, records[entry["profile"]]))
        out.append(path)
    return out
