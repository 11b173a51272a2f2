"""Build results/<sweep>/: leaderboard.md, .html, .csv, .tex, cells.csv, <dataset>.png.

Reads every record of the sweep's current cells (records of cells no longer
in the sweep file are counted and left out) and whatever each cell folder
holds (samples.png, losses.csv). Works on records written before the
device, step-count and eval_repeats fields existed.
"""

from __future__ import annotations

import io
import math
import os
from collections import Counter
from pathlib import Path

import pandas as pd

from bench.registry import DATASETS, METRICS
from bench.report import archive, cost, plots
from bench.report.frame import cells_frame, device_of, metric_columns, row_names, summary_frame, upstream_note
from bench.report.html import data_uri, render
from bench.report.latex import to_latex
from bench.report.references import applicable, compare_references, unmatched_text
from bench.report.tables import eval_spread_rows, fmt, markdown_table, method_lines, metric_tables, ordered, to_markdown
from bench.record_index import stat_key
from bench.spec import Sweep
from bench.store import BLOCKED, Damaged, Store, atomic_write, read_bounded

STATUSES = ("done", "trained", "diverged", "failed", "corrupt")


def cell_file(store: Store, record: dict, name: str) -> Path | None:
    """A file a cell wrote (samples.png, losses.csv), wherever the store keeps it; None if absent.

    Looked up in the record's own `files` map (paths relative to the cell
    folder), the training run's folder when the store has one
    (`Store.training_dir`), then the cell folder. A record is untrusted: a
    path that leads out of the sweep's folder (absolute, `..`, a link) is
    never taken, and the file is read later through `bench.store.open_regular`.
    """
    folder = store.cell_dir(record["id"])
    candidates = []
    if isinstance((record.get("files") or {}).get(name), str):
        candidates.append(folder / record["files"][name])
    if hasattr(store, "training_dir") and record.get("training_id"):
        candidates.append(Path(store.training_dir(record["training_id"])) / name)
    candidates.append(folder / name)
    found = next((p for p in candidates if _inside(p, store.runs_dir) and p.is_file()), None)
    return found or archive.archived_file(store.report_dir, record["id"], name)


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path`, links and `..` resolved, stays inside `folder` and is no link itself."""
    try:
        return not path.is_symlink() and path.resolve().is_relative_to(Path(folder).resolve())
    except (OSError, ValueError, RuntimeError):
        return False


def _cell_bytes(path: Path | None, limit: int = 64 << 20) -> bytes | None:
    """A cell's file (from `cell_file`) read safely; None if it cannot be (its cell is shown without it)."""
    if path is None:
        return None
    try:
        return read_bounded(path, limit)
    except (Damaged, OSError):
        return None


def write_report(sweep: Sweep, store: Store, latex: str = "per-metric", replace: bool = False) -> dict:
    """Write the report of every result that exists; returns paths and counts. Unless `replace`,
    a report that would drop finished cells of the one it replaces is refused (archive.check_nothing_lost)."""
    configs = {c["id"]: c["config"] for c in sweep.cells}
    all_records = store.records()
    records = [r for r in all_records if r.get("id") in configs]
    stale = len(all_records) - len(records)
    # A cell without a record in the runs (a fresh clone: runs are not in git) reads the report's own copy.
    recorded = {r["id"] for r in records}
    # A damaged record in the runs stays the cell's truth (`corrupt`); only an absent one reads the copy.
    present = {i for i in configs if i in recorded or os.path.lexists(store.cell_dir(i) / "result.json")}
    records += archive.archived_records(store.report_dir, [i for i in configs if i not in present])
    records.sort(key=lambda r: r["id"])
    if not replace:
        archive.check_nothing_lost(store.report_dir, sweep.name, configs,
                                   {r["id"] for r in records if r.get("status") == "done"} | present)  # fmt: skip
    rows = row_names(sweep.cells)
    cells = cells_frame(records, configs, rows)
    summary = summary_frame(cells)
    method_order = list(dict.fromkeys(rows[c["id"]] for c in sweep.cells))
    dataset_order = list(dict.fromkeys(c["dataset"] for c in configs.values()))
    metric_order = list(dict.fromkeys(m for c in configs.values() for m in c["metrics"]))
    tables = metric_tables(summary, cells, method_order, dataset_order, metric_order)
    costs = cost.cost_rows(cells, method_order, dataset_order)
    total = cost.sweep_total(cells)
    refs, other_budget_refs = applicable(sweep.references, sweep.budget)
    matched, unmatched = compare_references(refs, summary)
    reference_notes = unmatched_text(unmatched, other_budget_refs)

    status = Counter(r.get("status", "failed") for r in records)
    missing = len(configs) - len(records)
    # Of the missing, those waiting for an upstream training run (Method.needs) that has not trained.
    recorded = {r["id"] for r in records}
    blocked = sum(1 for c in sweep.cells if c["id"] not in recorded and c["config"].get("upstream")
                  and store.state(c)[0] == BLOCKED)  # fmt: skip
    out = store.report_dir
    out.mkdir(parents=True, exist_ok=True)
    figures = plots.FigureCache(out / ".figures")

    intro = [sweep.description.strip()] if sweep.description else []
    counts = f"{len(configs)} cells: " + ", ".join(f"{status[s]} {s}" for s in STATUSES if status[s] or s in ("done", "diverged", "failed"))
    counts += f", {missing} missing (not yet run or still running"
    counts += f"; {blocked} of them blocked: a training run they need has not trained)." if blocked else ")."
    if stale:
        counts += f" {stale} results of cells no longer in the sweep file are left out."
    how = method_lines(tables) + undefined_metric_notes(records, configs, metric_order) + upstream_note(sweep.cells)
    how += cost.budget_notes(costs) + [f"Cost: {cost.total_text(total)}."]
    if sweep.budget:
        intro.append(f"Budget profile: {sweep.budget}.")

    plot_files = _dataset_plots(figures, summary, sweep, dataset_order, method_order, matched, out)
    markdown = [f"# Leaderboard: {sweep.name}", "", *(line + "\n" for line in intro), counts + "\n", *(line + "\n" for line in how)]
    markdown.append(to_markdown(tables) if tables else "No finished cells yet.\n")
    markdown += _markdown_extras(costs, matched, reference_notes, eval_spread_rows(tables))
    markdown += _class_tables(cells, {r["id"]: r for r in records}, method_order, dataset_order)
    markdown += [f"![{p.stem}]({p.name})" for p in plot_files]
    atomic_write(out / "leaderboard.md", "\n".join(markdown) + "\n")

    shown: dict[str, dict[str, Path]] = {}  # the files the page shows, by cell: they go into records/ too
    page = _page(figures, sweep, store, records, cells, summary, tables, costs, total, matched, reference_notes, intro,
                 how, status, missing, blocked, method_order, dataset_order, shown)  # fmt: skip
    atomic_write(out / "leaderboard.html", render(page))
    atomic_write(out / "leaderboard.csv", summary.to_csv(index=False))
    atomic_write(out / "leaderboard.tex", to_latex(tables, combined=latex == "combined"))
    atomic_write(out / "cells.csv", cells.to_csv(index=False))
    archive.update(out, {i: store.cell_dir(i) / "result.json" for i in configs}, shown)
    _remove_stale_plots(out, dataset_order, plot_files)
    figures.prune()
    return {"dir": out, "leaderboard": out / "leaderboard.md", "page": out / "leaderboard.html", "plots": plot_files,
            "status": dict(status), "missing": missing, "blocked": blocked, "total": len(configs)}  # fmt: skip


def undefined_metric_notes(records: list[dict], configs: dict[str, dict], metric_order: list[str]) -> list[str]:
    """A line per metric the sweep asked for that some finished cells could not score (NaN, or absent):
    how many, and why, from the reasons the metrics recorded (`evaluator.unavailable`). Such cells
    are left out of that metric's means, and a metric undefined everywhere has no table at all."""
    done = [r for r in records if r.get("status") == "done"]
    lines = []
    for metric in metric_order:
        asked = [r for r in done if metric in ((configs.get(r["id"]) or r.get("config") or {}).get("metrics") or ())]
        reasons: Counter = Counter()
        for r in asked:
            value = (r.get("metrics") or {}).get(metric) if isinstance(r.get("metrics"), dict) else None
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                continue
            why = ((r.get("evaluator") or {}).get("unavailable") or {}) if isinstance(r.get("evaluator"), dict) else {}
            reason = why.get(metric) if isinstance(why, dict) else None
            reasons[str(reason)[:300] if reason else "no reason recorded"] += 1
        if reasons:
            count = sum(reasons.values())
            why = "; ".join(f"{reason} ({n} cell{'s' * (n != 1)})" if len(reasons) > 1 else reason
                            for reason, n in reasons.most_common())  # fmt: skip
            lines.append(f"Undefined: {METRICS.fact(metric, 'label')} (`{metric}`) in {count} of {len(asked)} finished "
                         f"cells, left out of its means: {why}.")  # fmt: skip
    return lines


def _remove_stale_plots(out: Path, datasets: list[str], written: list[Path]) -> None:
    """<dataset>.png of a dataset that has no plot now (no finished cells): an old picture would contradict
    the tables beside it."""
    for dataset in datasets:
        path = out / f"{dataset}.png"
        if path not in written and path.is_file() and not path.is_symlink():
            path.unlink()


def _metric_png(figures: plots.FigureCache, summary, dataset: str, metric: str, method_order, matched) -> bytes | None:
    data = summary[(summary["dataset"] == dataset) & (summary["metric"] == metric)]
    if data.empty:
        return None
    refs = [r for r in matched if r["dataset"] == dataset and r["metric"] == metric]
    return figures.png("metric", [dataset, metric, data, method_order, refs],
                       lambda: plots.metric_plot(data, dataset, metric, method_order, refs))  # fmt: skip


def _dataset_plots(figures, summary, sweep, dataset_order, method_order, matched, out: Path) -> list[Path]:
    """One <dataset>.png for the Markdown: the dataset's first metric against ρ, with intervals."""
    written = []
    headlines = {}
    for cell in sweep.cells:
        headlines.setdefault(cell["config"]["dataset"], cell["config"]["metrics"][0])
    for dataset in dataset_order:
        headline = headlines.get(dataset)
        png = _metric_png(figures, summary, dataset, headline, method_order, matched) if headline else None
        if png:
            atomic_write(out / f"{dataset}.png", png)
            written.append(out / f"{dataset}.png")
    return written


def _markdown_extras(costs, matched, reference_notes, spread) -> list[str]:
    parts = []
    if costs:
        parts.append("### Budget and cost\n")
        parts.append(markdown_table(
            ["dataset", "method", "G steps", "D steps / G step", "train / cell", "eval / cell", "cells", "device"],
            [[r["dataset"], r["method"], r["g_steps"], r["d_per_g"] + ("" if r["counted"] else "*"), cost.seconds(r["train_s"]),
              cost.seconds(r["eval_s"]), str(r["n"]), r["device"]] for r in costs]))  # fmt: skip
    if matched or reference_notes:
        parts.append("### What the papers printed\n")
        if matched:
            parts.append(markdown_table(
                ["row", "dataset", "ρ", "metric", "paper", "ours (95% interval)", "ours − paper", "", "source"],
                [[r["row"], r["dataset"], f"{r['imbalance']:g}", r["metric"], fmt(r["value"]),
                  f"{fmt(r['mean'])} [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]" if r["has_interval"] else f"{fmt(r['mean'])} (n={r['n']})",
                  f"{r['diff']:+.3g}", "⚠ outside our interval" if r["outside"] else "", r["source"]] for r in matched]))  # fmt: skip
        parts += [line + "\n" for line in reference_notes]
    if spread:
        parts.append("### Evaluation spread (seed sd vs evaluation sd)\n")
        parts.append(markdown_table(["metric", "method", "column", "seed sd", "evaluation sd", "k", "seeds"],
                                    [[r["metric"], r["method"], r["column"], fmt(r["seed_sd"]), fmt(r["eval_sd"]),
                                      str(r["k"]), str(r["n"])] for r in spread]))  # fmt: skip
    return parts


def _page(figures, sweep, store, records, cells, summary, tables, costs, total, matched, reference_notes, intro, how, status,
          missing, blocked, method_order, dataset_order, shown: dict) -> dict:  # fmt: skip
    by_id = {r["id"]: r for r in records}
    links = archive.FOLDER  # cell links: records/<id>.json, the report's own copy (bench/report/archive.py)
    done = cells[cells["status"] == "done"].sort_values(["seed"])
    datasets = []
    for dataset in ordered(cells["dataset"].unique(), dataset_order):
        d_cells = done[done["dataset"] == dataset]
        columns = sorted({c for t in tables for c in t["columns"] if c[0] == dataset}, key=lambda c: c[1])
        d_tables = [t for t in tables if any(c[0] == dataset for c in t["columns"])]
        metrics = [t["metric"] for t in d_tables]
        plot_uris = [(m, data_uri(png)) for m in metrics
                     if (png := _metric_png(figures, summary, dataset, m, method_order, matched))]  # fmt: skip
        samples, logs = [], {}
        for method in ordered(d_cells["method"].unique(), method_order):
            m_cells = d_cells[d_cells["method"] == method]
            for rho, group in m_cells.groupby("imbalance", sort=True):
                first = by_id[group.iloc[0]["id"]]
                picture = cell_file(store, first, "samples.png")
                if picture:
                    shown.setdefault(first["id"], {})["samples.png"] = picture
                samples.append({"method": method, "imbalance": rho, "seed": int(group.iloc[0]["seed"]),
                                "uri": data_uri(png) if (png := _cell_bytes(picture)) else None,
                                "link": f"{links}/{first['id']}.json"})  # fmt: skip
            # Loss curves of the row at its largest ρ (the hardest setting), every seed.
            hardest = m_cells[m_cells["imbalance"] == m_cells["imbalance"].max()]
            logs[method] = []
            for cid in hardest["id"]:
                if path := cell_file(store, by_id[cid], "losses.csv"):
                    shown.setdefault(cid, {})["losses.csv"] = path
                    logs[method].append(str(path))
        loss_png = _loss_png(figures, logs, ordered(logs, method_order))
        datasets.append({"name": dataset, "columns": columns, "tables": d_tables, "plots": plot_uris,
                         "cost": [r for r in costs if r["dataset"] == dataset],
                         "budget_notes": [n for n in cost.budget_notes([r for r in costs if r["dataset"] == dataset])],
                         "samples": samples, "pixelated": DATASETS.fact(dataset, "kind") == "images", "loss_plot": data_uri(loss_png) if loss_png else None,
                         "class_plots": _class_plots(figures, d_cells, by_id, method_order, dataset)})  # fmt: skip
    columns = ["id", "method", "dataset", "imbalance", "seed", "status", "train_s", "eval_s", "device_name"]
    cell_rows = [{"id": i, "method": m, "dataset": d, "imbalance": rho, "seed": seed, "status": st, "train_s": tr,
                  "eval_s": ev, "device": dev, "link": f"{links}/{i}.json", "metrics": by_id[i].get("metrics") or {}}
                 for i, m, d, rho, seed, st, tr, ev, dev in zip(*(cells[c].tolist() for c in columns))]  # fmt: skip
    chips = [("done" if s == "done" else "bad" if s in ("failed", "corrupt", "diverged") else "", f"{status[s]} {s}")
             for s in STATUSES if status[s]] + [("", f"{missing} missing")] * bool(missing)  # fmt: skip
    chips += [("bad", f"{blocked} blocked")] * bool(blocked)
    chips.append(("", f"compute: {cost.seconds(total['total'])}"))
    return {"title": f"Leaderboard: {sweep.name}", "intro": intro, "how": how, "chips": chips, "datasets": datasets,
            "references": matched, "reference_notes": reference_notes,
            "papers_present": bool(matched or reference_notes), "eval_spread": eval_spread_rows(tables),
            "total": f"The sweep so far: {cost.total_text(total)}.", "environment": _environment(records),
            "cells": sorted(cell_rows, key=lambda c: (_index(dataset_order, c["dataset"]), _index(method_order, c["method"]),
                                                     c["imbalance"], c["seed"])),
            "metrics": metric_columns(cells)}  # fmt: skip


def _index(order: list, value) -> int:
    return order.index(value) if value in order else len(order)


def _loss_png(figures: plots.FigureCache, logs: dict[str, list[str]], method_order: list[str]) -> bytes | None:
    """The loss curves of each row (logs: row -> its losses.csv files), drawn again only when a file changed."""
    files = {m: [[path, stat_key(path)] for path in paths] for m, paths in logs.items()}

    def draw():
        frames = {m: [log for path in paths if (log := _loss_log(path)) is not None] for m, paths in logs.items()}
        return plots.loss_plot(frames, method_order)

    return figures.png("losses", [files, method_order], draw) if any(logs.values()) else None


def _loss_log(path: str) -> pd.DataFrame | None:
    data = _cell_bytes(Path(path))
    try:
        log = pd.read_csv(io.BytesIO(data or b""))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return None  # a damaged log costs its curve, not the report
    if "step" not in log.columns:
        return None
    log = log.apply(pd.to_numeric, errors="coerce").dropna(subset=["step"])  # words in a damaged log: not a curve
    log = log.loc[:, log.notna().any()]
    return log if len(log) and len(log.columns) > 1 else None


def _per_class(d_cells: pd.DataFrame, by_id: dict):
    """Per ρ of one dataset's done cells: (ρ, training class counts, {method: mean generated
    histogram}, {method: mean per-class classifier FID}), means over seeds; class data only."""
    for rho, group in d_cells.groupby("imbalance", sort=True):
        recs = [by_id[cid] for cid in group["id"]]
        counts = next(((r.get("data") or {}).get("class_counts") for r in recs
                       if (r.get("data") or {}).get("counts_of", "classes") == "classes"), None)  # fmt: skip
        generated, fid = {}, {}
        for r, method in zip(recs, group["method"]):
            per_class = (r.get("evaluator") or {}).get("per_class") or {}
            if per_class.get("generated") and method:
                generated.setdefault(method, []).append(per_class["generated"])
            if per_class.get("fid_classifier") and method:
                fid.setdefault(method, []).append(per_class["fid_classifier"])
        if counts:
            yield rho, counts, {m: _mean_lists(v) for m, v in generated.items()}, {m: _mean_lists(v) for m, v in fid.items()}


def _class_plots(figures, d_cells: pd.DataFrame, by_id: dict, method_order: list[str], dataset: str) -> list[tuple[str, str]]:
    """Per ρ: training class counts beside each row's generated histogram (and per-class FID), for class data."""
    out = []
    for rho, counts, generated, fid in _per_class(d_cells, by_id):
        long_tailed = max(counts) > 1.5 * max(min(counts), 1)
        if not (long_tailed or generated):
            continue
        title = f"{dataset}, ρ = {rho:g}: class shares (mean over seeds)"
        png = figures.png("classes", [counts, generated, fid, method_order, title],
                          lambda: plots.class_plot(counts, generated, fid, method_order, title))  # fmt: skip
        if png:
            out.append((f"{dataset} ρ={rho:g} per class", data_uri(png)))
    return out


def _class_tables(cells: pd.DataFrame, by_id: dict, method_order: list[str], dataset_order: list[str]) -> list[str]:
    """Markdown: per dataset and ρ, each row's share of generated samples and FID (classifier space) per class,
    means over seeds, beside the training counts: where the minority classes stand."""
    parts = []
    done = cells[cells["status"] == "done"]
    for dataset in ordered(done["dataset"].unique(), dataset_order):
        for rho, counts, generated, fid in _per_class(done[done["dataset"] == dataset], by_id):
            if not generated:
                continue
            header = ["row"] + [f"class {c}" for c in range(len(counts))]
            rows = [["training share"] + [f"{n / sum(counts):.1%}" for n in counts]]
            for method in ordered(generated, method_order):
                hist, fids = generated[method], fid.get(method, [])
                rows.append([method] + [f"{h / (sum(hist) or 1):.1%}" + (f" / {fmt(fids[c])}" if c < len(fids) else "")
                                        for c, h in enumerate(hist)])  # fmt: skip
            parts.append(f"### {dataset}, ρ = {rho:g}: per class (generated share / FID in classifier space; "
                         "a class with too few samples has no FID)\n")  # fmt: skip
            parts.append(markdown_table(header, rows))
    return parts


def _mean_lists(lists: list[list]) -> list[float]:
    width = max(len(v) for v in lists)
    out = []
    for i in range(width):
        vals = [v[i] for v in lists if i < len(v) and isinstance(v[i], (int, float)) and math.isfinite(v[i])]
        out.append(sum(vals) / len(vals) if vals else math.nan)
    return out


def _environment(records: list[dict]) -> dict:
    """Distinct values of what ran the cells: commit, versions, devices, hosts (with counts when they differ)."""
    fields = {"git commit": ("git_commit",), "ganbench": ("ganbench",), "python": ("python",), "torch": ("torch",),
              "numpy": ("numpy",), "CUDA": ("cuda",), "host": ("host",)}  # fmt: skip
    env = {}
    for label, (key,) in fields.items():
        values = Counter(str((r.get("environment") or {}).get(key)) for r in records if (r.get("environment") or {}).get(key))
        if values:
            env[label] = _counted(values)
    devices = Counter(" · ".join(dict.fromkeys(device_of(r))) for r in records)
    if devices:
        env["device"] = _counted(devices)
    finished = sorted(r["finished_at"] for r in records if r.get("finished_at"))
    if finished:
        env["finished"] = f"{finished[0]} … {finished[-1]}" if len(finished) > 1 else finished[0]
    return env or {"records": "none yet"}


def _counted(values: Counter) -> str:
    if len(values) == 1:
        return next(iter(values))
    return "; ".join(f"{v} ({n} cells)" for v, n in values.most_common())
