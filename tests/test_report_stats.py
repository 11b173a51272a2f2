"""The report's statistics on hand-computed seed values: t-interval, Welch's test, Holm, the marks."""

import math

import numpy as np
import pytest
from scipy import special

from bench.report.stats import holm, mark_column, pooled_sd, t_interval, welch_difference, welch_worse_p

T_975_DF3 = 3.182446305284263  # Student t table, 97.5% quantile, 3 degrees of freedom
T_975_DF2 = 4.302652729749464  # ... 2 degrees of freedom


def test_t_interval_by_hand():
    ci = t_interval([1.0, 2.0, 3.0, 4.0])
    # mean 2.5, s = sqrt(5/3), s/sqrt(4) = 0.645497..., half-width = t * 0.645497
    half = T_975_DF3 * math.sqrt(5 / 3) / 2
    assert ci.mean == 2.5 and ci.n == 4
    assert ci.low == pytest.approx(2.5 - half, abs=1e-9) and ci.high == pytest.approx(2.5 + half, abs=1e-9)
    assert half == pytest.approx(2.0542, abs=1e-4)
    three = t_interval([10.0, 12.0, 14.0])  # s = 2
    assert three.half_width == pytest.approx(T_975_DF2 * 2 / math.sqrt(3), abs=1e-9)


def test_fewer_than_two_seeds_has_no_interval_and_nothing_is_marked():
    one = t_interval([5.0, float("nan")])  # NaN (a metric that could not be computed) is not a seed
    assert one.mean == 5.0 and one.n == 1 and math.isnan(one.low) and math.isnan(one.high)
    assert t_interval([]).n == 0
    marks = mark_column({"a": [1.0, 1.1, 0.9], "b": [3.0]}, "lower")
    assert marks.marked == frozenset() and "fewer than 2 seeds for b" in marks.reason
    assert mark_column({"a": [1.0], "b": [2.0]}, "lower").marked == frozenset()


def test_welch_one_sided_p_by_hand():
    worse, best = [10.0, 12.0, 14.0], [4.0, 5.0, 6.0]  # lower is better: 12 vs 5
    se = math.sqrt(4 / 3 + 1 / 3)  # variances 4 and 1 over n = 3
    t = 7 / se
    df = (5 / 3) ** 2 / ((4 / 3) ** 2 / 2 + (1 / 3) ** 2 / 2)  # Welch-Satterthwaite = 2.941176...
    p_hand = 0.5 * special.betainc(df / 2, 0.5, df / (df + t * t))  # P(T_df > t)
    assert df == pytest.approx(2.9411765, abs=1e-7) and t == pytest.approx(5.4221767, abs=1e-7)
    assert welch_worse_p(worse, best, "lower") == pytest.approx(p_hand, rel=1e-9)
    assert p_hand == pytest.approx(0.0064764, abs=1e-7)
    # higher is better: the same numbers, the other way round
    assert welch_worse_p(best, worse, "higher") == pytest.approx(p_hand, rel=1e-9)
    assert welch_worse_p(worse, best, "higher") == pytest.approx(1 - p_hand, rel=1e-9)
    # both without spread: the ordering is certain
    assert welch_worse_p([2.0, 2.0], [1.0, 1.0], "lower") == 0.0
    assert welch_worse_p([1.0, 1.0], [1.0, 1.0], "lower") == 1.0


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.5, float("nan"), 0.01])  # NaN is not a test: m = 2
    assert adjusted[0] == pytest.approx(0.5) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)
    assert holm([0.6, 0.7]) == [1.0, 1.0]
    assert holm([]) == []


def test_marks_use_the_best_the_direction_and_holm():
    best = [1.0, 1.2, 1.1]
    close = [1.2, 1.4, 1.35]  # one-sided p = 0.030 against best: significant alone, not after Holm with 3 tests
    far = [5.0, 5.1, 5.2]
    raw = welch_worse_p(close, best, "lower")
    assert raw == pytest.approx(0.030072, abs=1e-6)
    marks = mark_column({"best": best, "close": close, "twin": list(close), "far": far}, "lower")
    assert marks.best == "best"
    # Holm: far's tiny p x 3; then close and twin 0.030 x 2 = 0.060 >= 0.05 -> not significantly worse
    assert marks.p_adjusted["close"] == pytest.approx(2 * raw) and marks.p_adjusted["twin"] == pytest.approx(2 * raw)
    assert marks.marked == {"best", "close", "twin"}
    alone = mark_column({"best": best, "close": close}, "lower")
    assert alone.marked == {"best"}  # one test: 0.030 < 0.05, so close is significantly worse
    flipped = mark_column({"best": best, "far": far}, "higher")
    assert flipped.best == "far" and flipped.marked == {"far"}


def test_welch_difference_interval_and_two_sided_p():
    d = welch_difference([10.0, 12.0, 14.0], [4.0, 5.0, 6.0])
    assert d.diff == 7.0 and d.n_row == 3 and d.n_base == 3
    assert d.p == pytest.approx(2 * 0.00647635495, rel=1e-8)
    from scipy import stats

    half = stats.t.ppf(0.975, 2.9411764705882355) * math.sqrt(5 / 3)
    assert (d.low, d.high) == pytest.approx((7 - half, 7 + half))
    one = welch_difference([1.0], [2.0, 3.0])
    assert one.diff == -1.5 and math.isnan(one.low) and math.isnan(one.p)


def test_pooled_evaluation_sd():
    # two cells, each evaluated 3 times, sds 1 and 2: sqrt((2 * 1 + 2 * 4) / 4)
    assert pooled_sd([1.0, 2.0], [3, 3]) == pytest.approx(math.sqrt(2.5))
    assert math.isnan(pooled_sd([float("nan")], [1]))


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # scipy.stats on the spread-free side
@pytest.mark.parametrize("seed", range(5))
def test_welch_and_t_quantiles_equal_scipy_stats(seed):
    """scipy.special stands in for scipy.stats (an import of about 1 s): same p-values and intervals."""
    from scipy import stats

    rng = np.random.default_rng(seed)
    a, b = rng.normal(3, 2, size=rng.integers(2, 7)), rng.normal(4, 1, size=rng.integers(2, 7))
    if seed == 4:
        b = np.full(3, 4.0)  # one side without spread: Welch's t still has the other's
    for alternative, direction in (("greater", "lower"), ("less", "higher")):
        expected = stats.ttest_ind(a, b, equal_var=False, alternative=alternative).pvalue
        assert welch_worse_p(a, b, direction) == pytest.approx(expected, rel=1e-9, abs=1e-15)
    d = welch_difference(a, b)
    assert d.p == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9)
    ci = t_interval(a)
    half = stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / math.sqrt(len(a))
    assert (ci.low, ci.high) == pytest.approx((a.mean() - half, a.mean() + half), rel=1e-12)

