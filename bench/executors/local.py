"""The debug and local executors: cells in this process, or in worker processes of this machine.

- `debug`: submitit's DebugExecutor, in this process, one job after another (pdb-friendly).
- `local`: submitit's LocalExecutor, `workers` processes at once. Each worker
  holds a slot (bench.executors.pack.slots): with CUDA present a GPU of its
  own, or a shared one with its share of that GPU's memory when there are
  more workers than GPUs; always its share of the cores (bench.threads), and
  each cell in it the threads that train it fastest within that share (one
  for a small network: `debug`, or `local` with fewer cells than cores, does
  not hand a small cell threads that would only slow it down).

Each job runs a batch of cells (bench.runner.run_cells): importing torch
costs seconds per process, more than a small cell, so the cells of one
dependency level are dealt round-robin into about three jobs per worker,
and a new job starts as soon as one ends and a slot is free. A job whose
cells need training runs that other jobs of this sweep train waits until
those runs have ended; a cell whose upstream run ended without being trained
is left out (it stays `blocked`). Progress is read from the store, so it
counts cells, not jobs. These jobs live as long as this process: a running
cell holds its lock, so `job_states` adds nothing to the store, and Ctrl-C
cancels them.
"""

from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench.errors import MACHINE_ERRNOS
from bench.executors.base import Executor, counts, levels, upstream_ids, with_threads
from bench.executors.pack import Slot, slots
from bench.progress import Progress
from bench.store import Damaged, Store
from bench.threads import share, worker_env

if TYPE_CHECKING:
    import submitit  # imported where jobs start: `status` asks every executor about jobs (job_states) without it

JOBS_PER_WORKER = 3
POLL_S = 0.5


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, store: Store, cells: list[dict], workers: int, cells_per_job: int = 0):
        super().__init__(store, cells)
        self.workers = 1 if self.name == "debug" else workers
        self.cells_per_job = cells_per_job

    def submitit_executor(self, folder: Path) -> submitit.Executor:
        import submitit

        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=7 * 24 * 60)
        return executor

    def gpus(self) -> list[str]:
        return [str(g) for g in local_gpus()]

    def run(self, todo: list[dict], wait: bool = True) -> list[str]:
        """Run the cells in dependency order until all ended; returns one line per job that crashed outside a cell."""
        if not todo:
            return []
        from bench.runner import run_cells  # the job function (imports torch): only when cells run

        side_by_side = min(self.workers, len(todo))  # fewer cells than workers: the idle workers' cores go to them
        todo = [with_threads(c, share(side_by_side), f"the share of {side_by_side} cell(s) side by side") for c in todo]
        queue = self._batches(todo)
        executor = self.submitit_executor(self.store.runs_dir / "_submitit")
        free: list[Slot] = slots(self.workers, self.gpus())
        progress = Progress(len(todo))
        errors: list[str] = []
        running: list[tuple[submitit.Job, list[dict], Slot]] = []
        try:
            while queue or running:
                while queue and free:
                    batch = self._next_ready(queue, running)
                    if batch is None:
                        break
                    slot = free.pop(0)
                    batch = [{**c, "runtime": {**c["runtime"], "gpu_share": slot.gpu_share}} for c in batch]
                    if slot.gpu is not None:
                        executor.update_parameters(gpus_per_node=1, visible_gpus=[int(slot.gpu)])
                    with worker_env(max(c["runtime"]["threads"] for c in batch)):  # the worker's BLAS and OpenMP read these as they load
                        job = executor.submit(run_cells, batch)
                    running.append((job, batch, slot))
                    if self.name == "debug":  # the job runs here, now, when its result is asked for
                        item = running.pop()
                        free.append(item[2])
                        if _collect(item, errors):
                            queue.clear()
                        progress.update(self._counts(todo))
                for item in [r for r in running if r[0].done()]:
                    running.remove(item)
                    free.append(item[2])
                    if _collect(item, errors):
                        queue.clear()  # a full disk: no new cells start; they stay pending
                if not running and queue and self._next_ready(queue, running, peek=True) is None:
                    break  # nothing runs and nothing can start: the rest waits for runs that ended untrained
                progress.update(self._counts(todo))
                if running:
                    time.sleep(POLL_S)
        except KeyboardInterrupt:
            self.cancel_jobs([job for job, _, _ in running])
            progress.close(self._counts(todo))
            raise
        progress.close(self._counts(todo))
        return errors

    def _counts(self, cells: list[dict]):
        return counts({c["id"]: self.store.state(c) for c in cells})

    def _batches(self, todo: list[dict]) -> list[list[dict]]:
        """Each dependency level's cells dealt into jobs, level after level."""
        out = []
        for level in levels(todo):
            n_jobs = math.ceil(len(level) / self.cells_per_job) if self.cells_per_job else self.workers * JOBS_PER_WORKER
            out += deal(level, n_jobs)
        return out

    def _next_ready(self, queue: list[list[dict]], running: list, peek: bool = False) -> list[dict] | None:
        """The first queued batch none of whose cells waits for a run that a queued or
        running job trains (taken off the queue unless `peek`), without the cells
        whose upstream ended untrained; None when every batch waits."""
        coming = {c["training_id"] for batch in queue for c in batch} | {c["training_id"] for _, batch, _ in running for c in batch}
        for batch in queue:
            waits = {t for c in batch for t in upstream_ids(c)} & coming - {c["training_id"] for c in batch}
            if any(not self._ended(t, batch[0]["runtime"]) for t in waits):
                continue
            if not peek:
                queue.remove(batch)
            ready = [c for c in batch if not (c["config"].get("upstream") and self.store.blocked(c["config"]["upstream"]))]
            if ready or peek:
                return ready
        return None

    def _ended(self, training_id: str, runtime: dict) -> bool:
        """Whether the run has ended (trained, failed, diverged, or its train.json is
        damaged), unless it is a failed run that this `--retry-failed` sweep trains again."""
        from bench.runner import retry_training

        try:
            record = self.store.training(training_id)
        except Damaged:
            return True
        return record is not None and not retry_training(record, self.store.training_dir(training_id), runtime)

    @staticmethod
    def cancel_jobs(jobs: list[submitit.Job]) -> None:
        for job in jobs:
            job.cancel(check=False)


class DebugExecutor(LocalExecutor):
    name = "debug"

    def submitit_executor(self, folder: Path) -> submitit.Executor:
        import submitit

        return submitit.DebugExecutor(folder=folder)

    def gpus(self) -> list[str]:
        return []  # one job at a time in this process: it sees what this process sees


def deal(cells: list[dict], n_jobs: int) -> list[list[dict]]:
    """Round-robin cells into at most n_jobs batches (mixes cheap and costly cells)."""
    n_jobs = max(1, min(n_jobs, len(cells)))
    return [cells[i::n_jobs] for i in range(n_jobs)]


def local_gpus() -> list[int]:
    """The GPU indices local workers may use: $CUDA_VISIBLE_DEVICES if it lists numbers, else all."""
    import torch

    if not torch.cuda.is_available():
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return list(range(torch.cuda.device_count()))
    try:
        return [int(x) for x in visible.split(",") if x.strip()]
    except ValueError:  # UUIDs: leave the whole set to every worker
        return []


def _collect(item: tuple, errors: list[str]) -> bool:
    """Note a job that crashed outside a cell's own try (a refused cell folder, a
    full disk) as one line; returns True when it was the machine's fault."""
    job, batch = item[0], item[1]
    try:
        job.result()
    except Exception as exc:
        line = _exception_line(str(exc)) or repr(exc)
        errors.append(f"job {job.job_id} ({len(batch)} cells): {line}")
        errno = re.search(r"\[Errno (\d+)\]", line)
        return errno is not None and int(errno.group(1)) in MACHINE_ERRNOS
    return False


def _exception_line(message: str) -> str | None:
    """'OSError: [Errno 28] ...' from an exception's text, or from the traceback
    submitit wraps a worker's exception in (its last lines name log files)."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    named = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Exit|Interrupt|Refused|Mismatch)\b", line)]
    return named[-1] if named else (lines[-1] if lines else None)
