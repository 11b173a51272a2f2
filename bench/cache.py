"""Where ganbench keeps data it computes once and reuses (evaluation
networks, reference statistics, NIQE models): $GANBENCH_CACHE, else
~/.cache/ganbench; a file lock; and `build_once`, how a cache file is made."""

from __future__ import annotations

import fcntl
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator


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


def build_once(path: Path, write: Callable[[Path], None]) -> Path:
    """Ensure `path` exists; `write(tmp)` writes its content to a temp path on a miss.

    Concurrent jobs (processes, SLURM tasks on one filesystem) wait on the lock
    while one builds; the file appears by an atomic rename, so no reader sees
    half a file and no duplicate is written.
    """
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


def load_once(path: Path, write: Callable[[Path], None], load: Callable[[Path], Any]) -> Any:
    """`load(path)` of the cache file `build_once` makes. A file that `load`
    finds damaged (raises bench.store.Damaged: a cut file, a bad pickle) is
    set aside as `<name>.corrupt-<time>`, said on stderr with its path, and
    built again once; damage the second time is raised."""
    from bench.store import Damaged, set_aside

    build_once(path, write)
    try:
        return load(path)
    except Damaged as exc:
        with file_lock(path.with_name(path.name + ".lock")):
            try:
                load(path)  # another process may have rebuilt it meanwhile
            except Damaged:
                moved = set_aside(path, exc.reason) if path.exists() else None
                print(f"ganbench: the cache file {path} cannot be read ({exc.reason}); "
                      f"{'set aside as ' + moved['moved_to'] + ', ' if moved else ''}made again", file=sys.stderr)  # fmt: skip
    build_once(path, write)
    return load(path)
