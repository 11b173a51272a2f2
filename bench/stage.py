"""What a training process is doing now, for `ganbench status` and the worker's log.

While a cell trains, its training folder holds `stage.txt`: one line such as
"label embedding: x2y epoch 3 of 200" or "training: step 400 of 2000". A
preparation that runs before the first step (CcGAN's label embedding, minutes
to hours) `say`s each of its epochs: the line goes to the worker's stderr and
to that file; `Store.state` shows it beside a running cell and beside a cell
blocked on that training run. The file is removed when the training stage
ends, so a leftover one (a killed process) is never read as news: it is only
shown while the run's lock is held.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

STAGE_FILE = "stage.txt"
MAX_CHARS = 200  # a results folder is untrusted input: read no more than a line's worth

_folder: Path | None = None
_last_echo = 0.0


@contextmanager
def recording(folder: Path) -> Iterator[None]:
    """Let `say` write to `folder`/stage.txt while the block runs; removes it after."""
    global _folder
    _folder = Path(folder)
    try:
        yield
    finally:
        _folder = None
        (Path(folder) / STAGE_FILE).unlink(missing_ok=True)


def say(text: str, echo: bool = True, every_s: float = 2.0) -> None:
    """Record what the process does now; with `echo`, also print it to stderr (at most
    once per `every_s` seconds, so a loop of fast epochs does not flood the log)."""
    global _last_echo
    text = " ".join(text.split())[:MAX_CHARS]
    if _folder is not None:
        from bench.store import atomic_write

        atomic_write(_folder / STAGE_FILE, text + "\n")
    now = time.monotonic()
    if echo and now - _last_echo >= every_s:
        _last_echo = now
        print(f"ganbench: {text}", file=sys.stderr, flush=True)


def read(folder: Path) -> str | None:
    """The stage line of a training folder, or None."""
    try:
        with open(Path(folder) / STAGE_FILE, "rb") as handle:
            raw = handle.read(MAX_CHARS * 4)
    except OSError:
        return None
    line = raw.decode("utf-8", errors="replace").splitlines()[0:1]
    text = "".join(ch for ch in (line[0] if line else "") if ch.isprintable())[:MAX_CHARS].strip()
    return text or None
