"""Paired tests of the downstream benchmark: Wilcoxon signed-rank (scipy) and Holm's step-down correction.

A benchmark cell compares two rows on the same runs (fold, label draw, budget, classifier): the differences are
paired. :func:`paired_test` runs scipy's Wilcoxon signed-rank test on them; :func:`holm` adjusts a family of
p-values (Holm 1979: the i-th smallest, i = 1..m, becomes max_{j <= i} min(1, (m - j + 1) p_(j))), which controls
the family-wise error rate without assuming independence between the tests.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import wilcoxon

from ..errors import DataError

__all__ = ["paired_test", "holm"]


def paired_test(a, b, alternative: str = "two-sided") -> dict:
    """Wilcoxon signed-rank test of the paired differences ``a - b`` (``(n,)`` each; pairs with a None dropped).

    Returns ``{"n", "mean_diff", "median_diff", "wins", "losses", "statistic", "p"}``; ``alternative`` as scipy's
    (``"greater"``: a > b). Zero differences are dropped (scipy's ``zero_method="wilcox"``); all-zero or fewer than
    one non-zero difference gives p = 1.
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise DataError(f"alternative: expected 'two-sided', 'greater' or 'less', got {alternative!r}")
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise DataError(f"a/b: expected paired sequences of equal length, got {len(a)} and {len(b)}")
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    d = np.array([x - y for x, y in pairs], dtype=np.float64)
    out = {"n": int(len(d)), "mean_diff": float(d.mean()) if len(d) else None,
           "median_diff": float(np.median(d)) if len(d) else None, "wins": int((d > 0).sum()),
           "losses": int((d < 0).sum()), "statistic": None, "p": 1.0}
    if (d != 0).sum() >= 1:
        res = wilcoxon(d, zero_method="wilcox", alternative=alternative)
        out["statistic"], out["p"] = float(res.statistic), float(res.pvalue)
    return out


def holm(pvalues) -> list[float]:
    """Holm-adjusted p-values, in the input's order (None stays None: not part of the family)."""
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    p = np.array([pvalues[i] for i in idx], dtype=np.float64)
    if not np.all((p >= 0) & (p <= 1)):
        raise DataError(f"pvalues: expected probabilities in [0, 1], got {p.tolist()}")
    m = len(p)
    order = np.argsort(p, kind="stable")
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    out: list = [None] * len(pvalues)
    for j, i in enumerate(idx):
        out[i] = float(adj[j]) if math.isfinite(adj[j]) else None
    return out
