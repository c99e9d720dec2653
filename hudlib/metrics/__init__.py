"""Evaluation metrics, by family: :mod:`.paper` (the paper's F_p and D_b as written), :mod:`.paper_exact` (as
the authors' code computed them), :mod:`.classifier_scores` (IS, FID, SD), :mod:`.distribution`, :mod:`.texture`,
:mod:`.physical` and :mod:`.spatial` (full scenes). This package re-exports them.

The families: the paper's point fidelity and block diversity (III-D, eqs. 16-17) plus distribution metrics.

Why more than the paper's two: F_p (eq. 16) only asks whether every generated pixel has *some* close real pixel,
so a generator that repeats the scene's mean spectrum scores F_p close to 1 on Indian Pines. The distribution
metrics here (improved precision/recall, sliced Wasserstein, copy rate) tell such a trivial generator, a copying
generator and a good one apart.

Conventions: arrays are channel-first; a real scene is ``(bands, H, W)`` (a :class:`hudlib.data.Scene` is accepted
too), a batch of generated patches is ``(n, bands, h, w)``. Inputs are numpy arrays (cast to float32); the heavy
parts run in torch on ``device`` (default CPU) in bounded memory chunks (``max_bytes`` bounds the largest
intermediate similarity/distance matrix). Every metric returns python floats.

Zero vectors: normalisation divides by ``max(||x||, EPS)`` with ``EPS = 1e-12``, so an all-zero pixel or block
(generated or real) becomes the zero vector and has cosine similarity 0 with everything. Nothing yields NaN.
Cosines are clipped to [-1, 1] against fp32 rounding.
"""
from __future__ import annotations

from ._common import EPS, FLAT_ANGLE
from .classifier_scores import (authors_pixel_outputs, classifier_outputs, classifier_scores, frechet_distance,
                                inception_score, spectral_diversity)
from .distribution import copy_rate, manifold_precision_recall, precision_recall, sliced_wasserstein, wasserstein_1d
from .paper import block_diversity, point_fidelity
from .physical import physical_consistency, simplex_angles
from .spatial import field_scale_statistics, seam_score
from .texture import coherence_gap, neighbour_angle, roughness_gap, spatial_coherence, within_patch_angle

__all__ = [
    "EPS", "FLAT_ANGLE", "point_fidelity", "block_diversity", "precision_recall", "manifold_precision_recall",
    "sliced_wasserstein", "wasserstein_1d", "copy_rate", "neighbour_angle", "roughness_gap",
    "within_patch_angle", "spatial_coherence", "coherence_gap", "physical_consistency", "simplex_angles",
    "seam_score", "field_scale_statistics", "classifier_outputs", "authors_pixel_outputs", "classifier_scores",
    "inception_score", "frechet_distance", "spectral_diversity",
]
