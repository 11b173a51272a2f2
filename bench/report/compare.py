"""`ganbench compare SWEEP --baseline ROW`: every row's difference from a baseline row.

Per metric, dataset and ρ: each row's mean minus the baseline's mean, the
95% Welch interval of that difference (Welch-Satterthwaite degrees of
freedom) and the two-sided Welch p-value, over training seeds, beside the
same p adjusted with Holm's step-down method over the rows compared in that
column: the correction the leaderboard's bold applies to its tests.
"""

from __future__ import annotations

import pandas as pd

from bench.errors import UserError
from bench.registry import METRICS
from bench.report.frame import metric_columns, seed_values
from bench.report.stats import holm, welch_difference
from bench.report.tables import fmt, ordered


def compare_rows(cells: pd.DataFrame, baseline: str, method_order: list[str], dataset_order: list[str],
                 metric_order: list[str]) -> list[dict]:  # fmt: skip
    """One dict per (metric, dataset, ρ, row other than the baseline) where both have finished seeds."""
    out = []
    for metric in ordered(metric_columns(cells), metric_order):
        values = seed_values(cells, metric)
        columns = sorted({(d, r) for (_, d, r) in values},
                         key=lambda c: (dataset_order.index(c[0]) if c[0] in dataset_order else len(dataset_order), c[1]))  # fmt: skip
        for dataset, rho in columns:
            base = values.get((baseline, dataset, rho))
            if not base:
                continue
            rows = ordered({m for (m, d, r) in values if (d, r) == (dataset, rho) and m != baseline}, method_order)
            diffs = [welch_difference(values[(method, dataset, rho)], base) for method in rows]
            for method, diff, p_holm in zip(rows, diffs, holm([d.p for d in diffs])):
                out.append({"metric": metric, "dataset": dataset, "imbalance": rho, "method": method, "diff": diff,
                            "p_holm": p_holm})  # fmt: skip
    return out


def compare_text(cells: pd.DataFrame, baseline: str, method_order: list[str], dataset_order: list[str],
                 metric_order: list[str]) -> str:  # fmt: skip
    if baseline not in set(cells["method"]) and baseline not in method_order:
        import difflib

        close = difflib.get_close_matches(baseline, method_order, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(map(repr, close))}?" if close else f"rows: {', '.join(method_order)}"
        raise UserError(f"--baseline: {baseline!r} is not a row of this sweep; {hint}")
    rows = compare_rows(cells, baseline, method_order, dataset_order, metric_order)
    if not rows:
        return f"No finished cells of baseline {baseline!r} to compare with yet.\n"
    lines = [f"Difference from {baseline} (row − {baseline}): mean, 95% Welch interval, two-sided Welch p over training seeds;",
             "Holm: that p adjusted over the rows of the column (Holm's step-down, as the leaderboard's bold).",
             "A negative difference is better for ↓ metrics, a positive one for ↑ metrics.", ""]  # fmt: skip
    current = None
    width = max(len(r["method"]) for r in rows)
    for r in rows:
        key = (r["metric"], r["dataset"], r["imbalance"])
        if key != current:
            current = key
            metric = METRICS.facts(r["metric"])
            arrow = "↓" if metric["direction"] == "lower" else "↑"
            lines.append(f"{metric['label']} {arrow} ({r['metric']}), {r['dataset']} ρ={r['imbalance']:g}")
        d = r["diff"]
        interval = f"[{fmt(d.low)}, {fmt(d.high)}]" if d.n_row > 1 and d.n_base > 1 else "(needs 2 seeds each)"
        p = f"p={d.p:.3g} Holm={r['p_holm']:.3g}" if d.n_row > 1 and d.n_base > 1 else ""
        lines.append(f"  {r['method']:<{width}}  {d.diff:+.3g}  {interval}  {p}  n={d.n_row} vs {d.n_base}".rstrip())
    return "\n".join(lines) + "\n"
