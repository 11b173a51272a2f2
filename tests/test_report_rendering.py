"""What the report writes, on hand-made cells (no training): intervals cut at a metric's bounds,
the same bold in every format, legends, a note for every undefined metric, and LaTeX that compiles
and fits the page at any width."""

import math

import pandas as pd
import pytest

from bench.report.build import undefined_metric_notes
from bench.report.frame import clip_interval, summary_frame
from bench.report.latex import to_latex
from bench.report.plots import metric_figure
from bench.report.tables import entry_text, is_marked, method_lines, metric_tables, to_markdown
from conftest import compile_latex

METHODS = ["gan", "lsgan", "wgan-gp", "sngan+pa+adaptivemix"]


def _cells(datasets=("ring", "grid"), rhos=(1, 10, 100), metrics=("modes_covered", "high_quality", "mode_kl")):
    """Seeds 0..2 of every row: modes covered 0, 0, 1 for gan (a t interval that crosses 0)."""
    rows = []
    for d in datasets:
        for r in rhos:
            for i, m in enumerate(METHODS):
                for seed in range(3):
                    row = {"id": f"{m}-{d}-{r}-{seed}", "method": m, "dataset": d, "imbalance": r, "seed": seed,
                           "status": "done"}  # fmt: skip
                    for metric in metrics:
                        row[f"metric:{metric}"] = {"modes_covered": [0.0, 0.0, 1.0][seed] + 2 * i,
                                                   "high_quality": 99.0 + seed * 0.5 if i else 1.0 + seed,
                                                   "mode_kl": 0.01 * seed + 0.3 * i}[metric]  # fmt: skip
                    rows.append(row)
    return pd.DataFrame(rows)


def _tables(cells):
    summary = summary_frame(cells)
    return summary, metric_tables(summary, cells, METHODS, ["ring", "grid"], ["modes_covered", "high_quality", "mode_kl"])


def test_an_interval_never_crosses_the_metrics_bound():
    assert clip_interval(-1.1, 1.8, [0.0, None]) == (0.0, 1.8, True)
    assert clip_interval(98.0, 101.0, (0.0, 100.0)) == (98.0, 100.0, True)
    assert clip_interval(1.0, 2.0, (0.0, None)) == (1.0, 2.0, False)
    low, high, clipped = clip_interval(math.nan, math.nan, (0.0, None))  # one seed: no interval to cut
    assert math.isnan(low) and not clipped
    summary, tables = _tables(_cells())
    gan = summary[(summary["method"] == "gan") & (summary["metric"] == "modes_covered")].iloc[0]
    assert gan["mean"] == pytest.approx(1 / 3) and gan["ci_low"] == 0.0 and gan["clipped"]
    assert (summary["ci_low"] >= 0).all() and (summary[summary["metric"] == "high_quality"]["ci_high"] <= 100).all()
    modes = tables[0]
    assert entry_text(modes, "gan", ("ring", 1)) == "0.333 [0, 1.77] (3)"  # not "0.333 ± 1.43"
    assert entry_text(modes, "lsgan", ("ring", 1)).startswith("2.33 ± ")
    lines = method_lines(tables)
    assert any("cut at the bound and printed as [low, high]" in ln and "modes covered" in ln for ln in lines)
    assert "[0, 1.77]" in to_markdown(tables) and r"0.333\,[0, 1.77]" in to_latex(tables)


def test_bold_means_the_same_in_markdown_and_latex():
    _, tables = _tables(_cells())
    md, tex = to_markdown(tables), to_latex(tables)
    marked = sum(is_marked(t, m, c) for t in tables for m in t["rows"] for c in t["columns"] if c in t["rows"][m])
    assert 0 < marked == md.count("**") // 2 == tex.count(r"\mathbf{")
    assert "not significantly worse than the column's best" in tex and r"\underline" not in tex
    combined = to_latex(tables, combined=True)
    assert combined.count(r"\mathbf{") == marked


def test_every_multi_row_plot_has_a_legend():
    summary, _ = _tables(_cells())
    fig = metric_figure(summary, "ring", "modes_covered", METHODS)
    ax = fig.axes[0]
    assert ax.get_legend() is not None
    assert [t.get_text() for t in ax.get_legend().get_texts()] == METHODS
    assert ax.get_ylim()[0] >= -0.5  # the axis follows the cut intervals, not a symmetric one below 0
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_a_metric_undefined_in_some_cells_is_named_with_its_reason():
    # Records as the record index keeps them: no config (the sweep's own), the reasons kept.
    records = [{"id": f"c{i}", "status": "done",
                "metrics": {"fid_head": float("nan") if i < 2 else 3.0, "classifier_fid": 1.0},
                "evaluator": {"unavailable": {"fid_head": "classes [1, 2, 4] have fewer than 10 samples"}} if i < 2 else {}}
               for i in range(5)]  # fmt: skip
    records.append({"id": "c5", "status": "done", "metrics": {}})
    configs = {f"c{i}": {"metrics": ["fid_head", "classifier_fid"]} for i in range(5)} | {"c5": {"metrics": ["fid_head"]}}
    (line,) = undefined_metric_notes(records, configs, ["fid_head", "classifier_fid"])
    assert line.startswith("Undefined: head FID (classifier) (`fid_head`) in 3 of 6 finished cells")
    assert "classes [1, 2, 4] have fewer than 10 samples (2 cells)" in line and "no reason recorded (1 cell)" in line


@pytest.mark.parametrize("combined", [False, True])
def test_latex_compiles_and_fits_a_page_at_any_width(pdflatex, tmp_path, combined):
    """25 columns and more: split into parts that fit; a '%' in a label (escaped once) compiles."""
    cells = _cells(datasets=("ring", "grid", "circle"), rhos=(1, 2, 5, 10, 20, 50, 100, 200))
    _, tables = _tables(cells)
    tex = to_latex(tables, combined=combined)
    assert r"\%" in tex and r"\\%" not in tex
    path = tmp_path / "board.tex"
    path.write_text(tex)
    compile_latex(pdflatex, path, tmp_path)
    assert "(part 2 of" in tex


def test_a_count_of_modes_is_cut_at_the_data_sets_modes_its_records_give():
    """Issue 22: "5.67 [0, 11.4]" modes covered on the 8-mode ring. The metric records the bound
    (evaluator.bounds), cells.csv carries it (`max:`), the interval stops there."""
    import torch

    from bench.metrics.base import EvalContext
    from bench.registry import DATASETS, METRICS

    ring = DATASETS.get("ring")()
    ctx = EvalContext(dataset=ring, fake=torch.as_tensor(ring.centres(), dtype=torch.float32), reference=None,
                      device=torch.device("cpu"))  # fmt: skip
    assert METRICS.get("modes_covered")().compute(ctx) == 8.0
    assert METRICS.get("modes_recovered")().compute(ctx) == 8.0
    assert ctx.info["bounds"] == {"modes_covered": [0.0, 8.0], "modes_recovered": [0.0, 8.0]}

    cells = pd.DataFrame([{"id": f"c{seed}", "method": "gan", "dataset": "ring", "imbalance": 1, "seed": seed,
                           "status": "done", "metric:modes_covered": value, "max:modes_covered": 8.0}
                          for seed, value in enumerate([8.0, 8.0, 5.0])])  # fmt: skip
    row = summary_frame(cells).iloc[0]
    assert row["ci_high"] == 8.0 and row["clipped"] and row["ci_low"] > 0
    assert summary_frame(cells.drop(columns="max:modes_covered")).iloc[0]["ci_high"] > 8  # records from before it


def test_a_record_with_malformed_bounds_is_damaged():
    from bench.store import shape_problem

    good = {"id": "0123456789ab", "status": "done", "evaluator": {"bounds": {"modes_covered": [0.0, 8.0]}}}
    assert shape_problem("result.json", good) is None
    for bad in ({"modes_covered": "8"}, {"modes_covered": [0, "8"]}, [0, 8]):
        assert "evaluator.bounds" in shape_problem("result.json", {**good, "evaluator": {"bounds": bad}})
