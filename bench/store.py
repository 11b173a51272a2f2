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

Damage stays in its cell: a result.json or cell.json that cannot be read,
or a training run's train.json, checkpoint or generator.pt that is
truncated, makes the cell `corrupt` (`Store.damage` says which file and
why); the next run moves the file aside as `<name>.corrupt-<time>` (never
deleting it) and redoes what it held. Files are written with the process's
umask (0644 under umask 022), never 0600.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from bench import record_index
from bench.errors import UserError

TRAIN_DIR = "train"
# A result.json status; `running` and `pending` are cells without one.
FINISHED = ("done", "failed", "diverged")  # final: rerun only on request (failed: --retry-failed)
TRAINED = "trained"  # the training ended, the evaluation raised: the next sweep scores it again
CORRUPT = "corrupt"  # a file of the cell cannot be read (Store.damage); the next sweep sets it aside and redoes it
# A cell without a result whose upstream training runs (config["upstream"], see
# Method.needs) have not all been trained: not yet, or they failed, diverged or
# are damaged (Store.blocked says which and why). Never a result.json status.
BLOCKED = "blocked"


class Damaged(Exception):
    """A file of the store whose content cannot be read."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path next to `path` to write to; renamed over `path` when the
    block ends without error, removed otherwise: readers see the old file or
    the new one, never half of one. Created with the process's umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # The name keeps the suffix: writers that pick a format by it (PNG) see the right one.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600: teammates could not read results
        os.close(fd)
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is None:  # say which file: a full disk fails in write() without a path
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write a whole file atomically (see `atomic_path`)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())


def _umask() -> int:
    try:
        with open("/proc/self/status") as handle:  # read without changing it (os.umask sets it)
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
        self._indexed: dict[str, list] = {}  # cell id -> [stat key, summary] (bench.record_index), once read

    # -- where --------------------------------------------------------------
    def cell_dir(self, cell_id: str) -> Path:
        return self.runs_dir / cell_id

    def training_dir(self, training_id: str) -> Path:
        return self.runs_dir / TRAIN_DIR / training_id

    # -- what is there ------------------------------------------------------
    def result(self, cell_id: str) -> dict | None:
        """The cell's result record, or None; raises Damaged if it cannot be read."""
        return read_json(self.cell_dir(cell_id) / "result.json", "status")

    def training(self, training_id: str) -> dict | None:
        """The training record (train.json) of a finished training run, or None; raises Damaged."""
        return read_json(self.training_dir(training_id) / "train.json", "status")

    def is_trained(self, training_id: str) -> bool:
        try:
            record = self.training(training_id)
        except Damaged:
            return False
        return record is not None and record["status"] == TRAINED

    def is_running(self, cell_id: str) -> bool:
        return _is_locked(self.cell_dir(cell_id) / "lock")

    def status(self, cell_id: str, upstream: dict[str, str] | None = None) -> str:
        """done | diverged | failed | trained (from result.json), else running |
        corrupt (`damage` says why) | blocked (a cell with `upstream` training
        runs, name -> training id, not all trained: `blocked` says why) | pending.

        A result that `redo` marked as being redone counts as running or
        pending until a new one replaces it.
        """
        path = self.cell_dir(cell_id) / "result.json"
        key = record_index.stat_key(str(path))
        result = None
        if key is not None:
            known = self._indexed.get(cell_id)
            if known is not None and known[0] == key:
                result = known[1]  # the same file as when the index read it
            else:
                try:
                    result = read_json(path, "status")
                except Damaged:
                    result = None
        if result is not None and (key[0], key[1]) != self._superseded.get(cell_id):
            return result["status"]
        if self.is_running(cell_id):
            return "running"
        if self.damage(cell_id):
            return CORRUPT
        return BLOCKED if upstream and self.blocked(upstream) else "pending"

    def state(self, cell: dict) -> tuple[str, str]:
        """(status, note) of a cell dict: the note says why it is corrupt or blocked."""
        upstream = cell["config"].get("upstream")
        status = self.status(cell["id"], upstream)
        if status == CORRUPT:
            return status, self.damage(cell["id"]) or ""
        if status == BLOCKED:
            return status, self.blocked(upstream) or ""
        if status == "running":
            return status, self.stage(cell["training_id"]) or ""
        return status, ""

    def stage(self, training_id: str) -> str | None:
        """What the process training this run does now (bench/stage.py), while it holds the run's lock."""
        from bench import stage

        folder = self.training_dir(training_id)
        return stage.read(folder) if _is_locked(folder / "lock") else None

    def blocked(self, upstream: dict[str, str]) -> str | None:
        """Why a cell that needs these training runs (name -> training id) cannot
        start, or None when every one of them is trained."""
        for name, training_id in upstream.items():
            what = f"upstream {name!r} (training {training_id})"
            try:
                record = self.training(training_id)
            except Damaged as exc:
                return f"{what} is corrupt: {os.path.relpath(exc.path, self.runs_dir)}: {exc.reason}"
            if record is None:
                doing = self.stage(training_id)
                now = f" (training now: {doing})" if doing else " (training now)" if _is_locked(self.training_dir(training_id) / "lock") else ""
                return f"{what} has not finished training{now}"
            if record["status"] == "diverged":
                return f"{what} diverged at step {record.get('diverged_at_step', '?')}"
            if record["status"] != TRAINED:
                lines = [ln.strip() for ln in str(record.get("error") or "").splitlines() if ln.strip()]
                return f"{what} {record['status']}" + (f": {lines[-1]}" if lines else "")
        return None

    def damage(self, cell_id: str) -> str | None:
        """'<file>: <reason>' for the first file of the cell that cannot be read:
        its result.json or cell.json, or (without a result) its training run's
        train.json, checkpoint.pt or generator.pt (a torch zip archive cut short)."""
        folder = self.cell_dir(cell_id)
        try:
            if self.result(cell_id) is not None:
                return None
            cell = read_json(folder / "cell.json", "config")
            training_id = (cell or {}).get("training_id")
            if training_id:
                train = self.training_dir(training_id)
                read_json(train / "train.json", "status")
                for name in ("checkpoint.pt", "generator.pt"):
                    check_archive(train / name)
        except Damaged as exc:
            return f"{os.path.relpath(exc.path, self.runs_dir)}: {exc.reason}"
        return None

    def repair(self, cell_id: str) -> list[dict]:
        """Move the cell's unreadable result.json / cell.json aside; returns what was moved."""
        moved = []
        for name, key in (("result.json", "status"), ("cell.json", "config")):
            try:
                read_json(self.cell_dir(cell_id) / name, key)
            except Damaged as exc:
                moved.append(set_aside(exc.path, exc.reason))
        return moved

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
        """Every readable result record of this sweep, as `record_index.summary`
        keeps it (without the fields only the cell's own file needs; a damaged
        record is the cell's `corrupt` status), in cell id order.

        Read through the index (bench.record_index): only the results written
        since the last read are parsed. It also lets `status` answer without
        reading the records it has seen.
        """
        if not self.runs_dir.is_dir():
            return []
        with record_index.paused_gc():
            return self._read_records()

    def _read_records(self) -> list[dict]:
        kept = record_index.load(self.runs_dir)
        fresh: dict[str, list] = {}
        base = str(self.runs_dir)
        with os.scandir(base) as entries:
            names = sorted(e.name for e in entries if e.name != TRAIN_DIR and e.is_dir())
        for name in names:
            path = f"{base}/{name}/result.json"
            key = record_index.stat_key(path)  # before reading: a file replaced meanwhile fails the key next time
            if key is None:
                continue
            entry = kept.get(name)
            if entry is None or entry[0] != key:
                try:
                    record = read_json(Path(path), "status")
                except Damaged:
                    continue
                if record is None:
                    continue
                entry = [key, record_index.summary(record)]
            fresh[name] = entry
        if fresh.keys() != kept.keys() or any(fresh[k] is not kept[k] for k in fresh):
            record_index.save(self.runs_dir, fresh)
        self._indexed = fresh
        return [entry[1] for entry in fresh.values()]

    def check_writable(self) -> None:
        """Make the sweep's folder and write a file there, before any cell runs:
        a results path that is a file, a read-only folder or a full disk is one
        error (an OSError with the path) and nothing else is written."""
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"--results {self.root}: is a file, not a folder; give a folder (it is made if missing)")
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        probe = self.runs_dir / ".write-test"
        try:
            atomic_write(probe, "ganbench checks it can write here\n")
        finally:
            probe.unlink(missing_ok=True)

    def legacy_checkpoints(self, cell_ids: list[str]) -> list[str]:
        """Those of these cells whose folder holds a checkpoint.pt of the layout
        before training runs had their own folder (train/<id>/): a pickle that
        needs weights_only=False, so it is never resumed."""
        return [c for c in cell_ids if (self.cell_dir(c) / "checkpoint.pt").exists()]


def read_json(path: Path, required: str) -> dict | None:
    """A JSON object with the key `required`, or None if there is no file; raises Damaged."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if not data.strip():
        raise Damaged(path, "empty")
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise Damaged(path, "not UTF-8 text") from None
    except ValueError as exc:
        raise Damaged(path, f"not valid JSON ({exc})") from None
    if not isinstance(obj, dict) or required not in obj:
        raise Damaged(path, f"not a record of this layout (a JSON object with {required!r})")
    return obj


def check_archive(path: Path) -> None:
    """Raise Damaged if `path` exists and is not a complete zip archive (what torch.save writes).

    Cheap: only the archive's directory at its end is read, which a cut file lacks.
    """
    if not path.exists():
        return
    try:
        with zipfile.ZipFile(path):
            pass
    except zipfile.BadZipFile as exc:
        raise Damaged(path, f"truncated or not a torch file ({exc})") from None


def set_aside(path: Path, reason: str) -> dict:
    """Rename a damaged file to `<name>.corrupt-<time>` next to it (never deleting
    it); returns {"file", "moved_to", "reason"} for the record."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.rename(path, target)
    return {"file": path.name, "moved_to": target.name, "reason": reason}


def _file_key(path: Path) -> tuple[int, int] | None:
    """(inode, mtime in ns): a new atomic write (a rename) changes it."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns
