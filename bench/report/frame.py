"""Result records -> pandas: one row per cell, then mean ± std over seeds."""

from __future__ import annotations

import pandas as pd

from bench.registry import METRICS

KEYS = ["method", "dataset", "imbalance"]


def cells_frame(records: list[dict]) -> pd.DataFrame:
    """One row per cell: the matrix axes, status, and every metric."""
    rows = []
    for r in records:
        c = r["config"]
        row = {"id": r["id"], "method": c["method"], "dataset": c["dataset"], "imbalance": c["imbalance"],
               "seed": c["seed"], "status": r["status"]}  # fmt: skip
        row.update({f"metric:{k}": v for k, v in r.get("metrics", {}).items()})
        rows.append(row)
    return pd.DataFrame(rows, columns=["id", "method", "dataset", "imbalance", "seed", "status"] if not rows else None)


def summary_frame(cells: pd.DataFrame) -> pd.DataFrame:
    """Long form: method, dataset, imbalance, metric, label, direction, mean, std, n."""
    done = cells[cells["status"] == "done"]
    metric_cols = [c for c in cells.columns if c.startswith("metric:")]
    if done.empty or not metric_cols:
        return pd.DataFrame(columns=[*KEYS, "metric", "label", "direction", "mean", "std", "n"])
    long = done.melt(id_vars=KEYS + ["seed"], value_vars=metric_cols, var_name="metric", value_name="value")
    long = long.dropna(subset=["value"])
    long["metric"] = long["metric"].str.removeprefix("metric:")
    agg = long.groupby(KEYS + ["metric"], sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
    agg = agg.rename(columns={"count": "n"})
    agg["label"] = agg["metric"].map(lambda m: METRICS.get(m).label)
    agg["direction"] = agg["metric"].map(lambda m: METRICS.get(m).direction)
    return agg[[*KEYS, "metric", "label", "direction", "mean", "std", "n"]]
