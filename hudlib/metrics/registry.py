"""The one registry of the evaluation's metrics (a record's ``metrics`` block): what each is, which way is better,
how far two machines may disagree on it, its version and the function that computes it, in one registration.

:func:`hudlib.evaluate.evaluate` computes the registered metrics of a metric set, :mod:`hudlib.tables` and
:mod:`hudlib.ablation` take their columns' directions from here, :mod:`hudlib.verify` their tolerances. A record
stores each metric's version (``metric_versions``); when a metric is added or its version bumped, re-evaluating a
record computed here computes that metric alone and keeps the others (scikit-learn's ``make_scorer`` is the model:
a scorer knows its direction).

A metric's function takes a :class:`MetricContext` (the generated patches, real patches, the scene, the run's
config, the sound classifier, the device) and returns ``{name: value}`` for itself and any by-products (e.g.
``IS_real``). Metrics computed by one call share a ``group``: the call runs once and fills all of them.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import numpy as np

from ..errors import DataError, NotApplicable
from ..registry import Registry
from ..utils import state_hash
from . import distribution, paper, texture
from .classifier_scores import classifier_outputs, classifier_scores
from ._common import memo

__all__ = ["Metric", "MetricContext", "register_metric", "unregister_metric", "get_metric", "metric_names",
           "metric_sets", "compute_metrics", "DEFAULT_TOLERANCE"]

# (absolute, relative) tolerance of a value across machines: agreement when |now - committed| <= abs + rel * |c|
DEFAULT_TOLERANCE = (1e-6, 1e-3)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Metric:
    """One registered metric.

    ``direction``: +1 higher is better, -1 lower is better. ``family``: where it comes from (``paper``,
    ``HyperLDM``, ``ours``). ``compute``: ``MetricContext -> {name: value, ...}``. ``version``: bump it when the
    code changes what a stored value would be. ``tolerance``: ``(abs, rel)`` of :mod:`hudlib.verify`. ``sets``: the
    metric sets that include it (``all``, ``ablation``). ``group``: metrics filled by one call of the same function.
    """

    name: str
    direction: int
    family: str
    description: str
    compute: Callable[["MetricContext"], dict[str, float]]
    version: int = 1
    tolerance: tuple[float, float] = DEFAULT_TOLERANCE
    sets: tuple[str, ...] = ("all",)
    group: str | None = None

    def __post_init__(self):
        if self.direction not in (-1, 1):
            raise DataError(f"direction: expected +1 (higher is better) or -1, got {self.direction!r}")
        if "all" not in self.sets:
            raise DataError(f"sets: every metric is in 'all'; {self.name!r} has {self.sets!r}")
        if int(self.version) != self.version or self.version < 1:
            raise DataError(f"version: expected a positive integer, got {self.version!r}")

    @property
    def arrow(self) -> str:
        return "↑" if self.direction > 0 else "↓"


@dataclasses.dataclass
class MetricContext:
    """What a metric's function may read. ``Y`` ``(n, bands, h, w)`` generated patches, ``real`` ``(n, bands, h, w)``
    real patches of the scene, ``scene`` a :class:`hudlib.data.Scene`, ``cfg`` the run's config (``cfg.eval`` holds
    the metrics' settings), ``net`` the sound classifier, ``device`` a torch device; ``values`` what the metrics
    computed before this one returned (registration order), ``times`` seconds per group, ``skipped`` ``{name: reason}``
    of the metrics these data cannot support (:class:`hudlib.errors.NotApplicable`; their values are NaN)."""

    Y: np.ndarray
    real: np.ndarray
    scene: Any
    cfg: Any
    net: Any
    device: Any
    values: dict = dataclasses.field(default_factory=dict)
    times: dict = dataclasses.field(default_factory=dict)
    skipped: dict = dataclasses.field(default_factory=dict)

    @property
    def seed(self) -> int:
        return self.cfg.eval.seed


_REGISTRY = Registry("metric", Metric)


def register_metric(metric: Metric) -> Metric:
    """Add a metric; a name registered already is refused."""
    return _REGISTRY.add(metric)


def unregister_metric(name: str) -> None:
    _REGISTRY.remove(name)


def get_metric(name: str) -> Metric:
    return _REGISTRY.lookup(name)


def metric_names(metric_set: str = "all") -> tuple[str, ...]:
    """Names of the metrics of ``metric_set``, in registration order."""
    if metric_set not in metric_sets():
        raise DataError(f"metric_set: expected one of {', '.join(metric_sets())}, got {metric_set!r}")
    return tuple(n for n, m in _REGISTRY.items() if metric_set in m.sets)


def metric_sets() -> tuple[str, ...]:
    out = ["all"]
    for m in _REGISTRY.values():
        out += [s for s in m.sets if s not in out]
    return tuple(out)


def compute_metrics(ctx: MetricContext, names) -> tuple[dict[str, float], dict[str, int]]:
    """The metrics ``names`` (and whatever their groups fill) of ``ctx``: ``({name or by-product: value},
    {name: version})``. Each group's function runs once; ``ctx.times`` gets its seconds. A group whose data cannot
    support it (:class:`hudlib.errors.NotApplicable`) gives NaN, its reason in ``ctx.skipped``."""
    wanted = [get_metric(n) for n in _REGISTRY if n in set(names)]
    unknown = set(names) - set(_REGISTRY)
    if unknown:
        raise DataError(f"metric: unknown metrics {sorted(unknown)}; expected names from {', '.join(_REGISTRY)}")
    done: set[str] = set()
    for m in wanted:
        key = m.group or m.name
        if key in done:
            continue
        t0 = time.perf_counter()
        try:
            ctx.values.update({k: float(v) for k, v in m.compute(ctx).items()})
        except NotApplicable as e:  # not these data's metric: NaN, and the reason on record
            for w in wanted:
                if (w.group or w.name) == key:
                    ctx.values[w.name] = float("nan")
                    ctx.skipped[w.name] = str(e)
        ctx.times[key] = round(time.perf_counter() - t0, 2)
        done.add(key)
    missing = [m.name for m in wanted if m.name not in ctx.values]
    if missing:
        raise DataError(f"metric: {', '.join(missing)} not returned by their functions")
    return dict(ctx.values), {m.name: m.version for m in wanted}


# -------------------------------------------------------------------------------------------- built-in metrics
def _pr(space: str):
    def run(c: MetricContext) -> dict:
        e = c.cfg.eval
        pr = distribution.precision_recall(c.Y, c.scene.cube, k=e.k, space=space, max_points=e.max_points,
                                           random_state=c.seed, device=c.device)
        return {f"precision_{space}": pr["precision"], f"recall_{space}": pr["recall"]}
    return run


def _classifier(c: MetricContext) -> dict:
    real_out = memo("classifier_outputs", lambda: classifier_outputs(c.net, c.real, device=c.device),
                    c.real, key=(state_hash(c.net, 16),))
    sc = classifier_scores(c.net, c.Y, c.real, device=c.device, real_outputs=real_out)
    return {k: sc[k] for k in ("IS", "FID", "SD", "IS_real", "SD_real")}


def _roughness(c: MetricContext) -> dict:
    gap, det = texture.roughness_gap(c.Y, c.real, return_details=True)
    return {"roughness_gap": gap, "neighbour_angle": det["generated"], "neighbour_angle_real": det["real"]}


def _coherence(c: MetricContext) -> dict:
    gap, det = texture.coherence_gap(c.Y, c.real, return_details=True)
    return {"coherence_gap": gap, "spatial_coherence": det["generated"], "spatial_coherence_real": det["real"]}


def _ratio(c: MetricContext) -> dict:
    fp, db = c.values["F_p"], c.values["D_b"]
    return {"D_b/F_p": db / fp if fp else float("nan")}


_ABL = ("all", "ablation")
# Tolerances: docs/running.md "Verify" (F_p and D_b move by ~1e-5 between training seeds, so they get absolute ones).
for _m in (
    Metric(name="F_p", direction=+1, family="paper", description="point fidelity, eq. 16", tolerance=(1e-6, 0.0),
           compute=lambda c: {"F_p": paper.point_fidelity(c.Y, c.scene.cube, device=c.device)}),
    Metric(name="D_b", direction=-1, family="paper", tolerance=(4e-6, 0.0),
           description="block diversity, eq. 17 (8x8 blocks; lower = less copying)",
           compute=lambda c: {"D_b": paper.block_diversity(c.Y, c.scene.cube, block=c.cfg.eval.block,
                                                           device=c.device)}),
    Metric(name="D_b/F_p", direction=-1, family="paper", description="Table I's ratio", tolerance=(4e-6, 0.0),
           compute=_ratio),
    Metric(name="IS", direction=+1, family="paper", description="inception score with the per-scene classifier",
           compute=_classifier, group="IS_FID_SD", sets=_ABL),
    Metric(name="FID", direction=-1, family="paper", description="Frechet distance of classifier features",
           compute=_classifier, group="IS_FID_SD", sets=_ABL),
    Metric(name="SD", direction=+1, family="HyperLDM", description="spectral diversity, HyperLDM eq. 28",
           compute=_classifier, group="IS_FID_SD", sets=_ABL),
    Metric(name="precision_spectra", direction=+1, family="ours", description="k-NN precision of pixel spectra",
           compute=_pr("spectra"), group="pr_spectra"),
    Metric(name="recall_spectra", direction=+1, family="ours", description="k-NN recall of pixel spectra",
           compute=_pr("spectra"), group="pr_spectra"),
    Metric(name="precision_patches", direction=+1, family="ours", description="k-NN precision of 32x32 patches",
           compute=_pr("patches"), group="pr_patches", sets=_ABL),
    Metric(name="recall_patches", direction=+1, family="ours", description="k-NN recall of 32x32 patches",
           compute=_pr("patches"), group="pr_patches", sets=_ABL),
    Metric(name="SWD", direction=-1, family="ours", description="sliced Wasserstein distance of pixel spectra",
           compute=lambda c: {"SWD": distribution.sliced_wasserstein(c.Y, c.scene.cube, random_state=c.seed,
                                                                     device=c.device)}, sets=_ABL),
    Metric(name="copy_rate", direction=-1, family="ours",
           description="share of generated patches that copy a real window",
           compute=lambda c: {"copy_rate": distribution.copy_rate(c.Y, c.scene.cube, random_state=c.seed,
                                                                  device=c.device)}),
    Metric(name="roughness_gap", direction=-1, family="ours", compute=_roughness,
           description="|ln| of the neighbour-angle ratio, generated vs real patches (noise or flat colour both "
                       "raise it)"),
    Metric(name="coherence_gap", direction=-1, family="ours", compute=_coherence, sets=_ABL,
           description="|ln| of the spatial-coherence ratio (neighbour angle / in-patch pair angle), generated vs "
                       "real patches (no structure or flat colour both raise it)"),
):
    register_metric(_m)
del _m
