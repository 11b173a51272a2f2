"""The one shared training loop.

It owns what every method needs and none should rewrite: seeding from the
cell, batch sampling, the device, the loss log, periodic checkpoints,
resuming from the latest checkpoint, and divergence detection. A method
only implements `train_step` (see bench.method).
"""

from __future__ import annotations

import csv
import io
import math
import random
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.data import Split
from bench.method import Method
from bench.store import atomic_write


class Diverged(Exception):
    def __init__(self, step: int, logs: dict[str, float]):
        bad = ", ".join(f"{k}={v}" for k, v in logs.items() if not math.isfinite(v))
        super().__init__(f"non-finite loss at step {step}: {bad}")
        self.step = step


class ConfigMismatch(Exception):
    """A checkpoint belongs to another config: resuming would mix two runs."""


class Interrupted(Exception):
    """Training stopped at a step boundary because STOP was set; its checkpoint is written."""

    def __init__(self, step: int):
        super().__init__(f"interrupted after step {step}; checkpoint written")
        self.step = step


# Set (e.g. from a preemption signal handler) to make train() write its
# checkpoint after the current step and raise Interrupted.
STOP = threading.Event()


@dataclass
class TrainOutcome:
    steps: int
    resumed_from_step: int


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state(batch_gen: torch.Generator) -> dict:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "batches": batch_gen.get_state(),
    }


def _set_rng_state(state: dict, batch_gen: torch.Generator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    batch_gen.set_state(state["batches"])


def train(method: Method, data: Split, config: dict, runtime: dict, cell_dir: Path) -> TrainOutcome:
    """Train `method` (built right after `seed_everything(config["seed"])`) for the budget."""
    steps = config["budget"]["steps"]
    batch_size = config["budget"]["batch_size"]
    log_every, ckpt_every = runtime["log_every"], runtime["checkpoint_every"]
    ckpt_path, log_path = cell_dir / "checkpoint.pt", cell_dir / "losses.csv"

    batch_gen = torch.Generator().manual_seed(config["seed"])
    x, y = data.x.to(method.device), data.y.to(method.device)
    n = len(x)

    def next_batch():
        idx = torch.randint(n, (batch_size,), generator=batch_gen).to(method.device)
        return x[idx], y[idx]

    start = 0
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=method.device, weights_only=False)
        if state["config"] != config:
            raise ConfigMismatch(
                f"{ckpt_path} was written for a different config; delete the cell folder {cell_dir} to start over"
            )
        method.load_state_dict(state["method"])
        _set_rng_state(state["rng"], batch_gen)
        start = state["step"]
    # The checkpoint carries the log rows up to its step, so a kill between
    # writing it and writing losses.csv loses nothing.
    rows: list[dict] = list(state["log"]) if start else []

    def checkpoint(step: int) -> None:
        buffer = io.BytesIO()
        torch.save({"config": config, "step": step, "method": method.state_dict(), "rng": _rng_state(batch_gen),
                    "log": rows}, buffer)  # fmt: skip
        atomic_write(ckpt_path, buffer.getvalue())
        _write_log(log_path, rows)

    for step in range(start + 1, steps + 1):
        if STOP.is_set():
            checkpoint(step - 1)
            raise Interrupted(step - 1)
        logs = method.train_step(next_batch)
        if not all(math.isfinite(v) for v in logs.values()):
            _write_log(log_path, rows + [{"step": step, **logs}])
            raise Diverged(step, logs)
        if step % log_every == 0 or step == steps:
            rows.append({"step": step, **logs})
        if step % ckpt_every == 0 or step == steps:
            checkpoint(step)
    return TrainOutcome(steps=steps, resumed_from_step=start)


def _write_log(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    fields = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, out.getvalue())
