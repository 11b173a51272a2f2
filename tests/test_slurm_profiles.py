"""Cluster profiles and local GPU workers: no cluster needed.

A bad profile, field or override stops `ganbench sweep` with one line and
exit status 2 before anything is written; the local executor gives each
worker its own GPU.
"""

import json

import pytest

from conftest import REPO, ganbench

SWEEP = """
name: prof
matrix: {method: [gan], dataset: [ring], imbalance: [1], seed: [0, 1]}
defaults: {budget: {steps: 20, batch_size: 16, eval_samples: 100}, log_every: 5, checkpoint_every: 10}
executor: EXECUTOR
"""


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "slurm").mkdir()
    (tmp_path / "slurm/mine.yaml").write_text("partition: gpu\ntime_min: 30\nsetup: [module load cuda]\n")
    (tmp_path / "s.yaml").write_text(SWEEP.replace("EXECUTOR", "{name: slurm, profile: mine}"))
    return tmp_path


@pytest.mark.parametrize(
    "profile, args, message",
    [
        ("partion: gpu\n", [], "slurm/mine.yaml: partion: unknown profile field 'partion'; did you mean 'partition'?"),
        ("time_min: 0\n", [], "slurm/mine.yaml: time_min: must be a time limit in minutes >= 1, got 0"),
        ("mem_gb: lots\n", [], "slurm/mine.yaml: mem_gb: must be a number of GB > 0, got 'lots'"),
        ("setup: module load cuda\n", [], "slurm/mine.yaml: setup: must be a list of shell lines"),
        ("- partition\n", [], "slurm/mine.yaml: a profile must be a mapping of fields"),
        ("partition: gpu\n", ["--set", "cpus_per_tsk=4"], "--set cpus_per_tsk=4: unknown profile field 'cpus_per_tsk'; did you mean 'cpus_per_task'?"),
        ("partition: gpu\n", ["--set", "array_parallelism=-1"], "--set array_parallelism=-1: must be an integer >= 1"),
        ("partition: gpu\n", ["--set", "time_min"], "--set time_min: must be FIELD=VALUE"),
        ("partition: gpu\n", ["--profile", "mnie"], "--profile mnie: no profile slurm/mnie.yaml; did you mean 'mine'?"),
        ("cells_per_gpu: 0\n", [], "slurm/mine.yaml: cells_per_gpu: must be an integer from 1 to 64"),
        # Before: OverflowError after the run folder was written (.inf), sbatch's refusal as a traceback (1e300, a mapping).
        ("mem_gb: .inf\n", [], "slurm/mine.yaml: mem_gb: must be a number of GB > 0 of at most 1,048,576, got inf"),
        ("mem_gb: 1.0e+300\n", [], "slurm/mine.yaml: mem_gb: must be a number of GB > 0 of at most 1,048,576, got 1e+300"),
        ("partition: gpu\n", ["--set", "mem_gb=.nan"], "--set mem_gb=.nan: must be a number of GB > 0 of at most 1,048,576, got nan"),
        ("time_min: 100000000000000000000\n", [], "slurm/mine.yaml: time_min: must be a time limit in minutes >= 1 of at most 10,000,000"),
        ("sbatch: {constraint: {a: 1}}\n", [], "slurm/mine.yaml: sbatch: must be a mapping of extra sbatch options to a text or a number"),
        ("cells_per_gpu: 4\ncpus_per_task: 2\n", [], "slurm/mine.yaml: cpus_per_task: 2 cores cannot be shared by the 4 cells"),
        ("gpus_per_task: 2\ncpus_per_task: 4\n", ["--set", "cells_per_gpu=3"],
         "slurm/mine.yaml: cpus_per_task: 4 cores cannot be shared by the 6 cells a task runs at once (cells_per_gpu 3 x 2 GPUs)"),
    ],
)
def test_bad_profile_is_one_line_exit_2_nothing_written(tree, profile, args, message, monkeypatch, capsys):
    from bench.cli import main

    (tree / "slurm/mine.yaml").write_text(profile)
    monkeypatch.chdir(tree)
    assert main(["sweep", "s.yaml", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ganbench: error: {message}"), err
    assert len(err.strip().splitlines()) == 1
    assert not (tree / "results").exists()


def test_profile_flags_need_the_slurm_executor_and_a_profile(tree):
    proc = ganbench("sweep", "s.yaml", "--executor", "debug", "--set", "time_min=5", cwd=tree, check=2)
    assert proc.stderr.strip() == "ganbench: error: --set: cluster profiles apply to --executor slurm only (this sweep runs on debug)"
    (tree / "s.yaml").write_text(SWEEP.replace("EXECUTOR", "{name: slurm}"))
    proc = ganbench("sweep", "s.yaml", cwd=tree, check=2)
    assert "executor.profile: --executor slurm needs a cluster profile" in proc.stderr
    (tree / "s.yaml").write_text(SWEEP.replace("EXECUTOR", "{name: slurm, profile: [a]}"))
    proc = ganbench("sweep", "s.yaml", cwd=tree, check=2)
    assert "s.yaml: executor.profile: must name a cluster profile slurm/NAME.yaml, got ['a']" in proc.stderr
    assert not (tree / "results").exists()


def test_profile_becomes_the_sbatch_script(tree, monkeypatch):
    from bench.executors.profiles import load_profile
    from bench.executors.slurm import make_executor

    monkeypatch.chdir(tree)
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")  # sbatch/srun need not exist to write the script
    profile = load_profile("mine", ["qos=high", "gpus_per_task=1", "mem_gb=7.5", "sbatch.constraint=a100", "array_parallelism=3"])
    executor = make_executor(profile, tree / "jobs", job_name="ganbench-prof")
    executor.parameters["map_count"] = 5  # as submitit sets it for an array of 5 tasks
    script = executor._make_submission_file_text("python -m job", "uid")
    for line in ["#SBATCH --partition=gpu", "#SBATCH --qos=high", "#SBATCH --gpus-per-task=1", "#SBATCH --mem=7680MB",
                 "#SBATCH --time=30", "#SBATCH --array=0-4%3", "#SBATCH --constraint=a100", "#SBATCH --requeue",
                 "#SBATCH --signal=USR2@90", "#SBATCH --job-name=ganbench-prof", "module load cuda",
                 # the task's thread pools keep to its cpus_per_task (bench.threads)
                 f"export OMP_NUM_THREADS={profile['cpus_per_task']}",
                 f"export OPENBLAS_NUM_THREADS={profile['cpus_per_task']}"]:  # fmt: skip
        assert line in script.splitlines(), (line, script)
    # The example profile documents every field and loads as it is.
    from bench.executors.profiles import PROFILE_FIELDS

    assert set(load_profile(str(REPO / "slurm/example.yaml"))) >= set(PROFILE_FIELDS)


def test_cells_per_gpu_share_the_task_cores_and_each_gpu(tree, monkeypatch):
    """Four cells per GPU on a two-GPU task of 16 cores: 8 cells, 2 threads each, 4 on each GPU with 1/4 of its memory."""
    from bench.executors.pack import slot_env, slots
    from bench.executors.profiles import cells_per_task, load_profile, sbatch_parameters, threads_per_cell

    monkeypatch.chdir(tree)
    profile = load_profile("mine", ["gpus_per_task=2", "cpus_per_task=16", "cells_per_gpu=4"])
    assert cells_per_task(profile) == 8 and threads_per_cell(profile) == 2
    assert "export OMP_NUM_THREADS=2" in sbatch_parameters(profile, "job")["setup"]
    layout = slots(8, ["0", "1"])
    assert [s.gpu for s in layout] == ["0", "1"] * 4 and {s.gpu_share for s in layout} == {0.25}
    assert slot_env(layout[1], 2)["CUDA_VISIBLE_DEVICES"] == "1" and slot_env(layout[1], 2)["MKL_NUM_THREADS"] == "2"
    assert slots(3, []) == [slots(1, [])[0]] * 3 and slots(1, [])[0].gpu is None  # no GPU: the environment is left alone


def test_local_workers_get_one_gpu_each(tmp_path, monkeypatch):
    """With CUDA present (faked here: two GPUs), each local worker sees only its own."""
    import bench.executors.local
    from bench.executors.local import LocalExecutor
    from bench.spec import load_sweep
    from bench.store import Store

    (tmp_path / "s.yaml").write_text(SWEEP.replace("EXECUTOR", "{name: local, workers: 2}"))
    sweep = load_sweep(tmp_path / "s.yaml")
    store = Store(tmp_path / "results", sweep.name)
    for cell in sweep.cells:
        cell["runtime"]["results_root"] = str(store.root)
    monkeypatch.setattr(bench.executors.local, "local_gpus", lambda: [0, 1])
    assert LocalExecutor(store, sweep.cells, workers=2, cells_per_job=1).run(sweep.cells) == []
    seen = [json.loads((store.cell_dir(c["id"]) / "result.json").read_text())["environment"]["cuda_visible_devices"]
            for c in sweep.cells]  # fmt: skip
    assert sorted(seen) == ["0", "1"]


def test_local_gpus_follow_cuda_visible_devices(monkeypatch):
    import torch

    from bench.executors.local import local_gpus

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert local_gpus() == [0, 1, 2, 3]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert local_gpus() == [2, 3]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert local_gpus() == []


def test_sbatch_refusing_the_job_is_one_line(tree, tmp_path):
    """sbatch exiting non-zero raises submitit's FailedJobError, which escaped as a traceback."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/sbatch").write_text("#!/bin/sh\necho 'sbatch: error: Memory specification can not be satisfied' >&2\nexit 1\n")
    (tmp_path / "bin/sbatch").chmod(0o755)
    (tmp_path / "bin/srun").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "bin/srun").chmod(0o755)
    import os

    proc = ganbench("sweep", "s.yaml", cwd=tree, env={"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}, check=2)
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("sweep 'prof': 2 cells") and len(lines) == 2, proc.stderr
    assert lines[1] == ("ganbench: error: slurm/mine.yaml: sbatch refused the job array: "
                        "sbatch: error: Memory specification can not be satisfied"), proc.stderr  # fmt: skip
