"""What the paper printed, beside ours: the sweep's `reference:` entries matched to the summary.

An entry (validated by bench/spec.py) names a row, dataset, ρ, metric, the
paper's value and its source, and optionally the budget profile it applies
to (an Inception FID printed for a 100k-step GPU run means nothing beside a
200-step CPU smoke run). Ours is flagged where our 95% interval over seeds
excludes the paper's number.
"""

from __future__ import annotations

import math

import pandas as pd


def applicable(references: list[dict], budget: str | None) -> tuple[list[dict], list[dict]]:
    """(entries for this budget, entries for other budgets)."""
    mine = [r for r in references if r.get("budget") in (None, budget)]
    return mine, [r for r in references if r not in mine]


def compare_references(references: list[dict], summary: pd.DataFrame) -> tuple[list[dict], list[dict]]:
    """(matched rows with ours, paper, difference and flag; entries with no result of ours)."""
    matched, unmatched = [], []
    for ref in references:
        hit = summary[(summary["method"] == ref["row"]) & (summary["dataset"] == ref["dataset"])
                      & (summary["imbalance"] == ref["imbalance"]) & (summary["metric"] == ref["metric"])]  # fmt: skip
        if hit.empty:
            unmatched.append(ref)
            continue
        ours = hit.iloc[0]
        has_interval = not math.isnan(ours["ci_low"])
        outside = has_interval and not (ours["ci_low"] <= ref["value"] <= ours["ci_high"])
        matched.append({**ref, "mean": ours["mean"], "ci_low": ours["ci_low"], "ci_high": ours["ci_high"],
                        "n": int(ours["n"]), "label": ours["label"], "diff": ours["mean"] - ref["value"],
                        "outside": outside, "has_interval": has_interval})  # fmt: skip
    return matched, unmatched


def _count(n: int, one: str = "has", many: str = "have") -> str:
    return f"1 paper value {one}" if n == 1 else f"{n} paper values {many}"


def unmatched_text(unmatched: list[dict], other_budgets: list[dict]) -> list[str]:
    lines = []
    if unmatched:
        lines.append(f"{_count(len(unmatched))} no result here yet: "
                     + "; ".join(f"{r['row']} on {r['dataset']} ρ={r['imbalance']:g} {r['metric']}" for r in unmatched) + ".")  # fmt: skip
    budgets = sorted({r["budget"] for r in other_budgets})
    if budgets:
        lines.append(f"{_count(len(other_budgets), 'applies', 'apply')} only to the budget profile {', '.join(budgets)} "
                     f"(`--budget {budgets[0]}`): not compared with this run.")  # fmt: skip
    return lines
