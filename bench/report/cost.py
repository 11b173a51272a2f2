"""What a number cost, and on what budget: per row and dataset, and the sweep's total.

Per (dataset, row, device): generator steps, discriminator steps per
generator step, and the mean seconds of training and of evaluation
(sampling + metrics) per cell. A cell scored from another cell's training
run (`timings.train_reused`) shows that run's training time, as the contract
says, but the sweep's total counts each training run once.
"""

from __future__ import annotations

import math

import pandas as pd

from bench.report.tables import ordered

FINISHED = ("done", "trained", "diverged", "failed")


def _steps_text(values) -> str:
    vals = sorted({int(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))})
    if not vals:
        return "–"
    return f"{vals[0]:,}" if len(vals) == 1 else f"{vals[0]:,}–{vals[-1]:,}"


def cost_rows(cells: pd.DataFrame, method_order: list[str], dataset_order: list[str]) -> list[dict]:
    """One dict per (dataset, method, device): g_steps, d_per_g (text), counted, n, train_s, eval_s."""
    ran = cells[cells["status"].isin(FINISHED)]
    out = []
    for dataset in ordered(ran["dataset"].unique(), dataset_order):
        d_cells = ran[ran["dataset"] == dataset]
        for method in ordered(d_cells["method"].unique(), method_order):
            m_cells = d_cells[d_cells["method"] == method]
            for device, group in m_cells.groupby("device_name", sort=True):
                ratio = (group["d_steps"] / group["g_steps"]).dropna()
                ratio_text = "–" if ratio.empty else f"{ratio.min():.3g}" if ratio.nunique() == 1 else f"{ratio.min():.3g}–{ratio.max():.3g}"
                out.append({"dataset": dataset, "method": method, "device": device, "n": len(group),
                            "g_steps": _steps_text(group["g_steps"]), "d_per_g": ratio_text,
                            "counted": bool(group["d_counted"].all()),
                            "train_s": group["train_s"].mean(), "eval_s": group["eval_s"].mean()})  # fmt: skip
    return out


def budget_notes(rows: list[dict]) -> list[str]:
    """Say where rows of one dataset were trained for different numbers of generator steps."""
    notes = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        steps = {r["method"]: r["g_steps"] for r in rows if r["dataset"] == dataset}
        if len(set(steps.values())) > 1:
            notes.append(f"{dataset}: rows differ in generator steps ("
                         + ", ".join(f"{m} {s}" for m, s in steps.items()) + "); compare them with that in mind.")  # fmt: skip
    if any(not r["counted"] for r in rows):
        notes.append("D/G marked * is the configured d_steps: those records do not count discriminator steps.")
    return notes


def sweep_total(cells: pd.DataFrame) -> dict:
    """Seconds spent by the sweep, by device and in all: each training run once, every evaluation."""
    ran = cells[cells["status"].isin(FINISHED)]
    # Each training run once, from any of its cells (all carry its train_s). Not only
    # those with train_reused false: a cell killed between its training and its
    # result is later recorded as reusing the run it trained itself.
    trained = ran.sort_values("train_reused", kind="stable").drop_duplicates("training_id")
    by_device = {}
    for device, group in ran.groupby("device_name", sort=True):
        own = trained[trained["device_name"] == device]
        by_device[device] = float(own["train_s"].fillna(0).sum() + group["eval_s"].fillna(0).sum())
    return {"by_device": by_device, "total": sum(by_device.values()), "cells": len(ran)}


def seconds(s: float) -> str:
    """3.2 s, 4 min 5 s, 2 h 3 min."""
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "–"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(round(s % 60))} s"
    return f"{int(s // 3600)} h {int(round(s % 3600 / 60))} min"


def total_text(total: dict) -> str:
    parts = [f"{seconds(v)} on {k}" for k, v in total["by_device"].items()]
    return f"{seconds(total['total'])} of compute for {total['cells']} cells ({'; '.join(parts)})" if parts else "nothing ran yet"
