"""Build a cache file once across processes: lock, check, write a temp file, rename.

Concurrent jobs (processes, SLURM tasks on one filesystem) wait on the lock
while one builds; the file appears by an atomic rename, so no reader sees
half a file and no duplicate is written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from bench.cache import file_lock


def build_once(path: Path, write: Callable[[Path], None]) -> Path:
    """Ensure `path` exists; `write(tmp)` writes its content to a temp path on a miss."""
    if path.exists():
        return path
    with file_lock(path.with_name(path.name + ".lock")):
        if not path.exists():
            tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}{path.suffix}")
            try:
                write(tmp)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
    return path
