"""The downstream protocol: every setting of the benchmark in one frozen object, one per run profile.

The split is the project's :data:`hudlib.splits.KFOLD` (the same object HUD-cond's fold runs are trained on); the
headline cells are declared here before anything runs (:attr:`Protocol.headline_budgets`, ``headline_metrics``,
``classifiers``), and so are the option grids every row's choices are made from on validation data.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import DataError
from ..profiles import get_profile
from ..splits import KFOLD, SpatialKFold
from ._checks import check_budget, check_number, check_positive_int, check_tuple
from .providers import GENERATOR_ROWS, PROVIDERS

__all__ = ["Protocol", "PROTOCOLS", "protocol_for", "LEVERS", "CLASSIFIERS", "DOWNSTREAM_VERSION"]

DOWNSTREAM_VERSION = "downstream-v2"  # recorded in every result: bump when a run's meaning or numerics change
CLASSIFIERS = ("svm", "net")
# Levers tried on the HUD-cond row (each reported, whatever its outcome; never used to choose):
#   filter-on / filter-off: the agreement filter forced; w=<g>: the guidance forced; confident-classes: HUD-cond
#   pixels only for classes whose training-side layout agreement is >= agreement_threshold; pretrain: the net
#   trained on the HUD-cond pixels first, then fine-tuned on the real labels (net only).
LEVERS = ("filter-on", "filter-off", "guidance", "confident-classes", "pretrain")


@dataclass(frozen=True)
class Protocol:
    """Settings of one downstream benchmark (module docstring).

    ``splitter``/``folds``: the spatial k-fold and the folds run (None: all). ``draws``: label draws per fold and
    budget. ``budgets``: real labels per class; ``headline_*``: the cells declared before running. ``rows``: the
    providers of :data:`~hudlib.downstream.providers.PROVIDERS` run beside ``real``; ``ceiling``: also real with
    every label of the fold's training ground. Validation (inner fold ``0`` of an ``inner_folds``-fold split of the
    fold's training ground, ``val_draws_svm``/``val_draws_net`` draws): each row's added pixels per real label
    from ``ratios`` (0 = none: the row falls back to ``real``), the weight of added pixels from ``weights``,
    HUD-cond's guidance from ``guidances``, the agreement filter from ``filters``; the net's epochs from
    ``net_epochs`` (on ``real``, then used by every row). SVM ``C``/``gamma`` per run by a grouped CV of its real
    labels over ``svm_C`` × ``svm_gamma_factors`` / bands. ``net``: the net's other settings. ``pool_per_class``:
    HUD-cond layouts per class in each pool. ``levers``: of :data:`LEVERS`; ``lever_guidances``: the forced
    weights. ``n_jobs``: worker processes for the runs.
    """

    name: str
    splitter: SpatialKFold = KFOLD
    folds: tuple[int, ...] | None = None
    draws: int = 5
    budgets: tuple = (5, 10)
    headline_budgets: tuple = (5, 10)
    headline_metrics: tuple = ("OA", "AA")
    classifiers: tuple = CLASSIFIERS
    rows: tuple = ("aug", "HUD-cond", "HUD-cond-shuffled", "GMM", "copies", "UAE", "self-training")
    ceiling: bool = True
    inner_folds: int = 3
    val_draws_svm: int = 3
    val_draws_net: int = 1
    ratios: tuple = (0.25, 1.0, 4.0, 16.0)
    weights: tuple = (1.0, 0.25)
    guidances: tuple = (0.0, 1.0, 3.0, 7.5)
    filters: tuple = (False, True)
    svm_C: tuple = (1.0, 10.0, 100.0, 1000.0)
    svm_gamma_factors: tuple = (0.25, 1.0, 4.0)
    svm_cv_splits: int = 3
    net_epochs: tuple = (100.0, 300.0)
    net: tuple = (("batch_size", 64), ("lr", 2e-3), ("weight_decay", 0.05), ("min_steps", 50), ("max_steps", 2000))
    pool_per_class: int = 2
    agreement_threshold: float = 0.5
    levers: tuple = LEVERS
    lever_guidances: tuple = (0.0, 3.0)
    n_jobs: int = 2

    def __post_init__(self):
        if not isinstance(self.splitter, SpatialKFold):
            raise DataError(f"splitter: expected a hudlib.splits.SpatialKFold, got {type(self.splitter).__name__}")
        if self.folds is not None:
            check_tuple("folds", self.folds)
            if not all(isinstance(f, int) and 0 <= f < self.splitter.n_folds for f in self.folds):
                raise DataError(f"folds: expected fold indices in 0..{self.splitter.n_folds - 1}, got {self.folds!r}")
        check_positive_int("draws", self.draws)
        check_tuple("budgets", self.budgets, check_budget)
        if "all" in self.budgets:
            raise DataError("budgets: 'all' is the ceiling row (ceiling=True), not a budget")
        if not set(self.headline_budgets) <= set(self.budgets):
            raise DataError(f"headline_budgets: expected budgets among {self.budgets}, got {self.headline_budgets}")
        if not set(self.headline_metrics) <= {"OA", "AA", "kappa"}:
            raise DataError(f"headline_metrics: expected names among OA, AA, kappa, got {self.headline_metrics}")
        check_tuple("classifiers", self.classifiers)
        if not set(self.classifiers) <= set(CLASSIFIERS):
            raise DataError(f"classifiers: expected names among {CLASSIFIERS}, got {self.classifiers}")
        check_tuple("rows", self.rows)
        unknown = [r for r in self.rows if r not in PROVIDERS]
        if unknown:
            raise DataError(f"rows: unknown rows {unknown}; expected names among {list(PROVIDERS)}")
        for name in ("ratios", "weights", "svm_C", "svm_gamma_factors", "net_epochs"):
            check_tuple(name, getattr(self, name), lambda n, x: check_number(n, x, lo_open=True))
        check_tuple("guidances", self.guidances, lambda n, x: check_number(n, x))
        check_tuple("filters", self.filters)
        check_tuple("lever_guidances", self.lever_guidances, lambda n, x: check_number(n, x))
        if not set(self.lever_guidances) <= set(self.guidances):
            raise DataError(f"lever_guidances: expected weights among guidances {self.guidances}")
        if self.levers and not set(self.levers) <= set(LEVERS):
            raise DataError(f"levers: expected names among {LEVERS}, got {self.levers}")
        for name in ("inner_folds", "val_draws_svm", "val_draws_net", "svm_cv_splits", "pool_per_class", "n_jobs"):
            check_positive_int(name, getattr(self, name))
        check_number("agreement_threshold", self.agreement_threshold, 0.0, 1.0)

    @property
    def fold_indices(self) -> tuple[int, ...]:
        return tuple(range(self.splitter.n_folds)) if self.folds is None else tuple(self.folds)

    @property
    def net_params(self) -> dict:
        return dict(self.net)

    @property
    def uses_generator(self) -> bool:
        return any(r in GENERATOR_ROWS for r in self.rows)

    def val_draws(self, classifier: str) -> int:
        return self.val_draws_svm if classifier == "svm" else self.val_draws_net

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["splitter"] = self.splitter.spec
        d["net"] = dict(self.net)
        return d


PROTOCOLS: dict[str, Protocol] = {
    # a check of the wiring (tests, CI): one fold, one draw, one budget, small grids; numbers mean nothing
    "smoke": Protocol(name="smoke", folds=(0,), draws=1, budgets=(5,), headline_budgets=(5,), val_draws_svm=1,
                      ratios=(1.0,), weights=(1.0,), guidances=(0.0, 1.0), lever_guidances=(0.0,),
                      svm_C=(10.0, 100.0), svm_gamma_factors=(1.0,), net_epochs=(20.0,),
                      net=(("batch_size", 64), ("lr", 2e-3), ("weight_decay", 0.05), ("min_steps", 10),
                           ("max_steps", 60)), pool_per_class=1, n_jobs=1),
    "quick": Protocol(name="quick"),
}


def protocol_for(profile: str) -> Protocol:
    """The protocol a run profile names (:attr:`hudlib.profiles.Profile.downstream`: ``smoke`` for smoke, ``quick``
    for quick and paper, since the benchmark's cost is the classifiers', not the generator's)."""
    return PROTOCOLS[get_profile(profile).downstream]
