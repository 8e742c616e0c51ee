"""Statistics for comparing stochastic search methods over seeds.

Unpaired samples (e.g. independent evolution runs): Mann-Whitney U (two-sided) tests whether
two samples differ in location without assuming normality; the Vargha-Delaney A12 effect
size is the probability that a run of method A scores higher than a run of method B (0.5: no
difference; Vargha & Delaney 2000 call |A12 - 0.5| >= 0.06 small, 0.14 medium, 0.21 large).

Several rows against one reference: :func:`holm_adjust`.

Paired samples (two methods run on the same seeds): :func:`compare_paired` tests the mean
of the per-seed differences with an exact sign-flip (paired permutation) test and gives a
percentile bootstrap interval for it. With n pairs no test of the signs can give a
two-sided p below 2/2^n (:func:`min_sign_flip_p`: 0.25 for n = 3), where n counts only the
non-zero differences (a tie has no sign to flip), so below :data:`MIN_PAIRS_FOR_TEST` pairs no
p-value is reported at all.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_PAIRS_FOR_TEST = 5      # below this, compare_paired reports neither p-value nor interval
EXACT_MAX_PAIRS = 16        # up to 2^16 = 65,536 sign patterns are enumerated; above, Monte Carlo
MONTE_CARLO_DRAWS = 100_000
BOOTSTRAP_RESAMPLES = 10_000
_TIE_TOLERANCE = 1e-9       # relative: sums of floats that differ only by rounding count as ties


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


def min_sign_flip_p(n: int) -> float:
    """Smallest two-sided p-value an exact sign-flip test of ``n`` non-zero differences can give: 2/2^n.

    Under the null each of the 2^n sign patterns is equally likely, and the observed pattern
    and its mirror image are always at least as extreme as themselves. Zero differences do not
    count: :func:`sign_flip_test` drops them, so 5 pairs with one tie give at least 2/2^4."""
    return min(1.0, 2.0 ** (1 - n))


def _differences(differences: Sequence[float]) -> np.ndarray:
    d = np.asarray(differences, dtype=float).ravel()
    if not np.all(np.isfinite(d)):
        raise ValueError("differences must be finite")
    return d


def sign_flip_test(differences: Sequence[float], *, exact_max_n: int = EXACT_MAX_PAIRS,
                   draws: int = MONTE_CARLO_DRAWS, seed: int = 0) -> float:
    """Two-sided p-value of the paired permutation (sign-flip) test of mean difference = 0.

    Under the null of no difference, each paired difference d_i is as likely to be +|d_i|
    as -|d_i| (Fisher 1935, *The Design of Experiments*, §21). p is the fraction of sign
    patterns s in {-1, 1}^n with |sum_i s_i d_i| >= |sum_i d_i| (ties within a relative
    1e-9, so rounding of float accuracies does not decide). Zero differences are dropped
    (flipping them changes nothing). With at most ``exact_max_n`` non-zero differences all
    2^n patterns are enumerated; otherwise ``draws`` random patterns from
    ``numpy.random.default_rng(seed)`` give (count + 1) / (draws + 1) (Phipson & Smyth 2010,
    "Permutation p-values should never be zero"), never below :func:`min_sign_flip_p`.
    All differences zero: p = 1.
    """
    d = _differences(differences)
    d = d[d != 0]
    n = len(d)
    if n == 0:
        return 1.0
    observed = abs(float(d.sum()))
    threshold = observed - _TIE_TOLERANCE * float(np.abs(d).sum())
    if n <= exact_max_n:
        patterns = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)  # row k: the bits of k as signs
        return float(np.mean(np.abs(patterns @ d) >= threshold))
    rng = np.random.default_rng(seed)
    count, chunk = 0, max(1, min(draws, 2 ** 22 // n))  # bounded memory for long sequences
    for start in range(0, draws, chunk):
        signs = rng.choice(np.array([-1.0, 1.0]), size=(min(chunk, draws - start), n))
        count += int(np.count_nonzero(np.abs(signs @ d) >= threshold))
    return max((count + 1) / (draws + 1), min_sign_flip_p(n))


def bootstrap_mean_ci(differences: Sequence[float], confidence: float = 0.95,
                      resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``differences``.

    ``resamples`` samples of size n drawn with replacement by ``numpy.random.default_rng(seed)``;
    the interval is the (1 - confidence)/2 and (1 + confidence)/2 quantiles of their means
    (Efron & Tibshirani 1993, *An Introduction to the Bootstrap*, ch. 13). Deterministic for a
    seed. It lies within [min, max] of the differences, so with few pairs it is too narrow:
    it can cover the true mean with probability at most 1 - 2/2^n for symmetric noise."""
    d = _differences(differences)
    if len(d) == 0:
        raise ValueError("bootstrap of an empty sample")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


@dataclass(frozen=True)
class PairedResult:
    """Paired comparison of a method with a reference over the same seeds."""

    n: int                   # number of pairs
    mean_difference: float   # mean of (values - reference_values); nan for n = 0
    ci_low: float            # percentile bootstrap interval of the mean difference; nan for n < MIN_PAIRS_FOR_TEST
    ci_high: float
    confidence: float        # of the interval, e.g. 0.95
    test: str                # "sign-flip (exact)", "sign-flip (Monte Carlo, ...)", "identical" or "too few seeds ..."
    p_value: float           # two-sided; nan for n < MIN_PAIRS_FOR_TEST
    min_p_value: float       # 2/2^m, m the non-zero differences: the smallest p the sign-flip test can give


def compare_paired(values: Sequence[float], reference_values: Sequence[float], *, confidence: float = 0.95,
                   resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> PairedResult:
    """Compare ``values`` with ``reference_values``, paired by position (same seed, same order).

    Decision rule, on n pairs and d = values - reference_values:

    - n < :data:`MIN_PAIRS_FOR_TEST`: no p-value and no interval (nan), test "too few seeds
      (n = 3 < 5): no test"; only the mean difference;
    - all d zero: test "identical", p = 1, interval [0, 0];
    - otherwise :func:`sign_flip_test` (exact up to 16 non-zero differences, Monte Carlo
      above) and :func:`bootstrap_mean_ci`.

    The sign-flip test is valid at any n and tests the same quantity as the interval (the
    mean difference); a paired t-test on near-constant differences (one more error on every
    seed) gives absurd p-values such as 1e-28, and Wilcoxon's signed-rank test answers a
    different question (a median-like shift), so neither is used.
    """
    a, b = np.asarray(values, dtype=float).ravel(), np.asarray(reference_values, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired comparison needs equal numbers of runs, got {len(a)} and {len(b)}")
    d, n = a - b, len(a)
    mean = float(d.mean()) if n else math.nan
    nonzero = int(np.count_nonzero(d))
    min_p = min_sign_flip_p(nonzero)  # the test drops zero differences: only the others can flip
    if n < MIN_PAIRS_FOR_TEST:
        return PairedResult(n, mean, math.nan, math.nan, confidence,
                            f"too few seeds (n = {n} < {MIN_PAIRS_FOR_TEST}): no test", math.nan, min_p)
    if nonzero == 0:
        return PairedResult(n, 0.0, 0.0, 0.0, confidence, "identical", 1.0, min_p)
    test = "sign-flip (exact)" if nonzero <= EXACT_MAX_PAIRS else f"sign-flip (Monte Carlo, {MONTE_CARLO_DRAWS} draws)"
    low, high = bootstrap_mean_ci(d, confidence, resamples, seed)
    return PairedResult(n, mean, low, high, confidence, test, sign_flip_test(d, seed=seed), min_p)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of p-values for testing several rows against one reference:
    the i-th smallest of m is multiplied by (m - i + 1), kept monotone and capped at 1. It
    controls the chance of any false "better than the reference" at the nominal level without
    assuming independence. nan entries (no test) are left out of m and stay nan."""
    order = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p))
        adjusted[i] = running
    return adjusted
