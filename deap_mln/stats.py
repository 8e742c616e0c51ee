"""Statistics for comparing stochastic search methods over seeds.

Mann-Whitney U (two-sided) tests whether two samples differ in location without assuming
normality; the Vargha-Delaney A12 effect size is the probability that a run of method A
scores higher than a run of method B (0.5: no difference; Vargha & Delaney 2000 call
|A12 - 0.5| >= 0.06 small, 0.14 medium, 0.21 large).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def a12(a: Sequence[float], b: Sequence[float]) -> float:
    """Vargha-Delaney A12: P(a > b) + 0.5 P(a == b) over all pairs."""
    x, y = np.asarray(a, dtype=float)[:, None], np.asarray(b, dtype=float)[None, :]
    return float(((x > y).sum() + 0.5 * (x == y).sum()) / (x.size * y.size))


def a12_magnitude(value: float) -> str:
    d = abs(value - 0.5)
    return "large" if d >= 0.21 else "medium" if d >= 0.14 else "small" if d >= 0.06 else "negligible"


def compare(a: Sequence[float], b: Sequence[float]) -> dict:
    """Mann-Whitney U (two-sided) and A12 of sample ``a`` against sample ``b``."""
    a, b = list(a), list(b)
    if len(set(a) | set(b)) == 1:  # all equal: no evidence of a difference
        p = 1.0
        u = len(a) * len(b) / 2
    else:
        from scipy.stats import mannwhitneyu  # scipy.stats costs ~0.7 s to import: only when needed

        u, p = mannwhitneyu(a, b, alternative="two-sided")
    effect = a12(a, b)
    return dict(u=float(u), p_value=float(p), a12=effect, magnitude=a12_magnitude(effect), n=(len(a), len(b)))


def median_iqr(rows: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column median, 25th and 75th percentiles of equally long rows (seeds x generations)."""
    m = np.asarray(rows, dtype=float)
    return np.median(m, axis=0), np.percentile(m, 25, axis=0), np.percentile(m, 75, axis=0)
