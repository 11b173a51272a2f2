"""Training and evaluation are two stages of a cell: a training run is shared by
the cells that differ only in evaluation keys, kept (generator.pt), and scored
again without retraining."""

import json
import os
import subprocess
import sys
import time

import pytest

from bench.errors import UserError
from bench.spec import load_sweep
from conftest import ganbench

PLUGIN = '''
import os
import time
from pathlib import Path

import torch.nn.functional as F

from bench.method import Method
from bench.metrics.base import Metric
from bench.registry import METHODS, METRICS


@METRICS.register("flaky-test")
class Flaky(Metric):
    """The number of samples; raises while the file $FLAKY_TRIGGER exists."""
    label, direction = "flaky", "higher"

    def compute(self, ctx):
        if Path(os.environ.get("FLAKY_TRIGGER", "/nonexistent")).exists():
            raise RuntimeError("flaky-test raised on purpose")
        return float(len(ctx.fake))


@METHODS.register("logged-test")
class Logged(Method):
    """A GAN that notes in $TRAIN_LOG each time a training run starts, and
    then waits for the file $TRAIN_GO (if set) before training on."""

    def d_loss(self, real_out, fake_out):
        return F.softplus(-real_out).mean() + F.softplus(fake_out).mean()

    def g_loss(self, fake_out):
        return F.softplus(-fake_out).mean()

    def train_step(self, next_batch):
        if self.step == 0 and os.environ.get("TRAIN_LOG"):
            with open(os.environ["TRAIN_LOG"], "a") as handle:
                handle.write(f"{os.getpid()}\\n")
            go = Path(os.environ.get("TRAIN_GO", "/"))
            deadline = time.time() + 120
            while not go.exists() and time.time() < deadline:
                time.sleep(0.05)
        return super().train_step(next_batch)


@METHODS.register("crashing-test")
class Crashing(Logged):
    def g_loss(self, fake_out):
        raise RuntimeError("crashing-test always fails in g_loss")
'''

SWEEP = """
name: NAME
plugins: [PLUGINS]
matrix: {method: [METHOD], dataset: [ring], imbalance: [1], seed: [0]}
defaults:
  budget: {steps: 20, batch_size: 16, eval_samples: SAMPLES}
  metrics: METRICS
  log_every: 5
  checkpoint_every: 10
EXTRA
executor: {name: EXECUTOR, workers: 1}
"""


@pytest.fixture(scope="module", autouse=True)
def plugins(tmp_path_factory):
    """One plugin folder for the module: a process registers a plugin's names once."""
    global PLUGIN_DIR
    PLUGIN_DIR = tmp_path_factory.mktemp("plugins")
    (PLUGIN_DIR / "probes.py").write_text(PLUGIN)


def _sweep(folder, file="s.yaml", name="stages", method="logged-test", metrics="[flaky-test]", samples=100,
           executor="debug", extra=""):  # fmt: skip
    text = SWEEP.replace("PLUGINS", str(PLUGIN_DIR)).replace("NAME", name).replace("METHOD", method)
    text = text.replace("METRICS", metrics)
    (folder / file).write_text(text.replace("SAMPLES", str(samples)).replace("EXECUTOR", executor).replace("EXTRA\n", extra))
    return folder / file


def _records(folder, sweep="stages"):
    return [json.loads(p.read_text()) for p in sorted((folder / "results/runs" / sweep).glob("*/result.json"))]


def test_training_id_leaves_out_the_evaluation_keys(tmp_path):
    base = load_sweep(_sweep(tmp_path)).cells[0]
    rescored = load_sweep(_sweep(tmp_path, metrics="[flaky-test, modes_covered]", samples=300,
                                 extra="  eval_seed: 3\n  eval_repeats: 4\n")).cells[0]  # fmt: skip
    assert rescored["id"] != base["id"] and rescored["training_id"] == base["training_id"]
    assert rescored["config"]["eval_repeats"] == 4
    # eval_repeats: 1 is the default and leaves the id as it was before the key existed
    same = load_sweep(_sweep(tmp_path, extra="  eval_repeats: 1\n")).cells[0]
    assert same["id"] == base["id"] and "eval_repeats" not in same["config"]
    path = _sweep(tmp_path)
    path.write_text(path.read_text().replace("steps: 20", "steps: 21"))  # a training key
    assert load_sweep(path).cells[0]["training_id"] != base["training_id"]


@pytest.mark.parametrize("value", [0, -1, 1.5, "two", True])
def test_eval_repeats_is_an_integer_of_at_least_one(tmp_path, value):
    with pytest.raises(UserError, match=r"s.yaml: defaults.eval_repeats: must be") as err:
        load_sweep(_sweep(tmp_path, extra=f"  eval_repeats: {json.dumps(value)}\n"))
    assert "\n" not in str(err.value)


def test_a_failed_evaluation_keeps_the_training_and_is_scored_again_without_it(tmp_path):
    trigger = tmp_path / "raise"
    trigger.touch()
    env = {"FLAKY_TRIGGER": str(trigger)}
    _sweep(tmp_path)
    proc = ganbench("sweep", "s.yaml", cwd=tmp_path, env=env, check=1)
    assert "1 cells trained but their evaluation raised" in proc.stderr and "Traceback" not in proc.stderr
    (record,) = _records(tmp_path)
    assert record["status"] == "trained" and "flaky-test raised on purpose" in record["error"]
    train_dir = tmp_path / "results/runs/stages/train" / record["training_id"]
    assert {"train.json", "generator.pt", "checkpoint.pt", "losses.csv"} <= {p.name for p in train_dir.iterdir()}
    status = ganbench("status", "s.yaml", "--cells", cwd=tmp_path, check=0).stdout
    assert " trained  cpu " in status and "RuntimeError: flaky-test raised on purpose" in status
    assert "stages: done 0, diverged 0, failed 0, running 0, pending 0, trained 1 (of 1)" in status

    trigger.unlink()
    stamps = {p.name: p.stat().st_mtime_ns for p in train_dir.iterdir()}
    ganbench("evaluate", "s.yaml", cwd=tmp_path, env=env, check=0)
    (record,) = _records(tmp_path)
    assert record["status"] == "done" and record["metrics"] == {"flaky-test": 100.0}
    assert record["timings"]["train_reused"] is True and record["timings"]["train_s"] > 0
    assert {p.name: p.stat().st_mtime_ns for p in train_dir.iterdir()} == stamps, "evaluate retrained"

    # A new metric, more samples and two evaluations: new cell ids, the same training run.
    _sweep(tmp_path, metrics="[flaky-test, modes_covered]", samples=150, extra="  eval_repeats: 2\n")
    assert "pending (trained: evaluation only)" in ganbench("plan", "s.yaml", cwd=tmp_path, check=0).stdout
    proc = ganbench("sweep", "s.yaml", cwd=tmp_path, env=env, check=0)
    assert "1 of them trained already (evaluation only)" in proc.stderr
    new = next(r for r in _records(tmp_path) if r["id"] != record["id"])
    assert new["training_id"] == record["training_id"] and new["timings"]["train_reused"] is True
    assert [r["eval_seed"] for r in new["eval_repeats"]] == [0, 1]
    assert new["metrics"]["flaky-test"] == 150.0
    mean = sum(r["metrics"]["modes_covered"] for r in new["eval_repeats"]) / 2
    assert new["metrics"]["modes_covered"] == pytest.approx(mean)
    assert set(new["timings"]["metric_s"]) == {"flaky-test", "modes_covered"}
    assert {p.name: p.stat().st_mtime_ns for p in train_dir.iterdir()} == stamps, "a new metric retrained"
    assert len(list((tmp_path / "results/runs/stages/train").iterdir())) == 1
    env_record = new["environment"]
    assert env_record["device"] == "cpu" and env_record["device_name"] and env_record["torch"] and env_record["threads"] >= 1
    assert "cuda" in env_record and new["train"]["environment"]["device"] == "cpu"
    timings = ganbench("status", "s.yaml", "--timings", cwd=tmp_path, check=0).stdout
    assert "(reused)" in timings and "modes_covered " in timings


def test_cells_that_share_a_training_run_train_it_once(tmp_path):
    """Two sweeps (one name, different metrics) at once: the second waits for the first's training and scores it."""
    _sweep(tmp_path, file="a.yaml", metrics="[flaky-test]")
    _sweep(tmp_path, file="b.yaml", metrics="[modes_covered]")
    log, go = tmp_path / "trainings.log", tmp_path / "go"
    env = {**os.environ, "TRAIN_LOG": str(log), "TRAIN_GO": str(go)}
    command = [sys.executable, "-m", "bench.cli", "sweep", "--no-report"]
    first = subprocess.Popen([*command, "a.yaml"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    second = None
    try:
        _wait_for(log, first)  # the first sweep is training
        second = subprocess.Popen([*command, "b.yaml"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
        (cell_b,) = load_sweep(tmp_path / "b.yaml").cells
        _wait_for(tmp_path / "results/runs/stages" / cell_b["id"] / "cell.json", second)  # at the training lock
        time.sleep(1)
        go.touch()
        assert first.wait(timeout=300) == 0, first.stderr.read()
        assert second.wait(timeout=300) == 0, second.stderr.read()
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert len(log.read_text().splitlines()) == 1, "the training run was trained twice"
    records = _records(tmp_path)
    assert len(records) == 2 and {r["status"] for r in records} == {"done"}
    assert len({r["training_id"] for r in records}) == 1
    assert sorted(r["timings"]["train_reused"] for r in records) == [False, True]


def _wait_for(path, proc, timeout=180):
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_retried_cells_count_as_pending_or_running_until_they_end(tmp_path):
    _sweep(tmp_path, method="crashing-test", metrics="[modes_covered]", executor="local")
    assert "failed 1" in ganbench("sweep", "s.yaml", "--no-report", cwd=tmp_path, check=1).stderr
    retry = ganbench("sweep", "s.yaml", "--no-report", "--retry-failed", cwd=tmp_path, check=1)
    lines = [ln for ln in retry.stderr.splitlines() if ln.startswith("[")]
    assert "failed 0" in lines[0] and ("pending 1" in lines[0] or "running 1" in lines[0]), lines
    assert "failed 1" in lines[-1], lines


def test_results_of_the_layout_before_training_runs_had_a_folder(tmp_path):
    """A finished cell of the old layout stays done; an unfinished one trains from step 0, with one line saying so."""
    _sweep(tmp_path, name="old", method="gan", metrics="[modes_covered]")
    sweep = load_sweep(tmp_path / "s.yaml")
    (cell,) = sweep.cells
    folder = tmp_path / "results/runs/old" / cell["id"]
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"a pickle of the old layout, not readable with weights_only")
    (folder / "cell.json").write_text(json.dumps(cell))
    proc = ganbench("sweep", "s.yaml", cwd=tmp_path, check=0)
    note = [ln for ln in proc.stderr.splitlines() if "note:" in ln]
    assert len(note) == 1 and "1 cells hold a checkpoint.pt of the layout before" in note[0]
    (record,) = _records(tmp_path, "old")
    assert record["status"] == "done" and record["train"]["resumed_from_step"] == 0

    # An old finished record (no training id, no timings of today) is still a result.
    old = {k: v for k, v in record.items() if k not in ("training_id", "eval_repeats", "timings", "train")}
    (folder / "result.json").write_text(json.dumps({**old, "environment": {"device": "cpu", "cuda": None}}))
    status = ganbench("status", "s.yaml", "--cells", cwd=tmp_path, check=0).stdout
    assert "old: done 1" in status
    assert "1 cells: 1 done" in ganbench("report", "s.yaml", cwd=tmp_path, check=0).stdout
