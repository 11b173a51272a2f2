"""SLURM dispatch against a real one-node cluster (slurm/start-test-cluster.sh).

The session fixture starts the cluster (installing the Debian packages if
needed, which needs root) and skips these tests with the reason when it cannot.
Every test sends real jobs through slurmctld/slurmd: job arrays, per-cell
status, a failing cell, re-submission, cancel and a preempted cell that
resumes from its checkpoint.
"""

import csv
import json
import os
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from bench.spec import load_sweep
from conftest import REPO, ganbench

pytestmark = pytest.mark.slurm

START = REPO / "slurm/start-test-cluster.sh"
STOP = REPO / "slurm/stop-test-cluster.sh"
STATE = Path(os.environ.get("GANBENCH_SLURM_STATE", "/var/tmp/ganbench-slurm"))
PROFILE = REPO / "slurm/test.yaml"

PLUGIN = '''
from bench.registry import METHODS
from bench.method import Method
import torch.nn.functional as F


@METHODS.register("crash-on-slurm")
class CrashOnSlurm(Method):
    paper = "a method that always fails (test plugin)"

    def d_loss(self, real_out, fake_out):
        return F.softplus(-real_out).mean() + F.softplus(fake_out).mean()

    def g_loss(self, fake_out):
        raise RuntimeError("crash-on-slurm fails on purpose")
'''


def _ctld_running() -> bool:
    pidfile = STATE / "run/slurmctld.pid"
    try:
        os.kill(int(pidfile.read_text()), 0)
    except (OSError, ValueError):
        return False
    return True


@pytest.fixture(scope="session")
def slurm_cluster():
    """Start the test cluster once per session; stop it afterwards if this session started it."""
    if os.geteuid() != 0:
        pytest.skip("the SLURM test cluster needs root (it installs munge/slurm/mariadb and starts their daemons)")
    was_running = _ctld_running()
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        pytest.skip(f"the SLURM test cluster did not start ({START.name} exited {proc.returncode}): {tail}")
    print(f"\nSLURM test cluster ready in {time.monotonic() - t0:.1f} s")
    yield
    if not was_running:
        subprocess.run(["bash", str(STOP)], capture_output=True, text=True, timeout=120)


def _sweep(tmp_path: Path, name: str, methods: str, seeds: str, steps: int, checkpoint_every: int = 1000) -> Path:
    (tmp_path / "plugins").mkdir(exist_ok=True)
    (tmp_path / "plugins/crash_on_slurm.py").write_text(PLUGIN)
    (tmp_path / "slurm").mkdir(exist_ok=True)
    (tmp_path / "slurm/test.yaml").write_text(PROFILE.read_text())
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""
        name: {name}
        plugins: [plugins]
        matrix: {{method: {methods}, dataset: [ring], imbalance: [1], seed: {seeds}}}
        defaults: {{budget: {{steps: {steps}, batch_size: 32, eval_samples: 200}}, log_every: 10,
                    checkpoint_every: {checkpoint_every}}}
        executor: {{name: slurm, profile: test}}
    """))
    return path


def _records(runs: Path, name: str) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in runs.glob(f"*/{name}")}


def _squeue(results: Path, sweep: str) -> list[str]:
    """The sweep's jobs in the queue (job names carry the results folder: parallel runs do not mix)."""
    from bench.executors.slurm import job_name
    from bench.store import Store

    name = job_name(Store(results, sweep))
    out = subprocess.run(["squeue", "-h", "-r", "-n", name, "-o", "%i"], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_sweep_runs_cells_as_a_job_array_with_status_and_a_failing_cell(slurm_cluster, tmp_path):
    _sweep(tmp_path, "arr", "[gan, crash-on-slurm]", "[0, 1]", steps=50)
    proc = ganbench("sweep", "arr.yaml", "--executor", "slurm", "--profile", "test", cwd=tmp_path, check=1, timeout=300)
    assert "submitted 4 cells as SLURM job array" in proc.stderr
    assert "2 cells failed" in proc.stderr

    runs = tmp_path / "results/runs/arr"
    jobs = _records(runs, "slurm.json")
    results = _records(runs, "result.json")
    assert len(jobs) == 4 and len(results) == 4
    # One array, one cell per array task.
    arrays = {j["job_id"].split("_")[0] for j in jobs.values()}
    assert len(arrays) == 1
    assert sorted(j["job_id"].split("_")[1] for j in jobs.values()) == ["0", "1", "2", "3"]
    by_method = sorted((r["config"]["method"], r["status"]) for r in results.values())
    assert by_method == [("crash-on-slurm", "failed"), ("crash-on-slurm", "failed"), ("gan", "done"), ("gan", "done")]
    failed = next(r for r in results.values() if r["status"] == "failed")
    assert "crash-on-slurm fails on purpose" in failed["error"]
    # The accounting database knows the array tasks finished.
    sacct = subprocess.run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", arrays.pop()],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert sacct.count("COMPLETED") == 4

    status = ganbench("status", "arr.yaml", "--cells", cwd=tmp_path, check=0).stdout
    assert "arr: done 2, diverged 0, failed 2, running 0, pending 0 (of 4)" in status
    assert status.count("(RuntimeError: crash-on-slurm fails on purpose)") == 2
    assert (tmp_path / "results/arr/leaderboard.md").exists()

    # Nothing left to run: a second sweep submits nothing.
    again = ganbench("sweep", "arr.yaml", "--executor", "slurm", "--no-wait", cwd=tmp_path, check=0)
    assert "0 to run on slurm" in again.stderr and "submitted 0 cells" in again.stderr
    assert _records(runs, "slurm.json") == jobs


def test_queued_cells_are_not_resubmitted_and_cancel_cancels_them(slurm_cluster, tmp_path):
    _sweep(tmp_path, "held", "[gan]", "[0, 1, 2]", steps=50)
    # --hold keeps the array tasks queued (PENDING) until released: no CPU used.
    ganbench("sweep", "held.yaml", "--set", "sbatch.hold=true", "--no-wait", cwd=tmp_path, check=0)
    runs = tmp_path / "results/runs/held"
    jobs = {cid: j["job_id"] for cid, j in _records(runs, "slurm.json").items()}
    assert len(jobs) == 3
    assert sorted(_squeue(tmp_path / "results", "held")) == sorted(jobs.values())

    status = ganbench("status", "held.yaml", "--cells", cwd=tmp_path, check=0).stdout
    assert "held: done 0, diverged 0, failed 0, running 0, pending 0, queued 3 (of 3)" in status
    assert all(f"[job {j} PENDING]" in status for j in jobs.values())
    assert ganbench("plan", "held.yaml", cwd=tmp_path, check=0).stdout.count(" queued\n") == 3

    # Re-submitting (on SLURM or locally) leaves the queued cells alone.
    again = ganbench("sweep", "held.yaml", "--no-wait", cwd=tmp_path, check=0)
    assert "3 running elsewhere, 0 to run" in again.stderr
    local = ganbench("sweep", "held.yaml", "--executor", "debug", "--no-report", cwd=tmp_path, check=0)
    assert "0 to run on debug" in local.stderr
    assert sorted(_squeue(tmp_path / "results", "held")) == sorted(jobs.values())
    assert not _records(runs, "result.json")

    cancel = ganbench("cancel", "held.yaml", cwd=tmp_path, check=0).stdout
    assert "held: cancelled 3 SLURM jobs" in cancel
    deadline = time.time() + 30
    while _squeue(tmp_path / "results", "held") and time.time() < deadline:
        time.sleep(0.5)
    assert _squeue(tmp_path / "results", "held") == []
    status = ganbench("status", "held.yaml", "--cells", cwd=tmp_path, check=0).stdout
    assert "held: done 0, diverged 0, failed 0, running 0, pending 3 (of 3)" in status
    assert status.count("CANCELLED]") == 3
    assert "nothing was queued or running" in ganbench("cancel", "held.yaml", cwd=tmp_path, check=0).stdout


def _logged_steps(folder: Path) -> list[int]:
    with open(folder / "losses.csv") as handle:
        return [int(row["step"]) for row in csv.DictReader(handle)]


def test_preempted_cell_checkpoints_is_requeued_and_resumes(slurm_cluster, tmp_path):
    """submitit's job interrupt (SIGTERM + SIGUSR2, as on preemption): the cell writes its
    checkpoint at the signal, is requeued, and its second run continues from that step."""
    import submitit

    steps, every = 2000, 500
    # The periodic checkpoint at step 500 shows that training runs; the interrupt comes soon
    # after it, so the checkpoint the signal writes is at a later step, not a multiple of 500.
    _sweep(tmp_path, "pre", "[gan]", "[0]", steps=steps, checkpoint_every=every)
    ganbench("sweep", "pre.yaml", "--no-wait", cwd=tmp_path, check=0)
    runs = tmp_path / "results/runs/pre"
    (folder,) = [p.parent for p in runs.glob("*/slurm.json")]
    job = json.loads((folder / "slurm.json").read_text())
    (cell,) = load_sweep(tmp_path / "pre.yaml").cells
    train_dir = runs / "train" / cell["training_id"]

    deadline = time.time() + 180
    while not (train_dir / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    assert (train_dir / "checkpoint.pt").exists(), "the job never reached its first checkpoint"
    time.sleep(0.3)  # some steps past the periodic checkpoint
    assert not (folder / "result.json").exists(), "the cell finished before it could be interrupted"
    submitit.SlurmJob(folder=job["submitit_folder"], job_id=job["job_id"])._interrupt()

    seen = set()
    deadline = time.time() + 150
    while not (folder / "result.json").exists() and time.time() < deadline:
        seen.add(ganbench("status", "pre.yaml", cwd=tmp_path, check=0).stdout.strip())
        time.sleep(1)
    record = json.loads((folder / "result.json").read_text())
    preempted = json.loads((folder / "preempted.json").read_text())
    print(f"\npreempted at step {preempted['step']}; resumed from step {record['train']['resumed_from_step']}")

    assert record["status"] == "done", record.get("error")
    assert every < preempted["step"] < steps and preempted["step"] % every != 0
    assert record["train"]["steps"] == steps and record["train"]["resumed_from_step"] == preempted["step"]
    assert record["train"]["resumed_from"] == "checkpoint.pt"
    assert _logged_steps(train_dir) == list(range(10, steps + 1, 10))  # no gap, no repeat
    assert any("preempted 1" in line for line in seen), seen
    # Same job id, requeued: accounting shows the first run as REQUEUED, the second as COMPLETED.
    sacct = ["sacct", "-n", "-P", "-X", "-D", "-o", "JobID,State", "-j", job["job_id"].split("_")[0]]
    deadline = time.time() + 60
    while "COMPLETED" not in (history := subprocess.run(sacct, capture_output=True, text=True).stdout):
        assert time.time() < deadline, history
        time.sleep(0.5)
    assert history.split() == [f"{job['job_id']}|REQUEUED", f"{job['job_id']}|COMPLETED"]


def _dependency_sweep(tmp_path: Path, base_fails: int) -> Path:
    from test_dependencies import NEEDS_PLUGINS  # base-test, and needs-test that builds on it

    (tmp_path / "slurm").mkdir(exist_ok=True)
    (tmp_path / "slurm/test.yaml").write_text(PROFILE.read_text())
    path = tmp_path / "deps.yaml"
    path.write_text(textwrap.dedent(f"""
        name: deps
        plugins: [{NEEDS_PLUGINS}]
        matrix: {{method: [needs-test], dataset: [ring], imbalance: [1], seed: [0]}}
        defaults: {{budget: {{steps: 20, batch_size: 32, eval_samples: 100}}, log_every: 10}}
        overrides: {{method: {{needs-test: {{hp: {{base_fails: {base_fails}}}}}}}}}
        executor: {{name: slurm, profile: test}}
    """))
    return path


def _wait_for_results(runs: Path, n: int, timeout_s: float = 240) -> dict[str, dict]:
    deadline = time.time() + timeout_s
    while len(records := _records(runs, "result.json")) < n:
        assert time.time() < deadline, f"{len(records)} of {n} results after {timeout_s} s"
        time.sleep(1)
    return records


def test_dependents_wait_on_their_upstream_with_afterok(slurm_cluster, tmp_path):
    """The upstream training run and its dependent go out as two arrays, the
    dependent's with afterok on the upstream's task; it runs after it and reads its folder."""
    path = _dependency_sweep(tmp_path, base_fails=0)
    (dependent,) = [c for c in load_sweep(path).cells if c["config"]["method"] == "needs-test"]
    (upstream,) = [c for c in load_sweep(path).cells if c["config"]["method"] == "base-test"]
    proc = ganbench("sweep", "deps.yaml", "--set", "sbatch.hold=true", "--no-wait", cwd=tmp_path, check=0)
    assert "submitted 2 cells as SLURM job arrays" in proc.stderr
    runs = tmp_path / "results/runs/deps"
    up_job = json.loads((runs / upstream["id"] / "slurm.json").read_text())["job_id"]
    dep_job = json.loads((runs / dependent["id"] / "slurm.json").read_text())["job_id"]
    assert up_job.split("_")[0] != dep_job.split("_")[0]
    shown = subprocess.run(["scontrol", "show", "job", "-o", dep_job], capture_output=True, text=True, check=True).stdout
    assert f"Dependency=afterok:{up_job}" in shown, shown
    status = ganbench("status", "deps.yaml", "--cells", cwd=tmp_path, check=0).stdout
    assert "deps: done 0, diverged 0, failed 0, running 0, pending 0, queued 2 (of 2)" in status
    (line,) = [ln for ln in status.splitlines() if ln.startswith(dependent["id"])]
    assert f"[job {dep_job} PENDING; upstream 'base' (training {upstream['training_id']}) has not finished" in line

    subprocess.run(["scontrol", "release", up_job.split("_")[0], dep_job.split("_")[0]], check=True)
    records = _wait_for_results(runs, 2)
    assert records[dependent["id"]]["status"] == "done", records[dependent["id"]].get("error")
    assert records[dependent["id"]]["method_info"]["base"]["g_updates"] == 30
    # The dependent started after its upstream's task ended.
    sacct = subprocess.run(["sacct", "-n", "-P", "-X", "-o", "JobID,Start,End", "-j", f"{up_job},{dep_job}"],
                           capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    times = {jid: (start, end) for jid, start, end in (line.split("|") for line in sacct)}
    assert times[dep_job][0] >= times[up_job][1], times
    assert "0 to run on slurm" in ganbench("sweep", "deps.yaml", "--no-wait", cwd=tmp_path, check=0).stderr


def test_a_failed_upstream_on_slurm_leaves_its_dependent_blocked(slurm_cluster, tmp_path):
    path = _dependency_sweep(tmp_path, base_fails=1)
    (dependent,) = [c for c in load_sweep(path).cells if c["config"]["method"] == "needs-test"]
    proc = ganbench("sweep", "deps.yaml", cwd=tmp_path, check=1, timeout=300)
    assert "1 cells failed" in proc.stderr and "1 cells are blocked: upstream 'base'" in proc.stderr
    runs = tmp_path / "results/runs/deps"
    assert not (runs / dependent["id"] / "result.json").exists()
    status = ganbench("status", "deps.yaml", "--cells", cwd=tmp_path, check=0).stdout
    assert "deps: done 0, diverged 0, failed 1, running 0, pending 0, blocked 1 (of 2)" in status
    (line,) = [ln for ln in status.splitlines() if ln.startswith(dependent["id"])]
    assert "failed: RuntimeError: base-test fails on purpose" in line


def test_cells_per_gpu_runs_a_pack_of_cells_in_one_task(slurm_cluster, tmp_path):
    """cells_per_gpu: 2 on a CPU-only task of 2 cores: both cells in one array task, one process and one thread each."""
    _sweep(tmp_path, "pack", "[gan]", "[0, 1]", steps=30)
    proc = ganbench("sweep", "pack.yaml", "--set", "cells_per_gpu=2", "--set", "cpus_per_task=2", cwd=tmp_path,
                    check=0, timeout=300)  # fmt: skip
    assert "submitted 2 cells as SLURM job array " in proc.stderr
    runs = tmp_path / "results/runs/pack"
    jobs = _records(runs, "slurm.json")
    assert len(jobs) == 2 and len({j["job_id"] for j in jobs.values()}) == 1  # one task ran both
    results = _records(runs, "result.json")
    assert [r["status"] for r in results.values()] == ["done", "done"], [r.get("error") for r in results.values()]
    assert [r["environment"]["threads"] for r in results.values()] == [1, 1]
    assert len({r["environment"]["host"] for r in results.values()}) == 1
