"""A sweep's expansion, kept: `plan`, `status`, `report` read it back without importing the plugins (or torch).

Expanding a sweep imports every plugin (methods import torch, seconds per
process) and resolves every cell. What it gives depends only on the sweep
file, the command's options, the environment that names plugins and limits,
and the code of ganbench and its plugins. So `load` keeps the expansion in
the cache, one entry per sweep file and options
(``$GANBENCH_CACHE/sweeps/<hash of path and options>.json``), with a hash of
the file's content and a stamp of that code: size and mtime of every
``*.py`` file under bench/ and the plugin folders, of those folders (a file
added or removed), and of the folders on the import path (a package
installed: plugin entry points). While both hold, the expansion is read
back; any change expands afresh and replaces the entry.

The entry also keeps the registry facts that reading results needs (a
metric's label and direction, a dataset's kind; `bench.registry.FACTS`), and
primes the registries with them, so the report imports no plugin either.
Commands that run cells (`sweep`, `evaluate`) always expand afresh and
refresh the entry (`fresh=True`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from pathlib import Path

from bench.cache import cache_dir
from bench.record_index import paused_gc
from bench.registry import BUILTIN_PLUGIN_DIRS, FACTS, PACKAGE_DIR, PLUGIN_PATH_ENV, plugin_dirs_from_env
from bench.spec import MAX_CELLS_ENV, Sweep
from bench.errors import UserError
from bench.store import atomic_write
from bench.yamlsafe import read_bytes

FORMAT = 1  # bump when the entry's layout changes


def load(path: str | Path, extra_plugin_dirs: list[str] = (), budget: str | None = None,
         max_cells: int | None = None, fresh: bool = False) -> Sweep:  # fmt: skip
    """`bench.spec.load_sweep(...)`, read from the cache when nothing it depends on changed."""
    path = Path(path)
    try:
        # One entry per sweep file and options (an edited file replaces its entry); its content is checked on reading.
        content = hashlib.sha256(read_bytes(path, "sweep file")).hexdigest()  # bounded: never a FIFO or /dev/zero
        key = json.dumps([FORMAT, str(path.resolve()), list(map(str, extra_plugin_dirs)), budget, max_cells,
                          os.environ.get(MAX_CELLS_ENV, ""), os.environ.get(PLUGIN_PATH_ENV, ""), os.getcwd(),
                          sys.version])  # fmt: skip
        entry_file = cache_dir("sweeps") / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"
    except (OSError, UserError):  # no such file, no permission, no cache folder: load_sweep says what is wrong, if anything
        content = entry_file = None
    if not fresh and entry_file is not None:
        sweep = _read(entry_file, content)
        if sweep is not None:
            return sweep
    from bench.spec import load_sweep  # the plugins, torch and the resolution

    sweep = load_sweep(path, extra_plugin_dirs=extra_plugin_dirs, budget=budget, max_cells=max_cells)
    if entry_file is not None:
        _write(entry_file, content, sweep)
    return sweep


def _stamp(plugin_dirs: list[str]) -> list[list]:
    """(path, size, mtime) of the code an expansion depends on; see the module's docstring."""
    folders = [PACKAGE_DIR, *BUILTIN_PLUGIN_DIRS, *plugin_dirs_from_env(), *map(Path, plugin_dirs)]
    paths = [*folders, *(p for f in folders if f.is_dir() for p in sorted(f.rglob("*.py")))]
    # sys.path[0] is the script's folder or the working folder (`-m`): it changes with every file written there.
    paths += [Path(p) for p in sys.path[1:] if p and os.path.isdir(p)]
    out = []
    for p in dict.fromkeys(paths):
        try:
            st = os.stat(p)
        except OSError:
            out.append([str(p), None, None])
            continue
        out.append([str(p), st.st_size if p.is_file() else None, st.st_mtime_ns])
    return out


def _facts(sweep: Sweep) -> dict[str, dict[str, dict]]:
    """The registry facts of the sweep's metrics and datasets (bench.registry.FACTS)."""
    used = {"metrics": {m for c in sweep.cells for m in c["config"]["metrics"]},
            "datasets": {c["config"]["dataset"] for c in sweep.cells}}  # fmt: skip
    return {kind: {name: registry.facts(name) for name in sorted(used[kind])} for kind, registry in FACTS.items()}


def _write(entry_file: Path, content: str, sweep: Sweep) -> None:
    entry = {"content": content, "stamp": _stamp(sweep.plugin_dirs), "facts": _facts(sweep),
             "sweep": {**{f.name: getattr(sweep, f.name) for f in dataclasses.fields(sweep)}, "path": str(sweep.path)}}  # fmt: skip
    try:
        atomic_write(entry_file, json.dumps(entry, separators=(",", ":")))
    except OSError:  # a read-only or full cache: only the next command is slower
        pass


def _read(entry_file: Path, content: str) -> Sweep | None:
    try:
        with paused_gc():  # thousands of cell configs: see paused_gc
            entry = json.loads(entry_file.read_bytes())
        if entry["content"] != content or entry["stamp"] != _stamp(entry["sweep"]["plugin_dirs"]):
            return None
        fields = entry["sweep"]
        sweep = Sweep(**{**fields, "path": Path(fields["path"])})
    except (OSError, ValueError, KeyError, TypeError):  # damaged or from another layout: expand afresh
        return None
    for kind, registry in FACTS.items():
        registry.prime(entry["facts"].get(kind, {}))
    return sweep
