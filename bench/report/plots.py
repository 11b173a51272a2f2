"""The report's pictures, as PNG bytes (written to files for the Markdown, embedded in the page).

- `metric_plot`: a metric against ρ, a line per method named in the legend,
  bars = 95% interval over seeds cut at the metric's bounds (a point-range
  per method when the sweep has one ρ), the papers' values as crosses;
- `loss_plot`: the loss log of each row (losses.csv), one panel per row;
- `class_plot`: per-class training counts beside each row's generated class
  histogram, and per-class FID when the metrics recorded it.

`FigureCache` keeps each figure under a hash of its inputs and of this file,
so a report redraws only the figures whose numbers changed: drawing is most
of a report's time (about 0.2 s a figure), and matplotlib is imported only
when one is drawn.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from pathlib import Path
from typing import Callable

import pandas as pd

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]


def colors(methods: list[str]) -> dict[str, str]:
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(methods)}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
                         "grid.alpha": 0.3, "font.size": 9, "axes.titlesize": 10, "legend.frameon": False})  # fmt: skip
    return plt


def _png(fig) -> bytes:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def metric_plot(summary: pd.DataFrame, dataset: str, metric: str, method_order: list[str],
                references: list[dict] = ()) -> bytes | None:  # fmt: skip
    fig = metric_figure(summary, dataset, metric, method_order, references)
    return None if fig is None else _png(fig)


def metric_figure(summary: pd.DataFrame, dataset: str, metric: str, method_order: list[str], references: list[dict] = ()):
    """The figure of `metric_plot`, not yet drawn to PNG (the caller closes it)."""
    data = summary[(summary["dataset"] == dataset) & (summary["metric"] == metric)]
    if data.empty:
        return None
    plt = _pyplot()
    methods = [m for m in method_order if m in set(data["method"])] + sorted(set(data["method"]) - set(method_order))
    color = colors(methods)
    rhos = sorted(data["imbalance"].unique())
    arrow = "↓" if data["direction"].iloc[0] == "lower" else "↑"
    refs = [r for r in references if r["dataset"] == dataset and r["metric"] == metric and r["row"] in methods]
    low, high = data["ci_low"].fillna(data["mean"]).min(), data["ci_high"].fillna(data["mean"]).max()
    span = max(high - low, abs(high) * 0.1, 1e-12)
    off_scale = [r for r in refs if not (low - 3 * span <= r["value"] <= high + 3 * span)]
    refs = [r for r in refs if r not in off_scale]  # a far-away paper value would flatten our data to a line
    if len(rhos) == 1:
        fig, ax = plt.subplots(figsize=(5.0, 0.4 * len(methods) + 1.2))
        for i, m in enumerate(methods):
            row = data[data["method"] == m].iloc[0]
            err = [[row["mean"] - row["ci_low"]], [row["ci_high"] - row["mean"]]] if row["n"] > 1 else None
            ax.errorbar([row["mean"]], [i], xerr=err, fmt="o", color=color[m], capsize=3)
        for r in refs:
            ax.plot([r["value"]], [methods.index(r["row"])], "x", color="black", ms=7, label="paper")
        ax.set_yticks(range(len(methods)))
        ax.set_yticklabels(methods)
        ax.invert_yaxis()
        ax.set_xlabel(f"{data['label'].iloc[0]} {arrow}")
        ax.set_title(f"{data['label'].iloc[0]} {arrow} on {dataset}, ρ = {rhos[0]:g}\nmean, 95% interval")  # one line overran the figure
    else:
        fig, ax = plt.subplots(figsize=(5.0, 3.3))
        for m in methods:
            d = data[data["method"] == m].sort_values("imbalance")
            low = (d["mean"] - d["ci_low"]).fillna(0)
            high = (d["ci_high"] - d["mean"]).fillna(0)
            ax.errorbar(d["imbalance"], d["mean"], yerr=[low, high], marker="o", capsize=3, label=m, color=color[m])
        for r in refs:
            ax.plot([r["imbalance"]], [r["value"]], "x", color=color[r["row"]], ms=8, mew=2)
        if rhos[-1] / rhos[0] >= 10:
            ax.set_xscale("log")
        ax.set_xticks(rhos)
        ax.set_xticklabels([f"{r:g}" for r in rhos])
        ax.minorticks_off()
        ax.set_xlabel("imbalance factor ρ")
        ax.set_ylabel(f"{data['label'].iloc[0]} {arrow}")
        ax.set_title(f"{data['label'].iloc[0]} {arrow} on {dataset}\nmean, 95% interval" + (" (× paper)" if refs else ""))
    if off_scale:
        ax.annotate("paper: " + ", ".join(f"{r['row']} {r['value']:.3g}" for r in off_scale) + " (off scale)",
                    xy=(0.01, 0.01), xycoords="axes fraction", fontsize=7, color="#555")  # fmt: skip
    if len(rhos) > 1:  # a line per row: the legend names them (one ρ: the y axis does)
        ax.legend(fontsize=8, ncol=2 if len(methods) > 5 else 1)
    if refs and len(rhos) == 1:
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles[:1], labels[:1], fontsize=8)
    return fig


def loss_plot(logs: dict[str, list[pd.DataFrame]], method_order: list[str]) -> bytes | None:
    """logs: row -> one loss log per seed (columns: step and one per logged term)."""
    methods = [m for m in method_order if logs.get(m)]
    if not methods:
        return None
    plt = _pyplot()
    ncols = min(4, len(methods))
    nrows = math.ceil(len(methods) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.3 * nrows), squeeze=False)
    for ax in axes.flat[len(methods):]:
        ax.set_visible(False)
    for ax, m in zip(axes.flat, methods):
        terms = [c for c in logs[m][0].columns if c != "step"]
        for j, term in enumerate(terms):
            for k, log in enumerate(logs[m]):
                if term in log:
                    ax.plot(log["step"], log[term], color=PALETTE[j % len(PALETTE)], lw=1.2 if k == 0 else 0.6,
                            alpha=1.0 if k == 0 else 0.45, label=term if k == 0 else None)  # fmt: skip
        ax.set_title(m)
        ax.set_xlabel("generator step")
        ax.legend(fontsize=7)
    return _png(fig)


def class_plot(counts: list[int], generated: dict[str, list[float]], fid: dict[str, list[float]],
               method_order: list[str], title: str) -> bytes | None:  # fmt: skip
    """Training share per class (grey) beside each row's generated share; per-class FID below when present."""
    if not counts:
        return None
    plt = _pyplot()
    methods = [m for m in method_order if m in generated]
    color = colors([m for m in method_order])
    fid_methods = [m for m in method_order if m in fid]
    nrows = 2 if fid_methods else 1
    fig, axes = plt.subplots(nrows, 1, figsize=(6.4, 2.6 * nrows), squeeze=False)
    ax = axes[0][0]
    classes = list(range(len(counts)))
    width = 0.8 / (1 + len(methods))
    total = sum(counts) or 1
    ax.bar([c - 0.4 + width / 2 for c in classes], [n / total for n in counts], width, color="#999", label="training data")
    for i, m in enumerate(methods):
        hist = generated[m]
        s = sum(hist) or 1
        ax.bar([c - 0.4 + width * (i + 1.5) for c in classes], [h / s for h in hist], width, color=color[m], label=m)
    ax.set_xticks(classes)
    ax.set_ylabel("share of samples")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    if fid_methods:
        ax = axes[1][0]
        for m in fid_methods:
            values = [math.nan if v is None else v for v in fid[m]]
            ax.plot(classes[: len(values)], values, marker="o", color=color[m], label=m)
        ax.set_xticks(classes)
        ax.set_xlabel("class (0 = most frequent)")
        ax.set_ylabel("per-class FID ↓")
        ax.legend(fontsize=7, ncol=2)
    else:
        ax.set_xlabel("class (0 = most frequent)")
    return _png(fig)


def _inputs_json(obj):
    """What JSON cannot write of a figure's inputs: a frame as its CSV, a NumPy scalar as its value."""
    if isinstance(obj, pd.DataFrame):
        return obj.to_csv(index=False)
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:
        return obj.item()
    raise TypeError(f"a figure input of type {type(obj).__name__} has no key")


class FigureCache:
    """PNG bytes by a hash of (this file, matplotlib's version, the figure's name and inputs), kept in
    `folder`. `prune` removes the figures the current report did not ask for, so the folder holds one
    report's figures."""

    _code: str | None = None

    def __init__(self, folder: Path):
        self.folder = folder
        self.used: set[str] = set()

    @classmethod
    def _code_key(cls) -> str:
        if cls._code is None:
            from importlib.metadata import PackageNotFoundError, version

            try:
                mpl = version("matplotlib")
            except PackageNotFoundError:
                mpl = "?"
            cls._code = hashlib.sha256(Path(__file__).read_bytes() + mpl.encode()).hexdigest()
        return cls._code

    def png(self, name: str, inputs, draw: Callable[[], bytes | None]) -> bytes | None:
        """The figure `draw()` makes from `inputs` (anything JSON can write; DataFrames as CSV):
        read back when these inputs were drawn before, else drawn and kept."""
        text = json.dumps([self._code_key(), name, inputs], sort_keys=True, default=_inputs_json)
        key = hashlib.sha256(text.encode()).hexdigest()[:32]
        self.used.add(key)
        path = self.folder / f"{key}.png"
        try:
            return path.read_bytes()
        except OSError:
            pass
        png = draw()
        if png is not None:
            from bench.store import atomic_write

            try:
                atomic_write(path, png)
            except OSError:
                pass  # a folder that cannot be written costs the redrawing next time, not the report
        return png

    def prune(self) -> None:
        try:
            names = os.listdir(self.folder)
        except OSError:
            return
        for name in names:
            if name.endswith(".png") and not name.startswith(".") and name[:-4] not in self.used:  # not others' temp files
                try:
                    os.unlink(self.folder / name)
                except OSError:
                    pass
