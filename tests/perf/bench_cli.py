"""Seconds of `ganbench plan`, `status` and `report` over a 10,000-cell sweep whose cells all have records.

    python tests/perf/bench_cli.py [--cells 10000] [--repeat 3]

Not a pytest module. Builds, in a temporary folder, a sweep of --cells ring
and grid cells (5 methods x 2 datasets x 10 imbalance factors x cells/100
seeds) and a fabricated result record for every cell (status done, every
metric, timings, environment, method_info, class counts: what a real record
holds, without training anything), with its own $GANBENCH_CACHE. Then runs
each command in a fresh process, best of --repeat, and prints its seconds
against the two references measured in the same run: the bare process start
(`python -c pass`) and the start of the command line (`python -c "import
bench.cli"`), as wall seconds and as CPU seconds (user + system, which the
load of a shared machine hardly changes). `plan` runs twice: cold (no cached expansion of the sweep:
the plugins and torch are imported and every cell resolved) and warm (the
expansion `plan` wrote is read back). `status` and `report` run cold (no
record index, bench/record_index.py, and no figures drawn: every record is
parsed and every figure drawn) and warm (what a later run finds: the index
and the figures whose numbers did not change).

Goals (issue 14, this 2-core machine): `plan` <= 1 s beyond the process
start, `status` and `report` <= 2 s in all (warm).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

METHODS = ["gan", "lsgan", "wgan-gp", "sngan", "cn-lsgan"]
DATASETS = ["ring", "grid"]
IMBALANCES = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]


def write_sweep(folder: Path, cells: int) -> Path:
    seeds = max(1, cells // (len(METHODS) * len(DATASETS) * len(IMBALANCES)))
    path = folder / "big.yaml"
    path.write_text(
        "name: big\n"
        f"matrix: {{method: {METHODS}, dataset: {DATASETS}, imbalance: {IMBALANCES}, seed: {list(range(seeds))}}}\n"
        "defaults: {budget: {steps: 600, batch_size: 128, eval_samples: 2000}}\n"
    )
    return path


def fabricate_records(sweep, results: Path) -> None:
    """A result.json per cell, as the runner writes it (values random, fields real)."""
    from bench.store import Store

    store = Store(results, sweep.name)
    rng = random.Random(0)
    environment = {"ganbench": "0.1.0", "git_commit": "0" * 40, "python": "3.13.0", "torch": "2.11.0",
                   "numpy": "2.5.0", "host": "node1", "device": "cpu", "device_name": "a CPU", "cuda": None,
                   "threads": 1, "cuda_visible_devices": None}  # fmt: skip
    for cell in sweep.cells:
        config = cell["config"]
        metrics = {m: rng.random() for m in config["metrics"]}
        record = {"id": cell["id"], "sweep": sweep.name, "config": config, "training_id": cell["training_id"],
                  "status": "done", "metrics": metrics, "eval_repeats": [{"eval_seed": 0, "metrics": metrics}],
                  "data": {"n_train": 2000, "class_counts": [200] * 8, "counts_of": "classes", "subset_seed": config["seed"]},
                  "train": {"steps": 600, "resumed_from_step": 0, "environment": environment, "finished_at": "2026-01-01T00:00:00+0000"},
                  "method_info": {"g_updates": 600, "d_updates": 600, "arch": {"name": "mlp"}},
                  "timings": {"train_s": rng.uniform(10, 20), "train_reused": False, "sample_s": 0.1, "eval_s": 1.0,
                              "metric_s": dict.fromkeys(metrics, 0.3)},
                  "environment": environment, "evaluator": {}, "set_aside": [],
                  "finished_at": "2026-01-01T00:00:00+0000"}  # fmt: skip
        folder = store.cell_dir(cell["id"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "result.json").write_text(json.dumps(record, indent=2, sort_keys=True))


def best_seconds(command: list[str], cwd: Path, env: dict, repeat: int, before=None) -> tuple[float, float]:
    """(wall, CPU) seconds of the command, each the best of `repeat` runs. CPU
    seconds (user + system of the process and its children) hardly change with
    the machine's load; wall seconds do."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeat):
        if before is not None:
            before()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(command)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
        best_wall = min(best_wall, wall)
        best_cpu = min(best_cpu, after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime)
    return best_wall, best_cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cells", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from bench.spec import load_sweep

    folder = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    cache = folder / "cache"
    env = {**os.environ, "GANBENCH_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    os.environ["GANBENCH_CACHE"] = str(cache)
    path = write_sweep(folder, args.cells)
    t0 = time.perf_counter()
    sweep = load_sweep(path)
    fabricate_records(sweep, folder / "results")
    print(f"{len(sweep.cells):,} cells with records in {folder} ({time.perf_counter() - t0:.1f} s to make)")

    def drop_cache() -> None:
        for p in cache.glob("sweeps/*"):
            p.unlink()

    def drop_index() -> None:
        """As after a sweep's first results: no record index, no figures drawn yet."""
        (folder / "results/runs/big/records-index.json").unlink(missing_ok=True)
        shutil.rmtree(folder / "results/big/.figures", ignore_errors=True)

    py = [sys.executable]
    cli = [*py, "-m", "bench.cli"]
    figures = {
        "python -c pass": best_seconds([*py, "-c", "pass"], folder, env, args.repeat),
        "import bench.cli": best_seconds([*py, "-c", "import bench.cli"], folder, env, args.repeat),
        "import torch": best_seconds([*py, "-c", "import torch"], folder, env, args.repeat),
        "plan (cold)": best_seconds([*cli, "plan", "big.yaml"], folder, env, args.repeat, before=drop_cache),
        "plan (warm)": best_seconds([*cli, "plan", "big.yaml"], folder, env, args.repeat),
        "status": best_seconds([*cli, "status", "big.yaml"], folder, env, args.repeat),
        "status --cells": best_seconds([*cli, "status", "big.yaml", "--cells"], folder, env, args.repeat),
        "status (cold)": best_seconds([*cli, "status", "big.yaml"], folder, env, args.repeat, before=drop_index),
        "report (cold)": best_seconds([*cli, "report", "big.yaml"], folder, env, args.repeat, before=drop_index),
        "report": best_seconds([*cli, "report", "big.yaml"], folder, env, args.repeat),
    }
    (start, cpu_start), (cli_start, _) = figures["python -c pass"], figures["import bench.cli"]
    print(f"load average {' '.join(open('/proc/loadavg').read().split()[:3])}, {os.cpu_count()} CPUs, best of {args.repeat}")
    print(f"{'':18s} {'wall s':>7s} {'- start':>8s} {'x start':>8s} {'x cli start':>11s} {'CPU s':>7s} {'- start':>8s}")
    for label, (wall, cpu) in figures.items():
        print(f"{label:18s} {wall:7.2f} {wall - start:8.2f} {wall / start:8.1f} {wall / cli_start:11.1f} "
              f"{cpu:7.2f} {cpu - cpu_start:8.2f}")  # fmt: skip
    print("goals: plan <= 1 s beyond the start (cold: the start includes importing torch), status and report <= 2 s in all")


if __name__ == "__main__":
    main()
