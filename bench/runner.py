"""Run one cell: data -> method -> training -> samples -> metrics -> record.

`run_cells` is the function a dispatcher ships to a worker: it takes only
plain cell dicts, rebuilds everything from them, and writes results to the
store, so the same call serves the debug, local and SLURM executors.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import time
import traceback
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import submitit
import torch

from bench.data import dataset_for
from bench.metrics.base import EvalContext
from bench.registry import DATASETS, METHODS, METRICS, REPO_ROOT, load_plugins
from bench.store import Store, write_json
from bench.train import STOP, Interrupted
from bench.train import ConfigMismatch, Diverged, seed_everything, train


class CellRefused(Exception):
    """The cell folder belongs to another config; nothing was touched."""


def run_cells(cells: list[dict]) -> list[str]:
    """Run cells one after another in this process; returns their statuses."""
    return [run_cell(cell) for cell in cells]


class CellRunner(submitit.helpers.Checkpointable):
    """`run_cells` for SLURM jobs: on preemption or time limit it checkpoints and is requeued.

    SLURM sends SIGUSR2 (submitit's preemption signal) before a time limit, and
    `submitit`'s job interrupt sends it too. submitit's handler then calls
    `checkpoint` and requeues the job. Training must not stop mid-step, so
    while a cell trains the signal only sets bench.train.STOP: the loop writes
    its checkpoint after the current step and raises Interrupted, and only
    then is submitit's handler called. The requeued task calls this again with
    the same cells and training resumes from that checkpoint.
    """

    def __call__(self, cells: list[dict]) -> list[str]:
        global _SUBMITIT_HANDLER
        sig = submitit.JobEnvironment._usr_sig()
        handler = signal.getsignal(sig)
        _SUBMITIT_HANDLER = handler if callable(handler) else None
        if _SUBMITIT_HANDLER is not None:
            signal.signal(sig, _on_preemption_signal)
        try:
            return run_cells(cells)
        except Interrupted:
            if _SUBMITIT_HANDLER is None:
                raise
            _SUBMITIT_HANDLER(sig, None)  # checkpoint() + `scontrol requeue` + exit
            raise
        finally:
            signal.signal(sig, handler)

    def checkpoint(self, cells: list[dict]) -> submitit.helpers.DelayedSubmission:
        # The training checkpoint is on disk already; the requeued task only needs the cells.
        return submitit.helpers.DelayedSubmission(CellRunner(), cells)


_SUBMITIT_HANDLER = None
_TRAINING = False


def _on_preemption_signal(signum, frame) -> None:
    if _TRAINING:
        STOP.set()  # train() checkpoints after this step and raises Interrupted
    elif _SUBMITIT_HANDLER is not None:
        _SUBMITIT_HANDLER(signum, frame)


@contextmanager
def _deferring_signals():
    """Mark the training phase: a preemption signal in it waits for the end of the step."""
    global _TRAINING
    STOP.clear()
    _TRAINING = True
    try:
        yield
    finally:
        _TRAINING = False


def run_cell(cell: dict) -> str:
    runtime = cell["runtime"]
    if runtime.get("threads"):
        torch.set_num_threads(runtime["threads"])
    load_plugins(runtime.get("plugin_dirs", []))
    store = Store(runtime["results_root"], cell["sweep"])
    folder = store.cell_dir(cell["id"])
    with store.claim(cell["id"]) as claimed:
        if not claimed:
            return "running elsewhere"
        existing = store.result(cell["id"])
        if existing is not None and not (existing["status"] == "failed" and runtime.get("retry_failed")):
            return existing["status"]
        cell_json = folder / "cell.json"
        if cell_json.exists() and json.loads(cell_json.read_text())["config"] != cell["config"]:
            raise CellRefused(f"{folder} holds a different config than cell {cell['id']}; move that folder away to rerun")
        write_json(cell_json, cell)
        try:
            record = _execute(cell, folder)
        except Interrupted as exc:  # preempted: the checkpoint is written, the job is about to be requeued
            job = os.environ.get("SLURM_ARRAY_JOB_ID", os.environ.get("SLURM_JOB_ID", ""))
            task = os.environ.get("SLURM_ARRAY_TASK_ID")
            write_json(folder / "preempted.json", {"step": exc.step, "job_id": f"{job}_{task}" if task else job,
                                                   "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})  # fmt: skip
            raise
        write_json(folder / "result.json", record)
        return record["status"]


def _execute(cell: dict, folder: Path) -> dict:
    config = cell["config"]
    record: dict = {"id": cell["id"], "sweep": cell["sweep"], "config": config, "metrics": {}, "timings": {}}
    record["environment"] = environment()
    try:
        dataset = dataset_for(cell)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        record["environment"]["device"] = str(device)

        t0 = time.perf_counter()
        data = dataset.train_set(config["imbalance"], config["seed"])
        record["data"] = {"n_train": len(data.x), "class_counts": data.class_counts, "subset_seed": config["seed"],
                          "counts_of": "classes" if dataset.label_type == "class" else "10 equal-width label bins",
                          "options": {k: v for k, v in dataset.settings.items() if not dataset.options[k].path}}  # fmt: skip
        seed_everything(config["seed"])  # before the networks exist: their init is part of the run
        method = METHODS.get(config["method"])(config, dataset.info(), device, dataset=dataset)
        with _deferring_signals():
            outcome = train(method, data, config, cell["runtime"], folder)
        record["train"] = {"steps": outcome.steps, "resumed_from_step": outcome.resumed_from_step}
        record["timings"]["train_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        fake = method.sample(config["budget"]["eval_samples"], seed=config["eval_seed"])
        record["timings"]["sample_s"] = time.perf_counter() - t0
        record["method_info"] = method.record()  # e.g. DRS acceptance rate, PA level steps
        save_sample_picture(fake, dataset, folder / "samples.png")

        t0 = time.perf_counter()
        ctx = EvalContext(dataset=dataset, fake=fake, reference=dataset.reference_set(), device=device)
        for name in config["metrics"]:
            record["metrics"][name] = METRICS.get(name)().compute(ctx)
        record["evaluator"] = ctx.info
        record["timings"]["eval_s"] = time.perf_counter() - t0
        record["status"] = "done"
    except Diverged as exc:
        record.update(status="diverged", diverged_at_step=exc.step, error=str(exc))
    except (ConfigMismatch, Interrupted):
        raise
    except Exception:
        record.update(status="failed", error=traceback.format_exc())
    record["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return record


def save_sample_picture(fake: torch.Tensor, dataset, path: Path) -> None:
    """A grid of images, or a scatter of points over the mode centres."""
    import tempfile

    tmp = Path(tempfile.mkstemp(dir=path.parent, suffix=".png")[1])
    try:
        if dataset.kind == "images":
            from torchvision.utils import save_image

            save_image(fake[:64] * 0.5 + 0.5, tmp, nrow=8)
        else:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(4, 4))
            pts = fake[:2000].numpy()
            ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5, label="generated")
            if hasattr(dataset, "centres"):
                c = dataset.centres()
                ax.scatter(c[:, 0], c[:, 1], s=30, marker="x", color="red", label="modes")
            ax.set_aspect("equal")
            ax.legend(loc="upper right", fontsize=7)
            fig.savefig(tmp, dpi=80)
            plt.close(fig)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@lru_cache(maxsize=1)
def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def environment() -> dict:
    import numpy

    import bench

    return {
        "ganbench": bench.__version__,
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "host": socket.gethostname(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
