"""Run one cell in two stages.

1. Training (shared by the cells of one training id, under its lock): data
   -> method -> bench.train (checkpoints, resume) -> generator.pt and
   train.json in results/runs/<sweep>/train/<training id>/. Skipped when
   that run has ended.
2. Evaluation: a freshly built method loads generator.pt -> samples for
   each eval seed -> metrics -> result.json in the cell's folder. If it
   raises, the cell is `trained` and the next sweep (or `ganbench evaluate`)
   scores it again without training.

A cell whose config names upstream training runs (`config["upstream"]`,
from `Method.needs`) runs only once they are all trained; before that the
runner returns `blocked` and writes nothing (the store says why), and after
it the method gets their folders (`runtime["upstream_dirs"]`, read through
`Method.upstream_dir`).

`run_cells` is the function an executor ships to a worker: it takes only
plain cell dicts, rebuilds everything from them, and writes results to the
store, so the same call serves the debug, local and SLURM executors.
"""

from __future__ import annotations

import io
import os
import platform
import socket
import statistics
import subprocess
import time
import traceback
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import torch

from bench import stage
from bench.data import dataset_for
from bench.errors import is_machine_fault
from bench.metrics.base import EvalContext
from bench.registry import BUILTIN_ROOT, METHODS, METRICS, REPO_ROOT, OsExitCalled, guard_os_exit, load_plugins
from bench.spec import training_config
from bench.store import (BLOCKED, TRAINED, Damaged, Store, atomic_path, atomic_write, read_json, remove_leftovers, set_aside,
                         write_json)
from bench.threads import limit_gpu_memory, limit_threads
from bench.train import STOP, ConfigMismatch, Diverged, Interrupted, load_tensors, seed_everything, train

GENERATOR = "generator.pt"


class CellRefused(Exception):
    """The cell folder belongs to another config; nothing was touched."""


def run_cells(cells: list[dict]) -> list[str]:
    """Run cells one after another in this process; returns their statuses."""
    guard_os_exit()  # a method calling os._exit fails its cell instead of ending the worker unexplained
    return [run_cell(cell) for cell in cells]


def _exit_call(exc: SystemExit) -> str:
    return str(exc) if isinstance(exc, OsExitCalled) else f"sys.exit({exc.code!r})"


_TRAINING = False


def in_training() -> bool:
    """Whether this process is inside a cell's training loop: a stop request
    (`bench.train.STOP`, set by an executor's preemption handler) then ends it
    at the next step boundary with a checkpoint; outside it, a handler may stop at once."""
    return _TRAINING


@contextmanager
def _training_phase():
    global _TRAINING
    STOP.clear()
    _TRAINING = True
    try:
        yield
    finally:
        _TRAINING = False


def run_cell(cell: dict) -> str:
    """Run one cell: its training stage (unless a training run of the same
    training id exists), then its evaluation stage; returns its status."""
    runtime = cell["runtime"]
    limit_threads(runtime.get("threads"))
    limit_gpu_memory(runtime.get("gpu_share"))
    load_plugins(runtime.get("plugin_dirs", []))
    store = Store(runtime["results_root"], cell["sweep"])
    folder = store.cell_dir(cell["id"])
    with store.claim(cell["id"]) as claimed:
        if not claimed:
            return "running elsewhere"
        moved = store.repair(cell["id"])  # an unreadable result.json / cell.json goes aside, the cell runs again
        remove_leftovers(folder)  # a process killed mid-write left its temporary file; the lock says none writes now
        existing = store.result(cell["id"])
        if existing is not None and not _redo(existing["status"], runtime):
            return existing["status"]
        if runtime.get("evaluate_only") and not store.is_trained(cell["training_id"]):
            return "pending"  # `ganbench evaluate` trains nothing
        upstream = cell["config"].get("upstream")
        if upstream and store.blocked(upstream):
            return BLOCKED  # its upstream runs are not all trained: nothing is written, the store says why
        runtime["upstream_dirs"] = {name: str(store.training_dir(tid)) for name, tid in (upstream or {}).items()}
        cell_json = folder / "cell.json"
        written = read_json(cell_json, "config")  # readable: `repair` set a damaged one aside
        if written is not None and written["config"] != cell["config"]:
            raise CellRefused(f"{folder} holds a different config than cell {cell['id']}; move that folder away to rerun")
        write_json(cell_json, cell)
        try:
            training, reused, generator = train_stage(cell, store)
        except Interrupted as exc:  # stopped on request: the checkpoint is written; the executor says what next
            exc.cell = cell
            raise
        if training["status"] == TRAINED:
            record = evaluate_stage(cell, store, training, reused, generator)
        else:
            record = {**_result_base(cell, training, reused), "status": training["status"], "error": training["error"]}
            if "diverged_at_step" in training:
                record["diverged_at_step"] = training["diverged_at_step"]
        record["set_aside"] = moved
        record["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_json(folder / "result.json", record)
        return record["status"]


def _redo(status: str, runtime: dict) -> bool:
    """Whether a cell with this result runs again: a training run whose
    evaluation raised is scored again; a failed cell only on request."""
    return status == TRAINED or (status == "failed" and bool(runtime.get("retry_failed")))


# -- stage 1: training ----------------------------------------------------------------


def train_stage(cell: dict, store: Store) -> tuple[dict, bool, dict | None]:
    """(training record, reused, generator state): the cell's training run,
    trained (or resumed) unless it has ended; `reused` says this call did not
    train it; the state of generator.pt when it is trained.

    An unreadable train.json or generator.pt is moved aside and the stage
    runs again: it resumes from the final checkpoint and writes them anew.
    """
    config = training_config(cell["config"])
    folder = store.training_dir(cell["training_id"])
    with store.claim_training(cell["training_id"]):
        remove_leftovers(folder)
        moved: list[dict] = []
        try:
            existing = store.training(cell["training_id"])
        except Damaged as exc:
            existing = None
            moved.append(set_aside(exc.path, exc.reason))
        if existing is not None and not retry_training(existing, folder, cell["runtime"]):
            if existing["config"] != config:
                raise CellRefused(f"{folder} holds a training run of another config; move that folder away to rerun")
            if existing["status"] != TRAINED:
                return existing, True, None
            try:
                return existing, True, load_generator(folder / GENERATOR)
            except Damaged as exc:
                moved.append(set_aside(exc.path, exc.reason))
                moved.append(set_aside(folder / "train.json", f"its {GENERATOR} could not be read"))
        record = _train(cell, config, folder, moved)
        write_json(folder / "train.json", record)
        return record, False, load_generator(folder / GENERATOR) if record["status"] == TRAINED else None


def retry_training(existing: dict, folder: Path, runtime: dict) -> bool:
    # A failed training run is retried once per `--retry-failed` sweep, not
    # once more by every cell that shares it.
    if existing["status"] != "failed" or not runtime.get("retry_failed"):
        return False
    return (folder / "train.json").stat().st_mtime < runtime.get("started_at", float("inf"))


def _train(cell: dict, config: dict, folder: Path, moved: list[dict]) -> dict:
    record: dict = {"training_id": cell["training_id"], "sweep": cell["sweep"], "config": config}
    record["environment"] = environment(cell["runtime"])
    t0, earlier_s = time.perf_counter(), 0.0
    try:
        dataset = dataset_for(cell)
        device = cell_device()
        data = dataset.train_set(config["imbalance"], config["seed"])
        record["data"] = {"n_train": len(data.x), "class_counts": data.class_counts, "subset_seed": config["seed"],
                          "counts_of": "classes" if dataset.label_type == "class" else "10 equal-width label bins",
                          "options": {k: v for k, v in dataset.settings.items() if not dataset.options[k].path}}  # fmt: skip
        seed_everything(config["seed"])  # before the networks exist: their init is part of the run
        method = METHODS.get(config["method"]).create(config, dataset.info(), device, dataset=dataset,
                                                      upstream_dirs=cell["runtime"].get("upstream_dirs"))  # fmt: skip
        with _training_phase(), stage.recording(folder):  # `ganbench status` shows what it does (bench/stage.py)
            outcome = train(method, data, config, cell["runtime"], folder)
        earlier_s = outcome.earlier_s
        save_generator(method, cell["training_id"], config, folder / GENERATOR)
        record["train"] = {"steps": outcome.steps, "resumed_from_step": outcome.resumed_from_step,
                           "resumed_from": outcome.resumed_from, "set_aside": moved + outcome.set_aside}  # fmt: skip
        if outcome.compile is not None:  # `compile: true`: which path the steps took
            record["train"]["compile"] = outcome.compile
        record["method_info"] = method.record()
        record["status"] = TRAINED
    except Diverged as exc:
        record.update(status="diverged", diverged_at_step=exc.step, error=str(exc))
    except (ConfigMismatch, Interrupted):
        raise
    except SystemExit as exc:  # sys.exit / os._exit in a method's code: the cell failed, and says so (the worker goes on)
        record.update(status="failed", error=traceback.format_exc() + f"SystemExit: the method's code called {_exit_call(exc)}\n")
    except Exception as exc:
        if is_machine_fault(exc):
            raise  # a full disk is no result of the cell: nothing is recorded, the next run redoes it
        record.update(status="failed", error=traceback.format_exc())
    record["timings"] = {"train_s": earlier_s + time.perf_counter() - t0}
    record["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return record


def save_generator(method, training_id: str, config: dict, path: Path) -> None:
    """generator.pt: what `sample` needs, loadable with weights_only=True."""
    buffer = io.BytesIO()
    torch.save({"training_id": training_id, "config": config, "method": method.sampling_state()}, buffer)
    atomic_write(path, buffer.getvalue())


def load_generator(path: Path) -> dict:
    """generator.pt's `Method.sampling_state`, as CPU tensors; raises Damaged."""
    return load_tensors(path, ("method",))["method"]


# -- stage 2: evaluation --------------------------------------------------------------


def evaluate_stage(cell: dict, store: Store, training: dict, reused: bool, state: dict) -> dict:
    """Score the saved generator: `eval_repeats` evaluations with eval seeds
    eval_seed, eval_seed + 1, ...; metrics are their means. An evaluation that
    raises leaves the cell `trained`, with the error."""
    config = cell["config"]
    record = _result_base(cell, training, reused)
    timings = record["timings"]
    timings.update(sample_s=0.0, eval_s=0.0, metric_s=dict.fromkeys(config["metrics"], 0.0))
    try:
        dataset = dataset_for(cell)
        device = cell_device()
        # Built as for training, dataset included: a method may read it while it is built
        # (damage-gan's default prune_every 0 counts the training set's epoch).
        method = METHODS.get(config["method"]).create(training_config(config), dataset.info(), device, dataset=dataset,
                                                      upstream_dirs=cell["runtime"].get("upstream_dirs"))  # fmt: skip
        reference = dataset.reference_set()
        # A conditional row generates for the labels evaluation asks for, and the metrics see them.
        labels = dataset.requested_labels(config["budget"]["eval_samples"]) if method.conditional else None
        for repeat in range(config.get("eval_repeats", 1)):
            eval_seed = config["eval_seed"] + repeat
            method.load_sampling_state(state)  # each evaluation starts from the saved state (DRS's running max)
            seed_everything(eval_seed)  # metrics that draw random numbers draw the same ones every time
            t0 = time.perf_counter()
            asked = {} if labels is None else {"labels": labels}  # plugins' sample(n, seed) of unconditional rows keep working
            fake = method.sample(config["budget"]["eval_samples"], seed=eval_seed, **asked)
            timings["sample_s"] += time.perf_counter() - t0
            if repeat == 0:
                record["method_info"] = method.record()  # e.g. DRS acceptance rate, PA level steps
                save_sample_picture(fake, dataset, store.cell_dir(cell["id"]) / "samples.png")
            t0 = time.perf_counter()
            ctx = EvalContext(dataset=dataset, fake=fake, reference=reference, device=device, fake_labels=labels)
            values = {}
            for name in config["metrics"]:
                t1 = time.perf_counter()
                values[name] = METRICS.get(name)().compute(ctx)
                timings["metric_s"][name] += time.perf_counter() - t1
            timings["eval_s"] += time.perf_counter() - t0
            record["eval_repeats"].append({"eval_seed": eval_seed, "metrics": values})
            if repeat == 0:
                record["evaluator"] = ctx.info
        record["metrics"] = {name: statistics.fmean(r["metrics"][name] for r in record["eval_repeats"])
                             for name in config["metrics"]}  # fmt: skip
        record["status"] = "done"
    except Interrupted:
        raise
    except SystemExit as exc:
        record.update(status=TRAINED, error=traceback.format_exc() + f"SystemExit: the method's code called {_exit_call(exc)}\n")
    except Exception as exc:
        if is_machine_fault(exc):
            raise
        record.update(status=TRAINED, error=traceback.format_exc())
    return record


def _result_base(cell: dict, training: dict, reused: bool) -> dict:
    """The fields of a result record that come from the cell and its training run."""
    return {
        "id": cell["id"],
        "sweep": cell["sweep"],
        "config": cell["config"],
        "training_id": cell["training_id"],
        "metrics": {},
        "eval_repeats": [],
        "data": training.get("data", {}),
        "train": {**training.get("train", {}), "environment": training["environment"],
                  "finished_at": training["finished_at"]},  # fmt: skip
        "method_info": training.get("method_info", {}),
        "timings": {"train_s": training["timings"]["train_s"], "train_reused": reused},
        "environment": environment(cell["runtime"]),
    }


def cell_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def save_sample_picture(fake: torch.Tensor, dataset, path: Path) -> None:
    """A grid of images, or a scatter of points over the mode centres."""
    with atomic_path(path) as tmp:
        if dataset.kind == "images":
            from PIL import Image
            from torchvision.utils import make_grid

            grid = make_grid(fake[:64] * 0.5 + 0.5, nrow=8)
            if fake.shape[1] == 1:
                grid = grid[:1]  # make_grid copies one channel to three: a grey PNG is a third of the size
            pixels = grid.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).squeeze(-1)  # as save_image
            Image.fromarray(pixels.cpu().numpy()).save(tmp, format="PNG")
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


@lru_cache(maxsize=1)
def _git_commit() -> str | None:
    if BUILTIN_ROOT != REPO_ROOT:  # an installed wheel: the folder above it is not ganbench's checkout
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def environment(runtime: dict | None = None) -> dict:
    """Versions, host, and which device (and how many CPU threads, and the
    executor's reason for that count) this process computes on."""
    import numpy

    import bench

    device = cell_device()
    return {
        "ganbench": bench.__version__,
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "host": socket.gethostname(),
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "cuda": torch.version.cuda,
        "threads": torch.get_num_threads(),
        "threads_rule": (runtime or {}).get("threads_rule"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


@lru_cache(maxsize=1)
def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
