"""Kill a run mid-cell, rerun it: training continues from the checkpoint."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ganbench

SWEEP = """
name: resume
matrix: {method: [gan], dataset: [ring], imbalance: [1], seed: [0]}
defaults: {budget: {steps: STEPS, batch_size: 16, eval_samples: 100}, log_every: 20, checkpoint_every: 100}
executor: {name: debug}
"""


def _logged_steps(folder):
    with open(folder / "losses.csv") as handle:
        return [int(row["step"]) for row in csv.DictReader(handle)]


def test_killed_sweep_resumes_from_checkpoint(tmp_path):
    (tmp_path / "s.yaml").write_text(SWEEP.replace("STEPS", "1500"))
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "sweep", "s.yaml"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    runs = tmp_path / "results/runs/resume"
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list(runs.glob("train/*/checkpoint.pt")):
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    (ckpt,) = runs.glob("train/*/checkpoint.pt")
    train_dir = ckpt.parent
    assert not list(runs.glob("*/result.json")), "the sweep finished before it could be killed"
    saved_step = torch.load(ckpt, weights_only=True)["step"]
    assert 100 <= saved_step < 1500

    assert "running 0, pending 1" in ganbench("status", "s.yaml", cwd=tmp_path, check=0).stdout
    ganbench("sweep", "s.yaml", cwd=tmp_path, check=0)
    (path,) = runs.glob("*/result.json")
    record = json.loads(path.read_text())
    assert record["status"] == "done" and record["training_id"] == train_dir.name
    assert record["train"]["steps"] == 1500 and record["train"]["resumed_from_step"] == saved_step
    assert _logged_steps(train_dir) == list(range(20, 1501, 20))


@pytest.mark.parametrize("kill_after", ["checkpoint.pt", "losses.csv"])
def test_resume_is_exact_after_kill_at_checkpoint(tmp_path, kill_after):
    """A worker killed right after writing its step-200 checkpoint (before or after
    the loss log) resumes at 200, with no gap or repeat in the log."""
    from bench.runner import run_cell
    from bench.spec import load_sweep

    (tmp_path / "s.yaml").write_text(SWEEP.replace("STEPS", "300"))
    cell = load_sweep(tmp_path / "s.yaml").cells[0]
    cell["runtime"]["results_root"] = str(tmp_path / "results")
    runs = tmp_path / "results/runs/resume"
    folder, train_dir = runs / cell["id"], runs / "train" / cell["training_id"]

    code = (
        "import json, os, signal, sys\n"
        "import bench.train as t\n"
        "write = t.atomic_write\n"
        "seen = []\n"
        "def write_then_die_at_200(path, data):\n"
        "    write(path, data)\n"
        "    seen.append(path.name)\n"
        "    if seen.count(sys.argv[2]) == 2:  # the second checkpoint is step 200\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "t.atomic_write = write_then_die_at_200\n"
        "from bench.runner import run_cell\n"
        "run_cell(json.loads(sys.argv[1]))\n"
    )
    killed = subprocess.run([sys.executable, "-c", code, json.dumps(cell), kill_after], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert torch.load(train_dir / "checkpoint.pt", weights_only=True)["step"] == 200
    assert not (folder / "result.json").exists()

    assert run_cell(cell) == "done"
    record = json.loads((folder / "result.json").read_text())
    assert record["train"]["resumed_from_step"] == 200
    assert _logged_steps(train_dir) == list(range(20, 301, 20))

    # RNG and optimizer states travel in the checkpoint: the resumed run is the uninterrupted run.
    straight = {**cell, "runtime": {**cell["runtime"], "results_root": str(tmp_path / "straight")}}
    assert run_cell(straight) == "done"
    other = tmp_path / "straight/runs/resume"
    assert (other / "train" / cell["training_id"] / "losses.csv").read_text() == (train_dir / "losses.csv").read_text()
    assert json.loads((other / cell["id"] / "result.json").read_text())["metrics"] == record["metrics"]


def test_resume_refuses_a_folder_of_another_config(tmp_path):
    from bench.spec import load_sweep

    (tmp_path / "s.yaml").write_text(SWEEP.replace("STEPS", "40"))
    cell = load_sweep(tmp_path / "s.yaml").cells[0]
    folder = tmp_path / "results/runs/resume" / cell["id"]
    folder.mkdir(parents=True)
    (folder / "cell.json").write_text(json.dumps({**cell, "config": {**cell["config"], "seed": 99}}))
    proc = ganbench("sweep", "s.yaml", cwd=tmp_path, check=1)
    assert "holds a different config" in proc.stderr and "Traceback" not in proc.stderr
    assert not (folder / "result.json").exists()
