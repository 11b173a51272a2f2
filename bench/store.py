"""The results store: a folder per training run and per cell, atomic writes,
status by file. The one place that says what a cell's status is.

results/runs/<sweep>/
    train/<training id>/    one training run, shared by the cells that differ
                            only in evaluation keys (bench.spec.training_config)
        train.json          the training record, written when training ends:
                            trained | diverged | failed
        checkpoint.pt       the latest training checkpoint (weights_only)
        losses.csv          the loss log
        generator.pt        what sampling needs (Method.sampling_state), kept
        lock                held (flock) while a process trains it
    <cell id>/              one evaluation of a training run
        cell.json           the cell (config + runtime), written when it starts
        result.json         the result record, written last: its presence = a status
        samples.png         a picture of the evaluation samples
        lock                held (flock) while a process runs the cell
results/<sweep>/            the report (leaderboard.md/.csv/.tex, plots)

Folders of the layout before training had its own folder (checkpoint.pt
next to result.json) keep their results; see `legacy_checkpoints`.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

TRAIN_DIR = "train"
# A result.json status; `running` and `pending` are cells without one.
FINISHED = ("done", "failed", "diverged")  # final: rerun only on request (failed: --retry-failed)
TRAINED = "trained"  # the training ended, the evaluation raised: the next sweep scores it again


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write via a temp file in the same folder and rename: readers see the
    old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj: dict) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextmanager
def _flock(path: Path, wait: bool) -> Iterator[bool]:
    """Hold an exclusive flock on `path`; yields False (without waiting) if another holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_locked(path: Path) -> bool:
    if not path.exists():
        return False
    with _flock(path, wait=False) as got:
        return not got


class Store:
    def __init__(self, root: str | Path, sweep: str):
        self.root = Path(root).resolve()
        self.sweep = sweep
        self.runs_dir = self.root / "runs" / sweep
        self.report_dir = self.root / sweep
        self._superseded: dict[str, tuple[int, int]] = {}  # cell id -> (inode, mtime) of a result being redone

    # -- where --------------------------------------------------------------
    def cell_dir(self, cell_id: str) -> Path:
        return self.runs_dir / cell_id

    def training_dir(self, training_id: str) -> Path:
        return self.runs_dir / TRAIN_DIR / training_id

    # -- what is there ------------------------------------------------------
    def result(self, cell_id: str) -> dict | None:
        """The cell's result record, or None."""
        return _read_json(self.cell_dir(cell_id) / "result.json")

    def training(self, training_id: str) -> dict | None:
        """The training record (train.json) of a finished training run, or None."""
        return _read_json(self.training_dir(training_id) / "train.json")

    def is_trained(self, training_id: str) -> bool:
        record = self.training(training_id)
        return record is not None and record["status"] == TRAINED

    def is_running(self, cell_id: str) -> bool:
        return _is_locked(self.cell_dir(cell_id) / "lock")

    def status(self, cell_id: str) -> str:
        """done | diverged | failed | trained (from result.json), else running | pending.

        A result that `redo` marked as being redone counts as running or
        pending until a new one replaces it.
        """
        path = self.cell_dir(cell_id) / "result.json"
        result = self.result(cell_id)
        if result is not None and _file_key(path) != self._superseded.get(cell_id):
            return result["status"]
        return "running" if self.is_running(cell_id) else "pending"

    def redo(self, cell_ids: list[str]) -> None:
        """Mark the current results of these cells as about to be replaced (a
        retry, a new evaluation): `status` no longer reports them."""
        for cell_id in cell_ids:
            key = _file_key(self.cell_dir(cell_id) / "result.json")
            if key is not None:
                self._superseded[cell_id] = key

    # -- locks --------------------------------------------------------------
    @contextmanager
    def claim(self, cell_id: str) -> Iterator[bool]:
        """Hold the cell's lock; yields False if another process holds it."""
        with _flock(self.cell_dir(cell_id) / "lock", wait=False) as got:
            yield got

    @contextmanager
    def claim_training(self, training_id: str) -> Iterator[None]:
        """Hold a training run's lock, waiting for another process that holds it:
        two cells that share a training run never train it twice."""
        with _flock(self.training_dir(training_id) / "lock", wait=True):
            yield

    # -- everything ---------------------------------------------------------
    def records(self) -> list[dict]:
        """Every result record of this sweep."""
        if not self.runs_dir.is_dir():
            return []
        out = []
        for path in sorted(self.runs_dir.glob("*/result.json")):
            out.append(json.loads(path.read_text()))
        return out

    def legacy_checkpoints(self, cell_ids: list[str]) -> list[str]:
        """Those of these cells whose folder holds a checkpoint.pt of the layout
        before training runs had their own folder (train/<id>/): a pickle that
        needs weights_only=False, so it is never resumed."""
        return [c for c in cell_ids if (self.cell_dir(c) / "checkpoint.pt").exists()]


def _read_json(path: Path) -> dict | None:
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _file_key(path: Path) -> tuple[int, int] | None:
    """(inode, mtime in ns): a new atomic write (a rename) changes it."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns
