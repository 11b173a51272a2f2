"""The report end to end: a small real sweep through the CLI, then report, compare and the page in Chromium.

digits × {gan, lsgan} × ρ {1, 10} × 2 seeds, plus one wgan-gp cell with a
single seed (so one column cannot be marked), at a few training steps.
The sweep's `reference:` holds a value far from ours (flagged), one for a
dataset not in the sweep, and one for the `paper` budget only.
"""

import json
import math
import re
import shutil

import pandas as pd
import pytest

from bench.report import write_report
from bench.report.cost import seconds
from bench.spec import load_sweep
from bench.store import Store
from conftest import ganbench
from report_browser import Browser, find_chromium

SWEEP = """
name: rep
description: Report test sweep.
matrix:
  method: [gan, lsgan]
  dataset: [digits]
  imbalance: [1, 10]
  seed: [0, 1]
include:
  - {method: wgan-gp, dataset: digits, imbalance: 10, seed: 0}
defaults:
  budget: {steps: 12, batch_size: 32, eval_samples: 200}
  arch: {width: 8}
  log_every: 4
  checkpoint_every: 12
budgets:
  paper: {defaults: {budget: {steps: 24}}}
executor: {name: local, workers: 2, cells_per_job: 3}
reference:
  - {row: gan, dataset: digits, imbalance: 1, metric: classifier_fid, value: 1.0e+6, source: "A far-away number, Table 9"}
  - {row: gan, dataset: cifar10, imbalance: 1, metric: classifier_fid, value: 20.0, source: "not in this sweep"}
  - {row: lsgan, dataset: digits, imbalance: 10, metric: classifier_fid, value: 5.0, budget: paper, source: "paper budget only"}
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    root = tmp_path_factory.mktemp("rep")
    (root / "rep.yaml").write_text(SWEEP)
    ganbench("sweep", "rep.yaml", "--no-report", cwd=root, check=0)
    return root


def _report(root, **options) -> str:
    """The report in this process (one torch import for the module, not one per call); returns the Markdown."""
    sweep = load_sweep(root / "rep.yaml")
    write_report(sweep, Store(root / "results", sweep.name), **options)
    return (root / "results/rep/leaderboard.md").read_text()


def _records(root):
    return [json.loads(p.read_text()) for p in sorted((root / "results/runs/rep").glob("*/result.json"))]


def test_tables_state_interval_test_and_unmarked_columns(swept):
    ganbench("report", "rep.yaml", cwd=swept, check=0)
    out = swept / "results/rep"
    md = (out / "leaderboard.md").read_text()
    assert "95% Student-t interval over training seeds" in md and "Holm-corrected within the column" in md
    # wgan-gp has one seed at ρ=10: that column is not marked, and the table says why
    assert "Not marked (digits ρ=10)" in md and "fewer than 2 seeds" in md
    rho10 = [line for line in md.splitlines() if line.startswith("| wgan-gp |")][0]
    assert "**" not in rho10 and rho10.rstrip(" |").endswith("(1)")
    # ρ = 1 has 2 seeds per row: the best row is bold there
    table = md.split("### FID (classifier)")[1].split("###")[0]
    assert any(line.split("|")[2].strip().startswith("**") for line in table.splitlines() if line.startswith("| gan") or line.startswith("| lsgan"))

    # the numbers are the records' numbers: mean and the t-interval by hand
    summary = pd.read_csv(out / "leaderboard.csv")
    recs = [r for r in _records(swept) if r["config"]["method"] == "gan" and r["config"]["imbalance"] == 1]
    values = [r["metrics"]["classifier_fid"] for r in recs]
    row = summary[(summary.method == "gan") & (summary.imbalance == 1) & (summary.metric == "classifier_fid")].iloc[0]
    half = 12.706204736174707 * abs(values[0] - values[1]) / math.sqrt(2) / math.sqrt(2)  # t(0.975, 1) * s / sqrt(n)
    assert row["mean"] == pytest.approx(sum(values) / 2) and row["n"] == 2
    assert row["ci_high"] - row["mean"] == pytest.approx(half)


def test_cost_budget_and_references(swept):
    md = (swept / "results/rep/leaderboard.md").read_text()
    # method_info counts the D updates (issue 11), so the configured d_steps (marked *) is not needed here
    assert "### Budget and cost" in md and "| digits | gan | 12 | 1 |" in md and "| digits | wgan-gp | 12 | 5 |" in md
    total = sum(r["timings"]["train_s"] + r["timings"]["sample_s"] + r["timings"]["eval_s"] for r in _records(swept))
    assert f"Cost: {seconds(total)} of compute for 9 cells" in md
    # the far-away paper value is flagged; the other two are explained
    papers = md.split("### What the papers printed")[1]
    assert "1e+06" in papers and "⚠ outside our interval" in papers and "A far-away number, Table 9" in papers
    assert "gan on cifar10 ρ=1 classifier_fid" in papers
    assert "1 paper value applies only to the budget profile paper" in papers


def test_old_records_without_new_fields_still_report(swept, tmp_path):
    """Records from before issue 9 (no device, no step counts, no timings): the report says unknown, not a traceback."""
    root = tmp_path / "old"
    shutil.copytree(swept, root, ignore=shutil.ignore_patterns("leaderboard*"))
    for path in (root / "results/runs/rep").glob("*/result.json"):
        record = json.loads(path.read_text())
        for key in ("device", "device_name"):  # records before issue 9 had neither
            record["environment"].pop(key, None)
        for key in ("method_info", "train", "timings", "training_id"):
            record.pop(key, None)
        path.write_text(json.dumps(record))
    md = _report(root)
    assert "9 cells: 9 done" in md
    assert "| digits | gan | 12 | 1* |" in md and "| unknown |" in md  # steps from the config; device unknown


def test_eval_repeats_are_reported_apart_from_seed_spread(swept, tmp_path):
    """Per-repeat values (written by the runner with eval_repeats: k) give an evaluation sd beside the seed sd."""
    root = tmp_path / "repeats"
    shutil.copytree(swept, root, ignore=shutil.ignore_patterns("leaderboard*"))
    offsets = {}
    for path in (root / "results/runs/rep").glob("*/result.json"):
        record = json.loads(path.read_text())
        c = record["config"]
        if (c["method"], c["imbalance"]) != ("gan", 1):
            continue
        fid = record["metrics"]["classifier_fid"]
        step = 1.0 if c["seed"] == 0 else 2.0  # evaluations fid - step, fid, fid + step: sd = step
        record["eval_repeats"] = [{"eval_seed": i, "metrics": {"classifier_fid": fid + (i - 1) * step}} for i in range(3)]
        offsets[c["seed"]] = step
        path.write_text(json.dumps(record))
    md = _report(root)
    spread = md.split("### Evaluation spread")[1]
    line = next(ln for ln in spread.splitlines() if ln.startswith("| classifier_fid | gan | digits ρ=1"))
    pooled = math.sqrt((2 * 1.0 + 2 * 4.0) / 4)  # sds 1 and 2, each over 3 evaluations
    assert f"| {pooled:.3g} | 3 | 2 |" in line


def test_per_class_bars_use_the_evaluator_histograms(swept, tmp_path):
    """evaluator.per_class (from the metrics) adds generated-class bars and per-class FID, even at ρ = 1."""
    root = tmp_path / "perclass"
    shutil.copytree(swept, root, ignore=shutil.ignore_patterns("leaderboard*"))
    for path in (root / "results/runs/rep").glob("*/result.json"):  # as records without per-class metrics
        record = json.loads(path.read_text())
        record.get("evaluator", {}).pop("per_class", None)
        path.write_text(json.dumps(record))
    _report(root)
    plain = (root / "results/rep/leaderboard.html").read_text().count("per class'>")
    assert plain == 1  # only the long-tailed ρ = 10 column (its training-class counts)
    for path in (root / "results/runs/rep").glob("*/result.json"):
        record = json.loads(path.read_text())
        record.setdefault("evaluator", {})["per_class"] = {
            "classes": list(range(10)), "generated": [20 * (c + 1) for c in range(10)],
            "fid_classifier": [float(c) if c < 8 else None for c in range(10)]}  # fmt: skip
        path.write_text(json.dumps(record))
    md = _report(root)
    page = (root / "results/rep/leaderboard.html").read_text()
    assert page.count("per class'>") == 2  # ρ = 1 now has generated histograms to show
    # the Markdown table: generated share / per-class FID, no FID where too few samples
    table = md.split("### digits, ρ = 1: per class")[1]
    gan = next(ln for ln in table.splitlines() if ln.startswith("| gan |"))
    assert gan.startswith("| gan | 1.8% / 0 | 3.6% / 1 |") and gan.endswith("| 16.4% / – | 18.2% / – |")
    assert "| training share | 10.0% |" in table


def test_compare_prints_differences_with_interval_and_p(swept):
    proc = ganbench("compare", "rep.yaml", "--baseline", "gan", cwd=swept, check=0)
    assert "Difference from gan" in proc.stdout and "digits ρ=1" in proc.stdout
    lsgan = next(ln for ln in proc.stdout.splitlines() if ln.strip().startswith("lsgan") and "p=" in ln)
    assert re.search(r"[+-][0-9.e+-]+\s+\[[-0-9.e+]+, [-0-9.e+]+\]\s+p=([0-9.e-]+) Holm=([0-9.e-]+)\s+n=2 vs 2", lsgan)
    assert "Holm's step-down, as the leaderboard's bold" in proc.stdout
    assert "(needs 2 seeds each)" in proc.stdout  # wgan-gp at ρ=10 has one seed
    bad = ganbench("compare", "rep.yaml", "--baseline", "gna", cwd=swept, check=2)
    assert bad.stderr.strip().count("\n") == 0 and "did you mean 'gan'" in bad.stderr


def test_latex_booktabs_bold_as_the_page_and_combined(swept):
    tex = (swept / "results/rep/leaderboard.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"\mathbf{" in tex and r"\underline{" not in tex and r"\pm" in tex and "±" not in tex
    assert "Student-$t$ interval" in tex and r"95\%" in tex and r"\\%" not in tex
    # Bold marks what it marks in the Markdown: every entry not significantly worse than the best.
    md = (swept / "results/rep/leaderboard.md").read_text()
    assert tex.count(r"\mathbf{") == md.count("**") // 2 and "Bold: not significantly worse" in tex
    assert tex.count("{") == tex.count("}") and tex.count("$") % 2 == 0
    assert tex.count(r"\begin{table}") == 2  # one per metric (classifier_fid, class_kl)
    ganbench("report", "rep.yaml", "--latex", "combined", cwd=swept, check=0)  # the option through the CLI
    combined = (swept / "results/rep/leaderboard.tex").read_text()
    assert combined.count("{") == combined.count("}")
    assert combined.count(r"\begin{table*}") == 1 and r"\cmidrule(lr){2-3}" in combined and r"\multicolumn{2}{c}" in combined
    _report(swept)


def test_every_tex_the_report_writes_compiles_and_fits_the_page(swept, pdflatex, tmp_path):
    from conftest import compile_latex

    for latex in ("per-metric", "combined"):
        _report(swept, latex=latex)
        target = tmp_path / f"{latex}.tex"
        shutil.copy(swept / "results/rep/leaderboard.tex", target)
        compile_latex(pdflatex, target, tmp_path)
    _report(swept)


def test_page_is_self_contained(swept):
    page = (swept / "results/rep/leaderboard.html").read_text()
    sources = re.findall(r"src='([^']*)'", page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in page and "https://" not in page
    links = re.findall(r"href='([^'#][^']*)'", page)
    record_links = [link for link in links if link.startswith("records/") and link.endswith(".json")]
    assert len(record_links) >= 9 and all((swept / "results/rep" / link).resolve().is_file() for link in record_links)


@pytest.fixture(scope="module")
def chromium():
    path, why = find_chromium()
    if path is None:
        pytest.skip(f"no headless Chromium: {why}")
    return path


def test_page_in_headless_chromium(swept, chromium, tmp_path, request):
    """Loads with no console errors; a header click sorts a table; every image has a size; screenshot kept."""
    browser = Browser(chromium)
    try:
        browser.open(swept / "results/rep/leaderboard.html")
        assert browser.evaluate("document.readyState") == "complete"
        images = browser.evaluate("Array.from(document.images).map(i => [i.alt, i.naturalWidth, i.naturalHeight,"
                                  " i.getBoundingClientRect().width, i.getBoundingClientRect().height])")  # fmt: skip
        assert len(images) >= 5  # metric plots, sample grids, loss curves, per-class bars
        assert all(w > 0 and h > 0 and rw > 0 and rh > 0 for _, w, h, rw, rh in images), images

        # click the "train" header of the cells table: the rows come back in ascending train time
        column = "Array.from(document.querySelectorAll('#cells thead th')).findIndex(th => th.textContent === 'train')"
        index = browser.evaluate(column)
        assert index > 0
        browser.evaluate(f"document.querySelectorAll('#cells thead th')[{index}].scrollIntoView({{block: 'center'}})")
        box = browser.evaluate(f"(() => {{ const r = document.querySelectorAll('#cells thead th')[{index}]"
                               ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")  # fmt: skip
        before = browser.evaluate(f"Array.from(document.querySelectorAll('#cells tbody tr')).map(r => r.cells[{index}].dataset.sort)")
        browser.click(*box)
        after = browser.evaluate(f"Array.from(document.querySelectorAll('#cells tbody tr')).map(r => Number(r.cells[{index}].dataset.sort))")
        assert after == sorted(float(x) for x in before) != [float(x) for x in before]
        assert browser.evaluate(f"document.querySelectorAll('#cells thead th')[{index}].getAttribute('aria-sort')") == "ascending"

        browser.evaluate("window.scrollTo(0, 0)")
        shot = tmp_path / "leaderboard.png"
        browser.screenshot(shot)
        assert browser.errors() == []
    finally:
        browser.close()
    kept = request.config.rootpath / ".pytest_cache" / "artifacts" / "report-leaderboard.png"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, kept)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\nleaderboard screenshot: {kept}")
    assert shot.stat().st_size > 10_000


def test_a_fresh_clone_regenerates_the_report_from_its_records_and_never_empties_it(swept, tmp_path):
    """Raw runs are git-ignored: a clone has results/<sweep>/ (with records/) but no results/runs/."""
    ganbench("report", "rep.yaml", cwd=swept, check=0)
    clone = tmp_path / "clone"
    (clone / "results").mkdir(parents=True)
    shutil.copy(swept / "rep.yaml", clone)
    shutil.copytree(swept / "results/rep", clone / "results/rep", ignore=shutil.ignore_patterns(".figures"))
    before = (clone / "results/rep/leaderboard.csv").read_text()
    proc = ganbench("report", "rep.yaml", "--latex", "combined", cwd=clone, check=0)
    assert "9 done" in proc.stdout
    assert (clone / "results/rep/leaderboard.csv").read_text() == before
    page = (clone / "results/rep/leaderboard.html").read_text()
    links = [link for link in re.findall(r"href='([^'#][^']*)'", page) if link.endswith(".json")]
    assert len(links) >= 9 and all((clone / "results/rep" / link).is_file() for link in links)
    assert page.count("data:image/png;base64,") >= (swept / "results/rep/leaderboard.html").read_text().count(
        "data:image/png;base64,")  # the sample grids and loss curves came from records/ too
    # A report from before records/ existed: refused in one line, the committed files left as they were.
    shutil.rmtree(clone / "results/rep/records")
    md = (clone / "results/rep/leaderboard.md").read_text()
    refused = ganbench("report", "rep.yaml", cwd=clone, check=2)
    assert refused.stderr.strip().count("\n") == 0
    assert "9 finished cells of this report would be dropped (9 have no record in results/runs/rep/" in refused.stderr
    assert (clone / "results/rep/leaderboard.md").read_text() == md
    # A sweep file whose cells changed ids (a changed setting or default): refused too, unless --replace.
    (clone / "rep.yaml").write_text((clone / "rep.yaml").read_text().replace("steps: 12", "steps: 13"))
    refused = ganbench("report", "rep.yaml", cwd=clone, check=2)
    assert "are no longer cells of the sweep file" in refused.stderr and "--replace" in refused.stderr
    assert (clone / "results/rep/leaderboard.md").read_text() == md
    replaced = ganbench("report", "rep.yaml", "--replace", cwd=clone, check=0)
    assert "0 done" in replaced.stdout
