"""How sure a number is: intervals over training seeds, Welch's test, Holm's correction.

Every leaderboard entry is a mean over training seeds. Its 95% interval is
Student's t interval, mean ± t(0.975, n-1) · s / √n, with s the sample
standard deviation (ddof = 1): with 3 to 5 seeds a bootstrap has too few
distinct resamples to be trusted, and the t interval says so by being wide.

"Not significantly worse than the best" is a one-sided Welch t-test (no
equal-variance assumption; seeds of two rows are independent) of each row
against the column's best mean, H1: the row is worse. The p-values of one
column are adjusted with Holm's step-down method, and a row is marked when
its adjusted p is at least ALPHA. A column is marked only when every row in
it has at least 2 seeds: with one seed there is no spread to test against.

Student's t distribution comes from `scipy.special` (stdtr, stdtrit: what
scipy.stats.t and ttest_ind compute with), not `scipy.stats`: importing
scipy.stats costs about 1 s, most of `report`'s budget over 10,000 cells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

LEVEL = 0.95
ALPHA = 0.05
INTERVAL_METHOD = "95% Student-t interval over training seeds, mean ± t·s/√n"
TEST_METHOD = (
    "one-sided Welch t-test of each row against the column's best mean, "
    f"Holm-corrected within the column, α = {ALPHA:g}"
)


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high


def _clean(values) -> np.ndarray:
    a = np.asarray(list(values), dtype=float)
    return a[np.isfinite(a)]


def t_interval(values, level: float = LEVEL) -> Interval:
    """Mean and Student-t interval of the finite values; NaN bounds for fewer than 2."""
    a = _clean(values)
    n = len(a)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(a.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    half = float(special.stdtrit(n - 1, 0.5 + level / 2) * a.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n)


def welch_worse_p(row, best, direction: str) -> float:
    """One-sided Welch p-value for H1 "row is worse than best" (direction: lower|higher is better).

    Both with zero spread: p is 1 when the means are equal, else 0 (the
    t statistic is undefined; the ordering is then certain).
    """
    a, b = _clean(row), _clean(best)
    if len(a) < 2 or len(b) < 2:
        return math.nan
    if a.var(ddof=1) == 0 and b.var(ddof=1) == 0:
        worse = a.mean() > b.mean() if direction == "lower" else a.mean() < b.mean()
        return 0.0 if worse else 1.0
    alternative = "greater" if direction == "lower" else "less"
    return _welch_p(a, b, alternative)


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(mean(a) - mean(b), its standard error, Welch-Satterthwaite degrees of freedom); 2+ values each."""
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if se > 0 else math.nan
    return float(a.mean() - b.mean()), se, df


def _welch_p(a: np.ndarray, b: np.ndarray, alternative: str) -> float:
    """Welch's t-test p-value, as scipy.stats.ttest_ind(a, b, equal_var=False, alternative=...)."""
    diff, se, df = _welch(a, b)
    if se == 0:  # spreads too small to represent: the ordering is certain, as with none
        worse = diff > 0 if alternative == "greater" else diff < 0 if alternative == "less" else diff != 0
        return 0.0 if worse else 1.0
    t = diff / se
    if alternative == "greater":
        return float(special.stdtr(df, -t))
    if alternative == "less":
        return float(special.stdtr(df, t))
    return float(min(1.0, 2 * special.stdtr(df, -abs(t))))


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order (NaN stays NaN and is not counted)."""
    finite = [(p, i) for i, p in enumerate(pvalues) if not math.isnan(p)]
    m = len(finite)
    out = [math.nan] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(finite)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


@dataclass(frozen=True)
class ColumnMarks:
    """The outcome of testing one column: which rows are marked, why not if none."""

    marked: frozenset
    best: str | None
    p_adjusted: dict  # row -> Holm-adjusted p against the best (the best itself: absent)
    reason: str = ""  # why nothing is marked, when that is so


def mark_column(values: dict[str, list[float]], direction: str, alpha: float = ALPHA) -> ColumnMarks:
    """Rows not significantly worse than the best mean of one column (values: row -> per-seed values)."""
    rows = {r: _clean(v) for r, v in values.items()}
    rows = {r: v for r, v in rows.items() if len(v)}
    if not rows:
        return ColumnMarks(frozenset(), None, {}, "no finished values")
    pick = min if direction == "lower" else max
    best = pick(rows, key=lambda r: rows[r].mean())
    few = sorted(r for r, v in rows.items() if len(v) < 2)
    if few:
        return ColumnMarks(frozenset(), best, {}, f"fewer than 2 seeds for {', '.join(few)}: no test possible")
    others = [r for r in rows if r != best]
    adjusted = holm([welch_worse_p(rows[r], rows[best], direction) for r in others])
    p_adj = dict(zip(others, adjusted))
    marked = {best} | {r for r, p in p_adj.items() if p >= alpha}
    return ColumnMarks(frozenset(marked), best, p_adj)


@dataclass(frozen=True)
class Difference:
    """row minus baseline: the Welch interval of the difference of means and the two-sided p."""

    diff: float
    low: float
    high: float
    p: float
    n_row: int
    n_base: int


def welch_difference(row, base, level: float = LEVEL) -> Difference:
    a, b = _clean(row), _clean(base)
    na, nb = len(a), len(b)
    diff = float(a.mean() - b.mean()) if na and nb else math.nan
    if na < 2 or nb < 2:
        return Difference(diff, math.nan, math.nan, math.nan, na, nb)
    _, se, df = _welch(a, b)
    if se == 0:
        return Difference(diff, diff, diff, 1.0 if diff == 0 else 0.0, na, nb)
    half = float(special.stdtrit(df, 0.5 + level / 2) * se)
    p = _welch_p(a, b, "two-sided")
    return Difference(diff, diff - half, diff + half, p, na, nb)


def pooled_sd(sds, ns) -> float:
    """Root of the mean within-cell variance (each cell's sd over its k evaluations, weighted by k-1)."""
    pairs = [(s, k) for s, k in zip(sds, ns) if k >= 2 and math.isfinite(s)]
    if not pairs:
        return math.nan
    return math.sqrt(sum((k - 1) * s * s for s, k in pairs) / sum(k - 1 for _, k in pairs))
