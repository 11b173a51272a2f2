"""Result records -> pandas: one row per cell, then the per-column summary over seeds.

Records written before a field existed still report: a missing device is
"unknown", missing generator / discriminator step counts fall back to the
configured budget (and are marked as configured, not counted), a missing
`eval_repeats` means one evaluation.
"""

from __future__ import annotations

import math

import pandas as pd

from bench.registry import METRICS
from bench.report.stats import pooled_sd, t_interval

KEYS = ["method", "dataset", "imbalance"]
CELL_COLUMNS = ["id", "method", "dataset", "imbalance", "seed", "status", "training_id", "device", "device_name",
                "train_s", "eval_s", "train_reused", "g_steps", "d_steps", "d_counted"]  # fmt: skip
SUMMARY_COLUMNS = [*KEYS, "metric", "label", "direction", "mean", "std", "n", "ci_low", "ci_high", "clipped", "eval_sd",
                   "eval_k"]  # fmt: skip


def device_of(record: dict) -> tuple[str, str]:
    """(kind, name) of the device that ran a cell: ("cuda", "NVIDIA H100 ..."), ("cpu", model) or "unknown"."""
    env = record.get("environment") or {}
    kind = env.get("device") or "unknown"
    name = env.get("device_name")
    if not name and kind == "cuda" and isinstance(env.get("cuda"), str):
        name = env["cuda"]  # records before issue 9 kept the GPU's name under environment.cuda
    return kind, name or kind


def _steps(record: dict, config: dict) -> tuple[float, float, bool]:
    """(generator steps, discriminator steps, whether D's were counted rather than configured)."""
    info = record.get("method_info") or {}
    g = info.get("g_updates", (record.get("train") or {}).get("steps", config.get("budget", {}).get("steps")))
    if "d_updates" in info:
        return g, info["d_updates"], True
    d_per_g = (config.get("optimizer") or {}).get("d_steps")
    return g, (g * d_per_g if g is not None and d_per_g is not None else None), False


def _eval_spread(record: dict) -> dict:
    """Per metric: (sd over the k evaluations of this cell, k) from `eval_repeats`."""
    repeats = record.get("eval_repeats") or []
    out = {}
    for name in {m for r in repeats for m in (r.get("metrics") or {})}:
        values = [r["metrics"][name] for r in repeats if isinstance((r.get("metrics") or {}).get(name), (int, float))]
        values = [v for v in values if math.isfinite(v)]
        if len(values) >= 2:
            out[name] = (float(pd.Series(values).std(ddof=1)), len(values))
    return out


UPSTREAM = " (upstream)"


def row_names(sweep_cells: list[dict]) -> dict[str, str]:
    """Cell id -> the leaderboard row it belongs to: its method, or "<method> (upstream)" for a
    training run the sweep added because another row needs it (Method.needs, `added_for`). Such
    a run has that row's settings (Dual-NDA's baseline: fewer steps), so it is never averaged
    into the matrix row of the same method."""
    return {c["id"]: c["config"]["method"] + (UPSTREAM if c.get("added_for") else "") for c in sweep_cells}


def upstream_note(sweep_cells: list[dict]) -> list[str]:
    """A line per added upstream row: which rows need it."""
    needed: dict[str, list[str]] = {}
    for c in sweep_cells:
        for row in c.get("added_for") or ():
            needed.setdefault(c["config"]["method"] + UPSTREAM, [])
            if row not in needed[c["config"]["method"] + UPSTREAM]:
                needed[c["config"]["method"] + UPSTREAM].append(row)
    return [f"{name}: the training runs that {', '.join(rows)} {'starts' if len(rows) == 1 else 'start'} from, added by "
            f"the sweep at the settings {'that row asks' if len(rows) == 1 else 'those rows ask'} for; a row of its own, "
            "not part of the matrix's row of that method." for name, rows in needed.items()]  # fmt: skip


def cells_frame(records: list[dict], configs: dict[str, dict] | None = None,
                row_of: dict[str, str] | None = None) -> pd.DataFrame:  # fmt: skip
    """One row per cell: axes, status, cost, budget and every metric.

    `configs` (cell id -> config, from the sweep file) stands in for a record
    whose own config is missing (a damaged result). `row_of` (cell id -> row
    name, `row_names`) names the leaderboard row of each cell; by default
    its method.
    """
    rows = []
    for r in records:
        c = r.get("config") or (configs or {}).get(r["id"])
        if c is None:
            continue
        timings = r.get("timings") or {}
        kind, name = device_of(r)
        g, d, counted = _steps(r, c)
        row = {"id": r["id"], "method": (row_of or {}).get(r["id"], c["method"]), "dataset": c["dataset"], "imbalance": c["imbalance"],
               "seed": c["seed"], "status": r.get("status", "failed"), "training_id": r.get("training_id", r["id"]),
               "device": kind, "device_name": name, "train_s": timings.get("train_s", math.nan),
               "eval_s": timings.get("sample_s", 0.0) + timings.get("eval_s", math.nan),
               "train_reused": bool(timings.get("train_reused", False)),
               "g_steps": g, "d_steps": d, "d_counted": counted}  # fmt: skip
        row.update({f"metric:{k}": v for k, v in (r.get("metrics") or {}).items()})
        for k, (sd, n) in _eval_spread(r).items():
            row[f"evalsd:{k}"], row[f"evalk:{k}"] = sd, n
        for k, (_, high) in ((r.get("evaluator") or {}).get("bounds") or {}).items():
            if high is not None:
                row[f"max:{k}"] = float(high)  # a bound of the cell's data set (modes: 8 on ring, 25 on grid)
        rows.append(row)
    return pd.DataFrame(rows, columns=CELL_COLUMNS if not rows else None)


def metric_columns(cells: pd.DataFrame) -> list[str]:
    return [c.removeprefix("metric:") for c in cells.columns if c.startswith("metric:")]


def seed_values(cells: pd.DataFrame, metric: str) -> dict:
    """(method, dataset, imbalance) -> the finished cells' values of one metric, one per seed."""
    done = cells[cells["status"] == "done"]
    col = f"metric:{metric}"
    if col not in done.columns:
        return {}
    done = done.dropna(subset=[col])
    return {key: list(group[col]) for key, group in done.groupby(KEYS, sort=False)}


def _pair(bounds) -> tuple:
    """(low, high) of a metric's `bounds`, None for a side without one."""
    return tuple((list(bounds) + [None, None])[:2]) if bounds else (None, None)


def clip_interval(low: float, high: float, bounds) -> tuple[float, float, bool]:
    """A t interval cut to the metric's range (`Metric.bounds`), and whether it was cut: a count,
    share or distance has no values below 0, whatever a symmetric interval of 3 seeds says."""
    lo_bound, hi_bound = _pair(bounds)
    clipped = False
    if lo_bound is not None and low < lo_bound:  # NaN compares False: one seed stays unclipped
        low, clipped = float(lo_bound), True
    if hi_bound is not None and high > hi_bound:
        high, clipped = float(hi_bound), True
    return low, high, clipped


def group_bounds(bounds, highs) -> tuple:
    """The metric's bounds, the upper one lowered to the least its cells' records give (`max:` columns)."""
    low, high = _pair(bounds)
    given = [] if highs is None else [h for h in highs if not math.isnan(h)]
    if given:
        high = min(given) if high is None else min(high, *given)
    return low, high


def summary_frame(cells: pd.DataFrame) -> pd.DataFrame:
    """Long form, one row per (method, dataset, ρ, metric): mean, std, n, 95% interval (clipped to the
    metric's bounds, `clipped` says where), evaluation spread.

    Rows come metric by metric, each metric's groups in the order their first
    finished value appears. Grouped by hand over plain arrays: pandas' groupby
    per metric took a third of `report`'s time over 10,000 cells.
    """
    out = []
    done = cells[cells["status"] == "done"]
    keys = list(zip(done["method"], done["dataset"], done["imbalance"]))
    for metric in metric_columns(cells):
        values = done[f"metric:{metric}"].to_numpy(dtype=float, na_value=math.nan)
        sds = done[f"evalsd:{metric}"].to_numpy(dtype=float, na_value=math.nan) if f"evalsd:{metric}" in done else None
        ks = done[f"evalk:{metric}"].to_numpy(dtype=float, na_value=math.nan) if f"evalk:{metric}" in done else None
        highs = done[f"max:{metric}"].to_numpy(dtype=float, na_value=math.nan) if f"max:{metric}" in done else None
        groups: dict[tuple, list[int]] = {}
        for i, (key, value) in enumerate(zip(keys, values)):
            if not math.isnan(value):
                groups.setdefault(key, []).append(i)
        label, direction = METRICS.fact(metric, "label"), METRICS.fact(metric, "direction")
        bounds = METRICS.fact(metric, "bounds")
        for (method, dataset, rho), rows in groups.items():
            group = values[rows].tolist()
            ci = t_interval(group)
            low, high, clipped = clip_interval(ci.low, ci.high, group_bounds(bounds, None if highs is None else highs[rows]))
            k = [1.0 if ks is None or math.isnan(ks[i]) else float(ks[i]) for i in rows]
            sd = [math.nan if sds is None else float(sds[i]) for i in rows]
            out.append({"method": method, "dataset": dataset, "imbalance": rho, "metric": metric, "label": label,
                        "direction": direction, "mean": ci.mean,
                        "std": float(pd.Series(group).std(ddof=1)) if len(group) > 1 else math.nan,
                        "n": ci.n, "ci_low": low, "ci_high": high, "clipped": clipped,
                        "eval_sd": pooled_sd(sd, k), "eval_k": int(max(k))})  # fmt: skip
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)
