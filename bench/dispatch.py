"""Send pending cells to workers through submitit, and show progress.

Executors:
- `debug`: submitit's DebugExecutor, in this process (pdb-friendly).
- `local`: submitit's LocalExecutor, `workers` processes at once; with CUDA
  present each job sees one GPU of its own (CUDA_VISIBLE_DEVICES).
- `slurm`: job arrays on a cluster, see bench.slurm.
Each job runs a batch of cells (bench.runner.run_cells): importing torch
costs seconds per process, more than a small cell, so cells are dealt
round-robin into about three jobs per worker, and a new job starts as soon
as one ends. Each worker keeps its torch, OpenMP and BLAS pools to its share
of the cores (bench.threads). Progress is read from the store, so it counts
cells, not jobs.
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from pathlib import Path

import submitit

from bench.errors import MACHINE_ERRNOS
from bench.runner import run_cells
from bench.store import Store
from bench.threads import share, worker_env

JOBS_PER_WORKER = 3
POLL_S = 0.5
# Statuses shown only when some cell has them: trained (its evaluation raised),
# corrupt (a file cannot be read), queued and preempted (SLURM).
OCCASIONAL = ("trained", "corrupt", "queued", "preempted")


def deal(cells: list[dict], n_jobs: int) -> list[list[dict]]:
    """Round-robin cells into at most n_jobs batches (mixes cheap and costly cells)."""
    n_jobs = max(1, min(n_jobs, len(cells)))
    return [cells[i::n_jobs] for i in range(n_jobs)]


def make_executor(name: str, folder: Path) -> submitit.Executor:
    if name == "debug":
        return submitit.DebugExecutor(folder=folder)
    if name == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=7 * 24 * 60)
        return executor
    raise ValueError(f"executor {name!r} is not available for local dispatch")


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


def dispatch(cells: list[dict], store: Store, executor_name: str, workers: int, cells_per_job: int = 0) -> list[str]:
    """Run `cells`; returns one line per job that crashed outside a cell."""
    if not cells:
        return []
    if executor_name == "debug":
        workers = 1
    threads = share(workers)
    cells = [{**c, "runtime": {**c["runtime"], "threads": threads}} for c in cells]
    n_jobs = math.ceil(len(cells) / cells_per_job) if cells_per_job else workers * JOBS_PER_WORKER
    batches = deal(cells, n_jobs)
    executor = make_executor(executor_name, store.runs_dir / "_submitit")
    progress = Progress(store, [c["id"] for c in cells])
    errors: list[str] = []
    running: list[tuple[submitit.Job, list[dict]]] = []
    queue = list(batches)
    # One GPU per worker when CUDA is present: each job sees only its own (CUDA_VISIBLE_DEVICES).
    gpus = local_gpus() if executor_name == "local" else []
    gpu_of: dict[str, int] = {}
    try:
        while queue or running:
            while queue and len(running) < workers:
                batch = queue.pop(0)
                if gpus:
                    busy = list(gpu_of.values())
                    gpu = min(gpus, key=busy.count)  # a free one, or the least shared if workers > GPUs
                    executor.update_parameters(gpus_per_node=1, visible_gpus=[gpu])
                with worker_env(threads):  # the worker's BLAS and OpenMP read these as they load
                    job = executor.submit(run_cells, batch)
                if gpus:
                    gpu_of[job.job_id] = gpu
                running.append((job, batch))
                if executor_name == "debug":
                    if _collect(running.pop(), errors):
                        queue.clear()  # a full disk: no new cells start; they stay pending
                    progress.update()
            for item in [r for r in running if r[0].done()]:
                running.remove(item)
                gpu_of.pop(item[0].job_id, None)
                if _collect(item, errors):
                    queue.clear()
            progress.update()
            if running:
                time.sleep(POLL_S)
    except KeyboardInterrupt:
        for job, _ in running:
            job.cancel(check=False)
        progress.close()
        raise
    progress.close()
    return errors


def _collect(item: tuple[submitit.Job, list[dict]], errors: list[str]) -> bool:
    """Note a job that crashed outside a cell's own try (a refused cell folder, a
    full disk) as one line; returns True when it was the machine's fault."""
    job, batch = item
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


class Progress:
    """Cells done / diverged / failed / running / pending (and trained, queued,
    preempted when there are any), from the store."""

    def __init__(self, store: Store, ids: list[str], statuses=None):
        self.store, self.ids = store, ids
        self.statuses = statuses  # optional: () -> {id: status}, e.g. asking SLURM (bench.slurm)
        self.live = None
        self.last = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(console=Console(stderr=True), refresh_per_second=4, transient=False)
            self.live.start()

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("done", "diverged", "failed", "running", "pending", *OCCASIONAL), 0)
        statuses = self.statuses() if self.statuses else {i: self.store.status(i) for i in self.ids}
        for cell_id in self.ids:
            counts[statuses[cell_id]] += 1
        return counts

    def update(self) -> None:
        c = self.counts()
        finished = c["done"] + c["diverged"] + c["failed"] + c["trained"]
        line = (
            f"[{finished}/{len(self.ids)}] done {c['done']}  diverged {c['diverged']}  "
            f"failed {c['failed']}  running {c['running']}  pending {c['pending']}"
        )
        line += "".join(f"  {k} {c[k]}" for k in OCCASIONAL if c[k])
        # A live line redraws on any change; a log file gets a line per finished cell.
        key = line if self.live is not None else finished
        if key == self.last:
            return
        self.last = key
        if self.live is not None:
            self.live.update(line)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        self.update()
        if self.live is not None:
            self.live.stop()
