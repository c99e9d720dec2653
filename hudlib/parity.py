"""Is a candidate setting no worse than a reference, given the seed-to-seed spread of both? One rule, used by the
sampler parity benchmark (``benchmarks/sampler_parity.py``: fewer sampler steps vs DDIM-50) and the cross-sensor
study (:mod:`hudlib.transfer`: a fine-tuned prior vs one trained from scratch).

The rule: the candidate's mean over its seeds lies inside the reference's [min, max] over its seeds, or beyond it on
the metric's better side, **and** a one-sided Welch t-test of "the candidate is worse" does not reject at 0.05
(scipy's ``ttest_ind(equal_var=False)``). Both halves matter: with three seeds a side the range alone lets a
consistent small loss through, the test alone a large one with a wide spread.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["ALPHA", "welch_worse", "no_worse"]

ALPHA = 0.05


def welch_worse(ref, cand, direction: int) -> float:
    """One-sided p of "``cand`` is worse than ``ref``" (Welch's t-test; ``direction`` +1: higher is better, -1:
    lower is better). NaN with fewer than 2 values a side or no spread on either side."""
    ref, cand = [float(x) for x in ref], [float(x) for x in cand]
    if len(ref) < 2 or len(cand) < 2 or (np.ptp(ref) == 0 and np.ptp(cand) == 0):
        return float("nan")
    alt = "less" if direction > 0 else "greater"  # worse: lower when higher is better
    return float(stats.ttest_ind(cand, ref, equal_var=False, alternative=alt).pvalue)


def no_worse(ref, cand, direction: int) -> dict:
    """The rule of the module docstring for one metric: ``{"mean", "min", "max", "within", "p_worse", "passes"}``
    of the candidate values ``cand`` against the reference values ``ref`` (one value per seed each)."""
    ref, cand = [float(x) for x in ref], [float(x) for x in cand]
    if not ref or not cand:
        raise ValueError("no_worse: expected at least one reference and one candidate value")
    if direction not in (-1, 1):
        raise ValueError(f"direction: expected +1 (higher is better) or -1, got {direction!r}")
    mean = float(np.mean(cand))
    inside = (min(ref) <= mean <= max(ref)) or (mean > max(ref) if direction > 0 else mean < min(ref))
    p = welch_worse(ref, cand, direction)
    return {"mean": mean, "min": min(cand), "max": max(cand), "within": bool(inside), "p_worse": p,
            "passes": bool(inside and not (p < ALPHA))}
