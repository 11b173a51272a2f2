"""Where ganbench keeps data it computes once and reuses (evaluation
networks, reference statistics): $GANBENCH_CACHE, else ~/.cache/ganbench."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def cache_dir(*parts: str) -> Path:
    root = Path(os.environ.get("GANBENCH_CACHE") or Path.home() / ".cache" / "ganbench")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock across processes (and SLURM jobs on one filesystem)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
