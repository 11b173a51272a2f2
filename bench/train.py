"""The one shared training loop.

It owns what every method needs and none should rewrite: seeding from the
cell, batch sampling, the device, the loss log, periodic checkpoints,
resuming from the latest checkpoint, and divergence detection. A method
only implements `train_step` (see bench.method).

A step returns its losses as 0-d device tensors; the loop keeps them and
reads them to floats in one host sync every `log_every` steps, before every
checkpoint and at the end (at most MAX_UNREAD_STEPS apart), so a GPU is
never made to wait for the host in between. The read checks every pending
step: a non-finite loss is found at the step it appeared, and a checkpoint
never holds a run that had already diverged. With `compile: true` the
method's objectives go through torch.compile first (bench.compiled).

A new checkpoint keeps the one before it (checkpoint.prev.pt): a checkpoint
that cannot be read is moved aside and training resumes from the previous
one, or from scratch, and the outcome says which.
"""

from __future__ import annotations

import csv
import io
import math
import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench import stage
from bench.batches import batch_sampler
from bench.compiled import compile_steps
from bench.data import Split
from bench.method import Method
from bench.errors import error_line
from bench.store import MAX_TORCH_BYTES, Damaged, atomic_write, open_regular, set_aside


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


CHECKPOINT, PREVIOUS, LOSSES = "checkpoint.pt", "checkpoint.prev.pt", "losses.csv"
# Losses are read to the host at least this often, whatever log_every: each
# unread step holds a few small device tensors.
MAX_UNREAD_STEPS = 1000


@dataclass
class TrainOutcome:
    steps: int
    resumed_from_step: int
    earlier_s: float  # training seconds spent before the checkpoint it resumed from
    resumed_from: str  # "checkpoint.pt", "checkpoint.prev.pt" (the latest could not be read) or "scratch"
    set_aside: list[dict]  # unreadable checkpoints moved aside (bench.store.set_aside)
    compile: dict | None = None  # with `compile: true`: the path the steps took (bench.compiled.compile_steps)


class UnreadLogs:
    """The steps' logs since the last read, as the method returned them (0-d
    tensors, or numbers from older plugins); `read` turns them into floats
    with one host sync."""

    def __init__(self):
        self.steps: list[tuple[int, dict]] = []

    def __len__(self) -> int:
        return len(self.steps)

    def add(self, step: int, logs: dict) -> None:
        self.steps.append((step, logs))

    def read(self) -> list[tuple[int, dict]]:
        tensors = [v.detach().reshape(()) for _, logs in self.steps for v in logs.values() if isinstance(v, torch.Tensor)]
        values = iter(torch.stack([t.to(tensors[0].device) for t in tensors]).tolist() if tensors else [])
        out = [(step, {k: next(values) if isinstance(v, torch.Tensor) else v for k, v in logs.items()}) for step, logs in self.steps]
        self.steps = []
        return out


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state(batch_gen: torch.Generator) -> dict:
    """Every random stream of a run, as tensors, numbers, strings, lists and dicts
    only, so that the checkpoint loads with `weights_only=True`."""
    version, internal, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
        "numpy": {"name": name, "keys": torch.from_numpy(keys.copy()), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached_gaussian)},  # fmt: skip
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "batches": batch_gen.get_state(),
    }


def set_rng_state(state: dict, batch_gen: torch.Generator) -> None:
    """Restore `rng_state`. The RNG setters take CPU ByteTensors only, wherever the
    checkpoint was written or mapped to."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    npy = state["numpy"]
    np.random.set_state((npy["name"], npy["keys"].cpu().numpy(), npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    torch.set_rng_state(_cpu_bytes(state["torch"]))
    if torch.cuda.is_available():  # a run written on more GPUs than this one restores the ones it has
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(_cpu_bytes(cuda_state), index)
    batch_gen.set_state(_cpu_bytes(state["batches"]))


def _cpu_bytes(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(device="cpu", dtype=torch.uint8)


def load_tensors(path: Path, required: tuple[str, ...]) -> dict:
    """A torch file as CPU tensors, whichever device wrote it, loaded with
    weights_only=True; raises Damaged if it cannot be read or lacks a key.
    (The method moves tensors to its own device as it loads them.)"""
    with open_regular(path, MAX_TORCH_BYTES) as handle:  # a FIFO, a link to /dev/zero, a folder: Damaged
        if handle is None:
            raise Damaged(path, "missing")
        try:
            state = torch.load(handle, map_location="cpu", weights_only=True)
        except OSError:
            raise  # the machine (a disk), not the file
        except Exception as exc:  # a cut or overwritten file: torch raises RuntimeError, UnpicklingError, EOFError...
            raise Damaged(path, f"cannot be loaded ({error_line(exc)})") from None
    missing = [k for k in required if not isinstance(state, dict) or k not in state]
    if missing:
        raise Damaged(path, f"has no {', '.join(missing)}")
    return state


def load_checkpoint(path: Path) -> dict:
    return load_tensors(path, ("config", "step", "method", "rng", "log"))


def resume_point(folder: Path, config: dict) -> tuple[dict | None, str, list[dict]]:
    """(checkpoint state or None, where it came from, files set aside): the latest
    readable checkpoint; one that cannot be read is moved aside and the one
    before it (checkpoint.prev.pt) is tried, then a start from scratch."""
    moved = []
    for name in (CHECKPOINT, PREVIOUS):
        path = folder / name
        if not os.path.lexists(path):  # a dangling link is damage too: set aside below
            continue
        try:
            state = load_checkpoint(path)
        except Damaged as exc:
            moved.append(set_aside(path, exc.reason))
            continue
        if state["config"] != config:
            raise ConfigMismatch(f"{path} was written for a different config; move the folder {folder} away to start over")
        return state, name, moved
    return None, "scratch", moved


def train(method: Method, data: Split, config: dict, runtime: dict, folder: Path) -> TrainOutcome:
    """Train `method` (built right after `seed_everything(config["seed"])`) for the budget.

    `config` is the training config (bench.spec.training_config); `folder`
    holds the run's checkpoint and loss log.
    """
    steps = config["budget"]["steps"]
    log_every, ckpt_every = runtime["log_every"], runtime["checkpoint_every"]
    ckpt_path, log_path = folder / CHECKPOINT, folder / LOSSES

    batch_gen = torch.Generator().manual_seed(config["seed"])
    x, y = data.x.to(method.device), data.y.to(method.device)
    picked = method.batch_rows(y)  # e.g. rare labels replicated; None: every row once
    if picked is not None:
        picked = picked.to(method.device)
    batch_x, batch_y = (x, y) if picked is None else (x[picked], y[picked])
    sampler = batch_sampler(config["budget"], len(batch_x), batch_gen)

    def next_batch():
        idx = sampler().to(method.device)
        return batch_x[idx], batch_y[idx]

    start, earlier_s = 0, 0.0
    rows: list[dict] = []
    state, resumed_from, moved = resume_point(folder, config)
    if state is not None:
        method.load_state_dict(state["method"])
        set_rng_state(state["rng"], batch_gen)
        if "sampler" in state:
            sampler.load(state["sampler"])
        start, earlier_s = state["step"], state.get("train_s", 0.0)
        # The checkpoint carries the log rows up to its step, so a kill between
        # writing it and writing losses.csv loses nothing.
        rows = list(state["log"])
    method.begin(Split(x, y, data.class_counts, data.aux), fresh=state is None)
    compiled = compile_steps(method) if runtime.get("compile") else None
    began = time.perf_counter()

    def checkpoint(step: int) -> None:
        buffer = io.BytesIO()
        torch.save({"config": config, "step": step, "method": method.state_dict(), "rng": rng_state(batch_gen),
                    "sampler": sampler.state(), "log": rows, "train_s": earlier_s + time.perf_counter() - began}, buffer)  # fmt: skip
        if ckpt_path.exists():  # kept: if the new one is ever unreadable, training resumes from this one
            os.replace(ckpt_path, folder / PREVIOUS)
        atomic_write(ckpt_path, buffer.getvalue())
        _write_log(log_path, rows)

    unread = UnreadLogs()

    def read_logs() -> None:
        """Read the unread steps' losses: rows for the logged steps; a non-finite loss ends the run there."""
        for step, logs in unread.read():
            if not all(math.isfinite(v) for v in logs.values()):
                _write_log(log_path, rows + [{"step": step, **logs}])
                raise Diverged(step, logs)
            if step % log_every == 0 or step == steps:
                rows.append({"step": step, **logs})

    for step in range(start + 1, steps + 1):
        if STOP.is_set():
            read_logs()
            checkpoint(step - 1)
            raise Interrupted(step - 1)
        try:
            unread.add(step, method.train_step(next_batch))
        except Exception:
            read_logs()  # a loss that went non-finite at an earlier step explains this error: diverged
            raise
        if step % log_every == 0 or step % ckpt_every == 0 or step == steps or len(unread) >= MAX_UNREAD_STEPS:
            read_logs()
            stage.say(f"training: step {step} of {steps}", echo=False)
        if step % ckpt_every == 0 or step == steps:
            checkpoint(step)
    return TrainOutcome(steps=steps, resumed_from_step=start, earlier_s=earlier_s, resumed_from=resumed_from,
                        set_aside=moved, compile=compiled)  # fmt: skip


def _write_log(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    fields = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, out.getvalue())
