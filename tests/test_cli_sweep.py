"""A tiny sweep through the real CLI: plan, sweep, rerun, status, report."""

import json
import re
import textwrap

import pandas as pd
import pytest

from conftest import ganbench

SWEEP = """
name: tiny
matrix:
  method: [gan, lsgan]
  dataset: [ring]
  imbalance: [1, 10]
  seed: [0]
include:
  - {method: gan, dataset: digits, imbalance: 10, seed: 0}
defaults:
  budget: {steps: 30, batch_size: 32, eval_samples: 200}
  log_every: 10
  checkpoint_every: 15
overrides:
  dataset: {digits: {budget: {steps: 10}, arch: {width: 8}}}
executor: {name: local, workers: 2, cells_per_job: 3}  # two worker processes
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    (root / "tiny.yaml").write_text(SWEEP)
    return root


def test_plan_lists_cells_without_running(tiny):
    proc = ganbench("plan", "tiny.yaml", cwd=tiny, check=0)
    assert "5 cells in sweep 'tiny'" in proc.stdout
    assert proc.stdout.count("pending") == 5
    assert not (tiny / "results").exists()


def test_report_before_running_counts_missing(tiny):
    proc = ganbench("report", "tiny.yaml", cwd=tiny, check=0)
    assert "5 missing" in proc.stdout
    assert "No finished cells yet" in (tiny / "results/tiny/leaderboard.md").read_text()


def test_sweep_runs_then_rerun_skips_everything(tiny):
    proc = ganbench("sweep", "tiny.yaml", cwd=tiny, check=0)
    last = proc.stdout.strip().splitlines()[-1]  # the sweep's last line names both the tables and the page
    assert re.fullmatch(r"leaderboard: \S*results/tiny/leaderboard\.md \(page: \S*results/tiny/leaderboard\.html\)", last)
    runs = tiny / "results/runs/tiny"
    results = sorted(runs.glob("*/result.json"))
    assert len(results) == 5
    for path in results:
        record = json.loads(path.read_text())
        assert record["status"] == "done", record.get("error")
        folder = path.parent
        for name in ("cell.json", "samples.png"):
            assert (folder / name).is_file(), name
        for name in ("train.json", "losses.csv", "checkpoint.pt", "generator.pt"):
            assert (runs / "train" / record["training_id"] / name).is_file(), name
        assert record["environment"]["torch"] and record["timings"]["train_s"] > 0
        assert sum(record["data"]["class_counts"]) == record["data"]["n_train"]
    digits = next(json.loads(p.read_text()) for p in results if "digits" in p.read_text())
    assert 0.5 < digits["evaluator"]["classifier"]["accuracy"] <= 1
    assert set(digits["metrics"]) == {"classifier_fid", "class_kl"}

    stamps = {p: p.stat().st_mtime_ns for p in results}
    again = ganbench("sweep", "tiny.yaml", cwd=tiny, check=0)
    assert "0 to run" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in results} == stamps

    status = ganbench("status", "tiny.yaml", cwd=tiny, check=0)
    assert "tiny: done 5, diverged 0, failed 0, running 0, pending 0 (of 5)" in status.stdout


def test_report_has_rows_columns_and_files(tiny):
    proc = ganbench("report", "tiny.yaml", cwd=tiny, check=0)
    assert "5 cells: 5 done" in proc.stdout
    out = tiny / "results/tiny"
    md = (out / "leaderboard.md").read_text()
    assert "### modes covered ↑" in md and "### FID (classifier) ↓" in md
    assert "| gan |" in md and "| lsgan |" in md
    assert "ring ρ=1 | ring ρ=10" in md and "digits ρ=10" in md
    assert "0 missing" in md
    csv = pd.read_csv(out / "leaderboard.csv")
    assert set(csv["method"]) == {"gan", "lsgan"}
    assert (csv["n"] == 1).all()
    cells = pd.read_csv(out / "cells.csv")
    assert len(cells) == 5
    # the table's numbers are the records' numbers
    fid = json.loads(next(p for p in (tiny / "results/runs/tiny").glob("*/result.json") if "digits" in p.read_text()).read_text())
    row = csv[(csv.metric == "classifier_fid")].iloc[0]
    assert row["mean"] == pytest.approx(fid["metrics"]["classifier_fid"])
    assert "\\begin{tabular}" in (out / "leaderboard.tex").read_text()
    page = (out / "leaderboard.html").read_text()
    assert "<td class='l'>lsgan</td>" in page and "<img src='data:image/png;base64," in page
    for name in ("ring.png", "digits.png"):
        assert (out / name).stat().st_size > 1000


def test_list_commands():
    methods = ganbench("list", "methods", check=0).stdout
    assert all(m in methods for m in ("gan", "lsgan", "wgan-gp"))
    assert "ring" in ganbench("list", "datasets", check=0).stdout
    metrics = ganbench("list", "metrics", check=0).stdout
    assert "classifier_fid" in metrics and "↓" in metrics


@pytest.mark.parametrize("command", ["list", "plan", "sweep", "status", "report"])
def test_help(command):
    assert "usage: ganbench" in ganbench(command, "--help", check=0).stdout


def test_sample_grids_keep_save_images_pixels_and_grey_stays_grey(tmp_path):
    """samples.png is torchvision's save_image grid, pixel for pixel; one-channel data as a grey PNG."""
    import numpy as np
    import torch
    from PIL import Image
    from torchvision.utils import save_image

    from bench.runner import save_sample_picture

    images = type("Images", (), {"kind": "images"})()
    for channels, n in ((1, 100), (3, 16)):
        fake = torch.rand(n, channels, 28, 28, generator=torch.Generator().manual_seed(channels)) * 2.2 - 1.1
        save_image(fake[:64] * 0.5 + 0.5, tmp_path / "reference.png", nrow=8)
        save_sample_picture(fake, images, tmp_path / "samples.png")
        reference, ours = Image.open(tmp_path / "reference.png"), Image.open(tmp_path / "samples.png")
        assert ours.mode == ("L" if channels == 1 else "RGB") and ours.size == reference.size
        expected = np.array(reference)[..., 0] if channels == 1 else np.array(reference)
        assert np.array_equal(np.array(ours), expected)
