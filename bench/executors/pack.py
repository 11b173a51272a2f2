"""Several cells at once on one GPU, each process with its own share.

A small cell leaves a GPU idle between kernel launches (issue 14: one cell
147 steps/s on an H100, 4 / 16 packed cells 379 / 431 in total), so
several cells run at once on one device, each as its own process with an
equal share of the cores (its torch, OpenMP and BLAS threads) and of its
GPU's memory (`torch.cuda.set_per_process_memory_fraction`, so one cell's
allocations cannot starve the others). Two executors pack:

- local: `--workers N` processes over the visible GPUs (`slots`);
- SLURM: the profile's `cells_per_gpu: k` puts k x max(1, gpus_per_task)
  cells into one array task, which runs them as that many processes
  (`run_pack`), child i on GPU i mod gpus_per_task of the task.

A packed task forwards SLURM's preemption signal to its processes: each
checkpoints after its current training step and exits with `INTERRUPTED`,
then the task is requeued as a whole (finished cells are not run again).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass

from bench.threads import thread_env

INTERRUPTED = 75  # a child's exit status: checkpointed after a preemption signal, requeue me (EX_TEMPFAIL)


@dataclass(frozen=True)
class Slot:
    """Where one of several processes runs: its GPU (CUDA_VISIBLE_DEVICES; None:
    no GPU, leave the environment alone) and its share of that GPU's memory."""

    gpu: str | None
    gpu_share: float | None


def slots(n: int, gpus: list[str]) -> list[Slot]:
    """n processes over these GPUs, round robin (process i on gpus[i % len(gpus)]);
    each gets 1 / (the processes on its GPU) of that GPU's memory."""
    if not gpus:
        return [Slot(None, None)] * n
    on = Counter(gpus[i % len(gpus)] for i in range(n))
    return [Slot(gpus[i % len(gpus)], 1 / on[gpus[i % len(gpus)]]) for i in range(n)]


def slot_env(slot: Slot, threads: int) -> dict[str, str]:
    """The environment variables a process in this slot starts with."""
    env = thread_env(threads)
    if slot.gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = slot.gpu
    return env


def visible_gpus() -> list[str]:
    """The GPUs this process was given ($CUDA_VISIBLE_DEVICES, as SLURM sets it for a task)."""
    return [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]


# -- a packed SLURM task ---------------------------------------------------------------

_children: list[subprocess.Popen] = []


def forward(signum: int) -> bool:
    """Send a signal to the processes of the running pack; False when there is none."""
    for child in _children:
        if child.poll() is None:
            child.send_signal(signum)
    return bool(_children)


def run_pack(cells: list[dict]) -> list[str]:
    """Run these cells at once, one process each, over this task's GPUs; returns
    their statuses. Raises `bench.train.Interrupted` when a process stopped for
    a preemption signal (see `forward`), RuntimeError when one died."""
    from bench.train import Interrupted

    layout = slots(len(cells), visible_gpus())
    try:
        for cell, slot in zip(cells, layout):
            runtime = {**cell["runtime"], "gpu_share": slot.gpu_share}
            env = {**os.environ, **slot_env(slot, runtime.get("threads") or 1)}
            child = subprocess.Popen([sys.executable, "-m", "bench.executors.pack"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, text=True)  # fmt: skip
            _children.append(child)
            child.stdin.write(json.dumps({**cell, "runtime": runtime}))
            child.stdin.close()
        outputs = [(child.stdout.read(), child.wait()) for child in _children]
    finally:
        for child in _children:
            if child.poll() is None:  # the parent is going down (an exception, a second signal): no orphans
                child.kill()
                child.wait()
        _children.clear()
    codes = [code for _, code in outputs]
    if INTERRUPTED in codes:
        raise Interrupted(-1)
    died = [f"cell {cell['id']}: exit status {code}" for cell, (_, code) in zip(cells, outputs) if code != 0]
    if died:
        raise RuntimeError(f"packed cells died: {'; '.join(died)}")
    return [out.strip().splitlines()[-1] if out.strip() else "?" for out, _ in outputs]


def _child() -> int:
    """One process of a pack: run the cell on stdin, print its status; on a
    preemption signal checkpoint after the current training step (or stop an
    evaluation) and exit with INTERRUPTED."""
    import submitit

    from bench.runner import in_training, run_cell
    from bench.train import STOP, Interrupted

    def on_signal(signum, frame) -> None:
        if in_training():
            STOP.set()  # train() checkpoints after this step and raises Interrupted
        else:
            raise Interrupted(-1)

    signal.signal(submitit.JobEnvironment._usr_sig(), on_signal)
    cell = json.loads(sys.stdin.read())
    try:
        print(run_cell(cell), flush=True)
    except Interrupted as exc:
        if getattr(exc, "cell", None) is not None:
            from bench.executors.task import note_preempted

            note_preempted(exc.cell, exc.step)
        return INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(_child())
