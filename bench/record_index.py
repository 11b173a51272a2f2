"""A kept digest of a sweep's result records, so `status` and `report` over
thousands of cells do not parse thousands of JSON files each time.

`runs/<sweep>/records-index.json` maps each cell id to the stat key of its
result.json (inode, mtime and ctime in ns, size) and a summary of the record: the
record without what only the cell's own file needs (see `summary`). It is
a cache, never the truth: every read stats each result.json and re-reads
the ones whose key changed, and a file that cannot be read is never
indexed (the store reports it as corrupt). Writers of result.json never
touch the index; whoever reads refreshes it. Two readers that refresh at
once each replace the whole file atomically, and a stale entry is caught
by its key the next time. A results folder that cannot be written keeps
working, without the speed.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

INDEX_NAME = "records-index.json"

# What `status` and `report` read of a record: its top-level fields but
# these, and of the nested ones only the keys listed. The cell's config is
# the sweep's own (the cell id is its hash); the training run's environment
# repeats the record's; a single evaluation in `eval_repeats` repeats
# `metrics`; per-metric seconds, files set aside and the evaluator's details
# other than the per-class figures, why a metric has no value and a bound that depends on the data set
# (a count of modes) are for a person reading one record.
# A reader that needs another field adds it here (tests/test_record_index.py
# checks that the report's tables are the same from summaries as from records).
_DROP = ("config", "set_aside", "sweep")
_KEEP_NESTED = {
    "train": ("steps",),
    "timings": ("train_s", "sample_s", "eval_s", "train_reused"),
    "data": ("class_counts", "counts_of"),
    "method_info": ("g_updates", "d_updates"),
    "evaluator": ("per_class", "unavailable", "bounds"),
}


# The index's layout: a change to what summaries keep makes every kept index stale.
VERSION = "3-" + hashlib.sha256(repr((_DROP, _KEEP_NESTED, "eval_repeats: 2 or more")).encode()).hexdigest()[:12]


def summary(record: dict) -> dict:
    """The record as `status` and `report` read it (see _DROP, _KEEP_NESTED)."""
    out = {k: v for k, v in record.items() if k not in _DROP}
    for key, keep in _KEEP_NESTED.items():
        if isinstance(out.get(key), dict):
            out[key] = {k: out[key][k] for k in keep if k in out[key]}
    repeats = out.pop("eval_repeats", None)
    if isinstance(repeats, list) and len(repeats) > 1:  # one evaluation is the record's metrics again
        out["eval_repeats"] = [{"eval_seed": r.get("eval_seed"), "metrics": r.get("metrics")}
                               for r in repeats if isinstance(r, dict)]  # fmt: skip
    return out


@contextmanager
def paused_gc() -> Iterator[None]:
    """Read many records without the cyclic garbage collector.

    Parsed records are plain dicts and lists without cycles, but each of the
    collector's full passes walks all of them again: over 10,000 records that
    was 0.3 s of a 1.8 s `report`. (`ganbench` also freezes what is alive
    before it exits: bench.cli.run.)
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def stat_key(path: str) -> list[int] | None:
    """[inode, mtime in ns, ctime in ns, size] of a file, None if absent or out of reach (a folder
    without permission, as a glob would skip it): an atomic rewrite (a rename) changes it."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    return [st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size]


def _usable(entry) -> bool:
    return (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], list)
            and isinstance(entry[1], dict) and "status" in entry[1])  # fmt: skip


def load(runs_dir: Path) -> dict[str, list]:
    """cell id -> [stat key, summary] as last kept; {} when there is no usable index."""
    from bench.store import Damaged, read_bounded, shape_problem

    try:  # bounded, never a FIFO or a link: a damaged index is only no index
        data = json.loads(read_bounded(runs_dir / INDEX_NAME) or b"null")
    except (OSError, ValueError, UnicodeDecodeError, RecursionError, Damaged):
        return {}
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("cells"), dict):
        return {}
    environments = data.get("environments") or []
    cells = {}
    for cell_id, entry in data["cells"].items():
        if not _usable(entry):
            continue  # read again from its result.json
        record = entry[1]
        if "environment" in record:
            try:
                record["environment"] = environments[record["environment"]]
            except (TypeError, IndexError):
                continue
        if shape_problem("result.json", record):
            continue  # an index edited by hand: the record is read again (and judged) from its own file
        cells[cell_id] = entry
    return cells


def save(runs_dir: Path, cells: dict[str, list]) -> None:
    """Keep the index; a folder that cannot be written only costs the speed next time.

    The cells of a sweep share a few environments (one per machine and
    commit), so each is written once and the records refer to it by number.
    """
    from bench.store import atomic_write

    environments: dict[str, int] = {}
    kept = {}
    for cell_id, (key, record) in cells.items():
        if "environment" in record:
            text = json.dumps(record["environment"], sort_keys=True)
            record = {**record, "environment": environments.setdefault(text, len(environments))}
        kept[cell_id] = [key, record]
    text = json.dumps({"version": VERSION, "environments": [json.loads(e) for e in environments], "cells": kept},
                      separators=(",", ":"))  # fmt: skip
    try:
        atomic_write(runs_dir / INDEX_NAME, text)
    except OSError:
        pass
