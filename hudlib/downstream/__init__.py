"""Downstream benchmark: does synthetic labelled data help a classifier on ground it has never seen, better than
trivial generators and classic augmentation?

The protocol (docs/methods.md "Downstream protocol"):

* **One split object** decides everything: :data:`hudlib.splits.KFOLD`, a spatial k-fold in which every labelled
  pixel is held out exactly once and a buffer separates each fold's held-out cells from its training ground.
  HUD-cond is trained per fold on that ground only (``cond.fold``); providers of added pixels are handed only that
  ground (:class:`~.providers.Ground`); classifiers draw their labels on it.
* **Rows** (:data:`~.providers.PROVIDERS`, one function each): ``real``, classic augmentation, HUD-cond and the
  controls a reviewer asks for (shuffled labels, per-class Gaussian mixtures, noisy copies, UAE pass-through,
  self-training), the ceiling (every label of the ground), and levers on HUD-cond.
* **Choices by validation** on an inner spatial split of the fold's ground, the same way for every row
  (:mod:`~.benchmark`); SVM ``C``/``gamma`` by grouped CV; the net's length in epochs over the real labels.
* **Statistics**: paired Wilcoxon signed-rank tests with Holm's correction, the headline declared in the protocol
  (:mod:`~.report`, :mod:`~.stats`).

Modules: :mod:`~.protocol` (every setting, per profile), :mod:`~.labels` (draws, windows, scores),
:mod:`~.providers`, :mod:`~.classifiers` (SVM and net with one interface), :mod:`~.benchmark` (the loop),
:mod:`~.stats`, :mod:`~.report`, :mod:`~.experiment` (with HUD-cond: per-fold generators, pools, leak audit).
"""
from __future__ import annotations

from .benchmark import RealSet, run, run_fold_budget
from .classifiers import NetClassifier, confidence, fit_classifier, make_svm, tune_svm
from .experiment import (GENERATOR, assemble, experiment, experiment_key, fold_configs, fold_generators, leak_audit,
                         prepare_resources, run_or_reuse, unsupported)
from .labels import (centre_spectra, classification_metrics, draw_labels, ground_windows, patch_windows,
                     scene_windows, validation_score)
from .protocol import CLASSIFIERS, DOWNSTREAM_VERSION, LEVERS, PROTOCOLS, Protocol, protocol_for
from .providers import (GENERATOR_ROWS, PROVIDERS, FoldResources, Ground, Request, augment, class_quota,
                        layout_crops, pool_draw)
from .report import markdown, plot_gains, summarise, write_result
from .stats import holm, paired_test

__all__ = [
    "Protocol", "PROTOCOLS", "protocol_for", "LEVERS", "CLASSIFIERS", "DOWNSTREAM_VERSION",
    "draw_labels", "classification_metrics", "validation_score", "scene_windows", "ground_windows",
    "patch_windows", "centre_spectra",
    "Ground", "Request", "FoldResources", "PROVIDERS", "GENERATOR_ROWS", "class_quota", "augment", "layout_crops",
    "pool_draw",
    "make_svm", "tune_svm", "NetClassifier", "fit_classifier", "confidence",
    "RealSet", "run_fold_budget", "run", "paired_test", "holm", "summarise", "markdown", "write_result", "plot_gains",
    "GENERATOR", "assemble", "fold_configs", "fold_generators", "unsupported", "prepare_resources", "leak_audit",
    "experiment", "experiment_key", "run_or_reuse",
]
