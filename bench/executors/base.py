"""The one shape of an executor, and the dependency order every executor keeps.

An executor is built for one sweep (its store and all its cells, where the
producers of upstream training runs are looked up) and answers three
things:

- `run(todo, wait)`: start these cells, a cell never before the cells that
  train its upstream runs (`config["upstream"]`, from `Method.needs`), and
  with `wait` follow them to the end; returns one line per job that failed
  outside a cell;
- `job_states(store, cells, states)` (a classmethod: no sweep needed): what
  the executor's own jobs add to the store's answer for cells without a
  result: queued, preempted, running, failed (a job that died without a
  result). Executors whose jobs live only as long as the sweep process that
  started them (debug, local) add nothing: a running cell holds its lock;
- `cancel(store, cells)`: end the jobs of these cells; returns their ids.

The store alone says what a cell's result is; `cell_states` combines it
with every executor's jobs.
"""

from __future__ import annotations

from collections import Counter
from typing import ClassVar

from bench.store import BLOCKED, Store
from bench.threads import cell_threads

# Statuses of cells whose job exists and has not ended (on SLURM).
ACTIVE = ("queued", "running", "preempted")


class Executor:
    name: ClassVar[str]

    def __init__(self, store: Store, cells: list[dict]):
        self.store = store
        self.cells = cells  # the whole sweep: where upstream runs' producers are found

    def run(self, todo: list[dict], wait: bool = True) -> list[str]:
        raise NotImplementedError

    @classmethod
    def job_states(cls, store: Store, cells: list[dict], states: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
        return {}

    @classmethod
    def cancel(cls, store: Store, cells: list[dict]) -> list[str]:
        return []


def executor_classes() -> list[type[Executor]]:
    from bench.executors import EXECUTORS, executor_class

    return list(dict.fromkeys(executor_class(name) for name in EXECUTORS))


def cell_states(store: Store, cells: list[dict]) -> dict[str, tuple[str, str]]:
    """(status, note) of each cell: the store's answer (its result's status, or
    running / corrupt / blocked / pending, with why), refined by the jobs an
    executor holds for cells without a result (queued / preempted on SLURM)."""
    states = {cell["id"]: store.state(cell) for cell in cells}
    for kind in executor_classes():
        states.update(kind.job_states(store, cells, states))
    return states


def counts(states: dict[str, tuple[str, str]]) -> Counter:
    return Counter(status for status, _ in states.values())


def upstream_ids(cell: dict) -> list[str]:
    """The training ids of the runs this cell needs trained before it starts."""
    return list((cell["config"].get("upstream") or {}).values())


def to_run(store: Store, cells: list[dict], states: dict[str, tuple[str, str]], todo_status: tuple[str, ...]) -> list[dict]:
    """The cells to start now: those whose status is in `todo_status`, and the
    blocked cells whose every upstream run is trained already or trained by
    one of those, or by a cell whose job is under way (the executor orders them)."""
    todo = [c for c in cells if states[c["id"]][0] in todo_status]
    coming = {c["training_id"] for c in todo} | {c["training_id"] for c in cells if states[c["id"]][0] in ACTIVE}
    waiting = [c for c in cells if states[c["id"]][0] == BLOCKED]
    changed = True
    while changed:  # a chain: C waits for B, which waits for A
        changed = False
        for cell in list(waiting):
            if all(t in coming or store.is_trained(t) for t in upstream_ids(cell)):
                waiting.remove(cell)
                todo.append(cell)
                coming.add(cell["training_id"])
                changed = True
    return todo


def levels(cells: list[dict]) -> list[list[dict]]:
    """The cells in dependency order: level 0 needs no run that another of these
    cells trains; level k + 1 needs runs trained at levels <= k. Order within a
    level is kept."""
    producers: dict[str, list[dict]] = {}
    for cell in cells:
        producers.setdefault(cell["training_id"], []).append(cell)
    level: dict[str, int] = {}

    def depth(cell: dict, seen: tuple[str, ...] = ()) -> int:
        if cell["id"] not in level:
            if cell["id"] in seen:  # the spec refuses cycles; this keeps a bad list from recursing forever
                raise ValueError(f"cells {' -> '.join(seen)} depend on each other")
            below = [depth(p, (*seen, cell["id"])) for t in upstream_ids(cell) for p in producers.get(t, ())]
            level[cell["id"]] = 1 + max(below) if below else 0
        return level[cell["id"]]

    out: list[list[dict]] = []
    for cell in cells:
        k = depth(cell)
        out += [[] for _ in range(k + 1 - len(out))]
        out[k].append(cell)
    return out


def with_threads(cell: dict, cores: int, source: str) -> dict:
    """The cell with its intra-op threads (and why) in its runtime: its `cores`,
    capped for small networks (bench.threads.cell_threads)."""
    threads, rule = cell_threads(cell["config"], cores, source)
    return {**cell, "runtime": {**cell["runtime"], "threads": threads, "threads_rule": rule}}
