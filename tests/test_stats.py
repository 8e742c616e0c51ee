import numpy as np
import pytest

from deap_mln.stats import a12, compare, median_iqr


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
