"""Progress: the line of a running sweep (how many cells are in each status), and `task`, the
bar or log line of a long step outside the cells (training an evaluation network, ...), which
`ganbench status` reads back from the sweep's activity note.

The counts line only shows counts it is handed (an executor computes them with
`bench.executors.cell_states`); it asks nobody anything itself.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

# Always shown, in this order.
STATUSES = ("done", "diverged", "failed", "running", "pending")
# Shown only when some cell has them: trained (its evaluation raised),
# blocked (its upstream training run has not finished, or failed), corrupt
# (a file cannot be read), queued and preempted (SLURM).
OCCASIONAL = ("trained", "blocked", "corrupt", "queued", "preempted")
FINISHED = ("done", "diverged", "failed", "trained")


def summary(counts: Counter, total: int) -> str:
    """'done 3, diverged 0, failed 1, running 0, pending 2, blocked 1 (of 7)'."""
    order = STATUSES + tuple(k for k in OCCASIONAL if counts[k])
    return ", ".join(f"{k} {counts[k]}" for k in order) + f" (of {total})"


class Progress:
    """One line of counts: redrawn in place on a terminal, a new line per finished cell in a log."""

    def __init__(self, total: int):
        self.total = total
        self.live = None
        self.last = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(console=Console(stderr=True), refresh_per_second=4, transient=False)
            self.live.start()

    def update(self, counts: Counter) -> None:
        finished = sum(counts[k] for k in FINISHED)
        line = (
            f"[{finished}/{self.total}] done {counts['done']}  diverged {counts['diverged']}  "
            f"failed {counts['failed']}  running {counts['running']}  pending {counts['pending']}"
        )
        line += "".join(f"  {k} {counts[k]}" for k in OCCASIONAL if counts[k])
        # A live line redraws on any change; a log file gets a line per finished cell.
        key = line if self.live is not None else (finished, counts["blocked"])
        if key == self.last:
            return
        self.last = key
        if self.live is not None:
            self.live.update(line)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self, counts: Counter) -> None:
        self.update(counts)
        if self.live is not None:
            self.live.stop()


# ---- Long steps outside the cells (evaluation networks, label embeddings, reference statistics) ----

ACTIVITY_FILE = "activity.json"  # in runs/<sweep>/: what the sweep command is doing now, for `status`
QUIET_S = 10.0  # a step shorter than this shows nothing; in a log, a longer one prints a line this often
_activity_path: Path | None = None


def set_activity_file(path: Path | None) -> None:
    """Where `task` writes what is happening (the sweep's runs folder), or None for nowhere."""
    global _activity_path
    _activity_path = path


@contextmanager
def task(label: str, total: int, unit: str = "steps") -> Iterator[Callable[[int], None]]:
    """A step that may take long: yields `advance(done)` (done = units finished so far). After QUIET_S
    seconds it shows a rich progress bar on a terminal, or a line every QUIET_S seconds in a log, and
    keeps the sweep's activity note (for `ganbench status`) up to date."""
    started = time.monotonic()
    state = {"shown": started, "bar": None, "task": None, "noted": 0.0}

    def advance(done: int) -> None:
        now = time.monotonic()
        if now - started < QUIET_S:
            return
        if sys.stderr.isatty():
            if state["bar"] is None:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn

                state["bar"] = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                   TextColumn(unit), TimeElapsedColumn(), transient=True)  # fmt: skip
                state["bar"].start()
                state["task"] = state["bar"].add_task(label, total=total)
            state["bar"].update(state["task"], completed=done)
        elif now - state["shown"] >= QUIET_S:
            state["shown"] = now
            print(f"{label}: {done:,}/{total:,} {unit} ({now - started:.0f} s)", file=sys.stderr, flush=True)
        if now - state["noted"] >= 2.0:
            state["noted"] = now
            _note({"what": label, "done": done, "total": total, "unit": unit, "pid": os.getpid(),
                   "since": time.time() - (now - started)})  # fmt: skip

    try:
        yield advance
    finally:
        if state["bar"] is not None:
            state["bar"].stop()
        if time.monotonic() - started >= QUIET_S:
            print(f"{label}: done in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        if state["noted"]:
            _note(None)


def _note(activity: dict | None) -> None:
    if _activity_path is None:
        return
    try:
        if activity is None:
            _activity_path.unlink(missing_ok=True)
        else:
            from bench.store import atomic_write

            atomic_write(_activity_path, json.dumps(activity))
    except OSError:
        pass  # a note for `status` is never worth failing a sweep over


def activity_line(runs_dir: Path) -> str | None:
    """'now: <what> (1,200/3,000 steps, 4 min)' from a sweep's activity note whose process still runs."""
    path = runs_dir / ACTIVITY_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        note = json.loads(os.read(fd, 4096).decode("utf-8"))
        what, done, total, pid = note["what"], int(note["done"]), int(note["total"]), int(note["pid"])
        unit, since = str(note.get("unit", "steps")), float(note["since"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    finally:
        os.close(fd)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # the sweep that wrote it has ended (killed): nothing is happening
    except OSError:
        pass  # another user's process: it runs
    minutes = max(0.0, time.time() - since) / 60
    return f"now: {str(what)[:200]} ({done:,}/{total:,} {unit[:20]}, {minutes:.0f} min)"
