"""Where cells run: one interface (bench.executors.base.Executor), three executors.

| name | module | jobs |
|---|---|---|
| `debug` | `local.py` | in this process, one after another |
| `local` | `local.py` | `workers` processes of this machine, a GPU slot each |
| `slurm` | `slurm.py` (profiles: `profiles.py`, the task: `task.py`) | job arrays, `afterok` between dependency levels |

Each starts cells in dependency order, says what its jobs add to the store's
answer about a cell (`job_states`) and cancels them. `cell_states` is the
one answer to "what is each cell of this sweep". Modules are imported when
an executor is asked for, so reading states costs no torch import.
"""

from __future__ import annotations

import importlib

from bench.executors.base import Executor, cell_states, counts, levels, to_run  # noqa: F401

EXECUTORS = {"debug": "bench.executors.local:DebugExecutor", "local": "bench.executors.local:LocalExecutor",
             "slurm": "bench.executors.slurm:SlurmExecutor"}  # fmt: skip


def executor_class(name: str) -> type[Executor]:
    module, _, attr = EXECUTORS[name].partition(":")
    return getattr(importlib.import_module(module), attr)
