import math

import numpy as np
import pytest
from scipy import stats

from deap_mln.stats import (
    a12,
    bootstrap_mean_ci,
    compare,
    compare_paired,
    holm_adjust,
    median_iqr,
    min_sign_flip_p,
    sign_flip_test,
)


def test_a12_counts_wins_and_half_ties():
    assert a12([3, 4], [1, 2]) == 1.0
    assert a12([1, 2], [3, 4]) == 0.0
    assert a12([1, 2], [1, 2]) == 0.5
    assert a12([2], [1, 2, 3]) == pytest.approx((1 + 0.5) / 3)


def test_compare_detects_a_clear_difference_and_not_an_absent_one():
    rng = np.random.default_rng(0)
    better, worse = rng.normal(1.0, 0.1, 10), rng.normal(0.0, 0.1, 10)
    result = compare(better, worse)
    assert result["p_value"] < 0.001 and result["a12"] == 1.0 and result["magnitude"] == "large"
    same = compare([1.0] * 5, [1.0] * 5)
    assert same["p_value"] == 1.0 and same["a12"] == 0.5 and same["magnitude"] == "negligible"


def test_median_iqr_per_generation():
    med, lo, hi = median_iqr([[0, 10], [1, 20], [2, 30], [3, 40], [4, 50]])
    np.testing.assert_allclose(med, [2, 30])
    np.testing.assert_allclose(lo, [1, 20])
    np.testing.assert_allclose(hi, [3, 40])


def test_sign_flip_exact_p_values_by_hand():
    assert sign_flip_test([1, 1, 1, 1, 1]) == 2 / 32  # only all-plus and all-minus are as extreme
    assert sign_flip_test([1, -1, 1, -1, 1, -1]) == 1.0  # observed sum 0: every pattern is as extreme
    assert sign_flip_test([0, 0, 0]) == 1.0
    # 4 non-zero differences, sum 0.065; as extreme: flip -0.005 or not (4 of 16 patterns); zeros change nothing
    assert sign_flip_test([0.01, 0.02, -0.005, 0.03, 0.0]) == pytest.approx(4 / 16)
    # float rounding must not break ties: 0.91-0.90 and 0.93-0.92 differ in the last bits
    assert sign_flip_test([0.91 - 0.90, 0.93 - 0.92, 0.95 - 0.94, 0.97 - 0.96, 0.99 - 0.98]) == 2 / 32
    assert min_sign_flip_p(3) == 0.25 and min_sign_flip_p(5) == 2 / 32 and min_sign_flip_p(0) == 1.0


def test_sign_flip_monte_carlo_agrees_with_enumeration():
    d = np.random.default_rng(2).normal(0.5, 1.0, 12)
    exact = sign_flip_test(d)
    assert 0.01 < exact < 0.5
    monte_carlo = sign_flip_test(d, exact_max_n=0, draws=100_000, seed=1)
    assert monte_carlo != exact and abs(monte_carlo - exact) < 0.005  # binomial s.e. 0.001 at p = 0.11
    assert sign_flip_test(d, exact_max_n=0, seed=1) == monte_carlo  # seeded
    # all 20 differences positive: exact p would be 2/2^20 ~ 1.9e-6; Monte Carlo never goes below it
    assert sign_flip_test(np.ones(20)) >= min_sign_flip_p(20)
    assert sign_flip_test(np.ones(20)) <= 5 / 100_001


def test_bootstrap_ci_contains_the_mean_is_seeded_and_narrows_with_data():
    rng = np.random.default_rng(0)
    small, large = rng.normal(0.01, 0.02, 10), rng.normal(0.01, 0.02, 200)
    low, high = bootstrap_mean_ci(small)
    assert low < small.mean() < high
    assert bootstrap_mean_ci(small, seed=0) == (low, high)
    assert bootstrap_mean_ci(small, seed=1) != (low, high)
    low_l, high_l = bootstrap_mean_ci(large)
    assert low_l < large.mean() < high_l and high_l - low_l < (high - low) / 2
    low90, high90 = bootstrap_mean_ci(small, confidence=0.9)
    assert low < low90 < high90 < high
    assert bootstrap_mean_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)
    with pytest.raises(ValueError):
        bootstrap_mean_ci([])


def test_compare_paired_decision_rule():
    few = compare_paired([0.901] * 3, [0.900] * 3)
    assert math.isnan(few.p_value) and math.isnan(few.ci_low) and few.test == "too few seeds (n = 3 < 5): no test"
    assert few.n == 3 and few.mean_difference == pytest.approx(0.001) and few.min_p_value == 0.25
    assert math.isnan(compare_paired([0.5] * 4, [0.5] * 4).p_value)  # identical but still too few
    same = compare_paired([0.5] * 5, [0.5] * 5)
    assert same.test == "identical" and same.p_value == 1.0 and (same.ci_low, same.ci_high) == (0.0, 0.0)
    up = compare_paired([0.9, 0.8, 0.85, 0.7, 0.95, 0.6], [0.5, 0.55, 0.5, 0.52, 0.51, 0.4])
    assert up.test == "sign-flip (exact)" and up.p_value == 2 / 64 == up.min_p_value
    assert up.ci_low < up.mean_difference < up.ci_high and up.ci_low > 0
    many = compare_paired(np.arange(17.0), np.zeros(17))  # 16 non-zero differences: still exact
    assert many.test == "sign-flip (exact)" and many.p_value == 2 / 2 ** 16
    assert compare_paired(np.arange(1.0, 18.0), np.zeros(17)).test.startswith("sign-flip (Monte Carlo")
    with pytest.raises(ValueError, match="equal numbers"):
        compare_paired([1.0, 2.0], [1.0])


def test_the_smallest_possible_p_counts_only_non_zero_differences():
    # 6 seeds, two of them tied: the test flips the 4 others, so its floor is 2/2^4, not 2/2^6
    tied = compare_paired([0.9, 0.8, 0.85, 0.7, 0.95, 0.6], [0.9, 0.55, 0.5, 0.52, 0.95, 0.4])
    assert tied.p_value == 2 / 16 == tied.min_p_value == sign_flip_test([0.25, 0.35, 0.18, 0.2])
    assert compare_paired([0.5] * 5, [0.5] * 5).min_p_value == 1.0  # identical: 1 is the only p possible
    assert compare_paired([0.9, 0.9, 0.91], [0.9, 0.9, 0.9]).min_p_value == 1.0  # one non-zero of 3: no sign to test


def test_near_constant_differences_no_longer_give_absurd_p_values():
    # one more test error than the reference on every seed (1,000 test points), float noise in the last bits
    reference = np.array([0.585, 0.602, 0.571, 0.593, 0.610])
    values = reference - 0.001 + np.array([0.0, 1e-15, -1e-15, 2e-15, 0.0])
    assert stats.ttest_rel(values[:3], reference[:3]).pvalue < 1e-20  # what the old report printed
    assert math.isnan(compare_paired(values[:3], reference[:3]).p_value)
    five = compare_paired(values, reference)
    assert five.p_value == 2 / 32 == five.min_p_value


def test_holm_adjustment_by_hand():
    # m = 3 tests: 0.01 * 3 = 0.03, then 0.02 * 2 = 0.04, then max(0.04, 0.04 * 1); nan untouched
    adjusted = holm_adjust([0.04, 0.01, math.nan, 0.02])
    assert adjusted[:2] == pytest.approx([0.04, 0.03]) and adjusted[3] == pytest.approx(0.04)
    assert math.isnan(adjusted[2])
    assert holm_adjust([0.6, 0.5]) == [1.0, 1.0]  # capped at 1
    assert holm_adjust([]) == []
