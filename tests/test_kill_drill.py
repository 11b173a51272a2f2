"""Kill drill: SIGKILL the sweep's whole process group during training, again and
again; the cells finish, and each equals a run that was never interrupted."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from bench.spec import load_sweep
from conftest import ganbench

SWEEP = """
name: drill
matrix: {method: [gan], dataset: [ring], imbalance: [1], seed: [0, 1]}
defaults: {budget: {steps: 4000, batch_size: 16, eval_samples: 200}, log_every: 20, checkpoint_every: 100}
executor: {name: local, workers: 2}
"""
KILLS = 5


def _stamp(path):
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:  # not yet written, or between the rename to .prev and the new one
        return None


@pytest.mark.slow
def test_killed_five_times_during_training_the_cells_finish_equal_to_an_uninterrupted_run(tmp_path):
    (tmp_path / "s.yaml").write_text(SWEEP)
    runs = tmp_path / "results/runs/drill"
    checkpoints = [runs / "train" / c["training_id"] / "checkpoint.pt" for c in load_sweep(tmp_path / "s.yaml").cells]
    rng = random.Random(0)
    kills = 0
    while kills < KILLS:
        before = [_stamp(p) for p in checkpoints]
        proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "sweep", "s.yaml", "--no-report"], cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        try:
            deadline = time.time() + 300
            # Training, not start-up: every cell has written a checkpoint in this run.
            while any(_stamp(p) in (None, old) for p, old in zip(checkpoints, before)) and proc.poll() is None:
                assert time.time() < deadline, "no checkpoint within 300 s"
                time.sleep(0.02)
            time.sleep(rng.uniform(0, 0.3))
            assert proc.poll() is None, "the sweep finished before it was killed five times"
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        kills += 1
    assert not list(runs.glob("*/result.json")), "a cell finished before the drill ended"

    ganbench("sweep", "s.yaml", "--no-report", cwd=tmp_path, check=0)
    ganbench("sweep", "s.yaml", "--no-report", "--results", "straight", cwd=tmp_path, check=0)
    straight = tmp_path / "straight/runs/drill"
    for path in sorted(runs.glob("*/result.json")):
        record = json.loads(path.read_text())
        other = json.loads((straight / path.parent.name / "result.json").read_text())
        assert record["status"] == other["status"] == "done"
        assert record["train"]["resumed_from_step"] > 0
        assert record["metrics"] == other["metrics"]
        losses = f"train/{record['training_id']}/losses.csv"
        assert (runs / losses).read_text() == (straight / losses).read_text()
    assert len(list(runs.glob("*/result.json"))) == 2
