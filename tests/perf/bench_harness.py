"""The harness's training step against a bare PyTorch loop, under the thread
count each executor gives a cell (goal, issue 22: >= 0.9x the bare loop).

    python tests/perf/bench_harness.py [--steps N] [--rounds 3]

Not a pytest module. Two cells: `gan` with `mlp` on 2-D points (batch 128,
the quickstart's ring/grid cell) and `gan` with `dcgan-small` on 28x28
(batch 64). For each executor the script asks bench.threads.cell_threads
what a cell of that network gets there, as the executor would:
- `debug`: one cell at a time in the calling process, all its cores;
- `local --workers 2` (the README's command), one of 2 cells side by side;
- `local --workers 2` with a single cell (fewer cells than workers);
and at that count times, side by side in this process, in alternating
rounds (each keeps its fastest):
- harness: `bench.train.train` on a `gan` Method, as a cell runs it (batches
  from a seeded CPU generator, losses logged every 25 steps, one checkpoint
  at the end);
- bare loop: tests/perf/bare_gan.py, the same networks, losses, optimizer
  and batch, nothing else.
The executors differ in where the process runs (this one, or a submitit
worker), not in the step: the thread count is what changes a step's speed
(issue 22: 0.23x under `debug` with two threads on a 2-D cell). The load
average is printed: on a shared machine only the ratios mean something.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bare_gan import BareGAN, fake_data, image_info, points_info, resolved_arch  # noqa: E402

from bench.data import Split  # noqa: E402
from bench.registry import METHODS  # noqa: E402
from bench.threads import cell_threads, share  # noqa: E402
from bench.train import seed_everything, train  # noqa: E402

CASES = {  # name: (arch, data info, batch, default steps per round)
    "mlp, 2-D points, batch 128": (resolved_arch("mlp"), points_info(), 128, 400),
    "dcgan-small, 28x28, batch 64": (resolved_arch("dcgan-small"), image_info(28), 64, 10),
}
EXECUTORS = {  # name: cores a cell may use before its network's cap (as bench.executors.local computes them)
    "debug": lambda: (share(1), "the share of 1 cell(s) side by side"),
    "local --workers 2, 2 cells": lambda: (share(2), "the share of 2 cell(s) side by side"),
    "local --workers 2, 1 cell": lambda: (share(1), "the share of 1 cell(s) side by side"),
}


class Harness:
    """A `gan` Method trained by bench.train.train, `steps` steps per call (a fresh run each call)."""

    def __init__(self, arch: dict, info: dict, x: torch.Tensor, batch: int):
        cls = METHODS.get("gan")
        self.cfg = {"method": "gan", "dataset": "perf", "imbalance": 1, "seed": 0,
                    "budget": {"steps": 0, "batch_size": batch, "eval_samples": 100},
                    "optimizer": copy.deepcopy(cls.optimizer), "arch": arch, "hp": dict(cls.hp)}  # fmt: skip
        seed_everything(0)
        self.method = cls(self.cfg, info, torch.device("cpu"))
        self.data = Split(x, torch.zeros(len(x), dtype=torch.long), [len(x)])
        self.folders, self.calls = tempfile.TemporaryDirectory(), 0

    def run(self, steps: int) -> None:
        self.calls += 1
        folder = Path(self.folders.name) / str(self.calls)
        folder.mkdir()
        cfg = {**self.cfg, "budget": {**self.cfg["budget"], "steps": steps}}
        train(self.method, self.data, cfg, {"log_every": 25, "checkpoint_every": 10**7}, folder)


def best_seconds(variants: dict, steps: int, rounds: int) -> dict[str, float]:
    for v in variants.values():
        v.run(max(2, steps // 10))  # warm-up
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, v in variants.items():
            t0 = time.perf_counter()
            v.run(steps)
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, help="steps per round (default: 400 for mlp, 10 for dcgan-small)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {len(os.sched_getaffinity(0))} cores, load average at start {os.getloadavg()}")
    worst = float("inf")
    for name, (arch, info, batch, default_steps) in CASES.items():
        steps = args.steps or default_steps
        x = fake_data(info)
        for executor, cores_of in EXECUTORS.items():
            threads, rule = cell_threads({"arch": arch}, *cores_of())
            torch.set_num_threads(threads)
            variants = {"harness": Harness(arch, info, x, batch), "bare loop": BareGAN(arch, info, x, batch)}
            best = best_seconds(variants, steps, args.rounds)
            ratio = best["bare loop"] / best["harness"]
            worst = min(worst, ratio)
            print(f"  {name:30s} {executor:28s} {threads} thread(s)  harness {steps / best['harness']:8.3g} steps/s"
                  f"  bare {steps / best['bare loop']:8.3g} steps/s  {ratio:5.2f}x")  # fmt: skip
    print(f"worst harness / bare loop: {worst:.2f}x (goal >= 0.90); load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
