"""What a SLURM array task runs: its cells, and SLURM's preemption signal.

SLURM sends SIGUSR2 (submitit's preemption signal) `signal_delay_s` before a
time limit; a preempting scheduler and submitit's job interrupt send it too.
Training must not stop mid-step, so while a cell trains (or while packed
cells run, bench.executors.pack) the signal only asks for a stop after the
current step with a checkpoint (`bench.train.STOP`, or the signal forwarded
to each packed process); then submitit's own handler checkpoints the
callable and requeues the task (`scontrol requeue`, same job id), and the
requeued task resumes from those checkpoints. Outside training, submitit's
handler runs at once.
"""

from __future__ import annotations

import os
import signal
import time

import submitit

from bench.executors.pack import forward, run_pack
from bench.executors.slurm import PREEMPTED_FILE
from bench.runner import in_training, run_cells
from bench.store import Store, write_json
from bench.train import STOP, Interrupted

_submitit_handler = None


def _on_preemption_signal(signum, frame) -> None:
    if forward(signum) or in_training():
        STOP.set()  # each training loop checkpoints after its step and raises Interrupted
    elif _submitit_handler is not None:
        _submitit_handler(signum, frame)


class CellRunner(submitit.helpers.Checkpointable):
    """The callable of a SLURM task: runs its cells (one, or a pack at once) and
    checkpoints and requeues itself on preemption or time limit."""

    def __call__(self, cells: list[dict]) -> list[str]:
        global _submitit_handler
        sig = submitit.JobEnvironment._usr_sig()
        handler = signal.getsignal(sig)
        _submitit_handler = handler if callable(handler) else None
        if _submitit_handler is not None:
            signal.signal(sig, _on_preemption_signal)
        try:
            return run_pack(cells) if len(cells) > 1 else run_cells(cells)
        except Interrupted as exc:
            if getattr(exc, "cell", None) is not None:
                note_preempted(exc.cell, exc.step)
            if _submitit_handler is None:
                raise
            _submitit_handler(sig, None)  # checkpoint() + `scontrol requeue` + exit
            raise
        finally:
            signal.signal(sig, handler)

    def checkpoint(self, cells: list[dict]) -> submitit.helpers.DelayedSubmission:
        # The training checkpoints are on disk already; the requeued task only needs the cells.
        return submitit.helpers.DelayedSubmission(CellRunner(), cells)


def note_preempted(cell: dict, step: int) -> None:
    """preempted.json in the cell's folder: the step its training stopped at, and the SLURM task."""
    job = os.environ.get("SLURM_ARRAY_JOB_ID", os.environ.get("SLURM_JOB_ID", ""))
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    store = Store(cell["runtime"]["results_root"], cell["sweep"])
    write_json(store.cell_dir(cell["id"]) / PREEMPTED_FILE, {"step": step, "job_id": f"{job}_{task}" if task else job,
                                                             "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})  # fmt: skip
