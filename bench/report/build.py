"""Build results/<sweep>/: leaderboard.md, .html, .csv, .tex, cells.csv, <dataset>.png."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

from bench.report.frame import cells_frame, summary_frame
from bench.report.html import to_html
from bench.report.plots import plot_dataset
from bench.report.tables import metric_tables, to_latex, to_markdown
from bench.spec import Sweep
from bench.store import Store, atomic_write


def write_report(sweep: Sweep, store: Store) -> dict:
    """Write the report of every result that exists; returns paths and counts."""
    ids = {c["id"] for c in sweep.cells}
    all_records = store.records()
    records = [r for r in all_records if r["id"] in ids]
    stale = len(all_records) - len(records)
    cells = cells_frame(records)
    summary = summary_frame(cells)
    method_order = list(dict.fromkeys(c["config"]["method"] for c in sweep.cells))
    dataset_order = list(dict.fromkeys(c["config"]["dataset"] for c in sweep.cells))
    metric_order = list(dict.fromkeys(m for c in sweep.cells for m in c["config"]["metrics"]))
    tables = metric_tables(summary, method_order, dataset_order, metric_order)

    status = Counter(r["status"] for r in records)
    missing = len(ids) - len(records)
    out = store.report_dir
    out.mkdir(parents=True, exist_ok=True)

    summary_lines = [sweep.description.strip()] if sweep.description else []
    summary_lines.append(
        f"{len(ids)} cells: {status['done']} done, {status['diverged']} diverged, {status['failed']} failed, "
        f"{missing} missing (not yet run or still running)."
    )
    if stale:
        summary_lines.append(f"{stale} results of cells no longer in the sweep file are left out.")
    summary_lines.append("Entries: mean ± std over training seeds (number of seeds); best per column in bold.")
    plots = []
    for dataset in dataset_order:
        headline = next((c["config"]["metrics"][0] for c in sweep.cells if c["config"]["dataset"] == dataset), None)
        png = out / f"{dataset}.png"
        if headline and _atomic_plot(summary, dataset, headline, method_order, png):
            plots.append(png)
    title = f"Leaderboard: {sweep.name}"
    markdown = [f"# {title}", "", *(line + "\n" for line in summary_lines)]
    markdown.append(to_markdown(tables) if tables else "No finished cells yet.\n")
    markdown += [f"![{p.stem}]({p.name})" for p in plots]
    atomic_write(out / "leaderboard.md", "\n".join(markdown) + "\n")
    atomic_write(out / "leaderboard.html", to_html(title, summary_lines, tables, [p.name for p in plots]))
    atomic_write(out / "leaderboard.csv", summary.to_csv(index=False))
    atomic_write(out / "leaderboard.tex", to_latex(tables))
    atomic_write(out / "cells.csv", cells.to_csv(index=False))
    return {"dir": out, "leaderboard": out / "leaderboard.md", "plots": plots, "status": dict(status),
            "missing": missing, "total": len(ids)}  # fmt: skip


def _atomic_plot(summary, dataset, metric, method_order, path: Path) -> bool:
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        tmp = Path(scratch) / path.name
        if not plot_dataset(summary, dataset, metric, method_order, tmp):
            return False
        atomic_write(path, tmp.read_bytes())  # with the process's umask, as every file of the store
        return True
