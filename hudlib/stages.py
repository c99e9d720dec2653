"""The main job as a graph of named stages; the numbered notebooks are their views.

A :class:`Stage` says what it is (``name``), which chapter shows it (``notebook``, run by :mod:`hudlib.runner`;
None: the runner does it itself), whether it runs once per scene or once with every scene, which stages must run
before it when both are selected (``after``), what it writes, and which trained runs it needs at a profile
(``trainings``: the configs it trains or reuses, so that the plan can say what is shipped, trained or to train).
``evaluates`` marks the stage whose records the plan counts; ``verify`` runs after the stages it follows.

A new stage is one registration (:func:`register_stage`) and, if it has a view, one notebook.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from . import ablation, downstream
from . import generators as registry
from .config import make_config
from .errors import DataError
from .registry import Registry

__all__ = ["Stage", "STAGES", "register_stage", "unregister_stage", "stage_names", "select", "ordered",
           "generator_trainings", "unsupported_generators", "reference_training", "ablation_trainings",
           "downstream_trainings"]


def _scene(name: str):
    from .data import load_scene

    return load_scene(name)


def unsupported_generators(scene: str, models: list[str], profile: str) -> dict[str, str]:
    """``{label: reason}`` of the generators (and their variants) that cannot be trained on ``scene``
    (:meth:`hudlib.models.Generator.unsupported`), and of the downstream folds when HUD-cond is selected and they
    cannot: the main job leaves them out and says why."""
    from . import models as gens

    s, out = _scene(scene), {}
    for m in models:
        for tag, ov in [(None, None), *registry.get(m).variants.items()]:
            why = gens.unsupported(m, s, profile, ov)
            if why:
                out[m if tag is None else f"{m} [{tag}]"] = why
    if downstream.GENERATOR in models and downstream.GENERATOR not in out:
        why = downstream.unsupported(s, profile)
        if why:
            out[f"{downstream.GENERATOR} (folds)"] = why
    return out


def generator_trainings(scene: str, models: list[str], profile: str) -> list[tuple[str, str, object]]:
    """Each generator and each of its variants with weights of its own (kind ``"generator"``), but those that cannot
    be trained on the scene (:func:`unsupported_generators`)."""
    out, skip = [], unsupported_generators(scene, models, profile)
    for m in models:
        if m in skip:
            continue
        out.append((m, "generator", make_config(scene, m, profile)))
        for tag, ov in registry.get(m).variants.items():
            if f"{m} [{tag}]" not in skip:
                out.append((f"{m} [{tag}]", "generator", make_config(scene, m, profile, ov)))
    return out


def reference_training(scene: str, models: list[str], profile: str) -> list[tuple[str, str, object]]:
    """The generator the scene study synthesizes with: the reference (HUD) when selected, else the first."""
    ref = registry.reference_name()
    m = ref if ref in models else (models[0] if models else ref)
    return [(m, "generator", make_config(scene, m, profile))]


def ablation_trainings(scene: str, models: list[str], profile: str) -> list[tuple[str, str, object]]:
    """The generators' runs and the ablation's rows (kind ``"ablation"``)."""
    return generator_trainings(scene, models, profile) + [
        (f"{cfg.model} ({label})", "ablation", cfg) for label, cfg in ablation.row_configs(scene, profile,
                                                                                          models=models)]


def downstream_trainings(scene: str, models: list[str], profile: str) -> list[tuple[str, str, object]]:
    """One HUD-cond per fold of the downstream protocol's split (kind ``"downstream"``), if HUD-cond is selected."""
    if downstream.GENERATOR not in models or downstream.unsupported(_scene(scene), profile):
        return []
    return [(f"{downstream.GENERATOR} (fold {f + 1})", "downstream", cfg)
            for f, cfg in downstream.fold_configs(scene, profile).items()]


def scene_trainings(scene: str, models: list[str], profile: str) -> list[tuple[str, str, object]]:
    """The scene study's generator and, for the labelled-scene study, the downstream protocol's HUD-cond per fold."""
    return reference_training(scene, models, profile) + downstream_trainings(scene, models, profile)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Stage:
    """One stage of the main job (module docstring)."""

    name: str
    description: str
    notebook: str | None = None
    per_scene: bool = False
    after: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    trainings: Callable[[str, list[str], str], list[tuple[str, str, object]]] | None = None
    evaluates: bool = False

    def configs(self, scene: str, models: list[str], profile: str) -> list[tuple[str, str, object]]:
        return self.trainings(scene, models, profile) if self.trainings else []


STAGES = Registry("stage", Stage)


def register_stage(stage: Stage) -> Stage:
    """Add a stage; its ``after`` must name registered stages (so the graph has no cycle: edges point back)."""
    unknown = [a for a in stage.after if a not in STAGES]
    if unknown:
        raise DataError(f"after: stage {stage.name!r} follows unregistered stages {unknown}")
    return STAGES.add(stage)


def unregister_stage(name: str) -> None:
    if any(name in s.after for s in STAGES.values()):
        raise DataError(f"stage: {name!r} is followed by other stages")
    STAGES.remove(name)


def stage_names() -> list[str]:
    return list(STAGES)


def ordered(names) -> list[Stage]:
    """The stages ``names`` in an order where every stage comes after the selected stages it follows (Kahn's
    algorithm, registration order among the ready ones)."""
    chosen = [STAGES[n] for n in STAGES if n in set(names)]
    done: list[Stage] = []
    while chosen:
        ready = next((s for s in chosen if all(a not in {c.name for c in chosen} for a in s.after)), None)
        if ready is None:
            raise DataError(f"stages: a cycle among {[s.name for s in chosen]}")
        done.append(ready)
        chosen.remove(ready)
    return done


def select(nb_dir, only=None) -> list[tuple[Stage, Path | None]]:
    """``[(stage, notebook path or None)]`` to run, in order: every registered stage whose view is in ``nb_dir``
    (a stage without a view always), then every other numbered notebook of ``nb_dir`` as a stage of its own (once,
    with every scene). ``only``: stage names or notebook number prefixes (``["00", "tables"]``)."""
    nb_dir = Path(nb_dir)
    found = {p.name: p for p in sorted(nb_dir.glob("[0-9][0-9]_*.ipynb"))}
    claimed = {s.notebook for s in STAGES.values() if s.notebook}

    def wanted(name: str, notebook: str | None) -> bool:
        return not only or any(o == name or (notebook and notebook.startswith(o)) for o in only)

    out = [(s, found.get(s.notebook) if s.notebook else None) for s in ordered(STAGES)
           if (s.notebook is None or s.notebook in found) and wanted(s.name, s.notebook)]
    for name, path in found.items():
        if name not in claimed and wanted(path.stem, name):
            out.append((Stage(name=path.stem, description=f"the notebook {name}", notebook=name), path))
    return out


for _s in (
    Stage(name="data", notebook="00_data.ipynb", per_scene=True, description="the scene, its classes and bands"),
    Stage(name="vca", notebook="01_vca.ipynb", per_scene=True, after=("data",),
          description="VCA endmembers (III-B)"),
    Stage(name="uae", notebook="02_uae_check.ipynb", per_scene=True, after=("vca",),
          description="the unmixing autoencoder's encoders and round trip (eqs. 2-6)"),
    Stage(name="train", notebook="03_train.ipynb", per_scene=True, trainings=generator_trainings,
          writes=("runs/",), description="every generator trained, or installed from its shipped checkpoint"),
    Stage(name="sample", notebook="04_sample.ipynb", per_scene=True, after=("train",), trainings=generator_trainings,
          description="samples and their simplex checks"),
    Stage(name="figures", notebook="05_figures.ipynb", after=("train",), trainings=generator_trainings,
          writes=("figures/",), description="Figs. 3-4 and the loss curves"),
    Stage(name="tables", notebook="06_tables.ipynb", after=("train",), trainings=generator_trainings, evaluates=True,
          writes=("results/<scene>/<model>/<profile>.json", "results/tables_<profile>.md"),
          description="every generator evaluated; Tables I-IV"),
    Stage(name="ablation", notebook="07_ablation.ipynb", after=("train",), trainings=ablation_trainings,
          writes=("results/ablation_<profile>.md",), description="the ablation of eqs. 4-6 and the schedule"),
    Stage(name="scene", notebook="08_scene.ipynb", after=("train",), trainings=scene_trainings,
          writes=("results/<scene>/<model>/scene_<profile>.json", "results/labelled_<profile>.md", "figures/"),
          description="whole synthetic scenes, seams and field scale; labelled scenes from class maps"),
    Stage(name="downstream", notebook="09_downstream.ipynb", trainings=downstream_trainings,
          writes=("results/downstream_<profile>.md",), description="does synthetic data help a classifier"),
    Stage(name="verify", after=("tables", "ablation"), writes=("results/verify_<profile>.md",),
          description="every recomputed number against the committed one (runs after tables or ablation)"),
):
    register_stage(_s)
del _s
