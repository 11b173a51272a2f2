"""The results store: one folder per cell, atomic writes, status by file.

results/runs/<sweep>/<cell id>/
    cell.json        the cell (config + runtime), written when it starts
    result.json      the result record, written last: its presence = done
    losses.csv       the loss log
    checkpoint.pt    the latest training checkpoint
    samples.png      a picture of generated samples
    lock             held (flock) while a process runs the cell
results/<sweep>/     the report (leaderboard.md/.csv/.tex, plots)
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

FINISHED = ("done", "failed", "diverged")


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


class Store:
    def __init__(self, root: str | Path, sweep: str):
        self.root = Path(root).resolve()
        self.sweep = sweep
        self.runs_dir = self.root / "runs" / sweep
        self.report_dir = self.root / sweep

    def cell_dir(self, cell_id: str) -> Path:
        return self.runs_dir / cell_id

    def result(self, cell_id: str) -> dict | None:
        path = self.cell_dir(cell_id) / "result.json"
        if not path.exists():
            return None
        return json.loads(path.read_text())

    def is_running(self, cell_id: str) -> bool:
        lock = self.cell_dir(cell_id) / "lock"
        if not lock.exists():
            return False
        with open(lock, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
        return False

    def status(self, cell_id: str) -> str:
        result = self.result(cell_id)
        if result is not None:
            return result["status"]
        return "running" if self.is_running(cell_id) else "pending"

    @contextmanager
    def claim(self, cell_id: str) -> Iterator[bool]:
        """Hold the cell's lock; yields False if another process holds it."""
        folder = self.cell_dir(cell_id)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def records(self) -> list[dict]:
        """Every result record of this sweep."""
        if not self.runs_dir.is_dir():
            return []
        out = []
        for path in sorted(self.runs_dir.glob("*/result.json")):
            out.append(json.loads(path.read_text()))
        return out
