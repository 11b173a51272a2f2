"""One PNG per dataset: its headline metric against ρ, a line per method."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def plot_dataset(summary: pd.DataFrame, dataset: str, metric: str, method_order: list[str], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = summary[(summary["dataset"] == dataset) & (summary["metric"] == metric)]
    if data.empty:
        return False
    fig, ax = plt.subplots(figsize=(5, 3.5))
    methods = [m for m in method_order if m in set(data["method"])] + sorted(set(data["method"]) - set(method_order))
    for m in methods:
        d = data[data["method"] == m].sort_values("imbalance")
        ax.errorbar(d["imbalance"], d["mean"], yerr=d["std"].fillna(0), marker="o", capsize=3, label=m)
    if data["imbalance"].nunique() > 1 and data["imbalance"].max() / data["imbalance"].min() >= 10:
        ax.set_xscale("log")
    ax.set_xticks(sorted(data["imbalance"].unique()))
    ax.set_xticklabels([f"{r:g}" for r in sorted(data["imbalance"].unique())])
    arrow = "↓" if data["direction"].iloc[0] == "lower" else "↑"
    ax.set_xlabel("imbalance factor ρ")
    ax.set_ylabel(f"{data['label'].iloc[0]} {arrow}")
    ax.set_title(f"{dataset}: mean ± std over seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
