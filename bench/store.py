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

import errno
import fcntl
import io
import json
import os
import re
import stat
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
TRAINING_STATUSES = (TRAINED, "diverged", "failed")  # a train.json status

# Size bounds of what is read from a results folder (every file there is untrusted):
MAX_JSON_BYTES = 64 << 20  # a record is a few KB; an index of 100,000 cells is tens of MB
MAX_TORCH_BYTES = 64 << 30  # checkpoints and generators: the largest network, with room


class Damaged(Exception):
    """A file of the store whose content cannot be read."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
          (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))  # fmt: skip


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


@contextmanager
def open_regular(path: Path, limit: int, follow: bool = False) -> Iterator[io.BufferedReader | None]:
    """The one way to open a file of a results folder (or any file a user hands
    over) for reading: a regular file of at most `limit` bytes, else Damaged
    saying what is there; None when there is none.

    Never blocks on a FIFO (O_NONBLOCK), never follows a symbolic link at the
    last step (O_NOFOLLOW: a link could lead out of the folder or to
    /dev/zero; `follow=True` for a file the user named), never needs write
    access. A file where a folder of the path should be is Damaged naming that file.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | (0 if follow else os.O_NOFOLLOW) | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        yield None
        return
    except NotADirectoryError:
        raise Damaged(_blocking_file(path), "a file where a folder should be") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Damaged(path, "a symbolic link (links in a results folder are not followed)") from None
        if exc.errno == errno.ENXIO:  # a socket
            raise Damaged(path, "a socket, not a file") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # before fdopen, which refuses a folder with its own error
            raise Damaged(path, f"{_kind(st.st_mode)}, not a file")
        if st.st_size > limit:
            raise Damaged(path, f"larger than {limit:,} bytes ({st.st_size:,})")
        os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


def read_bounded(path: Path, limit: int = MAX_JSON_BYTES) -> bytes | None:
    """The bytes of the regular file `path` (see `open_regular`), None if absent; raises Damaged."""
    with open_regular(path, limit) as handle:
        if handle is None:
            return None
        data = handle.read(limit + 1)  # a file that grew since fstat is still bounded
    if len(data) > limit:
        raise Damaged(path, f"larger than {limit:,} bytes")
    return data


def _lstat_mode(path: Path) -> int | None:
    try:
        return os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None


def _blocking_file(path: Path) -> Path:
    """The first component of `path` that exists and is not a folder."""
    for parent in reversed(path.parents):
        if os.path.lexists(parent) and not os.path.isdir(parent):
            return parent
    return path


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
    """Hold an exclusive flock on `path`; yields False (without waiting) if another holds it.

    The lock file is opened without following a link (a dangling one would
    create its target outside the results folder) and without blocking (a
    FIFO); anything there but a regular file is set aside and a new lock made.
    """
    folder = path.parent
    if os.path.islink(folder) or (os.path.lexists(folder) and not os.path.isdir(folder)):
        _set_aside_quietly(folder, "not a folder of this results folder")  # a file, or a link that could lead out
    folder.mkdir(parents=True, exist_ok=True)
    handle = _open_lock(path)
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_LOCK_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _open_lock(path: Path):
    for _ in range(3):  # another process may set the same damaged lock aside at once
        try:
            fd = os.open(path, _LOCK_FLAGS, 0o666)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.EISDIR, errno.ENXIO, errno.EEXIST):
                raise
            reason = {errno.ELOOP: "a symbolic link", errno.EISDIR: "a folder", errno.ENXIO: "a FIFO or socket"}
            _set_aside_quietly(path, f"{reason.get(exc.errno, 'not a file')}, not a lock file")
            continue
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return os.fdopen(fd, "ab")
        os.close(fd)
        _set_aside_quietly(path, "not a regular file, not a lock file")
    raise Damaged(path, "cannot be made a lock file")


def _set_aside_quietly(path: Path, reason: str) -> None:
    try:
        set_aside(path, reason)
    except FileNotFoundError:
        pass  # another process moved it first


def _is_locked(path: Path) -> bool:
    """Whether a process holds the lock at `path`: opened for reading only
    (a reader of a shared or read-only folder needs no write access), never
    following a link, never blocking; anything but a regular file is no lock."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False  # absent, a link, a socket, no permission: nobody holds a lock there
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


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
            train = None
            if training_id:
                train = self.training_dir(training_id)
                read_json(train / "train.json", "status")
                for name in ("checkpoint.pt", "generator.pt"):
                    check_archive(train / name)
            for lock in (folder / "lock", *([train / "lock"] if train else [])):
                mode = _lstat_mode(lock)
                if mode is not None and not stat.S_ISREG(mode):
                    raise Damaged(lock, f"{_kind(mode)}, not a lock file")
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
            names = sorted(e.name for e in entries if e.name != TRAIN_DIR and e.is_dir(follow_symlinks=False))
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
    """A JSON object with the key `required`, or None if there is no file; raises
    Damaged, also when the object is not of the shape its file holds
    (`shape_problem`: a result.json, train.json or cell.json)."""
    data = read_bounded(path)
    if data is None:
        return None
    if not data.strip():
        raise Damaged(path, "empty")
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise Damaged(path, "not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:
        raise Damaged(path, f"not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(obj, dict) or required not in obj:
        raise Damaged(path, f"not a record of this layout (a JSON object with {required!r})")
    problem = shape_problem(path.name, obj)
    if problem:
        raise Damaged(path, problem)
    return obj


_HEX_ID = re.compile(r"[0-9a-f]{6,64}")
_NUMBER = (int, float)


def _number(v) -> bool:
    return v is None or (isinstance(v, _NUMBER) and not isinstance(v, bool))


def shape_problem(name: str, obj: dict) -> str | None:
    """What is wrong with the shape of a record read from the file `name`
    (result.json, train.json, cell.json; others are not checked), or None.

    Only the fields the readers use are checked, and only where present, so
    records of earlier layouts and the index's summaries pass; a record that
    fails is `corrupt`, never a traceback in `report` or `sweep`.
    """
    if name == "result.json":
        statuses = (*FINISHED, TRAINED)
    elif name == "train.json":
        statuses = TRAINING_STATUSES
    elif name == "cell.json":
        statuses = None
    else:
        return None
    if statuses is not None and obj.get("status") not in statuses:
        return f"status {str(obj.get('status'))[:40]!r} is not one of {', '.join(statuses)}"
    for key in ("id", "training_id"):
        if key in obj and not (isinstance(obj[key], str) and _HEX_ID.fullmatch(obj[key])):
            return f"{key} {str(obj[key])[:40]!r} is not a cell id (hexadecimal)"
    for key in ("config", "metrics", "timings", "train", "data", "method_info", "evaluator", "environment", "files"):
        if obj.get(key) is not None and not isinstance(obj[key], dict):  # null: readers take it as {}
            return f"{key} is not a JSON object"
    if name == "train.json" or name == "cell.json":
        if not isinstance(obj.get("config"), dict):
            return "config is not a JSON object"
    if name == "train.json" and not (isinstance(obj.get("timings"), dict) and isinstance(obj.get("environment"), dict)
                                     and _number(obj["timings"].get("train_s"))):  # fmt: skip
        return "timings.train_s or environment is missing"
    if not all(isinstance(k, str) and _number(v) for k, v in (obj.get("metrics") or {}).items()):
        return "metrics holds a value that is not a number"
    timings = obj.get("timings") or {}
    if not all(_number(timings.get(k)) for k in ("train_s", "eval_s", "sample_s")):
        return "timings holds a value that is not a number"
    if not isinstance(timings.get("train_reused", False), bool):
        return "timings.train_reused is not true or false"
    repeats = obj.get("eval_repeats", [])
    if not isinstance(repeats, list) or not all(isinstance(r, dict) and isinstance(r.get("metrics", {}), dict)
                                                and all(_number(v) for v in r.get("metrics", {}).values())
                                                for r in repeats):  # fmt: skip
        return "eval_repeats is not a list of evaluations"
    bounds = (obj.get("evaluator") or {}).get("bounds", {})
    if not (isinstance(bounds, dict) and all(isinstance(b, list) and len(b) == 2 and all(v is None or _number(v) for v in b)
                                             for b in bounds.values())):  # fmt: skip
        return "evaluator.bounds is not a mapping of metric to [low, high]"
    if not all(isinstance(v, str) for v in (obj.get("files") or {}).values()):
        return "files holds a value that is not a path"
    return None


def check_archive(path: Path) -> None:
    """Raise Damaged if `path` exists and is not a complete zip archive (what torch.save writes).

    Cheap: only the archive's directory at its end is read, which a cut file lacks.
    """
    with open_regular(path, MAX_TORCH_BYTES) as handle:
        if handle is None:
            return
        try:
            with zipfile.ZipFile(handle):
                pass
        except zipfile.BadZipFile as exc:
            raise Damaged(path, f"truncated or not a torch file ({exc})") from None


def remove_leftovers(folder: Path) -> None:
    """Remove the temporary files (`atomic_path`'s `.<name>.*.tmp*`) a killed
    process left in `folder`; called by the holder of the folder's lock."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.name.startswith(".") and ".tmp" in entry.name and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                pass


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
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):  # a file where the cell's folder should be: damage, no result
        return None
    return st.st_ino, st.st_mtime_ns
