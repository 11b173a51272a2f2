"""The report's own copy of its records: results/<sweep>/records/.

Raw runs (results/runs/) are git-ignored: they hold checkpoints and
generators. A committed leaderboard therefore carries what it was built
from, small enough to commit: each cell's result record
(`records/<id>.json`, the file the page's "record" links open) and the
files the page shows (`<id>.samples.png`, `<id>.losses.csv`). `report` reads
a cell's record from the runs when there is one and from here otherwise, so
a fresh clone regenerates every table (`--latex combined` included) without
retraining, and never writes a report with fewer finished cells than the one
it replaces (`check_nothing_lost`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
from pathlib import Path

from bench.errors import UserError
from bench.record_index import summary
from bench.store import Damaged, atomic_write, read_bounded, shape_problem

FOLDER = "records"
MAX_BYTES = 16 << 20  # a result record is a few KB; a sample grid a few hundred
_NAME = re.compile(r"^[0-9a-f]{6,64}(\.json|\.samples\.png|\.losses\.csv)$")  # cell ids are hex digests


def folder(report_dir: Path) -> Path:
    return report_dir / FOLDER


def _read(path: Path) -> bytes | None:
    """A regular file of at most MAX_BYTES, never through a link (store.read_bounded); None otherwise."""
    try:
        return read_bounded(path, MAX_BYTES)
    except (Damaged, OSError):
        return None


def archived_records(report_dir: Path, cell_ids) -> list[dict]:
    """The archived records (as `record_index.summary` keeps them) of those of `cell_ids` that have one."""
    out = []
    for cell_id in cell_ids:
        data = _read(folder(report_dir) / f"{cell_id}.json")
        if data is None:
            continue
        try:
            record = json.loads(data.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError included: a damaged copy is no record
            continue
        # The same shape checks as a record in the runs (store.shape_problem): a bad copy is no record.
        if isinstance(record, dict) and record.get("id") == cell_id and shape_problem("result.json", record) is None:
            out.append(summary(record))
    return out


def archived_file(report_dir: Path, cell_id: str, name: str) -> Path | None:
    """records/<id>.samples.png or records/<id>.losses.csv, if it is a regular file."""
    path = folder(report_dir) / f"{cell_id}.{name}"
    return path if path.is_file() and not path.is_symlink() else None


def update(report_dir: Path, record_paths: dict[str, Path], files: dict[str, dict[str, Path]]) -> None:
    """Copy each cell's result record (cell id -> its result.json in the runs) and the page's files
    (cell id -> {name: path}) into records/, where they differ; remove the copies nobody asked for
    (cells no longer in the sweep, pictures the page no longer shows). A copy whose source is gone
    stays: it is all there is of that cell now. Copies are byte for byte: nothing is parsed again."""
    target = folder(report_dir)
    wanted: dict[str, Path] = {f"{cid}.json": p for cid, p in record_paths.items()}
    for cid, named in files.items():
        for name, path in named.items():
            wanted[f"{cid}.{name}"] = path
    kept = set()
    for name, source in wanted.items():
        copy = target / name
        if _up_to_date(copy, source):  # a stat each, not a read: a report over 10,000 cells reads no record twice
            kept.add(name)
            continue
        data = _read(source)
        if data is None:
            if copy.is_file():
                kept.add(name)  # the archive is all there is of this cell now (a fresh clone)
            continue
        kept.add(name)
        try:
            same = copy.stat().st_size == len(data) and _read(copy) == data
        except OSError:
            same = False
        if not same:
            target.mkdir(parents=True, exist_ok=True)
            atomic_write(copy, data)
    try:
        names = os.listdir(target)
    except OSError:
        return
    for name in names:
        if _NAME.match(name) and name not in kept:
            os.unlink(target / name)


def _up_to_date(copy: Path, source: Path) -> bool:
    """The copy is a regular file of the source's size, written after the source last changed
    (records and pictures are replaced by renames, which give them a new mtime)."""
    try:
        c, s = os.stat(copy, follow_symlinks=False), os.stat(source, follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISREG(c.st_mode) and stat.S_ISREG(s.st_mode) and c.st_size == s.st_size and c.st_mtime_ns >= s.st_mtime_ns


def done_ids(report_dir: Path) -> set[str]:
    """The ids of the finished cells in the report this one would replace (its cells.csv)."""
    data = _read(report_dir / "cells.csv")
    if not data:
        return set()
    try:
        rows = csv.DictReader(io.StringIO(data.decode("utf-8")))
        return {row["id"] for row in rows if row.get("status") == "done" and row.get("id")}
    except (UnicodeDecodeError, csv.Error, KeyError):
        return set()


def check_nothing_lost(report_dir: Path, sweep_name: str, sweep_ids, done_now) -> None:
    """Refuse (one line, nothing written) to replace a report with one that lacks finished cells it
    had (`done_now`: the cells done now, and those whose record exists but is damaged, which the
    report shows as `corrupt`): their records are absent (a fresh clone of a report that predates records/, deleted runs),
    or they are no longer cells of the sweep file (a changed setting, or a ganbench whose defaults
    changed, gives new ids). Either way the new tables would silently drop them."""
    lost = done_ids(report_dir) - set(done_now)
    if not lost:
        return
    gone = len(lost - set(sweep_ids))
    why = [f"{len(lost) - gone} have no record in results/runs/{sweep_name}/ nor in {report_dir / FOLDER}/"] if len(lost) > gone else []
    why += [f"{gone} are no longer cells of the sweep file (a changed setting or default gives new ids)"] if gone else []
    raise UserError(
        f"{report_dir / 'leaderboard.md'}: {len(lost)} finished cells of this report would be dropped ({'; '.join(why)}); "
        "it is left as it is. Run `ganbench sweep` on this sweep file to make its cells (only missing ones run), "
        "or pass --replace to write the report of what exists"
    )
