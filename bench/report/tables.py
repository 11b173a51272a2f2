"""Leaderboard tables: rows = methods, columns = dataset × ρ, one table per metric.

Each entry is the mean over training seeds ± the half-width of its 95%
t-interval, with n; bold marks every row not significantly worse than the
column's best (bench/report/stats.py); the header arrow gives the direction
(↓ lower is better). Markdown here; the page is bench/report/html.py and
the paper tables bench/report/latex.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from bench.report.frame import seed_values
from bench.report.stats import INTERVAL_METHOD, TEST_METHOD, ColumnMarks, mark_column

ARROW = {"lower": "↓", "higher": "↑"}


@dataclass(frozen=True)
class Entry:
    mean: float
    low: float
    high: float
    n: int
    std: float
    eval_sd: float
    eval_k: int
    clipped: bool = False  # the interval was cut at the metric's bound (frame.clip_interval)

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def spread(self, pm: str = "±") -> str:
        """'± half-width', or '[low, high]' where the interval was cut at a bound (no longer symmetric);
        empty with one seed."""
        if self.n < 2:
            return ""
        return f"[{fmt(self.low)}, {fmt(self.high)}]" if self.clipped else f"{pm} {fmt(self.half_width)}"


def fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.3g}"


def ordered(values, order: list) -> list:
    """`values` in the sweep's order, unknown ones after it (sorted)."""
    values = set(values)
    return [v for v in order if v in values] + sorted(values - set(order), key=str)


def metric_tables(summary: pd.DataFrame, cells: pd.DataFrame, method_order: list[str], dataset_order: list[str],
                  metric_order: list[str]) -> list[dict]:  # fmt: skip
    """One dict per metric: metric, label, direction, columns [(dataset, ρ)], rows {method: {col: Entry}},
    marks {col: ColumnMarks}, unmarked {col: reason}."""
    tables = []
    for metric in ordered(summary["metric"].unique(), metric_order):
        group = summary[summary["metric"] == metric]
        direction = group["direction"].iloc[0]
        cols = sorted({(d, r) for d, r in zip(group["dataset"], group["imbalance"])},
                      key=lambda c: (dataset_order.index(c[0]) if c[0] in dataset_order else len(dataset_order), c[1]))  # fmt: skip
        rows = {m: {} for m in ordered(group["method"].unique(), method_order)}
        for rec in group.itertuples():
            rows[rec.method][(rec.dataset, rec.imbalance)] = Entry(rec.mean, rec.ci_low, rec.ci_high, rec.n, rec.std,
                                                                   rec.eval_sd, rec.eval_k, bool(rec.clipped))  # fmt: skip
        values = seed_values(cells, metric)
        marks = {col: mark_column({m: values.get((m, *col), []) for m in rows}, direction) for col in cols}
        tables.append({"metric": metric, "label": group["label"].iloc[0], "direction": direction, "columns": cols,
                       "rows": rows, "marks": marks,
                       "unmarked": {col: mk.reason for col, mk in marks.items() if mk.reason}})  # fmt: skip
    return tables


def is_marked(table: dict, method: str, col) -> bool:
    marks: ColumnMarks = table["marks"].get(col)
    return bool(marks) and method in marks.marked


def entry_text(table: dict, method: str, col, pm: str = "±") -> str:
    """'mean ± half-width (n)', 'mean [low, high] (n)' where clipped; only the mean with one seed."""
    e: Entry | None = table["rows"][method].get(col)
    if e is None:
        return ""
    if e.n < 2:
        return f"{fmt(e.mean)} (1)"
    return f"{fmt(e.mean)} {e.spread(pm)} ({e.n})"


BOLD_MEANING = f"not significantly worse than the column's best ({TEST_METHOD})"


def clipped_metrics(tables: list[dict]) -> list[str]:
    return [t["label"] for t in tables if any(e.clipped for entries in t["rows"].values() for e in entries.values())]


def method_lines(tables: list[dict]) -> list[str]:
    """What the entries and the bold mean, for a table header."""
    lines = [f"Entries: the {INTERVAL_METHOD}; (n) = number of seeds.",
             f"Bold: {BOLD_MEANING}."]  # fmt: skip
    clipped = clipped_metrics(tables)
    if clipped:
        lines.append(f"Where that interval crosses a bound of the metric ({', '.join(clipped)}: no value below 0 "
                     "or above its maximum), it is cut at the bound and printed as [low, high].")  # fmt: skip
    unmarked = sorted({(d, r) for t in tables for (d, r) in t["unmarked"]}, key=str)
    if unmarked:
        cols = ", ".join(f"{d} ρ={r}" for d, r in unmarked)
        lines.append(f"Not marked ({cols}): a row there has fewer than 2 seeds, and a test needs at least 2 per row.")
    return lines


def column_header(col) -> str:
    return f"{col[0]} ρ={col[1]:g}"


def to_markdown(tables: list[dict]) -> str:
    out = []
    for t in tables:
        out.append(f"### {t['label']} {ARROW[t['direction']]}  (`{t['metric']}`)\n")
        header = ["method"] + [column_header(c) for c in t["columns"]]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        for m in t["rows"]:
            cells = []
            for c in t["columns"]:
                text = entry_text(t, m, c)
                cells.append(f"**{text}**" if text and is_marked(t, m, c) else text)
            out.append("| " + " | ".join([m, *cells]) + " |")
        out.append("")
    return "\n".join(out)


def eval_spread_rows(tables: list[dict]) -> list[dict]:
    """Seed sd beside evaluation sd, for every entry evaluated more than once."""
    rows = []
    for t in tables:
        for m, entries in t["rows"].items():
            for col, e in entries.items():
                if e.eval_k >= 2:
                    rows.append({"metric": t["metric"], "method": m, "column": column_header(col), "seed_sd": e.std,
                                 "eval_sd": e.eval_sd, "k": e.eval_k, "n": e.n})  # fmt: skip
    return rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
