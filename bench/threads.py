"""Thread pools of a worker: each worker keeps to its share of the cores (and
of its GPU's memory, when several workers share one GPU).

A process has several pools: torch's intra-op and inter-op threads, OpenMP
and the BLAS library numpy and SciPy use (OpenBLAS or MKL). Each sizes
itself to the whole machine by default, so 8 workers on 16 cores would run
128 threads. `thread_env` gives the environment variables a worker process
must start with (read by the libraries when they load, and inherited by
anything it spawns); `limit_threads` caps the pools of a process that is
already running, with threadpoolctl for OpenMP and BLAS.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def share(workers: int) -> int:
    """The threads each of `workers` processes may use on this machine's cores."""
    try:
        cores = len(os.sched_getaffinity(0))  # what this process may run on (a cgroup or taskset)
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores // workers)


def cell_threads(config: dict, cores: int, source: str) -> tuple[int, str]:
    """(intra-op threads, why) for one cell of `config` that may use `cores` (`source` says why that many).

    A cell gets its cores, capped at what its architecture's `cpu_threads`
    says trains it fastest: small networks run fastest on one thread (the
    pool's wake-ups cost more than a 128-wide layer's arithmetic, and on a
    loaded machine a second thread waits for a core; tests/perf/bench_threads.py
    measures it), so their cells keep to one thread and the other cores go to
    the cells beside them. The executors put both in the cell's runtime
    (`threads`, `threads_rule`); results record them (bench.runner.environment)."""
    from bench.archs import ARCHS  # the architectures import torch: only where cells are dispatched

    name = config["arch"]["name"]
    best = getattr(ARCHS.get(name), "cpu_threads", None) if name in ARCHS else None
    if best is not None and best < cores:
        return best, f"{best} of {cores} ({source}): {name!r} trains fastest on {best} (Arch.cpu_threads)"
    return cores, f"{cores} ({source})"


def thread_env(threads: int) -> dict[str, str]:
    return dict.fromkeys(THREAD_VARIABLES, str(threads))


@contextmanager
def worker_env(threads: int) -> Iterator[None]:
    """Processes started inside this block (local workers) inherit `thread_env(threads)`."""
    before = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    os.environ.update(thread_env(threads))
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def limit_threads(threads: int | None) -> None:
    """Cap this process's torch, OpenMP and BLAS pools (and its children's) at `threads`."""
    if not threads:
        return
    import torch
    from threadpoolctl import threadpool_limits

    os.environ.update(thread_env(threads))
    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != threads:
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:  # only possible before the first inter-op work; then the pool stays as it is
            pass
    threadpool_limits(limits=threads)  # the pools loaded so far; later ones read the environment


def limit_gpu_memory(share: float | None) -> None:
    """Cap this process's allocations on its GPU at `share` of the GPU's memory
    (several cells packed on one GPU, bench.executors.pack): a cell that asks
    for more gets an out-of-memory error of its own instead of starving the others."""
    if not share or share >= 1:
        return
    import torch

    if torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(share, torch.cuda.current_device())
